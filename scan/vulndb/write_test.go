package vulndb_test

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anchore/grype/grype"
	"github.com/anchore/grype/grype/db/v6/distribution"
	"github.com/anchore/grype/grype/distro"
	"github.com/anchore/grype/grype/match"
	"github.com/anchore/grype/grype/matcher"
	grypepkg "github.com/anchore/grype/grype/pkg"
	"github.com/anchore/grype/grype/vulnerability"
	syftpkg "github.com/anchore/syft/syft/pkg"

	"github.com/shipkit/shipkit/scan/vulndb"
)

// grypeMaxAge is grype's default limit on the age of its database.
const grypeMaxAge = 5 * 24 * time.Hour

// records returns one Go module advisory and one Debian advisory for the glibc
// source package, the two kinds of match grype makes differently.
func records() []vulndb.Record {
	return []vulndb.Record{
		{
			ID: "GHSA-69ch-w2m2-3vjp", Aliases: []string{"CVE-2022-32149"}, Type: "go-module",
			Package: "golang.org/x/text", Ranges: []vulndb.Range{{Vulnerable: "< 0.3.8", FixedIn: "0.3.8"}},
			Severity: "high", CVSS: []vulndb.CVSS{{Version: "3.1", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}},
			Description: "golang.org/x/text/language Denial of service via crafted Accept-Language header",
			URLs:        []string{"https://github.com/advisories/GHSA-69ch-w2m2-3vjp"},
		},
		{
			ID: "CVE-2023-4911", Type: "deb", Distro: "debian:12", Package: "glibc",
			Ranges:   []vulndb.Range{{Vulnerable: "< 2.36-9+deb12u3", FixedIn: "2.36-9+deb12u3"}},
			Severity: "high", Description: "glibc: buffer overflow in ld.so",
		},
	}
}

func writeFixtures(t *testing.T, opts ...vulndb.Option) *vulndb.Database {
	t.Helper()
	db, err := vulndb.Write(context.Background(), t.TempDir(), records(), opts...)
	require.NoError(t, err)
	return db
}

// load opens db with grype's real loader, without update checks.
func load(t *testing.T, db *vulndb.Database, maxAge time.Duration) (vulnerability.Provider, *vulnerability.ProviderStatus, error) {
	t.Helper()
	prov, status, err := grype.LoadVulnerabilityDB(distribution.Config{}, db.InstallationConfig(maxAge), false)
	if prov != nil {
		t.Cleanup(func() { assert.NoError(t, prov.Close()) })
	}
	return prov, status, err
}

// matchIDs runs grype's default matchers over p and returns the sorted vulnerability IDs.
func matchIDs(t *testing.T, prov vulnerability.Provider, p grypepkg.Package) ([]string, []match.Match) {
	t.Helper()
	vm := &grype.VulnerabilityMatcher{
		VulnerabilityProvider: prov,
		Matchers:              matcher.NewDefaultMatchers(matcher.Config{}),
	}
	found, _, err := vm.FindMatchesContext(context.Background(), []grypepkg.Package{p}, grypepkg.Context{})
	require.NoError(t, err)
	ids := []string{}
	for _, m := range found.Sorted() {
		ids = append(ids, m.Vulnerability.ID)
	}
	sort.Strings(ids)
	return ids, found.Sorted()
}

func goModule(version string) grypepkg.Package {
	p := syftpkg.Package{
		Name:     "golang.org/x/text",
		Version:  version,
		Type:     syftpkg.GoModulePkg,
		Language: syftpkg.Go,
		PURL:     "pkg:golang/golang.org/x/text@" + version,
	}
	p.SetID()
	return grypepkg.New(p)
}

// libc6 is the Debian binary package built from the glibc source package.
func libc6(version string, d *distro.Distro) grypepkg.Package {
	p := syftpkg.Package{
		Name:    "libc6",
		Version: version,
		Type:    syftpkg.DebPkg,
		PURL:    "pkg:deb/debian/libc6@" + version + "?arch=amd64&upstream=glibc",
		Metadata: syftpkg.DpkgDBEntry{
			Package: "libc6", Source: "glibc", Version: version, Architecture: "amd64",
		},
	}
	p.SetID()
	gp := grypepkg.New(p)
	gp.Distro = d
	return gp
}

