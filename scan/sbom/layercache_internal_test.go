package sbom

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"

	"github.com/anchore/syft/syft"
	"github.com/anchore/syft/syft/file"
	"github.com/anchore/syft/syft/pkg"
	"github.com/anchore/syft/syft/pkg/cataloger/debian"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cancellingResolver cancels its context on the n-th RelativeFileByPath call: the
// dpkg cataloger asks one per package for its files, so the cancellation lands
// partway through the status file.
type cancellingResolver struct {
	file.Resolver
	n      int64
	calls  atomic.Int64
	cancel context.CancelFunc
}

func (r *cancellingResolver) RelativeFileByPath(l file.Location, p string) *file.Location {
	if r.calls.Add(1) == r.n {
		r.cancel()
	}
	return r.Resolver.RelativeFileByPath(l, p)
}

// dpkgResolver is a resolver over a dpkg status listing n packages.
func dpkgResolver(t *testing.T, n int) file.Resolver {
	t.Helper()
	var status strings.Builder
	for i := range n {
		fmt.Fprintf(&status, "Package: lib%03d\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0\n\n", i)
	}
	p := filepath.Join(t.TempDir(), "var/lib/dpkg/status")
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o700))
	require.NoError(t, os.WriteFile(p, []byte(status.String()), 0o600))
	return file.NewMockResolverForPaths(p)
}

// A run cancelled partway may return a truncated result with no error: nothing
// of it is stored, and the next run misses and gives every package.
func TestLayerCacheCancelledRunNotStored(t *testing.T) {
	const n = 300
	lic, err := New().scanner(syft.DefaultCreateSBOMConfig().Licenses)
	require.NoError(t, err)
	c := NewLayerCache()
	cat := func(ctx context.Context, res file.Resolver) (int, *cacheRun) {
		run := &cacheRun{cache: c}
		w := &cachedCataloger{inner: debian.NewDBCataloger(), cache: c, run: run, lic: lic, layers: map[string]bool{},
			key: hashString("dpkg-test")}
		pkgs, _, err := w.Catalog(valuesFrom{ctx, lic.ctx}, res)
		require.NoError(t, err)
		return len(pkgs), run
	}
	res := dpkgResolver(t, n)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got, run := cat(ctx, &cancellingResolver{Resolver: res, n: 20, cancel: cancel})
	t.Logf("cancelled run: %d of %d packages", got, n)
	run.commit(ctx, true)
	st := c.Stats()
	require.Zero(t, st.Stored, "%+v", st)
	require.Zero(t, st.Entries, "%+v", st)

	got, run = cat(context.Background(), res)
	require.Equal(t, n, got)
	run.commit(context.Background(), true)
	st = c.Stats()
	require.Equal(t, int64(1), st.Misses-1, "the run after the cancelled one misses: %+v", st)
	require.Equal(t, int64(1), st.Stored, "%+v", st)
	got, _ = cat(context.Background(), res)
	require.Equal(t, n, got)
	require.Equal(t, int64(1), c.Stats().Hits)
}

// The directory is used only when syft's version is known for sure.
func TestLayerCacheSyftVersionDecision(t *testing.T) {
	syftDep := func(v string, rep *debug.Module) *debug.BuildInfo {
		return &debug.BuildInfo{Deps: []*debug.Module{{Path: "example.org/x", Version: "v1.0.0"},
			{Path: "github.com/anchore/syft", Version: v, Replace: rep}}}
	}
	for _, tc := range []struct {
		name    string
		bi      *debug.BuildInfo
		ok      bool
		durable bool
	}{
		{"no build info", nil, false, false},
		{"syft not listed", &debug.BuildInfo{}, true, false},
		{"release", syftDep("v1.20.0", nil), true, true},
		{"empty version", syftDep("", nil), true, false},
		{"devel", syftDep("(devel)", nil), true, false},
		{"replaced by a local path", syftDep("v1.20.0", &debug.Module{Path: "../syft"}), true, false},
		{"replaced by a module", syftDep("v1.20.0", &debug.Module{Path: "example.org/syft", Version: "v1.20.1"}), true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, durable := syftModuleVersion(tc.bi, tc.ok)
			require.Equal(t, tc.durable, durable, "version %q", v)
		})
	}
	bi, ok := debug.ReadBuildInfo()
	v, _ := syftModuleVersion(bi, ok)
	t.Logf("this test binary: syft %q", v)
}

