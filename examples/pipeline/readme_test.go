package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"

	"github.com/shipkit/shipkit/build"
	"github.com/shipkit/shipkit/build/publish"
	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/apply"
	"github.com/shipkit/shipkit/deploy/gate"
	"github.com/shipkit/shipkit/deploy/render"
	"github.com/shipkit/shipkit/deploy/rollout"
	"github.com/shipkit/shipkit/mesh"
	"github.com/shipkit/shipkit/mesh/replicas"
	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/observe/analysis"
	"github.com/shipkit/shipkit/scan"
	"github.com/shipkit/shipkit/scan/policy"
	"github.com/shipkit/shipkit/scan/policy/rego"
	"github.com/shipkit/shipkit/scan/policy/vap"
	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/scan/sbom"
	"github.com/shipkit/shipkit/scan/vuln"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

// The README's "Use it as a library" snippets, compiled here. Each sits between a
// "README: name" and an "END README" comment; TestReadmeSnippets checks that the
// README shows each one exactly, so the README cannot drift from code that builds.

// README: build

// buildAndPush builds a Go main package for two platforms, without a Docker daemon,
// and pushes the index by digest.
func buildAndPush(ctx context.Context, repo name.Repository) (v1.ImageIndex, name.Digest, error) {
	b, err := build.NewGo(build.WithPlatforms("linux/amd64", "linux/arm64"))
	if err != nil {
		return nil, name.Digest{}, err
	}
	idx, err := b.Build(ctx, build.Source{Dir: "examples/hello"})
	if err != nil {
		return nil, name.Digest{}, err
	}
	digest, err := publish.Index(ctx, idx, repo) // deploy by digest, never by tag
	return idx, digest, err
}

// END README

// README: scan

// scanIndex catalogs each platform's image from the value in memory (no pull, no
// daemon), named by the repository it was pushed to, and matches it against a grype
// v6 database on disk, loaded once: an SBOM and a report per platform, each about
// its own image (s.Subject, r.Subject). Nothing is merged.
func scanIndex(ctx context.Context, idx v1.ImageIndex, repo name.Repository, dbDir string) ([]*scan.SBOM, []*scan.Report, error) {
	sboms, err := sbom.New(sbom.WithSourceName(repo)).CatalogIndex(ctx, idx) // root: pkg:oci/app@sha256:…?repository_url=…
	if err != nil {
		return nil, nil, err
	}
	db, err := vuln.Open(ctx, dbDir, vuln.WithMaxAge(7*24*time.Hour)) // scan/vulndb writes one from OSV
	if err != nil {
		return nil, nil, err // vuln.ErrNoDatabase: install one with vuln.Import
	}
	defer db.Close()
	reports := make([]*scan.Report, len(sboms))
	for i, s := range sboms {
		if reports[i], err = db.Scan(ctx, s); err != nil {
			return nil, nil, err
		}
	}
	return sboms, reports, nil // reports[i].WriteSARIF(w), .WriteTable(w), ...
}

// END README

// README: sign

// signAndAttest signs the index and its images with a cosign key, and attests each
// platform's SBOM and vulnerability report to that platform's image, as sigstore
// bundles in OCI 1.1 referrers, cosign v3's layout (cosign verify-attestation
// reads it; cosign.WithFormat(cosign.FormatLegacy) writes cosign v2's .sig/.att
// tags instead, and verifiers read both). Each predicate names the image it is
// about, so the index's digest is all the signer needs; the gate judges every
// platform of the index on its own reports.
func signAndAttest(ctx context.Context, digest name.Digest, sboms []*scan.SBOM, reports []*scan.Report, keyFile string, password []byte) error {
	key, err := cosign.LoadPrivateKeyFile(keyFile, password)
	if err != nil {
		return err
	}
	signer, err := cosign.NewSigner(key)
	if err != nil {
		return err
	}
	if err := signer.Sign(ctx, digest, sign.WithRecursive()); err != nil {
		return err
	}
	var preds []sign.Predicate
	for _, s := range sboms {
		p, err := sbom.Predicate(s, sbom.SPDXJSON) // about s.Subject
		if err != nil {
			return err
		}
		preds = append(preds, p)
	}
	for _, r := range reports {
		p, err := sign.VulnPredicate(r) // about r.Subject, dated by r.Tool.FinishedOn
		if err != nil {
			return err
		}
		preds = append(preds, p)
	}
	for _, p := range preds {
		if err := signer.Attest(ctx, digest, p); err != nil {
			return err
		}
	}
	return nil // and provenance.Predicate() about the index itself
}

// END README

// README: verify

