package job

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/shipkit/shipkit/scan/vulndb"
)

// advisories are the OSV records the default scan matches against: the GitHub
// advisories of golang.org/x/text that concern versions near the one examples/hello
// links (see advisories/README.md).
//
//go:embed advisories/*.json
var advisories embed.FS

// WriteAdvisoryDB writes the embedded advisories as a grype v6 database under root
// (in root/6, the layout grype's db.cache-dir has) and returns how many records it
// holds. The scan stage does this when Config.DB is empty; a benchmark writes it
// once to point the grype CLI and the job at the same database.
func WriteAdvisoryDB(ctx context.Context, root string) (int, error) {
	files, err := fs.Glob(advisories, "advisories/*.json")
	if err != nil {
		return 0, err
	}
	var records []vulndb.Record
	for _, f := range files {
		data, err := advisories.ReadFile(f)
		if err != nil {
			return 0, err
		}
		rs, err := vulndb.ParseOSV(data)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", f, err)
		}
		records = append(records, rs...)
	}
	if _, err := vulndb.Write(ctx, root, records); err != nil {
		return 0, fmt.Errorf("writing the vulnerability database: %w", err)
	}
	return len(records), nil
}
