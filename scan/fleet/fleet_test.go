package fleet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/deploy"
	deployfleet "github.com/shipkit/shipkit/deploy/fleet"
	"github.com/shipkit/shipkit/internal/testbed/registry"
	"github.com/shipkit/shipkit/internal/testbed/vulndb"
	"github.com/shipkit/shipkit/scan/fleet"
	"github.com/shipkit/shipkit/scan/internal/testimage"
	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/scan/sbom"
	"github.com/shipkit/shipkit/scan/vuln"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

// blobCounter counts the blob GETs that reach the registry, by digest.
type blobCounter struct {
	mu    sync.Mutex
	blobs map[string]int
	gets  atomic.Int64
}

func (c *blobCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet {
		c.gets.Add(1)
		if _, d, ok := strings.Cut(r.URL.Path, "/blobs/"); ok {
			c.mu.Lock()
			if c.blobs == nil {
				c.blobs = map[string]int{}
			}
			c.blobs[d]++
			c.mu.Unlock()
		}
	}
	return http.DefaultTransport.RoundTrip(r)
}

func (c *blobCounter) count(digests []string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, d := range digests {
		n += c.blobs[d]
	}
	return n
}

// bed is a registry with images in every state the re-scan distinguishes.
type bed struct {
	host     string
	trusted  sign.TrustedKey
	images   map[string]string // role -> reference by digest
	layers   []string          // the layer digests of every image
	inv      *deployfleet.Inventory
	dbRoot   string
	sbomSPDX []byte
}

func key(t *testing.T) *cosign.PrivateKey {
	t.Helper()
	pair, err := cosign.GenerateKeyPair([]byte("pw"))
	require.NoError(t, err)
	k, err := cosign.LoadPrivateKey(pair.PrivatePEM, []byte("pw"))
	require.NoError(t, err)
	return k
}

func newBed(t *testing.T) *bed {
	t.Helper()
	ctx := t.Context()
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	t.Cleanup(stop)
	b := &bed{host: host, images: map[string]string{}}

	base := testimage.Debian(t, "amd64")
	s, err := sbom.New().Catalog(ctx, base)
	require.NoError(t, err)
	var spdx, cdx bytes.Buffer
	require.NoError(t, sbom.Encode(&spdx, s, sbom.SPDXJSON))
	require.NoError(t, sbom.Encode(&cdx, s, sbom.CycloneDXJSON))
	b.sbomSPDX = spdx.Bytes()

	trusted, rogue := key(t), key(t)
	b.trusted = trusted.TrustedKey("ci")
	signer := func(k *cosign.PrivateKey) *cosign.Signer {
		s, err := cosign.NewSigner(k)
		require.NoError(t, err)
		return s
	}
	ci, other := signer(trusted), signer(rogue)
	push := func(role string) name.Digest {
		extra, err := random.Layer(256, "application/vnd.oci.image.layer.v1.tar+gzip")
		require.NoError(t, err)
		img, err := mutate.AppendLayers(base, extra)
		require.NoError(t, err)
		ref, err := name.ParseReference(host + "/shop/" + role + ":v1")
		require.NoError(t, err)
		require.NoError(t, remote.Write(ref, img, remote.WithContext(ctx)))
		h, err := img.Digest()
		require.NoError(t, err)
		ls, err := img.Layers()
		require.NoError(t, err)
		for _, l := range ls {
			d, err := l.Digest()
			require.NoError(t, err)
			b.layers = append(b.layers, d.String())
		}
		d := ref.Context().Digest(h.String())
		b.images[role] = d.Name()
		return d
	}
	attest := func(s *cosign.Signer, d name.Digest, p sign.Predicate) {
		require.NoError(t, s.Sign(ctx, d))
		require.NoError(t, s.Attest(ctx, d, p))
	}
	attest(ci, push("web"), sign.SPDX(spdx.Bytes()))
	attest(ci, push("api"), sign.CycloneDX(cdx.Bytes()))
	attest(other, push("rogue"), sign.SPDX(spdx.Bytes()))
	push("bare")
	attest(ci, push("broken"), sign.SPDX([]byte(`{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","packages":7}`)))
	nosbom := push("nosbom")
	require.NoError(t, ci.Sign(ctx, nosbom))
	gone, err := name.NewDigest(host + "/shop/gone@sha256:" + strings.Repeat("0", 64))
	require.NoError(t, err)
	b.images["gone"] = gone.Name()

	wl := func(cluster, kind, n string) deployfleet.Use {
		return deployfleet.Use{Cluster: cluster, Workload: deploy.ObjectRef{Group: "apps", Kind: kind, Namespace: "shop", Name: n},
			Container: "app", Kind: deploy.ContainerImage, Running: true, Pods: 2, Image: "tag"}
	}
	b.inv = &deployfleet.Inventory{Clusters: []deployfleet.ClusterInventory{{Name: "east"}, {Name: "west"}}}
	for _, role := range []string{"web", "api", "rogue", "bare", "broken", "nosbom", "gone"} {
		b.inv.Images = append(b.inv.Images, deployfleet.Image{Digest: b.images[role],
			Uses: []deployfleet.Use{wl("east", "Deployment", role), wl("west", "StatefulSet", role)}})
	}

	b.dbRoot = t.TempDir()
	_, err = vulndb.Write(ctx, b.dbRoot, vulndb.Fixtures(), vulndb.WithBuildTime(time.Now().Add(-time.Hour)))
	require.NoError(t, err)
	return b
}

