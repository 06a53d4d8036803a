package cosign_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/shipkit/shipkit/internal/sigstoretest"
	"github.com/shipkit/shipkit/internal/testbed/registry"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

// Sign an image keylessly (a Fulcio certificate for a CI identity, a Rekor entry
// and a timestamp, in a sigstore bundle) and verify it offline against the
// sigstore trusted_root.json, by certificate identity. A virtual sigstore stands
// in for Fulcio, Rekor, the timestamp authority and the CI's OIDC issuer; with
// sigstore's public instance the URLs are https://fulcio.sigstore.dev,
// https://rekor.sigstore.dev and https://timestamp.sigstore.dev/api/v1/timestamp,
// and the token comes from the CI.
func ExampleKeylessSigner() {
	ctx := context.Background()
	host, stop, err := registry.NewInProcess()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()
	img, _ := random.Image(128, 1)
	repo, _ := name.NewRepository(host + "/team/app")
	if err := remote.Write(repo.Tag("v1"), img); err != nil {
		fmt.Println(err)
		return
	}
	h, _ := img.Digest()
	digest := repo.Digest(h.String())

	sigstore, err := sigstoretest.Start()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sigstore.Close()
	const workflow = "https://github.com/example/app/.github/workflows/release.yml@refs/tags/v1.0.0"

	// The trusted root, as a verifier keeps it on disk.
	dir, _ := os.MkdirTemp("", "trusted-root")
	defer func() { _ = os.RemoveAll(dir) }()
	js, _ := sigstore.TrustedRootJSON()
	path := filepath.Join(dir, "trusted_root.json")
	if err := os.WriteFile(path, js, 0o600); err != nil {
		fmt.Println(err)
		return
	}
	root, err := cosign.LoadTrustedRoot(path)
	if err != nil {
		fmt.Println(err)
		return
	}

	// Sign: one keyless key (one certificate) for the signature and attestations.
	keyless, err := cosign.NewKeylessSigner(cosign.Keyless{
		Token:     func(context.Context) (string, error) { return sigstore.IDToken(workflow) },
		FulcioURL: sigstore.URL,
		RekorURL:  sigstore.URL,
		TSAURL:    sigstore.TSAURL,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	key, err := keyless.Key(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	signer, _ := cosign.NewSigner(key) // sigstore bundles, as cosign v3
	if err := signer.Sign(ctx, digest); err != nil {
		fmt.Println(err)
		return
	}

	// Verify, offline, by identity.
	verify := func(subjectRegexp string) error {
		v, err := cosign.NewVerifier(sign.Policy{TrustedIdentities: []sign.TrustedIdentity{{
			Name: "release", SubjectRegexp: subjectRegexp, Issuer: sigstoretest.DefaultIssuer,
		}}}, cosign.WithTrustedRoot(root))
		if err != nil {
			return err
		}
		got, err := v.Verify(ctx, digest)
		if err == nil {
			fmt.Println("signed by", got.Signers)
		}
		return err
	}
	if err := verify(`https://github\.com/example/app/\.github/workflows/release\.yml@refs/tags/v.*`); err != nil {
		fmt.Println(err)
	}
	var denied *sign.DeniedError
	if err := verify(`https://github\.com/example/app/\.github/workflows/nightly\.yml@.*`); errors.As(err, &denied) {
		fmt.Println("nightly:", denied.Reasons[0].Code)
	}
	// Output:
	// signed by [release]
	// nightly: wrong-identity
}
