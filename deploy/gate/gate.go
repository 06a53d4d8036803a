// Package gate decides whether objects may be deployed: the one check between render
// and apply that no other tool offers as a library. For every image the objects run,
// as deploy.Walk finds them (containers, init and ephemeral containers and image
// volumes of every pod spec: workloads, Rollouts, Knative, Argo Workflows, Tekton,
// any custom resource with a list of containers; Tekton bundles and Crossplane
// packages), it checks that
//
//   - the image is pinned by digest (a tag can move after the gate looked);
//   - its registry is allowed: by the allow-list of [WithRegistries] when the gate
//     has one; without one, any registry read over HTTPS, and none that would be
//     read over plain HTTP ([ReasonInsecureRegistry]);
//   - its signatures and attestations pass a [sign.Verifier]'s policy;
//   - the verified attestations include every required predicate type;
//   - its newest verified vulnerability report can be read, is recent and has no
//     finding at or above a severity;
//
// The attestation checks are package sign's one judgement (sign.Policy.Judge and
// sign.VulnRule): the gate only maps their reasons onto the objects and images. An
// image index is judged per platform when the verifier reads the platforms'
// attestations (sign.Verified.Platforms).
//
// and it runs a manifest policy (Pod Security level and hardening rules) on the
// objects, and the user's own policies: [WithObjectPolicy] on the objects (Rego with
// conftest's conventions from scan/policy/rego, ValidatingAdmissionPolicies offline
// from scan/policy/vap), whose warnings stay warnings ([deploy.Decision] Warnings),
// and [WithConditions] on the verified attestations (a Rego policy on predicates).
// The gate links neither OPA nor the API server's CEL: it takes interfaces. A value that looks like an image where the walker cannot tell what runs
// it is a reason (deploy.ReasonUnrecognisedImage), never a silent pass. The answer
// is one [deploy.Decision] with every reason, each naming the object, the container
// and the image.
//
// The gate links no signing implementation: the caller passes a [sign.Verifier]
// (package sign/cosign has one), so a program that gates does not carry sigstore
// unless it chooses to. Each distinct digest is verified once per Check, several at a
// time. Package deploy/admission serves the same gate as a Kubernetes admission
// webhook.
//
// Whoever names an image chooses where a gate with a verifier connects. By default
// the gate lets its verifier read any registry over HTTPS and refuses, without a
// request, every image that go-containerregistry would read over plain HTTP
// (localhost, *.localhost, loopback and private addresses): such an image is denied
// with [ReasonInsecureRegistry]. [WithRegistries] narrows the registries to an
// allow-list and is the only way to let the gate read plain HTTP (Registries.Insecure).
// The allow-list is checked on the names images give; where a request really goes
// after redirects and DNS is up to the verifier's HTTP transport: give the verifier
// [Registries.Transport] (sign/cosign.WithTransport) built from the same Registries,
// or a pod can name an allowed registry that redirects inside the network. New
// cannot check this for you.
package gate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/internal/option"
	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/sign"
)

// DefaultConcurrency is how many digests a gate verifies at once unless
// [WithConcurrency] says otherwise.
const DefaultConcurrency = 4

// Gate checks objects before they are deployed. It implements [deploy.Gate]; it is
// immutable and safe for concurrent use when its verifier and policy are.
type Gate struct {
	verifier  sign.Verifier
	required  []string
	failOn    report.Severity
	hasFailOn bool
	maxAge    time.Duration
	hasMaxAge bool
	judge     *sign.Policy // the attestation rules: required predicates and vulnerabilities
	policy    ManifestPolicy
	// objectPolicies are the user's own (WithObjectPolicy), conditions the user's
	// attestation conditions (WithConditions).
	objectPolicies []ObjectPolicy
	conditions     []sign.Condition
	// registries is the allow-list of WithRegistries, nil for none.
	registries         *allowList
	registriesProblems []string
	concurrency        int
	obs                observe.Observer
	log                *slog.Logger
}

var _ deploy.Gate = (*Gate)(nil)

// Option configures a [Gate].
type Option func(*Gate)

