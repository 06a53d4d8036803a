package patch_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/build"
	"github.com/shipkit/shipkit/build/patch"
	"github.com/shipkit/shipkit/build/publish"
	"github.com/shipkit/shipkit/internal/testbed/registry"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

// pushBase pushes a two-platform base index with random layers under tag.
func pushBase(t testing.TB, tag name.Tag) v1.Hash {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(256, 2)
		require.NoError(t, err)
		cf, err := img.ConfigFile()
		require.NoError(t, err)
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", arch
		img, err = mutate.ConfigFile(img, cf)
		require.NoError(t, err)
		img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	require.NoError(t, remote.WriteIndex(tag, idx))
	d, err := idx.Digest()
	require.NoError(t, err)
	return d
}

// buildApp builds a small two-platform image on base and pushes it to repo.
func buildApp(t *testing.T, base name.Tag, repo name.Repository) name.Digest {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "app.txt"), []byte("app v1"), 0o644))
	b, err := build.NewFiles([]build.Layer{{Name: "app", Files: []build.File{{Src: "app.txt", Dst: "/app/app.txt"}}}},
		build.WithBase(build.RemoteBase(base.String())), build.WithPlatforms("linux/amd64", "linux/arm64"))
	require.NoError(t, err)
	idx, err := b.Build(ctx, build.Source{Dir: dir, Repository: "https://example.com/app.git", Revision: "9f2c1e0"})
	require.NoError(t, err)
	d, err := publish.Index(ctx, idx, repo)
	require.NoError(t, err)
	return d
}

