package vulndb_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/scan/vulndb"
)

// WriteGo writes the same records in govulncheck's layout: one entry per ID with
// the ranges and imports (goos/goarch kept), the module index and db.json.
func TestWriteGo(t *testing.T) {
	rs := golangVulnDB(t)
	rs = append(rs, vulndb.Record{ID: "CVE-2023-4911", Type: "deb", Distro: "debian:12", Package: "glibc",
		Ranges: []vulndb.Range{{FixedIn: "2.36-9+deb12u3"}}}) // not Go: skipped
	built := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	dir := filepath.Join(t.TempDir(), "db")
	db, err := vulndb.WriteGo(context.Background(), dir, rs, vulndb.WithBuildTime(built))
	require.NoError(t, err)
	assert.Equal(t, 5, db.Entries)
	assert.Equal(t, "file://"+dir, db.URL())

	var entry struct {
		ID       string    `json:"id"`
		Modified time.Time `json:"modified"`
		Aliases  []string  `json:"aliases"`
		Affected []struct {
			Package struct{ Name, Ecosystem string }
			Ranges  []struct {
				Type   string
				Events []map[string]string
			}
			EcosystemSpecific struct {
				Imports []struct {
					Path    string
					GOOS    []string
					GOARCH  []string
					Symbols []string
				}
			} `json:"ecosystem_specific"`
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "ID", "GO-2025-3447.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &entry))
	assert.Equal(t, built, entry.Modified)
	assert.Equal(t, []string{"CVE-2025-22866"}, entry.Aliases)
	require.Len(t, entry.Affected, 1)
	a := entry.Affected[0]
	assert.Equal(t, "stdlib", a.Package.Name)
	assert.Equal(t, "Go", a.Package.Ecosystem)
	// introduced 0, fixed 1.22.12; introduced 1.23.0-0, fixed 1.23.6; introduced 1.24.0-0, fixed 1.24.0-rc.3
	require.Len(t, a.Ranges, 3)
	assert.Equal(t, []map[string]string{{"introduced": "1.23.0-0"}, {"fixed": "1.23.6"}}, a.Ranges[1].Events)
	require.Len(t, a.EcosystemSpecific.Imports, 1)
	assert.Equal(t, []string{"ppc64le"}, a.EcosystemSpecific.Imports[0].GOARCH)
	assert.Contains(t, a.EcosystemSpecific.Imports[0].Symbols, "P256Point.ScalarMult")

	var mods []struct {
		Path  string
		Vulns []struct{ ID, Fixed string }
	}
	b, err = os.ReadFile(filepath.Join(dir, "index", "modules.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &mods))
	paths := []string{}
	for _, m := range mods {
		paths = append(paths, m.Path)
	}
	assert.Equal(t, []string{"golang.org/x/crypto", "golang.org/x/text", "stdlib"}, paths)
	_, err = os.Stat(filepath.Join(dir, "index", "db.json"))
	require.NoError(t, err)

	// Not into a directory that holds something.
	_, err = vulndb.WriteGo(context.Background(), dir, rs)
	require.ErrorContains(t, err, "not empty")
	// An ID that is not a file name is refused (see TestWriteGoInexpressibleRange
	// for ranges).
	bad := []vulndb.Record{{ID: "../escape", Type: "go-module", Package: "example.com/m", Ranges: []vulndb.Range{{Vulnerable: "< 1.2.0"}}}}
	_, err = vulndb.WriteGo(context.Background(), t.TempDir(), bad)
	require.ErrorContains(t, err, "not a file name")
}
