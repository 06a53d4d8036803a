package cosign_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
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

// A multi-arch index: sign it (and its images), and attest each platform's SBOM and
// vulnerability report to that platform's image. Each predicate names its image
// (Subject), so the signer is given the index's digest alone. Verify reads the
// index's platforms and their attestations, and the policy judges each platform on
// its own and the index's: a Critical finding on linux/arm64 denies the index,
// naming the platform. Nothing is merged by the caller.
func Example_index() {
	ctx := context.Background()
	host, stop, err := registry.NewInProcess()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()
	var adds []mutate.IndexAddendum
	for _, arch := range []string{"amd64", "arm64"} {
		img, _ := random.Image(128, 1)
		adds = append(adds, mutate.IndexAddendum{Add: img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	idx := mutate.AppendManifests(empty.Index, adds...)
	repo, _ := name.NewRepository(host + "/team/app")
	if err := remote.WriteIndex(repo.Tag("v1"), idx); err != nil {
		fmt.Println(err)
		return
	}
	h, _ := idx.Digest()
	digest := repo.Digest(h.String())

	pair, _ := cosign.GenerateKeyPair([]byte("s3cret"))
	key, _ := cosign.LoadPrivateKey(pair.PrivatePEM, []byte("s3cret"))
	signer, _ := cosign.NewSigner(key)
	if err := signer.Sign(ctx, digest, sign.WithRecursive()); err != nil {
		fmt.Println(err)
		return
	}
	// In a pipeline these come from scan/sbom (sbom.Predicate) and scan/vuln, one per
	// platform image, each with its Subject set already.
	im, _ := idx.IndexManifest()
	for _, m := range im.Manifests {
		doc := sign.SPDX([]byte(`{"spdxVersion":"SPDX-2.3","packages":[]}`))
		doc.Subject = m.Digest
		r := &report.Report{Target: repo.Digest(m.Digest.String()).String(), Subject: m.Digest.String(),
			Platform: m.Platform.String(), Findings: []report.Finding{},
			Tool: &report.Tool{Name: "grype", FinishedOn: time.Now()}}
		if m.Platform.Architecture == "arm64" {
			r.Findings = []report.Finding{{ID: "CVE-2024-1", Package: "openssl", Version: "3.0.1", Type: "deb", Severity: report.Critical}}
		}
		vulns, _ := sign.VulnPredicate(r) // about r.Subject
		for _, p := range []sign.Predicate{doc, vulns} {
			if err := signer.Attest(ctx, digest, p); err != nil { // the index's digest
				fmt.Println(err)
				return
			}
		}
	}

	trusted := []sign.TrustedKey{{Name: "ci", PEM: pair.PublicPEM}}
	verifier, _ := cosign.NewVerifier(sign.Policy{TrustedKeys: trusted,
		RequiredPredicates: []string{sign.PredicateSPDX, sign.PredicateVuln}})
	verified, err := verifier.Verify(ctx, digest)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range verified.Platforms {
		fmt.Println(p.Platform, len(p.Attestations), "attestations on its own image")
	}

	strict, _ := cosign.NewVerifier(sign.Policy{TrustedKeys: trusted,
		RequiredPredicates: []string{sign.PredicateSPDX, sign.PredicateVuln},
		Conditions:         []sign.Condition{sign.VulnRule{FailOn: report.High}}})
	_, err = strict.Verify(ctx, digest)
	var denied *sign.DeniedError
	if errors.As(err, &denied) {
		for _, r := range denied.Reasons { // "linux/arm64: vulnerability report signed by ci (…): 1 finding(s) …: CVE-…"
			platform, _, _ := strings.Cut(r.Message, ": ")
			fmt.Println(r.Code, platform, r.Message[strings.LastIndex(r.Message, ": ")+2:])
		}
	}
	// Output:
	// linux/amd64 2 attestations on its own image
	// linux/arm64 2 attestations on its own image
	// vulnerable linux/arm64 CVE-2024-1 (Critical, openssl@3.0.1)
}
