package gitops_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/gitops"
)

// floodLimit is how much a flooding server sends at most (it stops when the
// client goes away).
const floodLimit = 256 << 20

// flood writes the pkt-lines of after but its last once, then the last one
// over and over, to w, counting in sent.
func flood(w io.Writer, after []string, sent *atomic.Int64) {
	bw := bufio.NewWriterSize(w, 64<<10)
	for i := 0; sent.Load() < floodLimit; i++ {
		line := after[min(i, len(after)-1)]
		if pkt(bw, line) != nil {
			return
		}
		sent.Add(int64(len(line) + 4))
	}
	_ = bw.Flush()
}

// floodingDaemon is a git daemon (git://) answering each connection with
// advert(service) (pkt-lines, then a flush-pkt) and then, discarding what the
// client sends, flood(service). It returns the daemon's URL.
func floodingDaemon(t *testing.T, sent *atomic.Int64, advert, after func(service string) []string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				br := bufio.NewReader(c)
				var n [4]byte
				if _, err := io.ReadFull(br, n[:]); err != nil {
					return
				}
				req := make([]byte, hexLen(n)-4)
				if _, err := io.ReadFull(br, req); err != nil {
					return
				}
				service, _, _ := strings.Cut(string(req), " ")
				bw := bufio.NewWriter(c)
				for _, l := range advert(service) {
					_ = pkt(bw, l)
				}
				_, _ = bw.WriteString("0000")
				if bw.Flush() != nil {
					return
				}
				go func() { _, _ = io.Copy(io.Discard, br) }()
				flood(c, after(service), sent)
			}()
		}
	}()
	return "git://" + ln.Addr().String()
}

func hexLen(n [4]byte) int {
	v := 0
	for _, c := range n {
		v = v*16 + strings.IndexByte("0123456789abcdef", c)
	}
	return v
}

// frontOf is an HTTP server in front of s's Git server that answers the POSTs
// to service with flood(after) and passes everything else on.
func frontOf(t *testing.T, target, service string, sent *atomic.Int64, after []string) string {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(u)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/"+service) {
			proxy.ServeHTTP(w, r)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-"+service+"-result")
		flood(w, after, sent)
	}))
	t.Cleanup(front.Close)
	return front.URL
}

// TestServerResponsesBounded: after the ref advertisement a hostile server
// floods what go-git keeps in memory until the next phase: ACK lines before
// the pack (an upload-pack response) or status lines (a push's report), 256
// MiB of them. Over HTTP and git:// Write fails with ErrFetchTooLarge naming
// the repository and the bound, having read about the bound (WithMaxFetchBytes
// 1 MiB and 1 MiB more for the protocol; 1 MiB of push status), allocating
// a small multiple of it (it allocated 1.2 GiB reading them all).
func TestServerResponsesBounded(t *testing.T) {
	s := startServer(t)
	seed(t, s, "fleet")
	hash := strings.Repeat("1", 40)
	ack := []string{"ACK " + hash + "\n"}
	status := []string{"unpack ok\n", "ok refs/heads/main\n"}
	var sent atomic.Int64
	daemon := floodingDaemon(t, &sent, func(service string) []string {
		if service == "git-receive-pack" {
			return []string{strings.Repeat("0", 40) + " capabilities^{}\x00report-status\n"}
		}
		return []string{hash + " refs/heads/main\x00side-band-64k ofs-delta no-progress\n"}
	}, func(service string) []string {
		if service == "git-receive-pack" {
			return status
		}
		return ack
	})
	// The same daemon, advertising an empty repository to fetch from: Write
	// then pushes.
	emptyDaemon := floodingDaemon(t, &sent, func(service string) []string {
		if service == "git-receive-pack" {
			return []string{strings.Repeat("0", 40) + " capabilities^{}\x00report-status\n"}
		}
		return nil
	}, func(string) []string { return status })

	for _, tt := range []struct {
		name, url, want string
		opts            []gitops.Option
	}{
		{"ACKs over HTTP", frontOf(t, s.URL, "git-upload-pack", &sent, ack) + "/fleet.git",
			"fetch branch main of %s: ", []gitops.Option{gitops.WithBasicAuth(user, password)}},
		{"ACKs over git://", daemon + "/fleet.git", "fetch branch main of %s: ", nil},
		{"push status over HTTP", frontOf(t, s.URL, "git-receive-pack", &sent, status) + "/fleet.git",
			"push to %s: ", []gitops.Option{gitops.WithBasicAuth(user, password)}},
		{"push status over git://", emptyDaemon + "/fleet.git", "push to %s: ", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w, err := gitops.New(tt.url, "shop", append(tt.opts, gitops.WithMaxFetchBytes(1<<20))...)
			require.NoError(t, err)
			sent.Store(0)
			fds := openFDs(t)
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			_, err = w.Write(t.Context(), release(digestA), &deploy.Decision{})
			runtime.ReadMemStats(&m1)
			alloc := m1.TotalAlloc - m0.TotalAlloc
			// The advertisement's connections (the proxy's and Write's) are
			// kept alive, idle: they are not the ones this is about.
			http.DefaultTransport.(*http.Transport).CloseIdleConnections()
			after := settledFDs(t, fds)
			t.Logf("allocated %.1f MiB, the server sent %.1f MiB, descriptors %d -> %d, error: %v",
				float64(alloc)/(1<<20), float64(sent.Load())/(1<<20), fds, after, err)
			require.ErrorIs(t, err, gitops.ErrFetchTooLarge)
			assert.ErrorContains(t, err, strings.Replace(tt.want, "%s", tt.url, 1))
			if strings.HasPrefix(tt.name, "ACKs") {
				assert.ErrorContains(t, err, "an upload-pack response of more than 2113536 bytes (WithMaxFetchBytes 1048576 and the protocol around the pack)")
			} else {
				assert.ErrorContains(t, err, "a push status report of more than 1048576 bytes")
			}
			assert.NotContains(t, err.Error(), password)
			assert.Less(t, alloc, uint64(48<<20), "Write allocates a small multiple of the bound")
			assert.Less(t, sent.Load(), int64(32<<20), "the server could send only the bound and the sockets' buffers")
			assert.LessOrEqual(t, after, fds, "no connection is left open")
		})
	}
}
