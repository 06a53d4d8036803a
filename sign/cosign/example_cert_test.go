package cosign_test

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/sigstore/pkg/signature"
	sigopts "github.com/sigstore/sigstore/pkg/signature/options"

	"github.com/shipkit/shipkit/internal/testbed/registry"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
	"github.com/shipkit/shipkit/sign/internal/testca"
)

// Sign with a certificate from one's own CA (or one Fulcio issued for the key) and
// verify by identity: the workflow that holds the certificate, under the CA's root.
func ExamplePrivateKey_WithCertificate() {
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

	// The CA: a root and an intermediate (a company PKI; here made on the spot).
	root, _ := testca.NewRoot("Example Root CA", testca.Now())
	inter, _ := root.Intermediate("Example Signing CA", testca.Now())
	chainPEM := append(append([]byte(nil), inter.PEM...), root.PEM...)

	// A key (here in memory; a KMS key works alike) and its certificate.
	sv, _, _ := signature.NewDefaultECDSASignerVerifier()
	key, _ := cosign.NewPrivateKey(ctx, sv)
	pub, _ := sv.PublicKey(sigopts.WithContext(ctx))
	const workflow = "https://github.com/example/app/.github/workflows/release.yml@refs/heads/main"
	_, certPEM, _ := inter.Issue(testca.Leaf{PublicKey: pub, URIs: []string{workflow},
		Issuer: "https://token.actions.githubusercontent.com"})
	key, err = key.WithCertificate(certPEM, chainPEM)
	if err != nil {
		fmt.Println(err)
		return
	}
	signer, _ := cosign.NewSigner(key)
	if err := signer.Sign(ctx, digest); err != nil {
		fmt.Println(err)
		return
	}

	verifier, err := cosign.NewVerifier(sign.Policy{TrustedIdentities: []sign.TrustedIdentity{{
		Name:          "release",
		RootsPEM:      root.PEM,
		SubjectRegexp: `https://github\.com/example/app/\.github/workflows/release\.yml@refs/(heads/main|tags/v.*)`,
		Issuer:        "https://token.actions.githubusercontent.com",
	}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	verified, err := verifier.Verify(ctx, digest)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("signed by", verified.Signers)
	// Output:
	// signed by [release]
}