// The whole loop on an in-process registry: images on a catalog base are current;
// the base's tag moves to a patched build; Check finds the stale ones (and says what
// it cannot know); Rebase puts them on the new base, pushes, signs and attests
// them (verified with cosign: the caller's SBOM and a provenance that records the
// rebase); Check then finds the new digest current.
func TestCheckAndRebase(t *testing.T) {
	ctx := context.Background()
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	t.Cleanup(stop)
	reg, err := name.NewRegistry(host, name.Insecure)
	require.NoError(t, err)
	baseTag := reg.Repo("catalog/base").Tag("1")
	goneTag := reg.Repo("catalog/gone").Tag("1")
	otherTag := reg.Repo("other/base").Tag("1")
	builtOn := pushBase(t, baseTag)
	pushBase(t, otherTag)

	app := buildApp(t, baseTag, reg.Repo("team/app"))
	other := buildApp(t, otherTag, reg.Repo("team/other"))

	// The build job signs app and attests its provenance; its revision differs
	// from the image's annotation, so the rebase's provenance shows which it took.
	kp, err := cosign.GenerateKeyPair(nil)
	require.NoError(t, err)
	key, err := cosign.LoadPrivateKey(kp.PrivatePEM, nil)
	require.NoError(t, err)
	signer, err := cosign.NewSigner(key)
	require.NoError(t, err)
	require.NoError(t, signer.Sign(ctx, app, sign.WithRecursive()))
	built, err := sign.Provenance{BuilderID: "https://example.com/ci", SourceRepository: "https://example.com/app.git",
		SourceRevision: "0123abc"}.Predicate()
	require.NoError(t, err)
	require.NoError(t, signer.Attest(ctx, app, built))
	verifier, err := cosign.NewVerifier(sign.Policy{TrustedKeys: []sign.TrustedKey{key.TrustedKey("ci")}})
	require.NoError(t, err)
	// An image that records no base, one whose base tag is gone, and one gone itself.
	noBase, err := publish.Index(ctx, mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: mustRandom(t)}), reg.Repo("team/nobase"))
	require.NoError(t, err)
	goneIdx := mutate.Annotations(mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: mustRandom(t)}),
		map[string]string{build.AnnotationBaseName: goneTag.String(), build.AnnotationBaseDigest: builtOn.String()}).(v1.ImageIndex)
	onGone, err := publish.Index(ctx, goneIdx, reg.Repo("team/ongone"))
	require.NoError(t, err)
	missing := reg.Repo("team/missing").Digest(builtOn.String())

	catalog := []string{baseTag.String(), goneTag.String()}
	images := []name.Digest{app, other, noBase, onGone, missing}
	rep, err := patch.Check(ctx, images, catalog, patch.Options{})
	require.NoError(t, err)
	statuses := func(r *patch.Report) []patch.Status {
		var out []patch.Status
		for _, im := range r.Images {
			out = append(out, im.Status)
		}
		return out
	}
	assert.Equal(t, []patch.Status{patch.Current, patch.OtherBase, patch.Unknown, patch.BaseGone, patch.ImageGone}, statuses(rep))
	assert.Equal(t, builtOn, rep.Images[0].Built)
	assert.NotEmpty(t, rep.Images[3].Reason)
	assert.Contains(t, rep.Images[4].Reason, "team/missing")

	// A patched base is pushed under the same tag.
	patchedDigest := pushBase(t, baseTag)
	rep, err = patch.Check(ctx, images, catalog, patch.Options{})
	require.NoError(t, err)
	require.Equal(t, patch.Stale, rep.Images[0].Status)
	assert.Equal(t, patchedDigest, rep.Images[0].Current)
	assert.Equal(t, 1, rep.Count(patch.Stale))

	// Verify, rebase, push, sign and attest, with a cosign key.
	sbom := sign.CycloneDX([]byte(`{"bomFormat":"CycloneDX","specVersion":"1.6","components":[]}`))
	var sawIndex v1.ImageIndex
	cfg := patch.RebaseConfig{
		Verifier: verifier, Signer: signer, Attester: signer, BuilderID: "https://example.com/patch-job",
		Predicates: func(_ context.Context, d name.Digest, pushed patch.Pushed) ([]sign.Predicate, error) {
			sawIndex = pushed.Index
			return []sign.Predicate{sbom}, nil
		},
	}
	p, err := patch.Rebase(ctx, rep.Images[0], cfg, patch.Options{})
	require.NoError(t, err)
	assert.NotEqual(t, app.DigestStr(), p.New.DigestStr())
	assert.Equal(t, app.Context(), p.New.Context())
	assert.Equal(t, patchedDigest, p.NewBase)
	assert.Equal(t, builtOn, p.OldBase)
	assert.Equal(t, []string{sign.PredicateCycloneDX, sign.PredicateSLSAProvenance}, p.Attested)
	require.NotNil(t, sawIndex)

	v, err := cosign.NewVerifier(sign.Policy{TrustedKeys: []sign.TrustedKey{key.TrustedKey("patch")},
		RequiredPredicates: []string{sign.PredicateCycloneDX, sign.PredicateSLSAProvenance}})
	require.NoError(t, err)
	verified, err := v.Verify(ctx, p.New)
	require.NoError(t, err)
	var prov struct {
		BuildDefinition struct {
			BuildType            string         `json:"buildType"`
			ExternalParameters   map[string]any `json:"externalParameters"`
			ResolvedDependencies []struct {
				URI    string            `json:"uri"`
				Digest map[string]string `json:"digest"`
			} `json:"resolvedDependencies"`
		} `json:"buildDefinition"`
	}
	for _, a := range verified.Attestations {
		if a.PredicateType == sign.PredicateSLSAProvenance {
			require.NoError(t, json.Unmarshal(a.Predicate, &prov))
		}
	}
	assert.Equal(t, patch.BuildTypeRebase, prov.BuildDefinition.BuildType)
	assert.Equal(t, app.String(), prov.BuildDefinition.ExternalParameters["rebasedFrom"])
	assert.Equal(t, baseTag.String()+"@"+builtOn.String(), prov.BuildDefinition.ExternalParameters["oldBase"])
	// The source is the verified provenance's, not the annotation's (9f2c1e0).
	assert.Equal(t, map[string]any{"repository": "https://example.com/app.git", "revision": "0123abc"},
		prov.BuildDefinition.ExternalParameters["source"])
	assert.NotContains(t, prov.BuildDefinition.ExternalParameters, "sourceUnknown")
	require.Len(t, prov.BuildDefinition.ResolvedDependencies, 2)
	assert.Equal(t, patchedDigest.Hex, prov.BuildDefinition.ResolvedDependencies[1].Digest["sha256"])

	// The new digest is current; the old one is still stale.
	rep, err = patch.Check(ctx, []name.Digest{p.New, app}, catalog, patch.Options{})
	require.NoError(t, err)
	assert.Equal(t, []patch.Status{patch.Current, patch.Stale}, statuses(rep))

	// Only a stale image is rebased; the configuration is checked first.
	_, err = patch.Rebase(ctx, rep.Images[0], cfg, patch.Options{})
	require.ErrorIs(t, err, patch.ErrNotStale)
	_, err = patch.Rebase(ctx, rep.Images[1], patch.RebaseConfig{}, patch.Options{})
	require.ErrorIs(t, err, patch.ErrInvalidOption)
	assert.ErrorContains(t, err, "Signer")
	assert.ErrorContains(t, err, "Verifier")
	assert.ErrorContains(t, err, "BuilderID")
	_, err = patch.Check(ctx, nil, []string{"not a ref!"}, patch.Options{})
	require.ErrorIs(t, err, patch.ErrInvalidOption)

	// The base tag no longer exists by the time of the rebase: an error, nothing pushed.
	st := rep.Images[1]
	st.BaseName = goneTag.String()
	_, err = patch.Rebase(ctx, st, cfg, patch.Options{})
	require.Error(t, err)
	// The image is gone from the registry: it does not verify.
	st = rep.Images[1]
	st.Ref = missing
	_, err = patch.Rebase(ctx, st, cfg, patch.Options{})
	require.ErrorIs(t, err, patch.ErrUnverified)
	require.ErrorContains(t, err, "not in the registry")
}