func TestWriteMatches(t *testing.T) {
	db := writeFixtures(t)
	prov, status, err := load(t, db, grypeMaxAge)
	require.NoError(t, err)
	assert.Equal(t, db.Path, status.Path)
	assert.Regexp(t, `^v6\.\d+\.\d+$`, db.SchemaVersion)
	bookworm := distro.New(distro.Debian, "12", "bookworm")
	tests := []struct {
		name string
		pkg  grypepkg.Package
		want []string
	}{
		{"x/text v0.3.7", goModule("v0.3.7"), []string{"GHSA-69ch-w2m2-3vjp"}},
		{"x/text v0.3.8", goModule("v0.3.8"), []string{}},
		{"libc6 deb12u2", libc6("2.36-9+deb12u2", bookworm), []string{"CVE-2023-4911"}},
		{"libc6 deb12u3", libc6("2.36-9+deb12u3", bookworm), []string{}},
		{"libc6 on debian 11", libc6("2.36-9+deb12u2", distro.New(distro.Debian, "11", "bullseye")), []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := matchIDs(t, prov, tt.pkg)
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestWriteFromOSV writes what FromOSV read and finds it with grype.
func TestWriteFromOSV(t *testing.T) {
	recs, err := vulndb.FromOSV(strings.NewReader(`{"id":"GHSA-x","aliases":["CVE-2024-1"],
		"database_specific":{"severity":"MODERATE"},
		"affected":[{"package":{"ecosystem":"Go","name":"golang.org/x/text"},
		"ranges":[{"type":"SEMVER","events":[{"introduced":"0.3.0"},{"fixed":"0.3.7"}]}]}]}`))
	require.NoError(t, err)
	db, err := vulndb.Write(t.Context(), t.TempDir(), recs)
	require.NoError(t, err)
	prov, _, err := load(t, db, grypeMaxAge)
	require.NoError(t, err)
	got, matches := matchIDs(t, prov, goModule("v0.3.6"))
	assert.Equal(t, []string{"GHSA-x"}, got)
	require.Len(t, matches, 1)
	assert.Equal(t, "Medium", matches[0].Vulnerability.Metadata.Severity)
	got, _ = matchIDs(t, prov, goModule("v0.2.0"))
	assert.Empty(t, got, "below the introduced version")
}

// TestWriteReplaces checks a second write replaces the database, and that a
// failed one leaves it as it was.
func TestWriteReplaces(t *testing.T) {
	root := t.TempDir()
	_, err := vulndb.Write(t.Context(), root, records()[:1])
	require.NoError(t, err)

	bad := records()[1]
	bad.Distro = "plan9:4"
	_, err = vulndb.Write(t.Context(), root, []vulndb.Record{bad})
	require.Error(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = vulndb.Write(ctx, root, records())
	require.ErrorIs(t, err, context.Canceled)

	db := &vulndb.Database{RootDir: root}
	prov, _, err := grype.LoadVulnerabilityDB(distribution.Config{}, db.InstallationConfig(grypeMaxAge), false)
	require.NoError(t, err, "the first database is intact")
	got, _ := matchIDs(t, prov, goModule("v0.3.6"))
	assert.Equal(t, []string{"GHSA-69ch-w2m2-3vjp"}, got)
	require.NoError(t, prov.Close())
	entries, err := os.ReadDir(root)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary directory is left behind")
	assert.Equal(t, "6", entries[0].Name())

	_, err = vulndb.Write(t.Context(), root, records()[1:])
	require.NoError(t, err)
	prov2, _, err := load(t, db, grypeMaxAge)
	require.NoError(t, err)
	got, _ = matchIDs(t, prov2, goModule("v0.3.6"))
	assert.Empty(t, got, "the second write replaced the first")
	got, _ = matchIDs(t, prov2, libc6("2.36-9+deb12u2", distro.New(distro.Debian, "12", "bookworm")))
	assert.Equal(t, []string{"CVE-2023-4911"}, got)
}

func TestLoaderChecks(t *testing.T) {
	old := time.Now().Add(-10 * 24 * time.Hour)
	tests := []struct {
		name    string
		opts    []vulndb.Option
		maxAge  time.Duration
		mutate  func(t *testing.T, db *vulndb.Database)
		wantErr string
	}{
		{name: "fresh", maxAge: grypeMaxAge},
		{name: "too old", opts: []vulndb.Option{vulndb.WithBuildTime(old)}, maxAge: grypeMaxAge, wantErr: "was built"},
		{name: "old, age check off", opts: []vulndb.Option{vulndb.WithBuildTime(old)}},
		{
			name: "checksum mismatch", maxAge: grypeMaxAge, wantErr: "bad db checksum",
			mutate: func(t *testing.T, db *vulndb.Database) {
				meta := `{"digest":"xxh64:0000000000000000","client_version":"v6.0.0"}`
				require.NoError(t, os.WriteFile(filepath.Join(db.Dir, "import.json"), []byte(meta), 0o644))
			},
		},
		{
			name: "no import metadata", maxAge: grypeMaxAge, wantErr: "import metadata",
			mutate: func(t *testing.T, db *vulndb.Database) {
				require.NoError(t, os.Remove(filepath.Join(db.Dir, "import.json")))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := writeFixtures(t, tt.opts...)
			if tt.mutate != nil {
				tt.mutate(t, db)
			}
			_, status, err := load(t, db, tt.maxAge)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.True(t, db.Built.Equal(status.Built), "built %s, loader says %s", db.Built, status.Built)
		})
	}
}

func TestWriteBuildTime(t *testing.T) {
	built := time.Date(2024, 1, 2, 3, 4, 5, 600_000_000, time.FixedZone("CET", 3600))
	db := writeFixtures(t, vulndb.WithBuildTime(built))
	assert.Equal(t, time.Date(2024, 1, 2, 2, 4, 6, 0, time.UTC), db.Built.UTC())
	assert.Equal(t, filepath.Join(db.RootDir, "6", "vulnerability.db"), db.Path)
	assert.FileExists(t, filepath.Join(db.Dir, "import.json"))
}

func TestWriteRejectsBadRecords(t *testing.T) {
	good := records()[0]
	tests := []struct {
		name    string
		mutate  func(r *vulndb.Record)
		wantErr string
	}{
		{"no id", func(r *vulndb.Record) { r.ID = "" }, "no ID"},
		{"no package", func(r *vulndb.Record) { r.Package = "" }, "no package"},
		{"no ranges", func(r *vulndb.Record) { r.Ranges = nil }, "no version range"},
		{"unknown type", func(r *vulndb.Record) { r.Type = "cobol" }, `package type "cobol"`},
		{"bad severity", func(r *vulndb.Record) { r.Severity = "urgent" }, `unknown severity "urgent"`},
		{"bad distro", func(r *vulndb.Record) { r.Distro = "debian" }, "not of the form name:version"},
		{"unknown distro", func(r *vulndb.Record) { r.Distro = "plan9:4" }, `grype does not know "plan9"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := good
			tt.mutate(&r)
			_, err := vulndb.Write(context.Background(), t.TempDir(), []vulndb.Record{r})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestWriteHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := vulndb.Write(ctx, t.TempDir(), records())
	require.ErrorIs(t, err, context.Canceled)
}

func TestWriteEmpty(t *testing.T) {
	db, err := vulndb.Write(context.Background(), t.TempDir(), nil)
	require.NoError(t, err)
	prov, _, err := load(t, db, grypeMaxAge)
	require.NoError(t, err)
	got, _ := matchIDs(t, prov, goModule("v0.3.6"))
	assert.Empty(t, got)
}
