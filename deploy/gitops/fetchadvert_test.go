package gitops_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/gitops"
	"github.com/shipkit/shipkit/internal/gitserver"
)

// pkt writes one pkt-line.
func pkt(w *bufio.Writer, s string) error {
	_, err := fmt.Fprintf(w, "%04x%s", len(s)+4, s)
	return err
}

// serveHugeAdvertisement answers GET info/refs for service with a well-formed
// smart-HTTP ref advertisement of up to limit bytes (a branch, then pull-request
// refs), counting what it wrote in sent; it stops when the client goes away.
func serveHugeAdvertisement(w http.ResponseWriter, service string, limit int64, sent *atomic.Int64) {
	w.Header().Set("Content-Type", "application/x-"+service+"-advertisement")
	w.Header().Set("Cache-Control", "no-cache")
	cw := &countingWriter{w: w, n: sent}
	bw := bufio.NewWriterSize(cw, 64<<10)
	hash := strings.Repeat("1", 40)
	_ = pkt(bw, "# service="+service+"\n")
	_, _ = bw.WriteString("0000")
	if pkt(bw, hash+" refs/heads/main\x00report-status side-band-64k ofs-delta no-progress\n") != nil {
		return
	}
	for i := 0; sent.Load() < limit; i++ {
		if pkt(bw, fmt.Sprintf("%s refs/pull/%09d/head\n", hash, i)) != nil {
			return
		}
	}
	_, _ = bw.WriteString("0000")
	_ = bw.Flush()
}

type countingWriter struct {
	w http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// procFDs lists this process's open file descriptors (sockets included).
func procFDs(t *testing.T) []os.DirEntry {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		// Linux always has it (CI runs there): only another system may skip.
		if runtime.GOOS == "linux" {
			t.Fatalf("read /proc/self/fd: %v", err)
		}
		t.Skipf("no /proc/self/fd on %s: %v", runtime.GOOS, err)
	}
	return ents
}

// openFDs counts this process's open file descriptors (sockets included).
func openFDs(t *testing.T) int {
	t.Helper()
	return len(procFDs(t))
}

// settledFDs waits up to 2 s for the descriptors to come back to at most want
// (a closed connection's server side ends a moment later) and returns the count.
func settledFDs(t *testing.T, want int) int {
	t.Helper()
	n := openFDs(t)
	for deadline := time.Now().Add(2 * time.Second); n > want && time.Now().Before(deadline); n = openFDs(t) {
		time.Sleep(20 * time.Millisecond)
	}
	return n
}

// TestFetchAdvertisementBounded: a hostile HTTP server whose ref advertisement
// never ends (512 MiB of pull-request refs) makes Write fail with
// ErrFetchTooLarge naming the repository and the bound, never the password,
// after reading about the bound: Write allocates a small multiple of it, the
// server gets to send only the bound plus what the sockets buffer, and no
// connection is left open. The default bound (16 MiB) holds the same way.
func TestFetchAdvertisementBounded(t *testing.T) {
	const huge = 512 << 20
	var sent atomic.Int64
	hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/info/refs") {
			http.Error(w, "only the advertisement", http.StatusNotFound)
			return
		}
		serveHugeAdvertisement(w, r.URL.Query().Get("service"), huge, &sent)
	}))
	t.Cleanup(hostile.Close)
	u := hostile.URL + "/fleet.git"
	ctx := t.Context()

	for _, tt := range []struct {
		name  string
		bound int64
		opts  []gitops.Option
	}{
		{"1 MiB, in memory", 1 << 20, []gitops.Option{gitops.WithMaxFetchAdvertisementBytes(1 << 20)}},
		{"1 MiB, into a clone directory", 1 << 20, []gitops.Option{gitops.WithMaxFetchAdvertisementBytes(1 << 20), gitops.WithCloneDir(filepath.Join(t.TempDir(), "clone"))}},
		{"the default", gitops.DefaultMaxFetchAdvertisementBytes, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w, err := gitops.New(u, "shop", append([]gitops.Option{gitops.WithBasicAuth(user, password)}, tt.opts...)...)
			require.NoError(t, err)
			sent.Store(0)
			fds := openFDs(t)
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			_, err = w.Write(ctx, release(digestA), &deploy.Decision{})
			runtime.ReadMemStats(&m1)
			alloc := m1.TotalAlloc - m0.TotalAlloc
			after := settledFDs(t, fds)
			t.Logf("bound %d MiB: allocated %.1f MiB, the server sent %.1f MiB of its %d MiB, descriptors %d -> %d",
				tt.bound>>20, float64(alloc)/(1<<20), float64(sent.Load())/(1<<20), huge>>20, fds, after)
			require.ErrorIs(t, err, gitops.ErrFetchTooLarge)
			assert.ErrorContains(t, err, "fetch branch main of "+u+": ")
			assert.ErrorContains(t, err, fmt.Sprintf("a ref advertisement of more than %d bytes (WithMaxFetchAdvertisementBytes)", tt.bound))
			assert.NotContains(t, err.Error(), password)
			assert.Less(t, alloc, uint64(16*tt.bound+8<<20), "Write allocates a small multiple of the bound (about 7 times it, 11 under -race)")
			assert.Less(t, sent.Load(), tt.bound+16<<20, "the server could send only the bound and the sockets' buffers")
			assert.LessOrEqual(t, after, fds, "no connection is left open")
		})
	}

	_, err := gitops.New(u, "shop", gitops.WithMaxFetchAdvertisementBytes(0))
	assert.ErrorIs(t, err, gitops.ErrInvalidOption)
}

