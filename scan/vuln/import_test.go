package vuln_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	v6 "github.com/anchore/grype/grype/db/v6"
	"github.com/mholt/archives"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/internal/testbed/vulndb"
	"github.com/shipkit/shipkit/scan/vuln"
)

// archiveDB packs db the way grype publishes a database (a flat archive holding
// vulnerability.db and import.json), gzip-compressed, and returns its path.
func archiveDB(t *testing.T, db *vulndb.Database) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vulnerability-db_"+db.SchemaVersion+"_"+db.Built.Format("20060102")+".tar.gz")
	f, err := os.Create(path)
	require.NoError(t, err)
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	for _, name := range []string{v6.VulnerabilityDBFileName, v6.ImportMetadataFileName} {
		b, err := os.ReadFile(filepath.Join(db.Dir, name))
		require.NoError(t, err)
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: db.Built}))
		_, err = tw.Write(b)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	require.NoError(t, f.Close())
	return path
}

// bombArchive packs db like archiveDB, after an entry of padding zero bytes, which
// gzip shrinks about a thousandfold.
func bombArchive(t *testing.T, db *vulndb.Database, padding int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vulnerability-db_bomb.tar.gz")
	f, err := os.Create(path)
	require.NoError(t, err)
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "padding", Mode: 0o644, Size: padding}))
	_, err = io.CopyN(tw, zeros{}, padding)
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(db.Dir, v6.VulnerabilityDBFileName))
	require.NoError(t, err)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: v6.VulnerabilityDBFileName, Mode: 0o644, Size: int64(len(b))}))
	_, err = tw.Write(b)
	require.NoError(t, err)
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	require.NoError(t, f.Close())
	return path
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestImportBounded: an archive that inflates past the limit (a small gzip of 64 MiB
// of zeros before the database, against a limit of 8 MiB), a database file larger
// than its own limit, in an archive or bare, are refused with ErrTooLarge; the
// installed database still opens, unchanged, and nothing is left beside it.
func TestImportBounded(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC().Round(time.Second)
	old := now.Add(-72 * time.Hour)
	fresh := writeDB(t, vulndb.WithBuildTime(now))
	dbSize, err := os.Stat(filepath.Join(fresh.Dir, v6.VulnerabilityDBFileName))
	require.NoError(t, err)

	bomb := bombArchive(t, fresh, 64<<20)
	st, err := os.Stat(bomb)
	require.NoError(t, err)
	t.Logf("archive of %d bytes inflating to %d", st.Size(), 64<<20+dbSize.Size())

	for name, tt := range map[string]struct {
		source string
		opts   []vuln.ImportOption
	}{
		"archive inflating past the limit": {bomb, []vuln.ImportOption{vuln.WithMaxImportBytes(8 << 20)}},
		"database file past its limit":     {archiveDB(t, fresh), []vuln.ImportOption{vuln.WithMaxImportFileBytes(dbSize.Size() - 1)}},
		"bare database past its limit":     {fresh.Path, []vuln.ImportOption{vuln.WithMaxImportFileBytes(1024)}},
	} {
		t.Run(name, func(t *testing.T) {
			root := writeDB(t, vulndb.WithBuildTime(old)).RootDir
			err := vuln.Import(ctx, tt.source, root, tt.opts...)
			require.ErrorIs(t, err, vuln.ErrTooLarge)
			t.Log(err)
			assert.Equal(t, old, builtAt(t, root), "the installed database still opens, unchanged")
			entries, err := os.ReadDir(root)
			require.NoError(t, err)
			assert.Len(t, entries, 1, "nothing but 6/ is left in the root")
		})
	}

	t.Run("within the limits", func(t *testing.T) {
		root := writeDB(t, vulndb.WithBuildTime(old)).RootDir
		require.NoError(t, vuln.Import(ctx, bomb, root, vuln.WithMaxImportBytes(80<<20)))
		assert.Equal(t, now, builtAt(t, root))
	})
	t.Run("zstd archive, as grype publishes it", func(t *testing.T) {
		gz, err := os.Open(archiveDB(t, fresh))
		require.NoError(t, err)
		defer gz.Close()
		zr, err := gzip.NewReader(gz)
		require.NoError(t, err)
		path := filepath.Join(t.TempDir(), "vulnerability-db_v6.tar.zst")
		f, err := os.Create(path)
		require.NoError(t, err)
		zw, err := archives.Zstd{}.OpenWriter(f)
		require.NoError(t, err)
		_, err = io.Copy(zw, zr)
		require.NoError(t, err)
		require.NoError(t, zw.Close())
		require.NoError(t, f.Close())
		root := writeDB(t, vulndb.WithBuildTime(old)).RootDir
		require.NoError(t, vuln.Import(ctx, path, root))
		assert.Equal(t, now, builtAt(t, root))
	})
	t.Run("limits must be positive", func(t *testing.T) {
		err := vuln.Import(ctx, bomb, t.TempDir(), vuln.WithMaxImportBytes(0))
		require.ErrorContains(t, err, "import limits must be positive")
	})
}

// builtAt opens root and returns its database's build time.
func builtAt(t *testing.T, root string) time.Time {
	t.Helper()
	return open(t, root).Status().Built
}

func TestImport(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC().Round(time.Second)
	old := now.Add(-72 * time.Hour)

	t.Run("archive replaces a stale database", func(t *testing.T) {
		root := writeDB(t, vulndb.WithBuildTime(old)).RootDir
		_, err := vuln.Open(ctx, root, vuln.WithMaxAge(48*time.Hour))
		require.ErrorIs(t, err, vuln.ErrDBTooOld)
		var age *vuln.DBAgeError
		require.ErrorAs(t, err, &age)
		assert.Contains(t, age.Error(), "vuln.Import")

		require.NoError(t, vuln.Import(ctx, archiveDB(t, writeDB(t, vulndb.WithBuildTime(now))), root))

		s := open(t, root, vuln.WithMaxAge(48*time.Hour))
		assert.Equal(t, now, s.Status().Built)
		assert.Equal(t, "manual import", s.Status().From)
		r, err := s.Scan(ctx, fakeSBOM("v0.3.6", true))
		require.NoError(t, err)
		assert.Equal(t, []string{"CVE-2023-4911", "GHSA-69ch-w2m2-3vjp", "GHSA-ppp9-7jff-5vj2"}, ids(r))
		entries, err := os.ReadDir(root)
		require.NoError(t, err)
		require.Len(t, entries, 1, "only 6/ is left in the root")
		assert.Equal(t, "6", entries[0].Name())
	})

	t.Run("bare database file into an empty root", func(t *testing.T) {
		root := filepath.Join(t.TempDir(), "new")
		require.NoError(t, vuln.Import(ctx, writeDB(t, vulndb.WithBuildTime(now)).Path, root))
		assert.Equal(t, now, builtAt(t, root))
	})

	refused := []struct {
		name   string
		source func(t *testing.T) string
		is     error
		msg    string
	}{
		{"newer schema revision", func(t *testing.T) string {
			db := writeDB(t, vulndb.WithBuildTime(now))
			setSchema(t, db, v6.ModelVersion, v6.Revision+1, 0)
			return archiveDB(t, db)
		}, vuln.ErrSchema, ""},
		{"not an archive", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "db.tar.gz")
			require.NoError(t, os.WriteFile(p, []byte("not an archive at all"), 0o644))
			return p
		}, nil, "import vulnerability database"},
		{"archive without a database", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "db.tar.gz")
			f, err := os.Create(p)
			require.NoError(t, err)
			zw := gzip.NewWriter(f)
			tw := tar.NewWriter(zw)
			require.NoError(t, tw.WriteHeader(&tar.Header{Name: "README", Mode: 0o644, Size: 2}))
			_, err = tw.Write([]byte("hi"))
			require.NoError(t, err)
			require.NoError(t, tw.Close())
			require.NoError(t, zw.Close())
			require.NoError(t, f.Close())
			return p
		}, nil, "import vulnerability database"},
		{"missing file", func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope.tar.zst") }, os.ErrNotExist, ""},
		{"URL", func(*testing.T) string { return "https://grype.anchore.io/databases/v6/x.tar.zst" }, nil, "never downloads"},
	}
	for _, tt := range refused {
		t.Run("refused: "+tt.name, func(t *testing.T) {
			root := writeDB(t, vulndb.WithBuildTime(old)).RootDir
			err := vuln.Import(ctx, tt.source(t), root)
			require.Error(t, err)
			t.Log(err)
			if tt.is != nil {
				assert.ErrorIs(t, err, tt.is)
			}
			assert.Contains(t, err.Error(), tt.msg)
			assert.Equal(t, old, builtAt(t, root), "the installed database is untouched")
			entries, err := os.ReadDir(root)
			require.NoError(t, err)
			assert.Len(t, entries, 1, "nothing but 6/ is left in the root")
		})
	}

	t.Run("cancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		err := vuln.Import(cctx, writeDB(t).Path, t.TempDir())
		require.ErrorIs(t, err, context.Canceled)
	})
}