// An unsigned image that names a catalog base is stale like any other, but Rebase
// refuses it: the verifier denies it, and nothing is pushed, signed or attested.
func TestRebaseRefusesUnverified(t *testing.T) {
	ctx := context.Background()
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	t.Cleanup(stop)
	reg, err := name.NewRegistry(host, name.Insecure)
	require.NoError(t, err)
	baseTag := reg.Repo("catalog/base").Tag("1")
	pushBase(t, baseTag)
	unsigned := buildApp(t, baseTag, reg.Repo("team/unsigned"))
	pushBase(t, baseTag)

	rec := &recorder{next: remote.DefaultTransport}
	opts := patch.Options{Remote: []remote.Option{remote.WithTransport(rec)}}
	rep, err := patch.Check(ctx, []name.Digest{unsigned}, []string{baseTag.String()}, opts)
	require.NoError(t, err)
	require.Equal(t, patch.Stale, rep.Images[0].Status)

	kp, err := cosign.GenerateKeyPair(nil)
	require.NoError(t, err)
	key, err := cosign.LoadPrivateKey(kp.PrivatePEM, nil)
	require.NoError(t, err)
	signer, err := cosign.NewSigner(key)
	require.NoError(t, err)
	verifier, err := cosign.NewVerifier(sign.Policy{TrustedKeys: []sign.TrustedKey{key.TrustedKey("ci")}})
	require.NoError(t, err)
	counted := &countingSigner{Signer: signer}
	_, err = patch.Rebase(ctx, rep.Images[0], patch.RebaseConfig{Verifier: verifier, Signer: counted, Attester: counted,
		BuilderID: "https://example.com/patch-job"}, opts)
	require.ErrorIs(t, err, patch.ErrUnverified)
	require.ErrorIs(t, err, sign.ErrDenied)
	var ue *patch.UnverifiedError
	require.ErrorAs(t, err, &ue)
	assert.Equal(t, unsigned, ue.Image)
	assert.NotEmpty(t, ue.Reasons)
	assert.Contains(t, err.Error(), unsigned.DigestStr())
	assert.Zero(t, counted.signs)
	assert.Zero(t, counted.attests)
	assert.Empty(t, rec.writes(), "nothing is pushed")

	// Signed by the trusted key but with no provenance: rebased, and the new
	// provenance says the source is unknown rather than copy the annotations.
	// (A new verifier: the first one keeps its denial for a few seconds.)
	require.NoError(t, signer.Sign(ctx, unsigned, sign.WithRecursive()))
	verifier, err = cosign.NewVerifier(sign.Policy{TrustedKeys: []sign.TrustedKey{key.TrustedKey("ci")}})
	require.NoError(t, err)
	p, err := patch.Rebase(ctx, rep.Images[0], patch.RebaseConfig{Verifier: verifier, Signer: counted, Attester: counted,
		BuilderID: "https://example.com/patch-job"}, opts)
	require.NoError(t, err)
	verified, err := verifier.Verify(ctx, p.New)
	require.NoError(t, err)
	var prov struct {
		BuildDefinition struct {
			ExternalParameters map[string]any `json:"externalParameters"`
		} `json:"buildDefinition"`
	}
	require.Len(t, verified.Attestations, 1)
	require.NoError(t, json.Unmarshal(verified.Attestations[0].Predicate, &prov))
	assert.Equal(t, map[string]any{"repository": patch.SourceUnknown, "revision": patch.SourceUnknown},
		prov.BuildDefinition.ExternalParameters["source"])
	assert.Equal(t, "the image has no verified SLSA provenance", prov.BuildDefinition.ExternalParameters["sourceUnknown"])
}