// TestPushAdvertisementBounded: the advertisement before a push (GET
// info/refs?service=git-receive-pack) is bounded as a fetch's is. A proxy in
// front of the real Git server replaces only that answer with a never-ending
// one: the fetch works, the push fails with ErrFetchTooLarge naming the
// repository and the bound, and the branch is left as it was.
func TestPushAdvertisementBounded(t *testing.T) {
	s := startServer(t)
	seed(t, s, "fleet")
	target, err := url.Parse(s.URL)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var sent atomic.Int64
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Query().Get("service") == "git-receive-pack" {
			serveHugeAdvertisement(w, "git-receive-pack", 512<<20, &sent)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	u := front.URL + "/fleet.git"
	before, err := s.Output(t.Context(), filepath.Join(s.Root, "fleet.git"), "rev-parse", "main")
	require.NoError(t, err)

	w, err := gitops.New(u, "shop", gitops.WithBasicAuth(user, password), gitops.WithMaxFetchAdvertisementBytes(256<<10))
	require.NoError(t, err)
	_, err = w.Write(t.Context(), release(digestA), &deploy.Decision{})
	t.Logf("the server sent %.1f MiB of the push's advertisement", float64(sent.Load())/(1<<20))
	require.ErrorIs(t, err, gitops.ErrFetchTooLarge)
	assert.ErrorContains(t, err, "push to "+u+": ")
	assert.ErrorContains(t, err, "a ref advertisement of more than 262144 bytes (WithMaxFetchAdvertisementBytes)")
	assert.NotContains(t, err.Error(), password)
	now, err := s.Output(t.Context(), filepath.Join(s.Root, "fleet.git"), "rev-parse", "main")
	require.NoError(t, err)
	assert.Equal(t, before, now, "the branch did not move")
}

// gitDaemon serves the server's repositories over git:// on 127.0.0.1 (git
// daemon, receive-pack enabled) and returns the base URL.
func gitDaemon(t *testing.T, root string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	require.NoError(t, ln.Close())
	cmd := exec.Command("git", "daemon", "--reuseaddr", "--export-all", "--enable=receive-pack",
		"--base-path="+root, "--listen=127.0.0.1", "--port="+port, root)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
			return "git://" + addr
		}
		require.True(t, time.Now().Before(deadline), "git daemon did not listen: %v", err)
	}
}

type remote struct {
	name, url string
	opts      []gitops.Option
}