// WithVerifier verifies the signatures and attestations of every pinned image with
// v; a denial of v's policy becomes reasons of the decision (their codes are sign's
// reason codes). Without a verifier the gate checks pinning and the manifest policy
// only.
func WithVerifier(v sign.Verifier) Option { return func(g *Gate) { g.verifier = v } }

// RequireAttestations denies an image unless its verified attestations include each
// predicate type (for example sign.PredicateSLSAProvenance); for an index, each
// platform's or the index's. It needs a verifier. The check is sign.Policy.Judge's;
// a missing one is sign.ReasonMissingAttestation.
func RequireAttestations(predicateTypes ...string) Option {
	return func(g *Gate) { g.required = append(g.required, predicateTypes...) }
}

// FailOn denies an image unless its newest verified vulnerability report (cosign's
// vuln predicate holding a shipkit, grype or Trivy report) can be read, is no older
// than the maximum report age (see [MaxReportAge]; a week by default) and has no
// finding at or above s (Negligible to Critical; report.ParseThreshold reads it).
// It needs a verifier. The judgement is sign.VulnRule's; its reasons are
// sign.ReasonNoReport, sign.ReasonUnreadableReport, sign.ReasonStaleReport and
// sign.ReasonVulnerable.
func FailOn(s report.Severity) Option {
	return func(g *Gate) { g.failOn, g.hasFailOn = s, true }
}

// MaxReportAge sets how old the newest vulnerability report that [FailOn] reads may
// be (default sign.DefaultMaxReportAge, a week), by its scan time;
// MaxReportAge(sign.NoMaxReportAge) accepts any age. The bound limits what deleting
// the newest report from the image's mutable .att tag can achieve: an older report
// decides then, and it must still be recent. Scan and attest images at least this
// often.
func MaxReportAge(d time.Duration) Option {
	return func(g *Gate) { g.maxAge, g.hasMaxAge = d, true }
}

// WithManifestPolicy checks the objects' manifests with p (for example scan/policy's
// Checker at a Pod Security level); every violation becomes a reason.
func WithManifestPolicy(p ManifestPolicy) Option { return func(g *Gate) { g.policy = p } }

// WithConcurrency bounds how many digests are verified at once (default
// [DefaultConcurrency]).
func WithConcurrency(n int) Option { return func(g *Gate) { g.concurrency = n } }

// WithObserver reports the gate's progress to o as an [observe.Step] of stage
// [observe.StageDeploy] named "gate": one Progress event per digest verified
// (allowed or denied), its Total the digests to verify (0 without [WithVerifier]).
func WithObserver(o observe.Observer) Option { return func(g *Gate) { g.obs = o } }

// WithLogger logs to l (default: nowhere).
func WithLogger(l *slog.Logger) Option { return func(g *Gate) { g.log = l } }

// New returns a gate with the options. Options that cannot work are refused, each
// named, with one error wrapping [deploy.ErrInvalidOption] (errors.Is):
// RequireAttestations or FailOn without WithVerifier, MaxReportAge without FailOn
// or not positive, a FailOn severity that is not a threshold, WithConcurrency below
// 1, and WithRegistries entries that are not registries or networks.
func New(opts ...Option) (*Gate, error) {
	g := &Gate{concurrency: DefaultConcurrency}
	for _, o := range opts {
		o(g)
	}
	var problems []string
	if g.verifier == nil && (len(g.required) > 0 || g.hasFailOn || len(g.conditions) > 0) {
		problems = append(problems, "RequireAttestations, FailOn and WithConditions read verified attestations: add WithVerifier")
	}
	for i, p := range g.objectPolicies {
		if p == nil {
			problems = append(problems, fmt.Sprintf("WithObjectPolicy: policy %d is nil", i+1))
		}
	}
	problems = append(problems, g.attestationRules()...)
	if g.concurrency < 1 {
		problems = append(problems, fmt.Sprintf("WithConcurrency(%d): want at least 1", g.concurrency))
	}
	for _, p := range g.registriesProblems {
		problems = append(problems, "WithRegistries: "+p)
	}
	if len(problems) > 0 {
		var errs option.List
		for _, p := range problems {
			errs.Addf("%s", p)
		}
		return nil, errs.Err("gate")
	}
	g.obs = observe.OrDiscard(g.obs)
	g.log = observe.OrDiscardLogger(g.log)
	return g, nil
}