// countingSigner counts the signatures and attestations asked of it.
type countingSigner struct {
	*cosign.Signer
	signs, attests int
}

func (c *countingSigner) Sign(ctx context.Context, d name.Digest, opts ...sign.SignOption) error {
	c.signs++
	return c.Signer.Sign(ctx, d, opts...)
}

func (c *countingSigner) Attest(ctx context.Context, d name.Digest, p sign.Predicate, opts ...sign.AttestOption) error {
	c.attests++
	return c.Signer.Attest(ctx, d, p, opts...)
}

// recorder records the requests that would change the registry.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	w    []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	switch req.Method {
	case http.MethodGet, http.MethodHead:
	default:
		r.mu.Lock()
		r.w = append(r.w, req.Method+" "+req.URL.Path)
		r.mu.Unlock()
	}
	return r.next.RoundTrip(req)
}

func (r *recorder) writes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.w...)
}

func mustRandom(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(64, 1)
	require.NoError(t, err)
	return img
}

// An image pushed as a single manifest (not an index) is current while its
// platform's image of the base is the current one; once the base moves it is
// stale, rebased and pushed as a single manifest again (the workloads that run it
// by digest get the same kind of object), with the new base recorded on it, and
// then current.
func TestRebaseSingleManifest(t *testing.T) {
	ctx := context.Background()
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	t.Cleanup(stop)
	reg, err := name.NewRegistry(host, name.Insecure)
	require.NoError(t, err)
	baseTag := reg.Repo("catalog/base").Tag("1")
	pushBase(t, baseTag)
	built := buildApp(t, baseTag, reg.Repo("team/app"))
	idx, err := remote.Index(built)
	require.NoError(t, err)
	amd64, err := idx.Image(mustPlatform(t, idx, "amd64"))
	require.NoError(t, err)
	h, err := amd64.Digest()
	require.NoError(t, err)
	single := reg.Repo("team/single").Digest(h.String())
	require.NoError(t, remote.Write(single, amd64))
	rep, err := patch.Check(ctx, []name.Digest{single}, []string{baseTag.String()}, patch.Options{})
	require.NoError(t, err)
	require.Equal(t, patch.Current, rep.Images[0].Status, "built on the base's current linux/amd64 image")
	pushBase(t, baseTag)

	rep, err = patch.Check(ctx, []name.Digest{single}, []string{baseTag.String()}, patch.Options{})
	require.NoError(t, err)
	require.Equal(t, patch.Stale, rep.Images[0].Status, rep.Images[0].Reason)
	kp, err := cosign.GenerateKeyPair(nil)
	require.NoError(t, err)
	key, err := cosign.LoadPrivateKey(kp.PrivatePEM, nil)
	require.NoError(t, err)
	signer, err := cosign.NewSigner(key)
	require.NoError(t, err)
	require.NoError(t, signer.Sign(ctx, single))
	verifier, err := cosign.NewVerifier(sign.Policy{TrustedKeys: []sign.TrustedKey{key.TrustedKey("ci")}})
	require.NoError(t, err)
	var saw []patch.Pushed
	var sawDigest name.Digest
	p, err := patch.Rebase(ctx, rep.Images[0], patch.RebaseConfig{Verifier: verifier, Signer: signer, Attester: signer,
		BuilderID: "https://example.com/patch-job",
		Predicates: func(_ context.Context, d name.Digest, pushed patch.Pushed) ([]sign.Predicate, error) {
			saw, sawDigest = append(saw, pushed), d
			return nil, nil
		}}, patch.Options{})
	require.NoError(t, err)

	// What the result and the predicates are given is what is in the registry:
	// the single image, at New, and no one-platform index that was never pushed.
	assert.Nil(t, p.Index, "no index was pushed")
	require.NotNil(t, p.Image)
	require.Len(t, saw, 1)
	assert.Equal(t, p.New, sawDigest)
	assert.Nil(t, saw[0].Index)
	for _, pushed := range []patch.Pushed{p.Pushed, saw[0]} {
		imgs, err := pushed.Images()
		require.NoError(t, err)
		require.Len(t, imgs, 1)
		h, err := imgs[0].Digest()
		require.NoError(t, err)
		assert.Equal(t, p.New.DigestStr(), h.String(), "the pushed image is New")
		_, err = remote.Get(p.New.Context().Digest(h.String()))
		require.NoError(t, err, "%s is in the registry", h)
	}

	desc, err := remote.Get(p.New)
	require.NoError(t, err)
	assert.False(t, desc.MediaType.IsIndex(), "pushed as %s", desc.MediaType)
	assert.Equal(t, types.OCIManifestSchema1, desc.MediaType)
	img, err := desc.Image()
	require.NoError(t, err)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, "amd64", cf.Architecture)
	m, err := img.Manifest()
	require.NoError(t, err)
	assert.Equal(t, baseTag.String(), m.Annotations[build.AnnotationBaseName])
	assert.Equal(t, p.NewBase.String(), m.Annotations[build.AnnotationBaseDigest])
	assert.NotEqual(t, rep.Images[0].Built, p.NewBase)
	newBase, err := remote.Index(baseTag)
	require.NoError(t, err)
	newAmd64, err := newBase.Image(mustPlatform(t, newBase, "amd64"))
	require.NoError(t, err)
	nd, err := newAmd64.Digest()
	require.NoError(t, err)
	assert.Equal(t, nd, p.NewBase, "the new base's linux/amd64 image, as the manifest records it")
	_, err = verifier.Verify(ctx, p.New)
	require.NoError(t, err, "the new digest is signed")
	rep, err = patch.Check(ctx, []name.Digest{p.New}, []string{baseTag.String()}, patch.Options{})
	require.NoError(t, err)
	assert.Equal(t, patch.Current, rep.Images[0].Status, "the rebased image is current, not rebased again")
}