// everyTransport returns repository name of s over HTTP, SSH, git:// and file://.
func everyTransport(t *testing.T, s *gitserver.Server, name string) []remote {
	t.Helper()
	x, err := s.StartSSH(t.Context())
	require.NoError(t, err)
	t.Cleanup(x.Close)
	return []remote{
		{"http", s.URL + "/" + name + ".git", []gitops.Option{gitops.WithBasicAuth(user, password)}},
		{"ssh", x.URL(name), []gitops.Option{gitops.WithSSHKey("git", x.ClientKey, "", ssh.FixedHostKey(x.HostKey))}},
		{"git", gitDaemon(t, s.Root) + "/" + name + ".git", nil},
		{"file", "file://" + filepath.Join(s.Root, name+".git"), nil},
	}
}

// manyRefs adds n pull-request refs (at the main branch's head) to repository
// name: an advertisement of about 66 bytes a ref, as Git sends it.
func manyRefs(t *testing.T, s *gitserver.Server, name string, n int) {
	t.Helper()
	bare := filepath.Join(s.Root, name+".git")
	head, err := s.Output(t.Context(), bare, "rev-parse", "main")
	require.NoError(t, err)
	var refs strings.Builder
	for i := range n {
		fmt.Fprintf(&refs, "%s refs/pull/%d/head\n", strings.TrimSpace(head), i)
	}
	require.NoError(t, os.WriteFile(filepath.Join(bare, "packed-refs"), []byte(refs.String()), 0o644))
}

// TestAdvertisementBoundedOnEveryTransport: a real repository with 300,000
// refs (an advertisement of about 20 MiB, which go-git would read whole: over
// 100 MiB allocated) is refused under a 1 MiB bound over HTTP, SSH, git:// and
// file:// with ErrFetchTooLarge naming the repository and the bound, never the
// password; each Write allocates a small multiple of the bound and leaves no
// descriptor (connection, pipe, process) open.
func TestAdvertisementBoundedOnEveryTransport(t *testing.T) {
	s := startServer(t)
	seed(t, s, "huge")
	manyRefs(t, s, "huge", 300_000)
	for _, r := range everyTransport(t, s, "huge") {
		t.Run(r.name, func(t *testing.T) {
			w, err := gitops.New(r.url, "shop", append(r.opts, gitops.WithMaxFetchAdvertisementBytes(1<<20))...)
			require.NoError(t, err)
			fds := openFDs(t)
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			_, err = w.Write(t.Context(), release(digestA), &deploy.Decision{})
			runtime.ReadMemStats(&m1)
			alloc := m1.TotalAlloc - m0.TotalAlloc
			after := settledFDs(t, fds)
			t.Logf("%s: allocated %.1f MiB under a 1 MiB bound, descriptors %d -> %d", r.name, float64(alloc)/(1<<20), fds, after)
			require.ErrorIs(t, err, gitops.ErrFetchTooLarge)
			assert.ErrorContains(t, err, "fetch branch main of "+r.url+": ")
			assert.ErrorContains(t, err, "a ref advertisement of more than 1048576 bytes (WithMaxFetchAdvertisementBytes)")
			assert.NotContains(t, err.Error(), password)
			assert.Less(t, alloc, uint64(24<<20), "Write allocates a small multiple of the bound")
			assert.LessOrEqual(t, after, fds, "no descriptor is left open")
		})
	}
}

// TestFetchAdvertisementOfManyRefs: a real repository with 20,000 refs (an
// advertisement of about 1.3 MiB) is refused under a 512 KiB bound and written
// under the default, over HTTP, SSH, git:// and file:// in turn (the first
// Write commits, the others find the release there).
func TestFetchAdvertisementOfManyRefs(t *testing.T) {
	s := startServer(t)
	seed(t, s, "busy")
	manyRefs(t, s, "busy", 20_000)
	ctx := t.Context()
	for i, r := range everyTransport(t, s, "busy") {
		t.Run(r.name, func(t *testing.T) {
			w, err := gitops.New(r.url, "shop", append(r.opts, gitops.WithMaxFetchAdvertisementBytes(512<<10))...)
			require.NoError(t, err)
			_, err = w.Write(ctx, release(digestA), &deploy.Decision{})
			require.ErrorIs(t, err, gitops.ErrFetchTooLarge)
			assert.ErrorContains(t, err, "fetch branch main of "+r.url+": ")

			w, err = gitops.New(r.url, "shop", r.opts...)
			require.NoError(t, err)
			res, err := w.Write(ctx, release(digestA), &deploy.Decision{})
			require.NoError(t, err)
			assert.Equal(t, i == 0, res.Changed)
			files, _ := readBack(t, s, "busy")
			assert.Equal(t, expected(t, "shop", release(digestA)), inDir(files, "shop"))
		})
	}
}

