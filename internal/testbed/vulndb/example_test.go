package vulndb_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/shipkit/shipkit/internal/testbed/vulndb"
)

// Write the default fixtures with a fixed build time. grype is then pointed at the root
// directory, e.g. grype.LoadVulnerabilityDB(distribution.Config{},
// db.InstallationConfig(5*24*time.Hour), false).
func ExampleWrite() {
	root, err := os.MkdirTemp("", "vulndb-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(root)

	built := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	db, err := vulndb.Write(context.Background(), root, vulndb.Fixtures(), vulndb.WithBuildTime(built))
	if err != nil {
		fmt.Println(err)
		return
	}
	rel, err := filepath.Rel(db.RootDir, db.Path)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(rel)
	fmt.Println(db.Built.Format(time.RFC3339))
	// Output:
	// 6/vulnerability.db
	// 2024-01-02T03:04:05Z
}