// An entry kept in memory only is counted for its packages, not only its calls.
func TestLayerCacheMemoryOnlySize(t *testing.T) {
	big := strings.Repeat("license text ", 10000)
	ent := &cacheEntry{Key: "k", Calls: []call{{Op: "FilesByGlob", Args: "**/x", Hash: "h"}},
		pkgs: []pkg.Package{{Name: "a", Version: "1", Licenses: pkg.NewLicenseSet(pkg.License{Value: "X", Contents: big})}}}
	ent.Pkgs = nil // as encodeEntry leaves an entry that does not round-trip
	body, err := json.Marshal(ent)
	require.NoError(t, err)
	require.GreaterOrEqual(t, entrySize(ent, body, false), int64(len(big)))
	require.Equal(t, int64(len(body)), entrySize(ent, body, true))
}

// One entry larger than the byte bound is refused rather than evicting the rest.
func TestLayerCacheRefusesOversizedEntry(t *testing.T) {
	c := NewLayerCache(WithCacheBytes(1000))
	small := &cacheEntry{Key: "a", size: 400}
	c.keep(small)
	c.keep(&cacheEntry{Key: "b", size: 1001})
	st := c.Stats()
	require.Equal(t, 1, st.Entries, "%+v", st)
	require.Zero(t, st.Evicted, "%+v", st)
	require.Equal(t, int64(400), st.Bytes)
}

// The audit-trail rewrite is checked once when the cache is applied: if it does
// not fit this syft, the cache is not used (rather than failing after syft ran).
func TestLayerCacheAuditProbe(t *testing.T) {
	require.NoError(t, probeAudit(context.Background()), "restoreAudit fits this syft")
	lic, err := New().scanner(syft.DefaultCreateSBOMConfig().Licenses)
	require.NoError(t, err)

	c := NewLayerCache()
	conf := syft.DefaultCreateSBOMConfig()
	_, ok := c.apply(conf, lic, nil)
	require.True(t, ok)

	probes := 0
	c = NewLayerCache()
	c.auditProbe = func(context.Context) error { probes++; return errors.New("audit trail changed") }
	for range 2 {
		conf := syft.DefaultCreateSBOMConfig()
		_, ok := c.apply(conf, lic, nil)
		require.False(t, ok)
		require.Empty(t, conf.CatalogerSelection.RemoveNamesOrTags, "conf unchanged")
	}
	require.Equal(t, 1, probes, "checked once")
	require.Equal(t, int64(2), c.Stats().Unusable)
}

// countingResolver counts the bytes read from the files it opens.
type countingResolver struct {
	file.Resolver
	read *int64
}

func (r countingResolver) FileContentsByLocation(l file.Location) (io.ReadCloser, error) {
	rc, err := r.Resolver.FileContentsByLocation(l)
	if err != nil {
		return rc, err
	}
	return countingReader{rc, r.read}, nil
}

type countingReader struct {
	io.ReadCloser
	n *int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	*c.n += int64(n)
	return n, err
}