// TestWriteOverEveryTransport: a Write over each transport pushes a new
// release, rebasing on the one the previous transport pushed, and a Write with
// nothing new makes no commit; the repository keeps its other files.
func TestWriteOverEveryTransport(t *testing.T) {
	s := startServer(t)
	seed(t, s, "fleet")
	for i, r := range everyTransport(t, s, "fleet") {
		t.Run(r.name, func(t *testing.T) {
			objs := release(digestA)
			if i%2 == 1 {
				objs = release(digestB)
			}
			w, err := gitops.New(r.url, "shop", append(r.opts, gitops.WithCloneDir(filepath.Join(t.TempDir(), "clone")))...)
			require.NoError(t, err)
			for _, changed := range []bool{true, false} {
				res, err := w.Write(t.Context(), objs, &deploy.Decision{})
				require.NoError(t, err)
				assert.Equal(t, changed, res.Changed)
			}
			files, _ := readBack(t, s, "fleet")
			assert.Equal(t, expected(t, "shop", objs), inDir(files, "shop"))
			assert.Equal(t, "kept\n", files["README.md"])
		})
	}
}

// TestHTTPErrorBodyBounded: go-git reads an HTTP error's body whole into its
// error; a server that answers the advertisement's GET, or the fetch's POST,
// with a 404 and 256 MiB of body (lines of 1 KiB, the first with a terminal's
// escape sequence) gets its first 4 KiB read: Write fails with an error
// holding the first line's first 256 bytes, trimmed and quoted, allocating a
// few MiB.
func TestHTTPErrorBodyBounded(t *testing.T) {
	s := startServer(t)
	seed(t, s, "fleet")
	target, err := url.Parse(s.URL)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			var sent atomic.Int64
			front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != method {
					proxy.ServeHTTP(w, r)
					return
				}
				w.WriteHeader(http.StatusNotFound) // go-git puts a 404's body in its error
				line := []byte(strings.Repeat("x", 1023) + "\n")
				cw := &countingWriter{w: w, n: &sent}
				_, _ = cw.Write([]byte(" \x1b[2J" + strings.Repeat("y", 1017) + "\n"))
				for sent.Load() < 256<<20 {
					if _, err := cw.Write(line); err != nil {
						return
					}
				}
			}))
			t.Cleanup(front.Close)
			w, err := gitops.New(front.URL+"/fleet.git", "shop", gitops.WithBasicAuth(user, password))
			require.NoError(t, err)
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			_, err = w.Write(t.Context(), release(digestA), &deploy.Decision{})
			runtime.ReadMemStats(&m1)
			alloc := m1.TotalAlloc - m0.TotalAlloc
			require.Error(t, err)
			t.Logf("%s: error of %d bytes, allocated %.1f MiB, the server sent %.1f MiB", method, len(err.Error()), float64(alloc)/(1<<20), float64(sent.Load())/(1<<20))
			assert.ErrorContains(t, err, "fetch branch main of "+front.URL+"/fleet.git: ")
			assert.ErrorIs(t, err, transport.ErrRepositoryNotFound)
			assert.ErrorContains(t, err, strconv.Quote("\x1b[2J"+strings.Repeat("y", 252)), "the first line's first 256 bytes, trimmed and quoted")
			assert.NotContains(t, err.Error(), "\x1b", "never the server's raw text")
			assert.NotContains(t, err.Error(), strings.Repeat("y", 253), "no more of the line")
			assert.NotContains(t, err.Error(), "xx", "nor of the body")
			assert.Less(t, alloc, uint64(16<<20))
		})
	}
}
