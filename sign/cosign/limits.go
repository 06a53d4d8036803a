package cosign

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/shipkit/shipkit/internal/option"
)

// Defaults of the limits a [Verifier] reads a registry within. A registry a
// verified image names is an outsider (an admission webhook verifies whatever
// registry a pod names), so everything it serves is read within these bounds, and
// whatever is past them denies the image with a reason that says so: never a pass,
// never an unbounded read.
const (
	// DefaultMaxLayers is how many signature (or attestation) layers one cosign tag
	// (sha256-HEX.sig, sha256-HEX.att) may list. An image signed once per pipeline
	// run and attested with an SBOM, a vulnerability report and provenance has a
	// handful; 64 leaves room for years of re-signing and for reports attested
	// daily for two months without [sign.WithReplace].
	DefaultMaxLayers = 64
	// DefaultMaxPayloadSize is how large one signature or attestation payload may be,
	// in bytes. A signature is a few hundred bytes; the largest attestation is an
	// SBOM: syft's SPDX or CycloneDX JSON of a distribution-based image (Debian,
	// Ubuntu, a language runtime's full image) is 1-5 MiB, a third more once
	// base64-encoded in the DSSE envelope, so 8 MiB holds the SBOMs of the images
	// people deploy while keeping one verification's memory small (see
	// [WithMaxPayloadSize]). cosign's own default, 128 MiB, is a command's, not a
	// server's.
	DefaultMaxPayloadSize = 8 << 20
	// DefaultConcurrency is how many registry reads one verification makes at once.
	// Four hide most of a registry's latency (a verification reads two manifests,
	// then a few layers) without letting one verification hold many payloads.
	DefaultConcurrency = 4
	// DefaultMaxPlatforms is how many platform images of an image index a
	// verification reads the attestations of. Multi-platform images list 2 to 8.
	DefaultMaxPlatforms = 64
)

// maxManifestSize bounds the size of a manifest (the cosign tags' and the verified
// image's own) that a Verifier reads: 4 MiB, the limit of the OCI distribution
// server and of most registries, so no registry can store a larger one.
const maxManifestSize = 4 << 20

// ErrInvalidOption is matched (errors.Is) by the error of [NewVerifier] or
// [NewSigner] for an option with an invalid value (a limit of 0 or less). It is the
// same sentinel as deploy.ErrInvalidOption and mesh.ErrInvalidOption, one value for
// every stage.
var ErrInvalidOption = option.ErrInvalid

// limits are the bounds of one verification's reads.
type limits struct {
	maxLayers, concurrency, maxPlatforms, maxReferrers int
	maxPayload                                         int64
	// invalid lists the options given invalid values, reported by validate.
	invalid option.List
}

func defaultLimits() limits {
	return limits{maxLayers: DefaultMaxLayers, maxPayload: DefaultMaxPayloadSize,
		concurrency: DefaultConcurrency, maxPlatforms: DefaultMaxPlatforms, maxReferrers: DefaultMaxReferrers}
}

// validate returns an error wrapping [ErrInvalidOption] that names each invalid
// option.
func (l *limits) validate() error { return l.invalid.Err("") }

func (l *limits) setInt(p *int, name string, n int) {
	if n <= 0 {
		l.invalid.Addf("%s(%d): must be at least 1", name, n)
		return
	}
	*p = n
}

// WithMaxLayers bounds how many layers a [Verifier] reads from one cosign tag: the
// image's signatures (sha256-HEX.sig) and its attestations (sha256-HEX.att) each
// (default [DefaultMaxLayers]). A tag listing more is not read at all and denies the
// image with a reason that gives the count (the verdict could only be a denial, so
// reading a registry's thousands of layers would be work for nothing); attest with
// [sign.WithReplace] to keep the count down. n must be at least 1.
func WithMaxLayers(n int) Option {
	return func(o *options) { o.limits.setInt(&o.limits.maxLayers, "cosign.WithMaxLayers", n) }
}