// verdict is what the verifier said about one digest.
type verdict struct {
	verified *sign.Verified
	denied   *sign.DeniedError
	err      error
}

// Check judges objs. It returns a decision with every reason; the error is for a
// failure to decide (a registry that cannot be reached, a policy that fails to run),
// never for a denial, and names the image or step that failed.
func (g *Gate) Check(ctx context.Context, objs []*unstructured.Unstructured) (*deploy.Decision, error) {
	start := time.Now()
	all := g.uses(objs)
	var digests []name.Digest
	seen := map[string]bool{}
	for _, u := range all {
		if u.reason == nil && !seen[u.digest.Name()] {
			seen[u.digest.Name()] = true
			digests = append(digests, u.digest)
		}
	}
	var total int64 // the digests the step counts: those it verifies
	if g.verifier != nil {
		total = int64(len(digests))
	}
	st := observe.StartStep(g.obs, observe.StageDeploy, "gate", total,
		fmt.Sprintf("%d objects, %d images, %d digests", len(objs), len(all), len(digests)))
	d, err := g.check(ctx, objs, all, digests, st)
	if err != nil {
		return nil, st.Fail(err)
	}
	msg := "allowed"
	if !d.Allowed() {
		msg = fmt.Sprintf("denied: %d reasons", len(d.Reasons))
	}
	g.log.DebugContext(ctx, "gate decided", "decision", msg, "images", len(all), "took", time.Since(start))
	st.Finish(msg)
	return d, nil
}

func (g *Gate) check(ctx context.Context, objs []*unstructured.Unstructured, all []use, digests []name.Digest, st *observe.Step) (*deploy.Decision, error) {
	verdicts, err := g.verifyAll(ctx, digests, st)
	if err != nil {
		return nil, err
	}
	d := &deploy.Decision{}
	for _, u := range all {
		if u.reason != nil {
			d.Deny(*u.reason)
			continue
		}
		v, ok := verdicts[u.digest.Name()]
		if !ok {
			continue // no verifier
		}
		var reasons []sign.Reason
		switch {
		case v.denied != nil:
			reasons = v.denied.Reasons
		case g.judge != nil:
			reasons = g.judge.Judge(v.verified) // sign's judgement, per platform for an index
		}
		for _, r := range reasons {
			d.Deny(u.deny(r))
		}
	}
	if g.policy != nil {
		reasons, err := g.policyReasons(ctx, objs)
		if err != nil {
			return nil, err
		}
		d.Deny(reasons...)
	}
	if err := g.objectPolicyDecisions(ctx, objs, d); err != nil {
		return nil, err
	}
	return d, nil
}

// verifyAll verifies each digest once, at most g.concurrency at a time, and returns
// the verdicts by digest name. A digest the verifier could not judge is an error;
// the first one cancels the verifications still to start. Each digest verified is
// a Progress of st.
func (g *Gate) verifyAll(ctx context.Context, digests []name.Digest, st *observe.Step) (map[string]verdict, error) {
	out := map[string]verdict{}
	if g.verifier == nil || len(digests) == 0 {
		return out, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
	)
	sem := make(chan struct{}, g.concurrency)
	for _, dg := range digests {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			verified, err := g.verifier.Verify(ctx, dg)
			var v verdict
			var denied *sign.DeniedError
			switch {
			case errors.As(err, &denied):
				v.denied = denied
			case err != nil:
				v.err = verifyError(dg, err)
			case verified == nil:
				v.err = fmt.Errorf("gate: verify image %s: the verifier returned neither a verdict nor an error", dg)
			default:
				v.verified = verified
			}
			mu.Lock()
			defer mu.Unlock()
			out[dg.Name()] = v
			if v.err != nil {
				// After the first failure the others mostly fail because it cancelled them.
				if len(errs) == 0 || !errors.Is(err, context.Canceled) {
					errs = append(errs, v.err)
				}
				cancel()
				return
			}
			msg := "verified " + dg.String()
			if v.denied != nil {
				msg = "denied " + dg.String()
			}
			st.Progress(msg)
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("gate: %w", err)
	}
	return out, nil
}