func (b *bed) verifier(t *testing.T, rt http.RoundTripper) sign.Verifier {
	t.Helper()
	v, err := cosign.NewVerifier(sign.Policy{TrustedKeys: []sign.TrustedKey{b.trusted}}, cosign.WithTransport(rt))
	require.NoError(t, err)
	return v
}

func (b *bed) db(t *testing.T, opts ...vuln.Option) *vuln.DB {
	t.Helper()
	db, err := vuln.Open(t.Context(), b.dbRoot, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func statuses(r *fleet.Report) map[string]fleet.ImageStatus {
	out := map[string]fleet.ImageStatus{}
	for _, s := range r.Images {
		out[s.Image] = s
	}
	return out
}

// TestRescan re-checks a fleet from its SBOM attestations: images with a verified
// SPDX or CycloneDX SBOM are matched and reported per advisory with their
// workloads; an unsigned image, one attested by an untrusted key, a malformed SBOM,
// one with no SBOM and one gone from the registry are listed as such and not
// scanned; no layer of any image is read. With the layer fallback, the unverified
// ones are cataloged from their layers (and their layers are read: the counter
// sees blobs), marked as such.
func TestRescan(t *testing.T) {
	b := newBed(t)
	rt := &blobCounter{}
	db := b.db(t)
	rep, err := fleet.Rescan(t.Context(), b.inv, fleet.Options{Verifier: b.verifier(t, rt), Scanner: db, Concurrency: 3})
	require.NoError(t, err)

	assert.Zero(t, rt.count(b.layers), "no layer of any image is pulled")
	st := statuses(rep)
	require.Len(t, st, 7)
	for role, want := range map[string]fleet.Status{
		"web": fleet.Scanned, "api": fleet.Scanned, "rogue": fleet.Unverified, "bare": fleet.Unverified,
		"broken": fleet.MalformedSBOM, "nosbom": fleet.NoSBOM,
	} {
		s := st[b.images[role]]
		assert.Equal(t, want, s.Status, "%s: %+v", role, s.Reasons)
		if want != fleet.Scanned {
			assert.NotEmpty(t, s.Reasons, role)
			assert.Empty(t, s.Source, "%s is not scanned", role)
			assert.Zero(t, s.Findings, role)
		}
	}
	assert.Equal(t, fleet.Failed, st[b.images["gone"]].Status, "an image gone from the registry is not reported as unsigned")
	assert.Contains(t, st[b.images["gone"]].Reasons[0].Message, "not in its registry")
	assert.Equal(t, []string{"spdx-json"}, st[b.images["web"]].SBOMFormats)
	assert.Equal(t, []string{"cyclonedx-json"}, st[b.images["api"]].SBOMFormats)
	assert.Equal(t, string(sign.ReasonUntrustedSignature), st[b.images["rogue"]].Reasons[0].Code, "%+v", st[b.images["rogue"]].Reasons)
	assert.Equal(t, string(sign.ReasonUnsigned), st[b.images["bare"]].Reasons[0].Code)
	assert.Len(t, rep.Unverified(), 5, "all but web and api")

	ids := map[string]fleet.Advisory{}
	for _, a := range rep.Advisories {
		ids[a.ID] = a
	}
	glibc, ok := ids["CVE-2023-4911"]
	require.True(t, ok, "advisories: %v", ids)
	assert.Equal(t, report.High, glibc.Severity)
	assert.Equal(t, []string{"2.36-9+deb12u3"}, glibc.FixedIn)
	var affected []string
	for _, af := range glibc.Affected {
		affected = append(affected, af.Image)
		assert.Equal(t, "libc6", af.Package)
		assert.Equal(t, fleet.SourceAttestation, af.Source)
		assert.Equal(t, []fleet.Workload{
			{Cluster: "east", Namespace: "shop", Kind: "Deployment", Name: roleOf(b, af.Image), Running: true},
			{Cluster: "west", Namespace: "shop", Kind: "StatefulSet", Name: roleOf(b, af.Image), Running: true},
		}, af.Workloads)
	}
	assert.ElementsMatch(t, []string{b.images["web"], b.images["api"]}, affected, "only the verified images")
	assert.Contains(t, ids, "GHSA-69ch-w2m2-3vjp", "the Go module's advisory, from the SBOM's go-module package")

	err = rep.FailOn(report.High)
	require.ErrorIs(t, err, report.ErrSeverity)
	require.ErrorIs(t, err, fleet.ErrUnchecked, "5 images were not checked")
	var sev *report.SeverityError
	require.ErrorAs(t, err, &sev, "the severity failure keeps its type")
	assert.NotEmpty(t, sev.Findings)
	for _, role := range []string{"rogue", "bare", "broken", "nosbom", "gone"} {
		assert.Contains(t, err.Error(), b.images[role], role)
	}
	assert.NotContains(t, err.Error(), b.images["web"]+" (", "a scanned image is not unchecked")
	err = rep.FailOn(report.Critical)
	require.ErrorIs(t, err, fleet.ErrUnchecked, "nothing critical, but unchecked images fail")
	assert.NotErrorIs(t, err, report.ErrSeverity)
	assert.NoError(t, rep.FailOn(report.Critical, fleet.AllowUnchecked()))
	err = rep.FailOn(report.High, fleet.AllowUnchecked())
	require.ErrorIs(t, err, report.ErrSeverity)
	assert.NotErrorIs(t, err, fleet.ErrUnchecked)

	// The fallback catalogs the unverified images from their layers, on request.
	rt2 := &blobCounter{}
	rep2, err := fleet.Rescan(t.Context(), b.inv, fleet.Options{Verifier: b.verifier(t, rt2), Scanner: db,
		Fallback: fleet.LayerFallback(sbom.New(), remote.WithTransport(rt2))})
	require.NoError(t, err)
	assert.Positive(t, rt2.count(b.layers), "the fallback reads layers (so the counter would see them)")
	st2 := statuses(rep2)
	for _, role := range []string{"rogue", "bare", "broken", "nosbom"} {
		s := st2[b.images[role]]
		assert.NotEqual(t, fleet.Scanned, s.Status, "%s stays unverified", role)
		assert.Equal(t, fleet.SourceLayers, s.Source, role)
		assert.Positive(t, s.Findings, role)
	}
	for _, a := range rep2.Advisories {
		for _, af := range a.Affected {
			want := fleet.SourceAttestation
			if r := roleOf(b, af.Image); r != "web" && r != "api" {
				want = fleet.SourceLayers
			}
			assert.Equal(t, want, af.Source, "%s in %s", a.ID, af.Image)
		}
	}
	err = rep2.FailOn(report.Critical)
	require.ErrorIs(t, err, fleet.ErrUnchecked, "the image gone from the registry is still not checked")
	assert.Contains(t, err.Error(), "1 of the fleet's images")
	assert.Contains(t, err.Error(), b.images["gone"])
	assert.NotContains(t, err.Error(), b.images["rogue"], "an image the fallback scanned was checked")
}

func roleOf(b *bed, digest string) string {
	for role, d := range b.images {
		if d == digest {
			return role
		}
	}
	return ""
}

// TestRescanDiffAndWriters: a report written as JSON reads back equal and, fed
// back as the previous report, gives the changes: an image that left the fleet is
// fixed, one that cannot be checked now is unchecked, nothing is new. The table and
// SARIF name the advisory, the images and the workloads.
func TestRescanDiffAndWriters(t *testing.T) {
	b := newBed(t)
	db := b.db(t)
	v := b.verifier(t, http.DefaultTransport)
	first, err := fleet.Rescan(t.Context(), b.inv, fleet.Options{Verifier: v, Scanner: db})
	require.NoError(t, err)

	var js bytes.Buffer
	require.NoError(t, first.WriteJSON(&js))
	prev, err := fleet.ReadJSON(bytes.NewReader(js.Bytes()))
	require.NoError(t, err)
	assert.Equal(t, first.Advisories, prev.Advisories)
	assert.Equal(t, first.Images, prev.Images)
	assert.True(t, first.Generated.Equal(prev.Generated))

	// web leaves the fleet; api stays but its digest is now checked against a
	// verifier that trusts nobody it knows.
	inv := *b.inv
	inv.Images = nil
	for _, img := range b.inv.Images {
		if img.Digest != b.images["web"] {
			inv.Images = append(inv.Images, img)
		}
	}
	second, err := fleet.Rescan(t.Context(), &inv, fleet.Options{Verifier: v, Scanner: db, Previous: prev})
	require.NoError(t, err)
	require.NotNil(t, second.Diff)
	assert.Empty(t, second.Diff.New)
	require.NotEmpty(t, second.Diff.Fixed)
	for _, c := range second.Diff.Fixed {
		assert.Equal(t, b.images["web"], c.Image)
	}
	assert.Empty(t, second.Diff.Unchecked)

	// Compare both ways: what was fixed is new the other way round.
	back := fleet.Compare(second, first)
	assert.Len(t, back.New, len(second.Diff.Fixed))

	var table bytes.Buffer
	require.NoError(t, second.WriteTable(&table))
	out := table.String()
	for _, s := range []string{"CVE-2023-4911", "libc6", "2.36-9+deb12u3", "east/shop/Deployment/api", "unverified", "malformed-sbom", "fixed"} {
		assert.Contains(t, out, s)
	}

	var sarif bytes.Buffer
	require.NoError(t, second.WriteSARIF(&sarif))
	var log struct {
		Version string `json:"version"`
		Runs    []struct {
			Results    []map[string]any `json:"results"`
			Properties struct {
				Image     string   `json:"image"`
				Workloads []string `json:"workloads"`
			} `json:"properties"`
		} `json:"runs"`
	}
	require.NoError(t, json.Unmarshal(sarif.Bytes(), &log))
	assert.Equal(t, "2.1.0", log.Version)
	require.Len(t, log.Runs, 1, "one affected image (api) left")
	assert.Equal(t, b.images["api"], log.Runs[0].Properties.Image)
	assert.Contains(t, log.Runs[0].Properties.Workloads, "west/shop/StatefulSet/api")
	assert.NotEmpty(t, log.Runs[0].Results)
}

// TestRescanRefusesOldDatabase: a database older than the scanner's max age stops
// the run (every image would be refused), as scan/vuln refuses it.
func TestRescanRefusesOldDatabase(t *testing.T) {
	b := newBed(t)
	var now atomic.Pointer[time.Time]
	start := time.Now()
	now.Store(&start)
	db := b.db(t, vuln.WithMaxAge(2*time.Hour), vuln.WithClock(func() time.Time { return *now.Load() }))
	later := start.Add(3 * time.Hour)
	now.Store(&later)
	_, err := fleet.Rescan(t.Context(), b.inv, fleet.Options{Verifier: b.verifier(t, http.DefaultTransport), Scanner: db})
	require.ErrorIs(t, err, vuln.ErrDBTooOld)
}

// TestRescanOptions: missing verifier and scanner and a negative concurrency are
// named at once.
func TestRescanOptions(t *testing.T) {
	_, err := fleet.Rescan(context.Background(), nil, fleet.Options{Concurrency: -1})
	require.ErrorIs(t, err, fleet.ErrInvalidOption)
	for _, s := range []string{"Verifier", "Scanner", "Concurrency -1"} {
		assert.Contains(t, err.Error(), s)
	}
}

// TestRescanHugeSBOM: an SBOM past the verifier's payload limit is not read in
// full; the image is listed as unverified with the limit as its reason, the rest
// of the fleet is checked.
func TestRescanHugeSBOM(t *testing.T) {
	b := newBed(t)
	limit := int64(len(b.sbomSPDX) / 2)
	v, err := cosign.NewVerifier(sign.Policy{TrustedKeys: []sign.TrustedKey{b.trusted}}, cosign.WithMaxPayloadSize(limit))
	require.NoError(t, err)
	rep, err := fleet.Rescan(t.Context(), b.inv, fleet.Options{Verifier: v, Scanner: b.db(t)})
	require.NoError(t, err)
	st := statuses(rep)
	web := st[b.images["web"]]
	assert.Equal(t, fleet.Unverified, web.Status, "%+v", web.Reasons)
	require.NotEmpty(t, web.Reasons)
	assert.Contains(t, strings.ToLower(web.Reasons[0].Message), "limit")
	assert.Zero(t, web.Findings)
	assert.Equal(t, fleet.NoSBOM, st[b.images["nosbom"]].Status, "the rest is still checked")
}

// TestRescanIndex: an image index whose platform images carry their own SBOM
// attestations is matched per platform, each finding naming its platform.
func TestRescanIndex(t *testing.T) {
	ctx := t.Context()
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	t.Cleanup(stop)
	idx := testimage.Index(t)
	ref, err := name.ParseReference(host + "/shop/multi:v1")
	require.NoError(t, err)
	require.NoError(t, remote.WriteIndex(ref, idx, remote.WithContext(ctx)))
	h, err := idx.Digest()
	require.NoError(t, err)
	d := ref.Context().Digest(h.String())

	k := key(t)
	s, err := cosign.NewSigner(k)
	require.NoError(t, err)
	require.NoError(t, s.Sign(ctx, d))
	sboms, err := sbom.New().CatalogIndex(ctx, idx)
	require.NoError(t, err)
	require.Len(t, sboms, 2)
	for _, sb := range sboms {
		p, err := sbom.Predicate(sb, sbom.SPDXJSON)
		require.NoError(t, err)
		require.NoError(t, s.Attest(ctx, d, p))
	}
	v, err := cosign.NewVerifier(sign.Policy{TrustedKeys: []sign.TrustedKey{k.TrustedKey("ci")}})
	require.NoError(t, err)
	root := t.TempDir()
	_, err = vulndb.Write(ctx, root, vulndb.Fixtures())
	require.NoError(t, err)
	db, err := vuln.Open(ctx, root)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })

	inv := &deployfleet.Inventory{Images: []deployfleet.Image{{Digest: d.Name()}}}
	rep, err := fleet.Rescan(ctx, inv, fleet.Options{Verifier: v, Scanner: db})
	require.NoError(t, err)
	require.Len(t, rep.Images, 1)
	assert.Equal(t, fleet.Scanned, rep.Images[0].Status, "%+v", rep.Images[0].Reasons)
	platforms := map[string]bool{}
	for _, a := range rep.Advisories {
		if a.ID != "CVE-2023-4911" {
			continue
		}
		for _, af := range a.Affected {
			platforms[af.Platform] = true
			assert.Equal(t, d.Name(), af.Image)
		}
	}
	assert.Equal(t, map[string]bool{"linux/amd64": true, "linux/arm64": true}, platforms)
}
