package vulndb_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/scan/vulndb"
)

// golangVulnDB reads the real golang/vulndb records in testdata/golang-vulndb.
func golangVulnDB(t *testing.T) []vulndb.Record {
	t.Helper()
	files, err := filepath.Glob("testdata/golang-vulndb/*.json")
	require.NoError(t, err)
	require.Len(t, files, 5)
	var out []vulndb.Record
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		rs, err := vulndb.ParseOSV(data)
		require.NoError(t, err, f)
		out = append(out, rs...)
	}
	return out
}

func recordByID(t *testing.T, rs []vulndb.Record, id string) vulndb.Record {
	t.Helper()
	for _, r := range rs {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("no record %s", id)
	return vulndb.Record{}
}

// The imports of golang/vulndb's records, with their goos/goarch limits, are read.
func TestOSVImports(t *testing.T) {
	rs := golangVulnDB(t)
	win := recordByID(t, rs, "GO-2024-2961")
	require.Len(t, win.Imports, 1)
	assert.Equal(t, "golang.org/x/crypto/acme/autocert", win.Imports[0].Path)
	assert.Equal(t, []string{"windows"}, win.Imports[0].GOOS)
	assert.Empty(t, win.Imports[0].GOARCH)
	assert.Contains(t, win.Imports[0].Symbols, "Manager.GetCertificate")

	ppc := recordByID(t, rs, "GO-2025-3447")
	assert.Equal(t, "stdlib", ppc.Package)
	require.Len(t, ppc.Imports, 1)
	assert.Equal(t, []string{"ppc64le"}, ppc.Imports[0].GOARCH)

	tests := []struct {
		id, goos, goarch string
		want             bool
	}{
		{"GO-2024-2961", "linux", "amd64", false},
		{"GO-2024-2961", "windows", "amd64", true},
		{"GO-2024-2961", "", "amd64", true}, // unknown OS: kept
		{"GO-2025-3447", "linux", "amd64", false},
		{"GO-2025-3447", "linux", "ppc64le", true},
		{"GO-2022-0209", "linux", "amd64", true},
		{"GO-2022-0209", "linux", "arm64", false},
		{"GO-2022-1059", "linux", "arm64", true}, // no limit
		{"GO-2021-0113", "windows", "386", true},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, recordByID(t, rs, tt.id).AppliesTo(tt.goos, tt.goarch), "%s on %s/%s", tt.id, tt.goos, tt.goarch)
	}
	// An import with no path is refused.
	bad := win
	bad.Imports = []vulndb.GoImport{{GOOS: []string{"windows"}}}
	_, err := vulndb.Write(context.Background(), t.TempDir(), []vulndb.Record{bad})
	require.ErrorContains(t, err, "imports[0] has no path")
}

// Write keeps the limits beside grype's tables; ReadPlatforms reads them back and
// decides as Record.AppliesTo does.
func TestWriteReadPlatforms(t *testing.T) {
	rs := golangVulnDB(t)
	db, err := vulndb.Write(context.Background(), t.TempDir(), rs)
	require.NoError(t, err)
	p, err := vulndb.ReadPlatforms(db.Path)
	require.NoError(t, err)
	assert.Equal(t, 3, p.Len(), "the three limited records, not the two x/text ones")
	for _, r := range rs {
		for _, plat := range [][2]string{{"linux", "amd64"}, {"linux", "arm64"}, {"windows", "amd64"}, {"linux", "ppc64le"}, {"", ""}} {
			assert.Equal(t, r.AppliesTo(plat[0], plat[1]), p.Applies(r.ID, r.Package, plat[0], plat[1]), "%s on %v", r.ID, plat)
		}
	}
	assert.False(t, p.Applies("GO-2024-2961", "golang.org/x/crypto", "linux", "amd64"))
	assert.True(t, p.Applies("GO-2024-2961", "golang.org/x/crypto", "windows", "arm64"))
	assert.True(t, p.Applies("GO-2099-0001", "example.com/unknown", "linux", "amd64"), "an advisory with no row applies")

	// A database with no Go limits (like grype's own) limits nothing.
	plain, err := vulndb.Write(context.Background(), t.TempDir(), []vulndb.Record{{
		ID: "GHSA-69ch-w2m2-3vjp", Type: "go-module", Package: "golang.org/x/text",
		Ranges: []vulndb.Range{{FixedIn: "0.3.8"}},
	}})
	require.NoError(t, err)
	p, err = vulndb.ReadPlatforms(plain.Path)
	require.NoError(t, err)
	assert.Zero(t, p.Len())
	var none *vulndb.Platforms
	assert.True(t, none.Applies("GO-2024-2961", "golang.org/x/crypto", "linux", "amd64"))

	_, err = vulndb.ReadPlatforms(filepath.Join(t.TempDir(), "missing.db"))
	require.Error(t, err)
}