// mustPlatform returns the digest of idx's linux/arch image.
func mustPlatform(t *testing.T, idx v1.ImageIndex, arch string) v1.Hash {
	t.Helper()
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.Architecture == arch {
			return d.Digest
		}
	}
	t.Fatalf("no linux/%s image", arch)
	return v1.Hash{}
}

// A single image is current only when the base digest it records is the base's
// image of the image's own platform: an amd64 image that records the base's
// arm64 image is stale. A base index that cannot be read is reported with a
// reason (base-gone), not taken as stale with none.
func TestCheckSingleManifestPlatform(t *testing.T) {
	ctx := context.Background()
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	t.Cleanup(stop)
	reg, err := name.NewRegistry(host, name.Insecure)
	require.NoError(t, err)
	baseTag := reg.Repo("catalog/base").Tag("1")
	baseDigest := pushBase(t, baseTag)
	built := buildApp(t, baseTag, reg.Repo("team/app"))
	idx, err := remote.Index(built)
	require.NoError(t, err)
	amd64, err := idx.Image(mustPlatform(t, idx, "amd64"))
	require.NoError(t, err)
	push := func(img v1.Image) name.Digest {
		t.Helper()
		h, err := img.Digest()
		require.NoError(t, err)
		d := reg.Repo("team/single").Digest(h.String())
		require.NoError(t, remote.Write(d, img))
		return d
	}
	right := push(amd64)
	base, err := remote.Index(baseTag)
	require.NoError(t, err)
	wrongImg, ok := mutate.Annotations(amd64, map[string]string{
		build.AnnotationBaseDigest: mustPlatform(t, base, "arm64").String()}).(v1.Image)
	require.True(t, ok)
	wrong := push(wrongImg)
	catalog := []string{baseTag.String()}

	rep, err := patch.Check(ctx, []name.Digest{right, wrong}, catalog, patch.Options{})
	require.NoError(t, err)
	require.Len(t, rep.Images, 2)
	assert.Equal(t, patch.Current, rep.Images[0].Status, rep.Images[0].Reason)
	assert.Equal(t, patch.Stale, rep.Images[1].Status, "the arm64 base image is not the amd64 image's")

	// The base's index cannot be read (the registry answers 500 to it; its tag
	// still resolves).
	failing := &failIndex{next: http.DefaultTransport, path: "/v2/catalog/base/manifests/" + baseDigest.String()}
	rep, err = patch.Check(ctx, []name.Digest{right}, catalog, patch.Options{Remote: []remote.Option{remote.WithTransport(failing)}})
	require.NoError(t, err)
	assert.Equal(t, patch.BaseGone, rep.Images[0].Status)
	assert.Contains(t, rep.Images[0].Reason, "reading base")
	assert.NotZero(t, failing.failed, "the base index was asked for")
}

// failIndex answers 500 to GET requests for one path.
type failIndex struct {
	next   http.RoundTripper
	path   string
	failed int
}

func (f *failIndex) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && req.URL.Path == f.path {
		f.failed++
		return &http.Response{StatusCode: http.StatusInternalServerError, Status: "500 Internal Server Error",
			Body: http.NoBody, Header: http.Header{}, Request: req}, nil
	}
	return f.next.RoundTrip(req)
}