// The recorder hashes what the cataloger read, not the rest of the file (a
// cataloger that stops early on a huge file is not made to read it all), and a
// replay proves exactly that input: the same bytes read, and the end found at the
// same place when the cataloger read to it.
func TestRecorderHashesWhatWasRead(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	whole := filepath.Join(dir, "whole")
	head := []byte("Package: first\n")
	require.NoError(t, os.WriteFile(big, append(append([]byte{}, head...), bytes.Repeat([]byte("x"), 8<<20)...), 0o600))
	require.NoError(t, os.WriteFile(whole, []byte("all of it\n"), 0o600))

	var read int64
	res := countingResolver{file.NewMockResolverForPaths(big, whole), &read}
	rec := newRecorder(res)
	r := rec.wrap()
	for _, p := range []struct {
		path string
		n    int // bytes the "cataloger" reads; -1 for all
	}{{big, len(head)}, {whole, -1}} {
		locs, err := r.FilesByPath(p.path)
		require.NoError(t, err)
		require.Len(t, locs, 1)
		rc, err := r.FileContentsByLocation(locs[0])
		require.NoError(t, err)
		if p.n < 0 {
			_, err = io.ReadAll(rc)
		} else {
			_, err = io.ReadFull(rc, make([]byte, p.n))
		}
		require.NoError(t, err)
		require.NoError(t, rc.Close())
	}
	calls, err := rec.result()
	require.NoError(t, err)
	assert.Less(t, read, int64(1<<20), "the recorder read the 8 MiB file past what the cataloger read")

	// the files are rewritten in place: the replay asks by the same paths
	replayOn := func(bigBody, wholeBody []byte) bool {
		require.NoError(t, os.WriteFile(big, bigBody, 0o600))
		require.NoError(t, os.WriteFile(whole, wholeBody, 0o600))
		_, ok := replay(file.NewMockResolverForPaths(big, whole), calls)
		return ok
	}
	tail := func(s string) []byte { return append(append([]byte{}, head...), s...) }
	assert.True(t, replayOn(tail("another tail, never read"), []byte("all of it\n")), "bytes past what was read decide nothing")
	assert.False(t, replayOn([]byte("Package: other\n"), []byte("all of it\n")), "different bytes read")
	assert.False(t, replayOn([]byte("Pack"), []byte("all of it\n")), "the file ends before what was read")
	assert.False(t, replayOn(tail("x"), []byte("all of it\nand more\n")), "read to the end, and the file goes on now")
	assert.False(t, replayOn(tail("x"), []byte("all of i")), "read to the end, and the file is shorter now")
	assert.False(t, replayOn(head, []byte("all of it\n")), "the file ends where the cataloger stopped reading: a reader may say so with the last bytes")
	assert.True(t, replayOn(tail(strings.Repeat("x", 8<<20)), []byte("all of it\n")), "the same input")
}

// dataErrResolver hands out readers that return io.EOF with the last bytes (as
// io.Reader allows), not on the next call.
type dataErrResolver struct{ file.Resolver }

func (r dataErrResolver) FileContentsByLocation(l file.Location) (io.ReadCloser, error) {
	rc, err := r.Resolver.FileContentsByLocation(l)
	if err != nil {
		return rc, err
	}
	return struct {
		io.Reader
		io.Closer
	}{iotest.DataErrReader(rc), rc}, nil
}

// A cataloger that reads 4 bytes of "abcd" may get io.EOF with them and one of
// "abcdMORE" does not: the two files are different input though the bytes read
// are the same.
func TestRecorderEndOfFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	record := func(body string) []call {
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		rec := newRecorder(dataErrResolver{file.NewMockResolverForPaths(p)})
		locs, err := rec.FilesByPath(p)
		require.NoError(t, err)
		rc, err := rec.FileContentsByLocation(locs[0])
		require.NoError(t, err)
		b := make([]byte, 4)
		n, _ := rc.Read(b)
		require.Equal(t, 4, n)
		require.NoError(t, rc.Close())
		calls, err := rec.result()
		require.NoError(t, err)
		return calls
	}
	replayOn := func(calls []call, body string) bool {
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		_, ok := replay(dataErrResolver{file.NewMockResolverForPaths(p)}, calls)
		return ok
	}
	more := record("abcdMORE")
	assert.False(t, replayOn(more, "abcd"), "recorded on a longer file, replayed where the end comes with the bytes")
	assert.True(t, replayOn(more, "abcdOTHER"), "what follows the bytes read decides nothing but that the file goes on")
	ends := record("abcd")
	assert.False(t, replayOn(ends, "abcdMORE"))
	assert.True(t, replayOn(ends, "abcd"))
}

// A read after Close (stereoscope's readers still answer then) goes unrecorded:
// the result is not stored.
func TestRecorderReadAfterClose(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(p, []byte("abcdefgh"), 0o600))
	rec := newRecorder(file.NewMockResolverForPaths(p))
	locs, err := rec.FilesByPath(p)
	require.NoError(t, err)
	rc, err := rec.FileContentsByLocation(locs[0])
	require.NoError(t, err)
	_, err = io.ReadFull(rc, make([]byte, 2))
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	_, _ = io.ReadAll(rc)
	_, err = rec.result()
	assert.ErrorContains(t, err, "after closing it")
}
