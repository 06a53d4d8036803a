package patch_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/shipkit/shipkit/build"
	"github.com/shipkit/shipkit/build/patch"
	"github.com/shipkit/shipkit/build/publish"
	"github.com/shipkit/shipkit/internal/testbed/registry"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

// A daily job: which running images are on a base the catalog has patched since,
// and move them onto it. Only images the build job signed are rebased: an image
// that merely names a catalog base in its annotations is refused. The signer, the
// verifier and the predicates (SBOM re-cataloged, vulnerability report re-run) are
// the caller's; here a registry in process stands in for the real one.
func Example() {
	ctx := context.Background()
	host, stop, err := registry.NewInProcess()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()
	reg, err := name.NewRegistry(host, name.Insecure)
	if err != nil {
		fmt.Println(err)
		return
	}
	base := reg.Repo("catalog/static").Tag("1")
	// The build job's key: it signs what it builds and attests its provenance.
	key, err := exampleKey()
	if err != nil {
		fmt.Println(err)
		return
	}
	signer, err := cosign.NewSigner(key)
	if err != nil {
		fmt.Println(err)
		return
	}
	verifier, err := cosign.NewVerifier(sign.Policy{TrustedKeys: []sign.TrustedKey{key.TrustedKey("ci")}})
	if err != nil {
		fmt.Println(err)
		return
	}

	// A signed application and an unsigned one, both on the base; then the base
	// is patched under the same tag.
	if err := exampleBase(base); err != nil {
		fmt.Println(err)
		return
	}
	app, err := exampleApp(ctx, base, reg.Repo("team/app"))
	if err == nil {
		err = exampleSign(ctx, signer, app)
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	stranger, err := exampleApp(ctx, base, reg.Repo("team/stranger"))
	if err == nil {
		err = exampleBase(base)
	}
	if err != nil {
		fmt.Println(err)
		return
	}

	running := []name.Digest{app, stranger} // e.g. deploy/fleet's inventory, by digest
	rep, err := patch.Check(ctx, running, []string{base.String()}, patch.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := patch.RebaseConfig{Verifier: verifier, Signer: signer, Attester: signer, BuilderID: "https://ci.example.com/patch"}
	for _, im := range rep.Images {
		fmt.Println(im.Ref.RepositoryStr(), im.Status)
		if im.Status != patch.Stale {
			continue
		}
		p, err := patch.Rebase(ctx, im, cfg, patch.Options{})
		if errors.Is(err, patch.ErrUnverified) {
			fmt.Println("  refused: does not verify")
			continue
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("  rebased, signed, attested", p.Attested) // gate it, then roll it out as a canary
	}
	// Output:
	// team/app stale
	//   rebased, signed, attested [https://slsa.dev/provenance/v1]
	// team/stranger stale
	//   refused: does not verify
}

func exampleKey() (*cosign.PrivateKey, error) {
	kp, err := cosign.GenerateKeyPair(nil)
	if err != nil {
		return nil, err
	}
	return cosign.LoadPrivateKey(kp.PrivatePEM, nil)
}

// exampleBase pushes a one-platform base (a random layer) under tag.
func exampleBase(tag name.Tag) error {
	img, err := random.Image(64, 1)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
	return remote.WriteIndex(tag, mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}}))
}

// exampleApp builds a one-file image on base and pushes it to repo.
func exampleApp(ctx context.Context, base name.Tag, repo name.Repository) (name.Digest, error) {
	dir, err := os.MkdirTemp("", "shipkit-patch-example-")
	if err != nil {
		return name.Digest{}, err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "app.txt"), []byte(repo.RepositoryStr()), 0o644); err != nil {
		return name.Digest{}, err
	}
	b, err := build.NewFiles([]build.Layer{{Name: "app", Files: []build.File{{Src: "app.txt", Dst: "/app.txt"}}}},
		build.WithBase(build.RemoteBaseRef(base)), build.WithPlatforms("linux/amd64"))
	if err != nil {
		return name.Digest{}, err
	}
	idx, err := b.Build(ctx, build.Source{Dir: dir, Repository: "https://example.com/app.git", Revision: "9f2c1e0"})
	if err != nil {
		return name.Digest{}, err
	}
	return publish.Index(ctx, idx, repo)
}

// exampleSign signs d and attests its provenance, as the build job does.
func exampleSign(ctx context.Context, signer *cosign.Signer, d name.Digest) error {
	if err := signer.Sign(ctx, d, sign.WithRecursive()); err != nil {
		return err
	}
	prov, err := sign.Provenance{BuilderID: "https://ci.example.com/build",
		SourceRepository: "https://example.com/app.git", SourceRevision: "9f2c1e0"}.Predicate()
	if err != nil {
		return err
	}
	return signer.Attest(ctx, d, prov)
}