// verifyIndex verifies the index as the deploy gate does: the index's signature,
// then each platform image on its own SBOM and vulnerability report, with the
// index's provenance. One platform without its SBOM, or with a High finding,
// denies the index, and the reason names it ("linux/arm64: …").
func verifyIndex(ctx context.Context, digest name.Digest, pub []byte) (*sign.Verified, error) {
	verifier, err := cosign.NewVerifier(sign.Policy{
		TrustedKeys:        []sign.TrustedKey{{Name: "ci", PEM: pub}}, // not PEM: sign.ErrNotPublicKey
		RequiredPredicates: []string{sign.PredicateSPDX, sign.PredicateVuln, sign.PredicateSLSAProvenance},
		Conditions:         []sign.Condition{sign.VulnRule{FailOn: report.High}},
	})
	if err != nil {
		return nil, err
	}
	v, err := verifier.Verify(ctx, digest)
	if err != nil {
		return nil, err // a *sign.DeniedError with every reason
	}
	for _, p := range v.Platforms {
		fmt.Printf("%s: %d attestations on %s\n", p.Platform, len(p.Attestations), p.Digest.DigestStr())
	}
	return v, nil
}

// END README

// README: verify-keyless

// verifyKeyless verifies an image signed keylessly in CI, as cosign v3 and GitHub's
// artifact attestations sign: a sigstore bundle whose short-lived Fulcio
// certificate names the release workflow, logged in Rekor. It is checked offline
// against the trusted_root.json the caller keeps (sigstore's TUF repository
// distributes it; nothing is fetched here): the chain, the log entry's proof, the
// certificate valid when the log saw the signature, then the identity.
func verifyKeyless(ctx context.Context, digest name.Digest, trustedRootFile string) (*sign.Verified, error) {
	root, err := cosign.LoadTrustedRoot(trustedRootFile) // cosign.ErrTrustedRoot
	if err != nil {
		return nil, err
	}
	verifier, err := cosign.NewVerifier(sign.Policy{
		TrustedIdentities: []sign.TrustedIdentity{{ // no RootsPEM: the trusted root's Fulcio
			Name:          "release",
			SubjectRegexp: `https://github\.com/example/app/\.github/workflows/release\.yml@refs/tags/v.*`, // anchored
			Issuer:        "https://token.actions.githubusercontent.com",
		}},
		RequiredPredicates: []string{sign.PredicateSLSAProvenance},
	}, cosign.WithTrustedRoot(root))
	if err != nil {
		return nil, err
	}
	return verifier.Verify(ctx, digest) // another identity: sign.ReasonWrongIdentity
}

// END README

// README: deploy

// gateAndApply renders an overlay with the image pinned, lets it through only when
// the image is signed and attested by a trusted key, has no High or Critical finding
// and the manifests pass Pod Security "restricted", then applies it server-side and
// waits until it is healthy.
func gateAndApply(ctx context.Context, cfg *rest.Config, digest name.Digest, pub []byte) (*deploy.ChangeSet, error) {
	objs, err := render.Kustomize(nil, "deploy/overlays/prod", render.WithImages(digest)).Render(ctx)
	if err != nil {
		return nil, err
	}
	verifier, err := cosign.NewVerifier(sign.Policy{
		TrustedKeys:        []sign.TrustedKey{{Name: "ci", PEM: pub}},
		RequiredPredicates: []string{sign.PredicateVuln, sign.PredicateSLSAProvenance},
	})
	if err != nil {
		return nil, err
	}
	checker, err := policy.New(policy.WithLevel(policy.Restricted))
	if err != nil {
		return nil, err
	}
	g, err := gate.New(gate.WithVerifier(verifier), gate.FailOn(report.High), gate.WithManifestPolicy(checker))
	if err != nil {
		return nil, err
	}
	decision, err := g.Check(ctx, objs)
	if err != nil {
		return nil, err
	}
	if err := decision.Err(); err != nil {
		return nil, err // every reason, each naming the object, container and image
	}
	mgr, err := apply.New(cfg, apply.Options{Wait: 5 * time.Minute})
	if err != nil {
		return nil, err
	}
	return mgr.Apply(ctx, objs) // mgr.Plan(ctx, objs) first says what would change, field by field
}

// END README

// README: rollout

// canary rolls a new release of the Deployment "hello" out as a canary: the canary
// Deployment runs beside stable ("hello-canary", track=canary, no replicas), traffic
// moves to it in steps by replica counts (mesh/replicas, no mesh needed; mesh/gateway
// and mesh/istio split it on a route), each judged by its success rate in Prometheus
// (observe/prometheus is an observe.Provider), and it is promoted or everything goes
// back to stable. One *rest.Config serves apply, the router and the rollout.
// stateKey (32 random bytes or more, kept with the deployer's credentials) seals the
// rollout's state in the cluster.
func canary(ctx context.Context, cfg *rest.Config, release *unstructured.Unstructured, metrics observe.Provider, stateKey []byte) (*rollout.Result, error) {
	c, err := rollout.CanaryObject(release)
	if err != nil {
		return nil, err
	}
	mgr, err := apply.New(cfg, apply.Options{Wait: 5 * time.Minute})
	if err != nil {
		return nil, err
	}
	if _, err := mgr.Apply(ctx, []*unstructured.Unstructured{c}); err != nil {
		return nil, err
	}
	router, err := replicas.New(cfg, replicas.Workload{Namespace: "hello", Service: "hello", Stable: "hello", Canary: c.GetName()})
	if err != nil {
		return nil, err
	}
	healthy := analysis.SuccessRate(metrics, `app="hello",track="canary"`, 0.99)
	r, err := rollout.NewCanary(cfg, rollout.Canary{
		Name: "hello", Namespace: "hello",
		StableSelector: release.GetLabels(), // app=hello, track=stable
		CanarySelector: c.GetLabels(),       // app=hello, track=canary
		Router:         router,
		Services:       []string{"hello"},
		Steps: []rollout.Step{
			rollout.SetWeight(20), rollout.Analysis(healthy),
			rollout.SetWeight(50), rollout.Analysis(healthy),
			rollout.SetWeight(100),
		},
	}, rollout.WithStateKey(stateKey))
	if err != nil {
		return nil, err
	}
	return r.Run(ctx)
}

