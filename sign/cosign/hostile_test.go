package cosign_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

// hostileBlob is a blob the hostile registry makes up as it serves it: size bytes
// written by gen, or, when endless, bytes until the client hangs up (at most 1 GiB),
// with a Content-Length header of contentLength when it is not 0.
type hostileBlob struct {
	size          int64
	gen           func(w io.Writer) error
	endless       bool
	contentLength int64
}

// hostileRegistry serves one image in repository hostile/app whose cosign tags list
// the given layers; blobs are generated on the fly. It counts the blob bytes it
// wrote.
type hostileRegistry struct {
	image     []byte // the image's manifest
	manifests map[string][]byte
	blobs     map[string]hostileBlob
	served    atomic.Int64
}

func (h *hostileRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	const prefix = "/v2/hostile/app/"
	switch {
	case r.URL.Path == "/v2/":
		w.WriteHeader(http.StatusOK)
	case strings.HasPrefix(r.URL.Path, prefix+"manifests/"):
		m, ok := h.manifests[strings.TrimPrefix(r.URL.Path, prefix+"manifests/")]
		if !ok {
			http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"HOSTILE body"}]}`, http.StatusNotFound)
			return
		}
		sum := sha256.Sum256(m)
		w.Header().Set("Content-Type", string(types.OCIManifestSchema1))
		w.Header().Set("Docker-Content-Digest", "sha256:"+hex.EncodeToString(sum[:]))
		w.Header().Set("Content-Length", strconv.Itoa(len(m)))
		if r.Method != http.MethodHead {
			_, _ = w.Write(m)
		}
	case strings.HasPrefix(r.URL.Path, prefix+"blobs/"):
		b, ok := h.blobs[strings.TrimPrefix(r.URL.Path, prefix+"blobs/")]
		if !ok {
			http.Error(w, "HOSTILE unknown blob", http.StatusNotFound)
			return
		}
		switch {
		case b.contentLength != 0:
			w.Header().Set("Content-Length", strconv.FormatInt(b.contentLength, 10))
		case !b.endless:
			w.Header().Set("Content-Length", strconv.FormatInt(b.size, 10))
		}
		if r.Method == http.MethodHead {
			return
		}
		cw := &countingWriter{w: w, n: &h.served}
		if b.endless {
			_, _ = io.CopyN(cw, hostileBytes(0), 1<<30)
			return
		}
		_ = b.gen(cw)
	default:
		http.NotFound(w, r)
	}
}

type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// hostileBytes is an endless stream of "HOSTILE-<seed>-" with the seed's digits.
type hostileBytes int

func (s hostileBytes) Read(p []byte) (int, error) {
	pat := fmt.Sprintf("HOSTILE-%d-", int(s))
	for i := range p {
		p[i] = pat[i%len(pat)]
	}
	return len(p), nil
}

// garbage is a blob of size bytes of hostileBytes(seed).
func garbage(seed int, size int64) hostileBlob {
	return hostileBlob{size: size, gen: func(w io.Writer) error {
		_, err := io.CopyN(w, hostileBytes(seed), size)
		return err
	}}
}

// dsseBlob is a well-formed DSSE envelope of an in-toto statement about the image
// with a predicate of about size bytes, signed by no one (a junk signature): it
// passes every check before the signature's.
func dsseBlob(seed int, subjectHex string, size int64) hostileBlob {
	head := `{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://spdx.dev/Document","subject":[{"name":"hostile/app","digest":{"sha256":"` +
		subjectHex + `"}}],"predicate":{"junk":"`
	tail := `"}}`
	body := size*3/4 - int64(len(head)+len(tail)) - 256
	gen := func(w io.Writer) error {
		if _, err := io.WriteString(w, `{"payloadType":"application/vnd.in-toto+json","payload":"`); err != nil {
			return err
		}
		enc := base64.NewEncoder(base64.StdEncoding, w)
		if _, err := io.WriteString(enc, head); err != nil {
			return err
		}
		if _, err := io.CopyN(enc, hostileBytes(seed), body); err != nil {
			return err
		}
		if _, err := io.WriteString(enc, tail); err != nil {
			return err
		}
		if err := enc.Close(); err != nil {
			return err
		}
		_, err := io.WriteString(w, `","signatures":[{"keyid":"","sig":"MEUCIQDHOSTILEHOSTILEHOSTILEHOSTILEHOSTILEHOSTILEAAAA=="}]}`)
		return err
	}
	cw := &countingWriter{w: io.Discard, n: new(atomic.Int64)}
	if err := gen(cw); err != nil {
		panic(err)
	}
	return hostileBlob{size: cw.n.Load(), gen: gen}
}

