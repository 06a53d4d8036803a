package gate_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/shipkit/shipkit/deploy/gate"
	"github.com/shipkit/shipkit/deploy/render"
	"github.com/shipkit/shipkit/internal/testbed/registry"
	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

// A Deployment pins a multi-arch index. The pipeline attested each platform's
// vulnerability report to that platform's image (the predicate names it; the signer
// was given the index's digest) and provenance to the index. The gate resolves the
// index to its platforms through the verifier and judges each one on its own report
// and the index's attestations: linux/arm64 has a Critical finding, so the index is
// denied, and the reason names the platform. The caller merges nothing.
func ExampleGate_index() {
	ctx := context.Background()
	host, stop, err := registry.NewInProcess()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()

	// build/publish pushes an index like this one.
	var adds []mutate.IndexAddendum
	for _, arch := range []string{"amd64", "arm64"} {
		img, _ := random.Image(128, 1)
		adds = append(adds, mutate.IndexAddendum{Add: img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	idx := mutate.AppendManifests(empty.Index, adds...)
	repo, _ := name.NewRepository(host + "/shop/web")
	if err := remote.WriteIndex(repo.Tag("v1"), idx); err != nil {
		fmt.Println(err)
		return
	}
	h, _ := idx.Digest()
	digest := repo.Digest(h.String())

	// Sign and attest, as the pipeline's sign stage does: one report per platform
	// (scan/vuln's, each with its Subject), provenance about the index.
	pair, _ := cosign.GenerateKeyPair([]byte("s3cret"))
	key, _ := cosign.LoadPrivateKey(pair.PrivatePEM, []byte("s3cret"))
	signer, _ := cosign.NewSigner(key)
	if err := signer.Sign(ctx, digest, sign.WithRecursive()); err != nil {
		fmt.Println(err)
		return
	}
	prov, _ := sign.Provenance{BuilderID: "https://ci.example.com", SourceRepository: "https://github.com/example/web",
		SourceRevision: "9f2c1e0"}.Predicate()
	preds := []sign.Predicate{prov}
	im, _ := idx.IndexManifest()
	for _, m := range im.Manifests {
		r := &report.Report{Target: repo.Digest(m.Digest.String()).String(), Subject: m.Digest.String(),
			Platform: m.Platform.String(), Findings: []report.Finding{},
			Tool: &report.Tool{Name: "grype", FinishedOn: time.Now()}}
		if m.Platform.Architecture == "arm64" {
			r.Findings = []report.Finding{{ID: "CVE-2024-1", Package: "openssl", Version: "3.0.1", Type: "deb", Severity: report.Critical}}
		}
		p, _ := sign.VulnPredicate(r) // about r.Subject, the platform image
		preds = append(preds, p)
	}
	for _, p := range preds {
		if err := signer.Attest(ctx, digest, p); err != nil {
			fmt.Println(err)
			return
		}
	}

	// The deploy side: the gate, with the verifier of the trusted key. The registry
	// here is plain HTTP on 127.0.0.1, which a gate reads only when it is listed.
	verifier, _ := cosign.NewVerifier(sign.Policy{TrustedKeys: []sign.TrustedKey{{Name: "ci", PEM: pair.PublicPEM}}})
	g, err := gate.New(gate.WithVerifier(verifier), gate.FailOn(report.High),
		gate.RequireAttestations(sign.PredicateSLSAProvenance, sign.PredicateVuln),
		gate.WithRegistries(gate.Registries{Insecure: []string{host}}))
	if err != nil {
		fmt.Println(err)
		return
	}
	objs, err := render.Parse("web.yaml", []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    spec:
      containers:
      - name: web
        image: `+digest.String()+`
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	d, err := g.Check(ctx, objs)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("allowed:", d.Allowed())
	for _, r := range d.Reasons { // "linux/arm64: vulnerability report signed by ci (…): 1 finding(s) …: CVE-…"
		platform, _, _ := strings.Cut(r.Message, ": ")
		fmt.Println(r.Object, r.Container, r.Code, platform, r.Message[strings.LastIndex(r.Message, ": ")+2:])
	}
	// Output:
	// allowed: false
	// Deployment/shop/web web vulnerable linux/arm64 CVE-2024-1 (Critical, openssl@3.0.1)
}