// WithMaxPayloadSize bounds the size in bytes of one signature or attestation
// payload a [Verifier] reads (default [DefaultMaxPayloadSize]). A layer whose
// descriptor declares more is not fetched, one whose body runs past its declared
// size is cut off there, and either denies the image with a reason that says so.
// It also bounds a verification's memory: the payloads being read and judged at
// once add up to at most n bytes (one payload as large as n is read alone), and
// judging one holds about four times its size for a moment (the envelope, its
// decoded statement, cosign's own decoding), so a verification holds about
// 4n plus 4 MiB per manifest being read at most, whatever the registry serves
// (manifests: cosign tags, referrers lists and bundle referrers' manifests, at
// most twice [WithConcurrency] at once). Only verified predicates are kept. n
// must be at least 1.
func WithMaxPayloadSize(n int64) Option {
	return func(o *options) {
		if n <= 0 {
			o.limits.invalid.Addf("cosign.WithMaxPayloadSize(%d): must be at least 1", n)
			return
		}
		o.limits.maxPayload = n
	}
}

// WithConcurrency sets how many registry reads (manifests and payloads) one
// verification makes at once (default [DefaultConcurrency]); n must be at least 1.
// Verifications of different images run side by side, each within its own
// bounds, so that one slow or hostile registry cannot hold up the others.
func WithConcurrency(n int) Option {
	return func(o *options) { o.limits.setInt(&o.limits.concurrency, "cosign.WithConcurrency", n) }
}

// WithMaxPlatforms bounds how many platform images of an image index a [Verifier]
// reads the attestations of (default [DefaultMaxPlatforms]). An index that lists
// more denies with a reason that gives the count. Together the limits bound a
// verification's work: at most (1 + n) cosign tags of at most [WithMaxLayers]
// layers, each at most [WithMaxPayloadSize] bytes. n must be at least 1.
func WithMaxPlatforms(n int) Option {
	return func(o *options) { o.limits.setInt(&o.limits.maxPlatforms, "cosign.WithMaxPlatforms", n) }
}

// budget bounds one verification's reads: at most n at once, holding at most bytes
// of payload together. Only one goroutine acquires (the verification's); the reads
// release from theirs.
type budget struct {
	mu          sync.Mutex
	n, bytes    int64 // in use
	maxN, maxB  int64
	freed       chan struct{} // signalled on each release
	outstanding sync.WaitGroup
}

func newBudget(l limits) *budget {
	return &budget{maxN: int64(l.concurrency), maxB: l.maxPayload, freed: make(chan struct{}, 1)}
}

// goWith runs f in a goroutine once a read slot and weight bytes are free (weight
// is clamped to the byte budget), and returns ctx's error if it ends first. Wait
// for the reads with wait.
func (b *budget) goWith(ctx context.Context, weight int64, f func()) error {
	weight = max(min(weight, b.maxB), 0)
	for {
		b.mu.Lock()
		if b.n < b.maxN && b.bytes+weight <= b.maxB {
			b.n++
			b.bytes += weight
			b.mu.Unlock()
			break
		}
		b.mu.Unlock()
		select {
		case <-b.freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b.outstanding.Add(1)
	go func() {
		defer b.outstanding.Done()
		defer b.release(weight)
		f()
	}()
	return nil
}

func (b *budget) release(weight int64) {
	b.mu.Lock()
	b.n--
	b.bytes -= weight
	b.mu.Unlock()
	select {
	case b.freed <- struct{}{}:
	default:
	}
}

// wait waits for every read started with goWith.
func (b *budget) wait() { b.outstanding.Wait() }

// errBodyTooLarge is the error of reading a registry response past the limit of a
// [capTransport].
var errBodyTooLarge = errors.New("registry response larger than the limit")

// capTransport cuts every response body it carries off at a limit: manifests at
// [maxManifestSize], everything else (blobs, which may be redirected to another
// host, tokens, errors) at max. go-containerregistry would read a manifest of up to
// 100 MiB of its own accord.
type capTransport struct {
	base http.RoundTripper
	max  int64
}

func (t *capTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil || resp.Body == nil || r.Method == http.MethodHead {
		return resp, err
	}
	limit := t.max
	if strings.Contains(r.URL.Path, "/manifests/") {
		limit = maxManifestSize
	}
	if resp.ContentLength > limit {
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %w (Content-Length %d, limit %d)", r.Method, r.URL.Redacted(), errBodyTooLarge, resp.ContentLength, limit)
	}
	resp.Body = &capBody{ReadCloser: resp.Body, left: limit}
	return resp, nil
}

type capBody struct {
	io.ReadCloser
	left int64
}

func (b *capBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// Past the limit: say so if the body goes on, end it if it ends here.
		var one [1]byte
		if n, _ := b.ReadCloser.Read(one[:]); n > 0 {
			return 0, errBodyTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}