// END README

// README: own-policies

// gateOwnPolicies gates objects on your own policies beside the built-in rules: the
// conftest-style Rego of policy/, the cluster's ValidatingAdmissionPolicies judged
// offline by the API server's own plugin, and Rego on each image's verified SBOM.
func gateOwnPolicies(ctx context.Context, verifier sign.Verifier, admissionPolicies, objs []*unstructured.Unstructured) (*deploy.Decision, error) {
	rules, err := rego.LoadFiles(ctx, []string{"policy"}) // deny, violation and warn rules of package main
	if err != nil {
		return nil, err // *rego.CompileError: file:line of each problem
	}
	sbomRules, err := rego.LoadFiles(ctx, []string{"policy/sbom"}, rego.WithNamespaces("sbom"))
	if err != nil {
		return nil, err
	}
	vaps, err := vap.New(admissionPolicies) // ValidatingAdmissionPolicy and Binding objects
	if err != nil {
		return nil, err // *vap.CompileError: the policy and field whose CEL does not compile
	}
	g, err := gate.New(gate.WithVerifier(verifier),
		gate.WithObjectPolicy(rules, vaps),
		gate.WithConditions(sbomRules.Condition(sign.PredicateSPDX))) // input: the verified SPDX document
	if err != nil {
		return nil, err
	}
	return g.Check(ctx, objs) // warn rules and Warn/Audit bindings land in Decision.Warnings
}

// END README

// README: own-scanner

// advisoryScanner is a scan.Scanner of your own, say your company's advisory
// service: the report it returns gates (FailOn), prints and attests like grype's.
type advisoryScanner struct {
	lookup func(ctx context.Context, purl string) ([]scan.Finding, error)
}

func (a advisoryScanner) Scan(ctx context.Context, s *scan.SBOM) (*scan.Report, error) {
	r := &scan.Report{Target: s.Subject.String(), Subject: s.Subject.String(), Findings: []scan.Finding{},
		Tool: &report.Tool{Name: "advisories", StartedOn: time.Now()}}
	for p := range s.Syft().Artifacts.Packages.Enumerate() {
		found, err := a.lookup(ctx, p.PURL)
		if err != nil {
			return nil, fmt.Errorf("looking up %s: %w", p.PURL, err)
		}
		r.Findings = append(r.Findings, found...)
	}
	r.Tool.FinishedOn = time.Now() // dates the report: a gate refuses one too old
	return r, nil
}

// END README

// README: own-router

// lbRouter is a mesh.Router for a traffic layer shipkit has no package for, here a
// load balancer with an HTTP API; deploy/rollout drives it like the built-in ones.
type lbRouter struct {
	api    string // e.g. https://lb.example.com/pools/hello/split
	client *http.Client
}

func (r lbRouter) SetWeight(ctx context.Context, canary int32) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, r.api, strings.NewReader(fmt.Sprintf(`{"canary":%d}`, canary)))
	if err != nil {
		return err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("load balancer %s: %s", r.api, resp.Status)
	}
	return nil
}

func (r lbRouter) SetHeaderMatch(context.Context, string, string) error {
	return fmt.Errorf("header routing: %w", mesh.ErrUnsupported)
}

func (r lbRouter) Reset(ctx context.Context) error { return r.SetWeight(ctx, 0) }

// END README

var (
	_ scan.Scanner = advisoryScanner{}
	_ mesh.Router  = lbRouter{}
	_              = []any{buildAndPush, scanIndex, signAndAttest, verifyIndex, verifyKeyless, gateOwnPolicies, gateAndApply, canary}
)

// TestReadmeSnippets checks that every Go block of the README is one of the
// snippets above, word for word, and that each snippet is shown.
func TestReadmeSnippets(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	src, err := os.ReadFile("readme_test.go")
	require.NoError(t, err)

	snippets := map[string]string{}
	for _, m := range regexp.MustCompile(`(?s)// README: ([a-z-]+)\n\n(.*?)\n// END README\n`).FindAllStringSubmatch(string(src), -1) {
		snippets[m[1]] = strings.TrimSpace(m[2])
	}
	require.Len(t, snippets, 10)

	blocks := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	shown := map[string]bool{}
	for _, b := range blocks {
		block := strings.TrimSpace(b[1])
		found := false
		for name, s := range snippets {
			if s == block {
				shown[name], found = true, true
			}
		}
		assert.True(t, found, "README block is not a compiled snippet of readme_test.go:\n%s", block)
	}
	for name := range snippets {
		assert.True(t, shown[name], "snippet %q is not in the README", name)
	}
}
