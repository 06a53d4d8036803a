package vulndb_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/shipkit/shipkit/scan/vulndb"
)

// An air-gapped user turns their own OSV feed into a grype database; scan/vuln, or
// the grype CLI with GRYPE_DB_CACHE_DIR=root, then scans against it offline.
func Example() {
	feed := `{"id":"GHSA-69ch-w2m2-3vjp","aliases":["CVE-2022-32149"],
	  "summary":"golang.org/x/text/language Denial of service via crafted Accept-Language header",
	  "database_specific":{"severity":"HIGH"},
	  "affected":[{"package":{"ecosystem":"Go","name":"golang.org/x/text"},
	    "ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"0.3.8"}]}]}]}`
	records, err := vulndb.FromOSV(strings.NewReader(feed))
	if err != nil {
		fmt.Println(err)
		return
	}
	root, err := os.MkdirTemp("", "grype-db")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(root)
	db, err := vulndb.Write(context.Background(), root, records)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(records[0].ID, records[0].Type, records[0].Package, records[0].Ranges[0].Vulnerable)
	fmt.Println(strings.TrimPrefix(db.Path, root))
	// Output:
	// GHSA-69ch-w2m2-3vjp go-module golang.org/x/text < 0.3.8
	// /6/vulnerability.db
}
