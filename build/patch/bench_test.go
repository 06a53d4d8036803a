package patch_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/build"
	"github.com/shipkit/shipkit/build/patch"
	"github.com/shipkit/shipkit/build/publish"
	"github.com/shipkit/shipkit/internal/testbed/registry"
	vulndbfix "github.com/shipkit/shipkit/internal/testbed/vulndb"
	"github.com/shipkit/shipkit/scan/sbom"
	"github.com/shipkit/shipkit/scan/vuln"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

func remoteIndex(ctx context.Context, d name.Digest) (v1.ImageIndex, error) {
	return remote.Index(d, remote.WithContext(ctx))
}

// BenchmarkPatchVsRebuild compares, for one two-platform Go image whose base tag
// has moved to a patched build, the two ways to follow it: patch.Rebase (rebase on
// the new base, push, sign, attest the SBOM re-cataloged, the vulnerability report
// re-run and the provenance) against rebuilding from source with build (Go build
// cache warm, no binary cache: the compiles are cached, the links are not) and the
// same push, sign and attestations. The ratio is rebase/rebuild.
func BenchmarkPatchVsRebuild(b *testing.B) {
	ctx := context.Background()
	host, stop, err := registry.NewInProcess()
	require.NoError(b, err)
	b.Cleanup(stop)
	reg, err := name.NewRegistry(host, name.Insecure)
	require.NoError(b, err)
	baseTag := reg.Repo("catalog/base").Tag("1")
	pushBase(b, baseTag)

	src := b.TempDir()
	for _, f := range []string{"go.mod", "main.go", "lib/lib.go"} {
		body, err := os.ReadFile(filepath.Join("..", "testdata", "app", f))
		require.NoError(b, err)
		require.NoError(b, os.MkdirAll(filepath.Dir(filepath.Join(src, f)), 0o755))
		require.NoError(b, os.WriteFile(filepath.Join(src, f), body, 0o644))
	}
	builder, err := build.NewGo(build.WithBase(build.RemoteBase(baseTag.String())), build.WithPlatforms("linux/amd64", "linux/arm64"))
	require.NoError(b, err)
	source := build.Source{Dir: src, Repository: "https://example.com/app.git", Revision: "9f2c1e0"}
	repo := reg.Repo("team/app")
	idx, err := builder.Build(ctx, source)
	require.NoError(b, err)
	old, err := publish.Index(ctx, idx, repo)
	require.NoError(b, err)
	pushBase(b, baseTag) // the patched base

	kp, err := cosign.GenerateKeyPair(nil)
	require.NoError(b, err)
	key, err := cosign.LoadPrivateKey(kp.PrivatePEM, nil)
	require.NoError(b, err)
	signer, err := cosign.NewSigner(key)
	require.NoError(b, err)
	gdb, err := vulndbfix.Write(ctx, b.TempDir(), vulndbfix.Fixtures())
	require.NoError(b, err)
	db, err := vuln.Open(ctx, gdb.RootDir)
	require.NoError(b, err)
	b.Cleanup(func() { _ = db.Close() })
	cat := sbom.New()
	predicates := func(ctx context.Context, d name.Digest, pushed patch.Pushed) ([]sign.Predicate, error) {
		imgs, err := pushed.Images()
		if err != nil {
			return nil, err
		}
		var out []sign.Predicate
		for _, img := range imgs {
			s, err := cat.Catalog(ctx, img)
			if err != nil {
				return nil, err
			}
			sp, err := sbom.Predicate(s, sbom.CycloneDXJSON)
			if err != nil {
				return nil, err
			}
			r, err := db.Scan(ctx, s)
			if err != nil {
				return nil, err
			}
			vp, err := sign.VulnPredicate(r)
			if err != nil {
				return nil, err
			}
			vp.Subject = s.Subject
			out = append(out, sp, vp)
		}
		return out, nil
	}
	// The build job signed the old image and attested its provenance.
	require.NoError(b, signer.Sign(ctx, old, sign.WithRecursive()))
	pp, err := sign.Provenance{BuilderID: "https://example.com/ci", SourceRepository: source.Repository,
		SourceRevision: source.Revision}.Predicate()
	require.NoError(b, err)
	require.NoError(b, signer.Attest(ctx, old, pp))
	verifier, err := cosign.NewVerifier(sign.Policy{TrustedKeys: []sign.TrustedKey{key.TrustedKey("ci")}})
	require.NoError(b, err)
	cfg := patch.RebaseConfig{Verifier: verifier, Signer: signer, Attester: signer, Predicates: predicates, BuilderID: "https://example.com/bench"}
	rep, err := patch.Check(ctx, []name.Digest{old}, []string{baseTag.String()}, patch.Options{})
	require.NoError(b, err)
	require.Equal(b, patch.Stale, rep.Images[0].Status)

	// The image part alone: rebase + push against build + push.
	b.Run("rebase-push", func(b *testing.B) {
		for b.Loop() {
			oldIdx, err := remoteIndex(ctx, old)
			require.NoError(b, err)
			rebased, err := build.Rebase(ctx, oldIdx, build.RemoteBaseRef(baseTag))
			require.NoError(b, err)
			_, err = publish.Index(ctx, rebased, repo)
			require.NoError(b, err)
		}
	})
	b.Run("build-push", func(b *testing.B) {
		for b.Loop() {
			idx, err := builder.Build(ctx, source)
			require.NoError(b, err)
			_, err = publish.Index(ctx, idx, repo)
			require.NoError(b, err)
		}
	})
	b.Run("rebase", func(b *testing.B) {
		for b.Loop() {
			_, err := patch.Rebase(ctx, rep.Images[0], cfg, patch.Options{})
			require.NoError(b, err)
		}
	})
	b.Run("rebuild", func(b *testing.B) {
		for b.Loop() {
			idx, err := builder.Build(ctx, source)
			require.NoError(b, err)
			d, err := publish.Index(ctx, idx, repo)
			require.NoError(b, err)
			require.NoError(b, signer.Sign(ctx, d, sign.WithRecursive()))
			preds, err := predicates(ctx, d, patch.Pushed{Index: idx})
			require.NoError(b, err)
			im, err := idx.IndexManifest()
			require.NoError(b, err)
			prov := sign.ProvenanceFromAnnotations(im.Annotations)
			prov.BuilderID = "https://example.com/bench"
			pp, err := prov.Predicate()
			require.NoError(b, err)
			for _, p := range append(preds, pp) {
				require.NoError(b, signer.Attest(ctx, d, p))
			}
		}
	})
}