// digestOfBlob hashes a blob as it is generated.
func digestOfBlob(t *testing.T, b hostileBlob) v1.Hash {
	t.Helper()
	h := sha256.New()
	require.NoError(t, b.gen(h))
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}

// cosignManifest returns the manifest of a cosign tag listing layers.
func cosignManifest(t *testing.T, layers []v1.Descriptor) []byte {
	t.Helper()
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Size: 2, Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("4", 64)}},
		Layers: layers}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

// newHostileRegistry makes the registry of TestHostileRegistryMemory: about 870 MiB
// of layers behind one image's .sig and .att tags.
func newHostileRegistry(t *testing.T, layerSize int64) (*hostileRegistry, name.Digest, *httptest.Server) {
	t.Helper()
	reg := &hostileRegistry{manifests: map[string][]byte{}, blobs: map[string]hostileBlob{}}
	reg.image = cosignManifest(t, []v1.Descriptor{{MediaType: types.OCILayer, Size: 1, Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("5", 64)}}})
	sum := sha256.Sum256(reg.image)
	imgHex := hex.EncodeToString(sum[:])
	reg.manifests["sha256:"+imgHex] = reg.image

	add := func(b hostileBlob, h v1.Hash, mt types.MediaType, ann map[string]string) v1.Descriptor {
		reg.blobs[h.String()] = b
		return v1.Descriptor{MediaType: mt, Size: b.size, Digest: h, Annotations: ann}
	}
	// Four different blobs of garbage, the limit's size, are the signatures' and
	// attestations' layers over and over.
	var junk []hostileBlob
	var junkDigest []v1.Hash
	for i := range 4 {
		b := garbage(i, layerSize)
		junk, junkDigest = append(junk, b), append(junkDigest, digestOfBlob(t, b))
	}
	sigAnn := map[string]string{"dev.cosignproject.cosign/signature": "MEUCIQHOSTILE"}
	var sigs []v1.Descriptor
	for i := range 80 { // 80 × 8 MiB, more layers than the verifier reads
		sigs = append(sigs, add(junk[i%4], junkDigest[i%4], "application/vnd.dev.cosign.simplesigning.v1+json", sigAnn))
	}
	attAnn := map[string]string{"predicateType": "https://spdx.dev/Document"}
	const dsseType = "application/vnd.dsse.envelope.v1+json"
	var atts []v1.Descriptor
	for i := range 12 { // 12 × 8 MiB of garbage
		atts = append(atts, add(junk[i%4], junkDigest[i%4], dsseType, attAnn))
	}
	for i := range 4 { // 4 × 8 MiB envelopes that parse, signed by no one
		b := dsseBlob(10+i, imgHex, layerSize)
		atts = append(atts, add(b, digestOfBlob(t, b), dsseType, attAnn))
	}
	huge := garbage(20, 100<<20) // 100 MiB, declared honestly
	atts = append(atts, add(huge, digestOfBlob(t, huge), dsseType, attAnn))
	for i := range 3 { // declares 1 KiB, serves endless bytes without a length
		atts = append(atts, add(hostileBlob{size: 1024, endless: true}, v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%064d", 30+i)}, dsseType, attAnn))
	}
	// declares 4 KiB, says Content-Length 1 GiB
	atts = append(atts, add(hostileBlob{size: 4096, endless: true, contentLength: 1 << 30}, v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%064d", 40)}, dsseType, attAnn))
	reg.manifests["sha256-"+imgHex+".sig"] = cosignManifest(t, sigs)
	reg.manifests["sha256-"+imgHex+".att"] = cosignManifest(t, atts)

	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	d, err := name.NewDigest(strings.TrimPrefix(srv.URL, "http://") + "/hostile/app@sha256:" + imgHex)
	require.NoError(t, err)
	return reg, d, srv
}

// heapInUse returns the bytes of heap spans in use (runtime.MemStats.HeapInuse),
// read without stopping the world.
func heapInUse() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64() + s[1].Value.Uint64())
}

// peakHeap samples heapInUse every 200µs until stop is called, which returns the
// highest value seen.
func peakHeap() (stop func() int64) {
	var peak atomic.Int64
	peak.Store(heapInUse())
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(200 * time.Microsecond)
		defer tick.Stop()
		for {
			if h := heapInUse(); h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() int64 { close(done); wg.Wait(); return peak.Load() }
}

// TestHostileRegistryMemory verifies, with the default limits, an image whose
// registry serves about 870 MiB of layers: 80 signature layers of 8 MiB (more than
// the verifier reads from one tag), and 21 attestation layers: 12 of garbage and 4
// envelopes signed by no one (8 MiB each), one of 100 MiB, 3 that declare 1 KiB and
// never end, one that declares 4 KiB and a Content-Length of 1 GiB. The answer must
// be a denial naming each limit, no reason may carry the registry's bytes, the heap
// must stay within 64 MiB above what it was before, and the registry must have
// served no more than the layers within the limits.
func TestHostileRegistryMemory(t *testing.T) {
	const layerSize = 8 << 20
	require.EqualValues(t, layerSize, cosign.DefaultMaxPayloadSize, "the test serves layers of the default limit's size")
	const bound = 64 << 20
	reg, d, _ := newHostileRegistry(t, layerSize)
	v := newVerifier(t, fullPolicy(trusted.trustedKey()), cosign.WithCache(nil))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	runtime.GC()
	base := heapInUse()
	stop := peakHeap()
	_, err := v.Verify(ctx, d)
	peak := stop()
	t.Logf("heap in use: baseline %.1f MiB, peak %.1f MiB (+%.1f MiB, bound +%d MiB); registry served %.1f MiB of blobs",
		mib(base), mib(peak), mib(peak-base), bound>>20, mib(reg.served.Load()))

	require.ErrorIs(t, err, sign.ErrDenied, "a hostile registry's image is denied: %v", err)
	var denied *sign.DeniedError
	require.ErrorAs(t, err, &denied)
	for _, r := range denied.Reasons {
		assert.NotContains(t, r.Message, "HOSTILE", "a reason carries the registry's bytes")
		assert.Less(t, len(r.Message), 400, "a reason is bounded")
	}
	msg := err.Error()
	for _, want := range []string{
		"the signature tag lists 80 layers, more than the limit of 64 (cosign.WithMaxLayers); none was read",
		"attestation 17: its descriptor declares 104857600 bytes, more than the limit of 8388608 (cosign.WithMaxPayloadSize); it was not read",
		"attestation 18: the registry serves more than the 1024 bytes its descriptor declares; it was read no further",
		"attestation 21: the registry serves more bytes than the limit; it was read no further",
		"attestation 1: not a DSSE envelope: invalid JSON at byte 1",
		"attestation 13: attestation of https://spdx.dev/Document is not signed by a trusted key",
	} {
		assert.Contains(t, msg, want)
	}
	assert.Less(t, peak-base, int64(bound), "peak heap above the baseline")
	// 16 layers of 8 MiB, and for each of the 4 endless ones what the loopback
	// socket buffers take before the verifier closes the connection (a few MiB).
	assert.Less(t, reg.served.Load(), int64(16*layerSize+4*layerSize), "bytes the registry served")
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
