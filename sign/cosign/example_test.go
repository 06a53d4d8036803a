package cosign_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/shipkit/shipkit/internal/testbed/registry"
	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

// Sign an image by digest, attest its provenance and vulnerability report, and
// verify it against a policy, as a pipeline and its deploy gate would.
func Example() {
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

	// A throwaway key pair; keep a real one with KeyPair.WriteFiles and
	// LoadPrivateKeyFile, the password from the caller.
	pair, err := cosign.GenerateKeyPair([]byte("s3cret"))
	if err != nil {
		fmt.Println(err)
		return
	}
	key, err := cosign.LoadPrivateKey(pair.PrivatePEM, []byte("s3cret"))
	if err != nil {
		fmt.Println(err)
		return
	}
	signer, _ := cosign.NewSigner(key)
	if err := signer.Sign(ctx, digest); err != nil {
		fmt.Println(err)
		return
	}
	prov, _ := sign.Provenance{
		BuilderID:        "https://ci.example.com/builder",
		SourceRepository: "https://github.com/example/app.git",
		SourceRevision:   "9f2c1e0",
		StartedOn:        time.Now(),
		FinishedOn:       time.Now(),
	}.Predicate()
	vuln, _ := sign.VulnPredicate(&report.Report{Target: digest.String(), Tool: &report.Tool{Name: "grype", FinishedOn: time.Now()}})
	for _, p := range []sign.Predicate{prov, vuln} {
		if err := signer.Attest(ctx, digest, p); err != nil {
			fmt.Println(err)
			return
		}
	}

	cache := sign.NewCache() // verdicts, shared by verifiers
	verifier, err := cosign.NewVerifier(sign.Policy{
		TrustedKeys:        []sign.TrustedKey{{Name: "ci", PEM: pair.PublicPEM}},
		RequiredPredicates: []string{sign.PredicateSLSAProvenance},
		Conditions: []sign.Condition{
			sign.ProvenanceFrom("https://github.com/example/app"),
			sign.VulnRule{FailOn: report.High},
			sign.SBOMExists(),
		},
	}, cosign.WithCache(cache))
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = verifier.Verify(ctx, digest)
	var denied *sign.DeniedError
	if errors.As(err, &denied) {
		for _, r := range denied.Reasons {
			fmt.Println(r.Code, "-", r.Message)
		}
	}

	// Attest the missing SBOM; forget the cached denial and verify again.
	if err := signer.Attest(ctx, digest, sign.SPDX([]byte(`{"spdxVersion":"SPDX-2.3","packages":[]}`))); err != nil {
		fmt.Println(err)
		return
	}
	cache.Forget()
	verified, err := verifier.Verify(ctx, digest)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("signed by", verified.Signers, "with", len(verified.Attestations), "attestations")
	// Output:
	// missing-attestation - no SBOM attestation (https://spdx.dev/Document or https://cyclonedx.org/bom) by a trusted signer
	// signed by [ci] with 3 attestations
}
