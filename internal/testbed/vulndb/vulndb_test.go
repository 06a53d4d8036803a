package vulndb_test

import (
	"context"
	"os"
	"path/filepath"
	"sort"
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

	"github.com/shipkit/shipkit/internal/testbed/vulndb"
)

// grypeMaxAge is grype's default limit on the age of its database.
const grypeMaxAge = 5 * 24 * time.Hour

func writeFixtures(t *testing.T, opts ...vulndb.Option) *vulndb.Database {
	t.Helper()
	db, err := vulndb.Write(context.Background(), t.TempDir(), vulndb.Fixtures(), opts...)
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

func TestGrypeMatchesFixtures(t *testing.T) {
	db := writeFixtures(t)
	prov, status, err := load(t, db, grypeMaxAge)
	require.NoError(t, err)
	require.NotNil(t, status)
	assert.Equal(t, db.Path, status.Path)
	assert.Equal(t, db.SchemaVersion, status.SchemaVersion)
	assert.Regexp(t, `^v6\.\d+\.\d+$`, db.SchemaVersion)

	bookworm := distro.New(distro.Debian, "12", "bookworm")
	tests := []struct {
		name string
		pkg  grypepkg.Package
		want []string
	}{
		{"x/text v0.3.6", goModule("v0.3.6"), []string{"GHSA-69ch-w2m2-3vjp", "GHSA-ppp9-7jff-5vj2"}},
		{"x/text v0.3.7", goModule("v0.3.7"), []string{"GHSA-69ch-w2m2-3vjp"}},
		{"x/text v0.3.8", goModule("v0.3.8"), []string{}},
		{"libc6 deb12u2 bookworm", libc6("2.36-9+deb12u2", bookworm), []string{"CVE-2023-4911"}},
		{"libc6 deb12u2 no codename", libc6("2.36-9+deb12u2", distro.New(distro.Debian, "12", "")), []string{"CVE-2023-4911"}},
		{"libc6 deb12u3", libc6("2.36-9+deb12u3", bookworm), []string{}},
		{"libc6 deb12u2 on debian 11", libc6("2.36-9+deb12u2", distro.New(distro.Debian, "11", "bullseye")), []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := matchIDs(t, prov, tt.pkg)
			assert.Equal(t, tt.want, got)
		})
	}

	t.Run("match details", func(t *testing.T) {
		_, matches := matchIDs(t, prov, goModule("v0.3.7"))
		require.Len(t, matches, 1)
		v := matches[0].Vulnerability
		assert.Equal(t, []string{"0.3.8"}, v.Fix.Versions)
		assert.Equal(t, vulnerability.FixStateFixed, v.Fix.State)
		meta := v.Metadata
		require.NotNil(t, meta, "the matched vulnerability carries its metadata")
		assert.Equal(t, "High", meta.Severity)
		assert.Equal(t, "https://github.com/advisories/GHSA-69ch-w2m2-3vjp", meta.DataSource)
		require.NotEmpty(t, meta.Cvss)
		assert.Equal(t, "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", meta.Cvss[0].Vector)
		assert.InDelta(t, 7.5, meta.Cvss[0].Metrics.BaseScore, 0.01)
	})
}

func TestParseOSVFixtures(t *testing.T) {
	fixtures := map[string]vulndb.Record{}
	for _, r := range vulndb.Fixtures() {
		fixtures[r.ID] = r
	}
	files, err := filepath.Glob(filepath.Join("testdata", "GHSA-*.json"))
	require.NoError(t, err)
	require.Len(t, files, 2)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			require.NoError(t, err)
			got, err := vulndb.ParseOSV(data)
			require.NoError(t, err)
			require.Len(t, got, 1)
			want, ok := fixtures[got[0].ID]
			require.True(t, ok, "no fixture %s", got[0].ID)
			assert.Equal(t, want, got[0])
		})
	}
}
