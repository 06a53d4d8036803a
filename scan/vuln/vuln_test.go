package vuln_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	v6 "github.com/anchore/grype/grype/db/v6"
	"github.com/anchore/syft/syft/linux"
	syftpkg "github.com/anchore/syft/syft/pkg"
	syftsbom "github.com/anchore/syft/syft/sbom"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/internal/testbed/vulndb"
	"github.com/shipkit/shipkit/scan"
	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/scan/vuln"
)

// writeDB writes the testbed's fixture advisories and returns the root directory.
func writeDB(t testing.TB, opts ...vulndb.Option) *vulndb.Database {
	t.Helper()
	db, err := vulndb.Write(context.Background(), t.TempDir(), vulndb.Fixtures(), opts...)
	require.NoError(t, err)
	return db
}

func open(t testing.TB, root string, opts ...vuln.Option) *vuln.DB {
	t.Helper()
	s, err := vuln.Open(context.Background(), root, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	return s
}

// fakeSBOM is an SBOM made by hand (no image, no cataloging): golang.org/x/text at
// goVersion and, when withDebian, libc6 2.36-9+deb12u2 on Debian 12.
func fakeSBOM(goVersion string, withDebian bool) *scan.SBOM {
	c := syftpkg.NewCollection()
	gp := syftpkg.Package{Name: "golang.org/x/text", Version: goVersion, Type: syftpkg.GoModulePkg,
		Language: syftpkg.Go, PURL: "pkg:golang/golang.org/x/text@" + goVersion}
	gp.SetID()
	c.Add(gp)
	var rel *linux.Release
	if withDebian {
		dp := syftpkg.Package{Name: "libc6", Version: "2.36-9+deb12u2", Type: syftpkg.DebPkg,
			PURL:     "pkg:deb/debian/libc6@2.36-9+deb12u2?arch=amd64&upstream=glibc&distro=debian-12",
			Metadata: syftpkg.DpkgDBEntry{Package: "libc6", Source: "glibc", Version: "2.36-9+deb12u2", Architecture: "amd64"}}
		dp.SetID()
		c.Add(dp)
		rel = &linux.Release{ID: "debian", VersionID: "12", VersionCodename: "bookworm", Name: "Debian GNU/Linux"}
	}
	s := syftsbom.SBOM{Artifacts: syftsbom.Artifacts{Packages: c, LinuxDistribution: rel}}
	h, _ := v1.NewHash("sha256:" + "ab0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"[:64])
	return scan.NewSBOM(h, &v1.Platform{OS: "linux", Architecture: "amd64"}, s)
}

func ids(r *report.Report) []string {
	out := []string{}
	for _, f := range r.Findings {
		out = append(out, f.ID)
	}
	sort.Strings(out)
	return out
}

func TestScanFake(t *testing.T) {
	db := writeDB(t)
	s := open(t, db.RootDir, vuln.WithMaxAge(24*time.Hour))
	st := s.Status()
	assert.Equal(t, db.Path, st.Path)
	assert.Equal(t, db.SchemaVersion, st.Schema)
	assert.True(t, db.Built.Equal(st.Built))

	tests := []struct {
		name   string
		sbom   *scan.SBOM
		want   []string
		target string
	}{
		{"x/text v0.3.6 and libc6 on debian 12", fakeSBOM("v0.3.6", true),
			[]string{"CVE-2023-4911", "GHSA-69ch-w2m2-3vjp", "GHSA-ppp9-7jff-5vj2"}, ""},
		{"x/text v0.3.7", fakeSBOM("v0.3.7", false), []string{"GHSA-69ch-w2m2-3vjp"}, ""},
		{"x/text v0.3.8", fakeSBOM("v0.3.8", false), []string{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := s.Scan(context.Background(), tt.sbom)
			require.NoError(t, err)
			assert.Equal(t, tt.want, ids(r))
			assert.Equal(t, tt.sbom.Subject.String(), r.Target)
			require.NotNil(t, r.Tool)
			assert.Equal(t, "grype", r.Tool.Name)
			assert.Equal(t, db.SchemaVersion, r.Tool.DBSchema)
		})
	}

	t.Run("finding fields", func(t *testing.T) {
		r, err := s.Scan(context.Background(), fakeSBOM("v0.3.7", true))
		require.NoError(t, err)
		byID := map[string]report.Finding{}
		for _, f := range r.Findings {
			byID[f.ID] = f
		}
		g := byID["GHSA-69ch-w2m2-3vjp"]
		assert.Equal(t, "golang.org/x/text", g.Package)
		assert.Equal(t, "v0.3.7", g.Version)
		assert.Equal(t, "go-module", g.Type)
		assert.Equal(t, []string{"0.3.8"}, g.FixedIn)
		assert.Equal(t, report.FixStateFixed, g.FixState)
		assert.Equal(t, report.High, g.Severity)
		assert.Contains(t, g.Aliases, "CVE-2022-32149")
		assert.Equal(t, "https://github.com/advisories/GHSA-69ch-w2m2-3vjp", g.DataSource)
		require.NotEmpty(t, g.CVSS)
		assert.InDelta(t, 7.5, g.CVSS[0].Score, 0.01)
		assert.Equal(t, "3.1", g.CVSS[0].Version)

		c := byID["CVE-2023-4911"]
		assert.Equal(t, "libc6", c.Package)
		assert.Equal(t, "deb", c.Type)
		assert.Equal(t, []string{"2.36-9+deb12u3"}, c.FixedIn)
		assert.Equal(t, report.High, c.Severity)
	})
}

// Without the distro, grype's dpkg matcher finds nothing for libc6: the SBOM's
// os-release is what makes the Debian advisory match.
func TestScanNeedsOSRelease(t *testing.T) {
	s := open(t, writeDB(t).RootDir)
	sb := fakeSBOM("v0.3.8", true)
	sb.Syft().Artifacts.LinuxDistribution = nil
	r, err := s.Scan(context.Background(), sb)
	require.NoError(t, err)
	assert.NotContains(t, ids(r), "CVE-2023-4911")
}

func TestOpenRefuses(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		root    func(t *testing.T) string
		opts    []vuln.Option
		wantErr string
		is      []error
	}{
		{"no directory", func(*testing.T) string { return "" }, nil, "no directory given", nil},
		{"empty root", func(t *testing.T) string { return t.TempDir() }, nil,
			"no vulnerability database: no ", []error{vuln.ErrNoDatabase, fs.ErrNotExist}},
		{"no root", func(t *testing.T) string { return filepath.Join(t.TempDir(), "absent") }, nil,
			"absent does not exist; install one with vuln.Import", []error{vuln.ErrNoDatabase, fs.ErrNotExist}},
		{"root is a file", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "file")
			require.NoError(t, os.WriteFile(p, nil, 0o644))
			return p
		}, nil, "is not a directory", []error{vuln.ErrNoDatabase, fs.ErrNotExist}},
		{"database file removed", func(t *testing.T) string {
			db := writeDB(t)
			require.NoError(t, os.Remove(db.Path))
			return db.RootDir
		}, nil, filepath.Join("6", "vulnerability.db") + "; install one with vuln.Import", []error{vuln.ErrNoDatabase, fs.ErrNotExist}},
		{"too old", func(t *testing.T) string {
			return writeDB(t, vulndb.WithBuildTime(now.Add(-72*time.Hour))).RootDir
		}, []vuln.Option{vuln.WithMaxAge(48 * time.Hour), vuln.WithClock(func() time.Time { return now })},
			"more than the maximum age 48h0m0s", []error{vuln.ErrDBTooOld}},
		{"old but no limit", func(t *testing.T) string {
			return writeDB(t, vulndb.WithBuildTime(now.Add(-72*time.Hour))).RootDir
		}, []vuln.Option{vuln.WithClock(func() time.Time { return now })}, "", nil},
		{"corrupt", func(t *testing.T) string {
			db := writeDB(t)
			require.NoError(t, os.WriteFile(db.Path, []byte("not a database"), 0o644))
			return db.RootDir
		}, nil, "vulnerability database corrupt or incomplete", []error{vuln.ErrCorrupt}},
		{"truncated", func(t *testing.T) string {
			db := writeDB(t)
			require.NoError(t, os.Truncate(db.Path, 4096))
			return db.RootDir
		}, nil, "install it again with vuln.Import", []error{vuln.ErrCorrupt}},
		{"changed after install", func(t *testing.T) string {
			db := writeDB(t)
			f, err := os.OpenFile(db.Path, os.O_APPEND|os.O_WRONLY, 0)
			require.NoError(t, err)
			_, err = f.Write(make([]byte, 4096)) // still SQLite, another checksum
			require.NoError(t, err)
			require.NoError(t, f.Close())
			return db.RootDir
		}, nil, "checksum", []error{vuln.ErrCorrupt}},
		{"no import.json", func(t *testing.T) string {
			db := writeDB(t)
			require.NoError(t, os.Remove(filepath.Join(db.Dir, "import.json")))
			return db.RootDir
		}, nil, "import.json", []error{vuln.ErrCorrupt}},
		{"garbled import.json", func(t *testing.T) string {
			db := writeDB(t)
			require.NoError(t, os.WriteFile(filepath.Join(db.Dir, "import.json"), []byte("{garbage"), 0o644))
			return db.RootDir
		}, nil, "import metadata", []error{vuln.ErrCorrupt}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := vuln.Open(context.Background(), tt.root(t), tt.opts...)
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.NoError(t, s.Close())
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			for _, want := range tt.is {
				assert.ErrorIs(t, err, want)
			}
			for _, other := range []error{vuln.ErrNoDatabase, vuln.ErrCorrupt, vuln.ErrDBTooOld, vuln.ErrSchema} {
				if !slices.Contains(tt.is, other) {
					assert.NotErrorIs(t, err, other)
				}
			}
			if slices.Contains(tt.is, vuln.ErrDBTooOld) {
				var age *vuln.DBAgeError
				require.ErrorAs(t, err, &age)
				assert.Equal(t, 72*time.Hour, age.Age)
			}
		})
	}
}

