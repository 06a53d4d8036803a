package gitops

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// Everything a server sends a fetch or a push is read within a bound, phase by
// phase: the ref advertisement within WithMaxFetchAdvertisementBytes; then an
// upload-pack response (acknowledgements, then the pack in side-band frames)
// within WithMaxFetchBytes and an allowance for the protocol around the pack; a
// push's status report within maxPushStatus. go-git's decoders keep what they
// read (refs, ACK lines, status lines) in memory until the next phase starts,
// so an unbounded phase is unbounded memory.

// maxPushStatus bounds a push's status report: a line for the pack and one for
// the branch, and what the server's hooks print (on side band 2, when the push
// asks for a side band).
const maxPushStatus = 1 << 20

// maxErrorBody bounds what is read of an HTTP error's body (go-git reads it
// whole into its error); maxErrorLine bounds the line of it kept.
const (
	maxErrorBody = 4 << 10
	maxErrorLine = 256
)

// callBound is the state of one fetch's or push's bounds: the first one hit.
type callBound struct {
	advert int64 // WithMaxFetchAdvertisementBytes
	pack   int64 // WithMaxFetchBytes

	mu     sync.Mutex
	hit    error
	bodies []io.Closer // the HTTP responses' bodies, which go-git leaves open on errors
}

// close closes the call's HTTP responses' bodies (their connections).
func (b *callBound) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.bodies {
		_ = c.Close()
	}
	b.bodies = nil
}

// limit is one phase's bound: n bytes, and what a larger one is.
type limit struct {
	n    int64
	what string
}

func (b *callBound) advertLimit() limit {
	return limit{b.advert, fmt.Sprintf("a ref advertisement of more than %d bytes (WithMaxFetchAdvertisementBytes)", b.advert)}
}

// uploadLimit bounds an upload-pack response after the advertisement: the pack
// (WithMaxFetchBytes, which the pack writer holds it to) and 1/64 of it and 1
// MiB more for its side-band frames (5 bytes a frame of up to 1000 bytes, or
// 65520 with side-band-64k), the ACK and NAK lines before it and the server's
// messages.
func (b *callBound) uploadLimit() limit {
	n := b.pack + b.pack/64 + 1<<20
	return limit{n, fmt.Sprintf("an upload-pack response of more than %d bytes (WithMaxFetchBytes %d and the protocol around the pack)", n, b.pack)}
}

func (b *callBound) statusLimit() limit {
	return limit{maxPushStatus, fmt.Sprintf("a push status report of more than %d bytes", maxPushStatus)}
}

// trip records that l was hit (unless another bound was first) and returns the
// error of the bound hit first.
func (b *callBound) trip(l limit) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.hit == nil {
		b.hit = fmt.Errorf("%w: %s", ErrFetchTooLarge, l.what)
	}
	return b.hit
}

// check returns the error of the bound hit, whatever error go-git made of it,
// and err otherwise.
func (b *callBound) check(err error) error {
	if err == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.hit != nil {
		return b.hit
	}
	return err
}

// boundedReader reads r within a limit (one byte past it fails with the bound's
// error); reset starts the next phase's.
type boundedReader struct {
	r    io.Reader
	b    *callBound
	lim  limit
	left int64
}

func newBoundedReader(r io.Reader, b *callBound, l limit) *boundedReader {
	return &boundedReader{r: r, b: b, lim: l, left: l.n}
}

func (r *boundedReader) reset(l limit) { r.lim, r.left = l, l.n }

func (r *boundedReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		var one [1]byte
		n, err := r.r.Read(one[:])
		if n > 0 {
			return 0, r.b.trip(r.lim)
		}
		return 0, err
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.r.Read(p)
	r.left -= int64(n)
	return n, err
}

// httpBound is an http.RoundTripper that bounds every response's body: go-git's
// HTTP transport GETs info/refs (the ref advertisement) and POSTs
// git-upload-pack (the upload-pack response) or git-receive-pack (the push's
// status report). An error's body becomes its first line, quoted.
type httpBound struct {
	b    *callBound
	next http.RoundTripper
}

func (h *httpBound) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := h.next.RoundTrip(req)
	if err != nil {
		return res, err
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		line := errorLine(res.Body)
		_ = res.Body.Close()
		res.Body, res.ContentLength = io.NopCloser(strings.NewReader(line)), int64(len(line))
		return res, nil
	}
	l := h.b.statusLimit()
	switch {
	case req.Method == http.MethodGet:
		l = h.b.advertLimit()
	case strings.HasSuffix(req.URL.Path, "/git-upload-pack"):
		l = h.b.uploadLimit()
	}
	if res.ContentLength > l.n {
		_ = res.Body.Close()
		return nil, h.b.trip(l)
	}
	h.b.mu.Lock()
	h.b.bodies = append(h.b.bodies, res.Body)
	h.b.mu.Unlock()
	res.Body = &bodyBound{boundedReader: newBoundedReader(res.Body, h.b, l), c: res.Body}
	return res, nil
}

// errorLine returns the first non-empty line of the first maxErrorBody bytes
// of r (what could be read), trimmed, cut to maxErrorLine bytes and quoted; ""
// when there is none.
func errorLine(r io.Reader) string {
	body, _ := io.ReadAll(io.LimitReader(r, maxErrorBody))
	for _, l := range bytes.Split(body, []byte("\n")) {
		if l = bytes.TrimSpace(l); len(l) > 0 {
			return strconv.Quote(string(l[:min(len(l), maxErrorLine)]))
		}
	}
	return ""
}

type bodyBound struct {
	*boundedReader
	c io.Closer
}

func (r *bodyBound) Close() error { return r.c.Close() }