// A scanner kept open refuses to scan once its database is older than the limit.
func TestScanRefusesWhenDBAges(t *testing.T) {
	built := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	now := built.Add(time.Hour)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := open(t, writeDB(t, vulndb.WithBuildTime(built)).RootDir, vuln.WithMaxAge(24*time.Hour), vuln.WithClock(clock))
	_, err := s.Scan(context.Background(), fakeSBOM("v0.3.6", false))
	require.NoError(t, err)
	mu.Lock()
	now = built.Add(25 * time.Hour)
	mu.Unlock()
	_, err = s.Scan(context.Background(), fakeSBOM("v0.3.6", false))
	require.ErrorIs(t, err, vuln.ErrDBTooOld)
}

// setSchema rewrites the schema version recorded in db's metadata table, which is
// where grype reads it from, and records the new file digest in import.json so that
// grype's checksum check still passes: only the schema is foreign.
func setSchema(t *testing.T, db *vulndb.Database, model, revision, addition int) {
	t.Helper()
	gdb, err := v6.NewLowLevelDB(db.Path, false, true, false)
	require.NoError(t, err)
	res := gdb.Model(&v6.DBMetadata{}).Where("true").Updates(map[string]any{
		"model": model, "revision": revision, "addition": addition})
	require.NoError(t, res.Error)
	require.EqualValues(t, 1, res.RowsAffected)
	sqlDB, err := gdb.DB()
	require.NoError(t, err)
	require.NoError(t, sqlDB.Close())
	_, err = v6.WriteImportMetadata(afero.NewOsFs(), db.Dir, "test")
	require.NoError(t, err)
	desc, err := v6.ReadDescription(db.Path)
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("v%d.%d.%d", model, revision, addition), desc.SchemaVersion.String())
}

func TestSchemaCheck(t *testing.T) {
	t.Run("newer revision", func(t *testing.T) {
		db := writeDB(t)
		setSchema(t, db, v6.ModelVersion, v6.Revision+1, 0)
		_, err := vuln.Open(context.Background(), db.RootDir)
		require.ErrorIs(t, err, vuln.ErrSchema)
		assert.Contains(t, err.Error(), fmt.Sprintf("v%d.%d.0", v6.ModelVersion, v6.Revision+1))
	})
	t.Run("newer addition is read", func(t *testing.T) {
		db := writeDB(t)
		setSchema(t, db, v6.ModelVersion, v6.Revision, v6.Addition+5)
		s := open(t, db.RootDir)
		assert.Equal(t, fmt.Sprintf("v%d.%d.%d", v6.ModelVersion, v6.Revision, v6.Addition+5), s.Status().Schema)
	})
	t.Run("only a newer model's directory", func(t *testing.T) {
		// what a newer grype leaves in a shared cache dir: 7/ and no 6/
		db := writeDB(t)
		require.NoError(t, os.Rename(db.Dir, filepath.Join(db.RootDir, strconv.Itoa(v6.ModelVersion+1))))
		_, err := vuln.Open(context.Background(), db.RootDir)
		require.ErrorIs(t, err, vuln.ErrSchema)
		assert.Contains(t, err.Error(), filepath.Join(db.RootDir, strconv.Itoa(v6.ModelVersion+1)))
	})
	t.Run("empty root is missing, not foreign", func(t *testing.T) {
		_, err := vuln.Open(context.Background(), t.TempDir())
		require.Error(t, err)
		assert.NotErrorIs(t, err, vuln.ErrSchema)
	})
}

func TestScanConcurrentAndClose(t *testing.T) {
	s, err := vuln.Open(context.Background(), writeDB(t).RootDir)
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := []string{"v0.3.6", "v0.3.7"}[i%2]
			r, err := s.Scan(context.Background(), fakeSBOM(v, i%3 == 0))
			if err == nil && len(r.Findings) == 0 {
				err = assert.AnError
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close twice is fine")
	_, err = s.Scan(context.Background(), fakeSBOM("v0.3.6", false))
	require.ErrorIs(t, err, vuln.ErrClosed)
}

func TestScanCancelled(t *testing.T) {
	s := open(t, writeDB(t).RootDir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Scan(ctx, fakeSBOM("v0.3.6", true))
	require.ErrorIs(t, err, context.Canceled)
	_, err = s.Scan(context.Background(), nil)
	require.Error(t, err)
}
