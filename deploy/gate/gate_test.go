package gate_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/gate"
	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/scan/policy"
	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/sign"
)

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// fakeVerifier answers from a table by digest and counts calls and concurrency.
type fakeVerifier struct {
	verdicts map[string]func(d name.Digest) (*sign.Verified, error) // by digest string
	delay    time.Duration

	mu        sync.Mutex
	calls     map[string]int
	inFlight  atomic.Int32
	maxFlight atomic.Int32
}

func (f *fakeVerifier) Verify(ctx context.Context, d name.Digest) (*sign.Verified, error) {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.maxFlight.Load()
		if n <= m || f.maxFlight.CompareAndSwap(m, n) {
			break
		}
	}
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[d.String()]++
	f.mu.Unlock()
	select {
	case <-time.After(f.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if v, ok := f.verdicts[d.DigestStr()]; ok {
		return v(d)
	}
	return nil, &sign.DeniedError{Digest: d, Reasons: []sign.Reason{{Code: sign.ReasonUnsigned, Message: "no signatures"}}}
}

// verified returns a verdict with the given attestations.
func verified(atts ...sign.Attestation) func(d name.Digest) (*sign.Verified, error) {
	return func(d name.Digest) (*sign.Verified, error) {
		return &sign.Verified{Digest: d, Signers: []string{"ci"}, Attestations: atts}, nil
	}
}

func vulnAttestation(t *testing.T, finished time.Time, findings ...report.Finding) sign.Attestation {
	t.Helper()
	p, err := sign.VulnPredicate(&report.Report{Target: "app", Findings: findings, Tool: &report.Tool{Name: "grype", FinishedOn: finished}})
	require.NoError(t, err)
	return sign.Attestation{PredicateType: p.Type, Predicate: p.Body, Signer: "ci"}
}

// rawVuln is a vulnerability attestation whose predicate is body as is.
func rawVuln(body string) sign.Attestation {
	return sign.Attestation{PredicateType: sign.PredicateVuln, Predicate: json.RawMessage(body), Signer: "ci"}
}

func provenance() sign.Attestation {
	return sign.Attestation{PredicateType: sign.PredicateSLSAProvenance, Predicate: json.RawMessage(`{}`), Signer: "ci"}
}

// deployment returns a Deployment whose pod template runs the images: the first as
// a container, the second (if any) as an init container.
func deployment(name string, images ...string) *unstructured.Unstructured {
	spec := map[string]any{"containers": []any{map[string]any{"name": "app", "image": images[0]}}}
	if len(images) > 1 {
		spec["initContainers"] = []any{map[string]any{"name": "setup", "image": images[1]}}
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": name, "namespace": "shop"},
		"spec":     map[string]any{"template": map[string]any{"spec": spec}},
	}}
}

// debugPod returns a Pod with an ephemeral container running image.
func debugPod(image string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "debug", "namespace": "shop"},
		"spec": map[string]any{
			"containers":          []any{map[string]any{"name": "app", "image": "registry.example/app@" + digestA}},
			"ephemeralContainers": []any{map[string]any{"name": "shell", "image": image}},
		},
	}}
}

func codes(d *deploy.Decision) []string {
	var out []string
	for _, r := range d.Reasons {
		out = append(out, r.Object.Kind+"/"+r.Object.Name+" "+r.Container+" "+string(r.Code))
	}
	return out
}

func TestCheck(t *testing.T) {
	now := time.Now()
	clean := verified(vulnAttestation(t, now), provenance())
	critical := report.Finding{ID: "CVE-2024-1", Package: "openssl", Version: "3.0.1", Severity: report.Critical}
	tests := []struct {
		name      string
		objs      []*unstructured.Unstructured
		verdicts  map[string]func(name.Digest) (*sign.Verified, error)
		opts      []gate.Option
		want      []string // codes
		wantInMsg string
	}{
		{
			name:     "signed and clean",
			objs:     []*unstructured.Unstructured{deployment("web", "registry.example/app@"+digestA)},
			verdicts: map[string]func(name.Digest) (*sign.Verified, error){digestA: clean},
		},
		{
			name: "latest tag",
			objs: []*unstructured.Unstructured{deployment("web", "registry.example/app:latest")},
			want: []string{"Deployment/web app not-pinned"}, wantInMsg: `not pinned by digest (tag "latest")`,
		},
		{
			name: "no tag at all",
			objs: []*unstructured.Unstructured{deployment("web", "nginx")},
			want: []string{"Deployment/web app not-pinned"}, wantInMsg: `tag "latest"`,
		},
		{
			name: "unparsable image",
			objs: []*unstructured.Unstructured{deployment("web", "Not An Image")},
			want: []string{"Deployment/web app bad-image"}, wantInMsg: "cannot be parsed",
		},
		{
			name:     "unsigned init container",
			objs:     []*unstructured.Unstructured{deployment("web", "registry.example/app@"+digestA, "registry.example/setup@"+digestB)},
			verdicts: map[string]func(name.Digest) (*sign.Verified, error){digestA: clean},
			want:     []string{"Deployment/web setup unsigned"}, wantInMsg: "no signatures",
		},
		{
			name:     "unpinned ephemeral container",
			objs:     []*unstructured.Unstructured{debugPod("busybox:1.36")},
			verdicts: map[string]func(name.Digest) (*sign.Verified, error){digestA: clean},
			want:     []string{"Pod/debug shell not-pinned"},
		},
		{
			name:     "critical vulnerability",
			objs:     []*unstructured.Unstructured{deployment("web", "registry.example/app@"+digestA)},
			verdicts: map[string]func(name.Digest) (*sign.Verified, error){digestA: verified(vulnAttestation(t, now, critical), provenance())},
			want:     []string{"Deployment/web app vulnerable"}, wantInMsg: "CVE-2024-1 (Critical, openssl@3.0.1)",
		},
		{
			name: "the newest report counts",
			objs: []*unstructured.Unstructured{deployment("web", "registry.example/app@"+digestA)},
			verdicts: map[string]func(name.Digest) (*sign.Verified, error){digestA: verified(
				vulnAttestation(t, now.Add(-time.Hour), critical),
				vulnAttestation(t, now), provenance())},
		},
		{
			name:     "below the limit",
			objs:     []*unstructured.Unstructured{deployment("web", "registry.example/app@"+digestA)},
			verdicts: map[string]func(name.Digest) (*sign.Verified, error){digestA: verified(vulnAttestation(t, now, report.Finding{ID: "CVE-2024-2", Severity: report.Medium}), provenance())},
		},
		{
			name: "an unreadable newer report does not let an older one decide",
			objs: []*unstructured.Unstructured{deployment("web", "registry.example/app@"+digestA)},
			verdicts: map[string]func(name.Digest) (*sign.Verified, error){digestA: verified(
				vulnAttestation(t, now.Add(-time.Hour), critical), rawVuln(`{}`), provenance())},
			want: []string{"Deployment/web app unreadable-report"}, wantInMsg: "the document is an empty object; an unreadable report is not a clean one",
		},
		{
			name: "a clean report too old",
			objs: []*unstructured.Unstructured{deployment("web", "registry.example/app@"+digestA)},
			verdicts: map[string]func(name.Digest) (*sign.Verified, error){digestA: verified(
				vulnAttestation(t, now.Add(-8*24*time.Hour)), provenance())},
			want: []string{"Deployment/web app stale-report"}, wantInMsg: "older than the maximum report age 168h0m0s",
		},
		{
			name: "a clean report of any age, when asked",
			objs: []*unstructured.Unstructured{deployment("web", "registry.example/app@"+digestA)},
			verdicts: map[string]func(name.Digest) (*sign.Verified, error){digestA: verified(
				vulnAttestation(t, now.Add(-800*24*time.Hour)), provenance())},
			opts: []gate.Option{gate.FailOn(report.High), gate.MaxReportAge(sign.NoMaxReportAge)},
		},
		{
			name: "a shorter age bound",
			objs: []*unstructured.Unstructured{deployment("web", "registry.example/app@"+digestA)},
			verdicts: map[string]func(name.Digest) (*sign.Verified, error){digestA: verified(
				vulnAttestation(t, now.Add(-2*time.Hour)), provenance())},
			opts: []gate.Option{gate.FailOn(report.High), gate.MaxReportAge(time.Hour)},
			want: []string{"Deployment/web app stale-report"}, wantInMsg: "2h0m0s ago, older than the maximum report age 1h0m0s",
		},
		{
			name: "a report from the future",
			objs: []*unstructured.Unstructured{deployment("web", "registry.example/app@"+digestA)},
			verdicts: map[string]func(name.Digest) (*sign.Verified, error){digestA: verified(
				vulnAttestation(t, now.Add(time.Hour)), provenance())},
			want: []string{"Deployment/web app stale-report"}, wantInMsg: "in the future",
		},
		{
			name:     "no vulnerability report, no provenance",
			objs:     []*unstructured.Unstructured{deployment("web", "registry.example/app@"+digestA)},
			verdicts: map[string]func(name.Digest) (*sign.Verified, error){digestA: verified()},
			want:     []string{"Deployment/web app missing-attestation", "Deployment/web app no-vulnerability-report"},
		},
		{
			name:     "no severity limit, no requirement",
			objs:     []*unstructured.Unstructured{deployment("web", "registry.example/app@"+digestA)},
			verdicts: map[string]func(name.Digest) (*sign.Verified, error){digestA: verified()},
			opts:     []gate.Option{},
		},
		{
			name: "every reason at once",
			objs: []*unstructured.Unstructured{
				deployment("a", "registry.example/app:latest", "registry.example/setup@"+digestB),
				debugPod("registry.example/dbg:1"),
			},
			verdicts: map[string]func(name.Digest) (*sign.Verified, error){digestA: clean},
			want:     []string{"Deployment/a setup unsigned", "Deployment/a app not-pinned", "Pod/debug shell not-pinned"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &fakeVerifier{verdicts: tt.verdicts}
			opts := []gate.Option{gate.WithVerifier(v), gate.RequireAttestations(sign.PredicateSLSAProvenance), gate.FailOn(report.High)}
			if tt.opts != nil {
				opts = append([]gate.Option{gate.WithVerifier(v)}, tt.opts...)
			}
			g, err := gate.New(opts...)
			require.NoError(t, err)
			d, err := g.Check(t.Context(), tt.objs)
			require.NoError(t, err)
			assert.Equal(t, tt.want, codes(d), "%s", d)
			assert.Equal(t, len(tt.want) == 0, d.Allowed())
			if tt.wantInMsg != "" {
				assert.Contains(t, d.String(), tt.wantInMsg)
			}
			for _, r := range d.Reasons {
				assert.NotEmpty(t, r.Image, "every reason here is about an image: %s", r)
				assert.Equal(t, "shop", r.Object.Namespace)
			}
		})
	}
}

// TestVerifiesEachDigestOnce: ten objects share two images, one of them spelled two
// ways (with and without a tag); each digest is verified once, at most two at a time.
func TestVerifiesEachDigestOnce(t *testing.T) {
	v := &fakeVerifier{delay: 20 * time.Millisecond, verdicts: map[string]func(name.Digest) (*sign.Verified, error){
		digestA: verified(), digestB: verified(), "sha256:" + strings.Repeat("c", 64): verified(),
	}}
	var objs []*unstructured.Unstructured
	for i := range 10 {
		img := "registry.example/app:v1@" + digestA
		if i%2 == 0 {
			img = "registry.example/app@" + digestA
		}
		objs = append(objs, deployment("d"+string(rune('a'+i)), img, "registry.example/setup@"+digestB))
	}
	objs = append(objs, deployment("other", "registry.example/other@sha256:"+strings.Repeat("c", 64)))
	var events []observe.Event
	var mu sync.Mutex
	g, err := gate.New(gate.WithVerifier(v), gate.WithConcurrency(2), gate.WithObserver(observe.ObserverFunc(func(e observe.Event) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
	})))
	require.NoError(t, err)
	d, err := g.Check(t.Context(), objs)
	require.NoError(t, err)
	assert.True(t, d.Allowed(), "%s", d)
	assert.Equal(t, map[string]int{
		"registry.example/app@" + digestA:                          1,
		"registry.example/setup@" + digestB:                        1,
		"registry.example/other@sha256:" + strings.Repeat("c", 64): 1,
	}, v.calls)
	assert.EqualValues(t, 2, v.maxFlight.Load(), "verified concurrently, within the limit")

	require.Len(t, events, 5) // started, three digests, finished
	assert.Equal(t, observe.Started, events[0].Phase)
	assert.EqualValues(t, 3, events[0].Total)
	for i, e := range events[1:4] {
		assert.Equal(t, observe.Progress, e.Phase)
		assert.EqualValues(t, i+1, e.Done, "progress counts up, in order")
	}
	assert.Equal(t, observe.Finished, events[4].Phase)
	assert.EqualValues(t, 3, events[4].Done)
	assert.EqualValues(t, 3, events[4].Total)
	for _, e := range events {
		assert.Equal(t, observe.StageDeploy, e.Stage)
		assert.Equal(t, "gate", e.Step)
	}
}

// TestObserverEvents: a gate without a verifier counts no digests (Total and Done 0),
// and a gate that cannot decide reports the step Failed with the error, after it
// started, and nothing after it.
func TestObserverEvents(t *testing.T) {
	var events []observe.Event
	var mu sync.Mutex
	rec := gate.WithObserver(observe.ObserverFunc(func(e observe.Event) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
	}))
	objs := []*unstructured.Unstructured{deployment("web", "registry.example/app@"+digestA)}

	g, err := gate.New(rec)
	require.NoError(t, err)
	_, err = g.Check(t.Context(), objs)
	require.NoError(t, err)
	require.Len(t, events, 2)
	assert.Equal(t, []observe.Phase{observe.Started, observe.Finished}, []observe.Phase{events[0].Phase, events[1].Phase})
	assert.Equal(t, "1 objects, 1 images, 1 digests", events[0].Message)
	assert.Zero(t, events[0].Total)
	assert.Zero(t, events[1].Done)
	assert.Equal(t, "allowed", events[1].Message)

	events = nil
	down := errors.New("connection refused")
	g, err = gate.New(rec, gate.WithVerifier(&fakeVerifier{verdicts: map[string]func(name.Digest) (*sign.Verified, error){
		digestA: func(name.Digest) (*sign.Verified, error) { return nil, down },
	}}))
	require.NoError(t, err)
	_, err = g.Check(t.Context(), objs)
	require.ErrorIs(t, err, down)
	require.Len(t, events, 2)
	assert.Equal(t, observe.Started, events[0].Phase)
	assert.EqualValues(t, 1, events[0].Total)
	assert.Equal(t, observe.Failed, events[1].Phase)
	assert.ErrorIs(t, events[1].Err, down)
	assert.Equal(t, err.Error(), events[1].Message)
	assert.Zero(t, events[1].Done, "a digest that failed is not progress")
}

// TestVerifierError: a registry that cannot be reached is a failure to decide, not a
// denial, and names the image.
func TestVerifierError(t *testing.T) {
	down := errors.New("connection refused")
	v := &fakeVerifier{verdicts: map[string]func(name.Digest) (*sign.Verified, error){
		digestA: func(name.Digest) (*sign.Verified, error) { return nil, down },
	}}
	g, err := gate.New(gate.WithVerifier(v))
	require.NoError(t, err)
	d, err := g.Check(t.Context(), []*unstructured.Unstructured{deployment("web", "registry.example/app@"+digestA)})
	assert.Nil(t, d)
	require.ErrorIs(t, err, down)
	assert.Contains(t, err.Error(), "registry.example/app@"+digestA)
}

func TestCancelled(t *testing.T) {
	v := &fakeVerifier{delay: time.Minute}
	g, err := gate.New(gate.WithVerifier(v))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err = g.Check(ctx, []*unstructured.Unstructured{deployment("web", "registry.example/app@"+digestA)})
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestNewRefusesWhatCannotWork(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []gate.Option
	}{
		{"severity without verifier", []gate.Option{gate.FailOn(report.High)}},
		{"attestations without verifier", []gate.Option{gate.RequireAttestations(sign.PredicateVuln)}},
		{"no concurrency", []gate.Option{gate.WithConcurrency(0)}},
		{"Unknown is not a threshold", []gate.Option{gate.WithVerifier(&fakeVerifier{}), gate.FailOn(report.Unknown)}},
		{"zero report age", []gate.Option{gate.WithVerifier(&fakeVerifier{}), gate.FailOn(report.High), gate.MaxReportAge(0)}},
		{"negative report age", []gate.Option{gate.WithVerifier(&fakeVerifier{}), gate.FailOn(report.High), gate.MaxReportAge(-time.Hour)}},
		{"report age without FailOn", []gate.Option{gate.WithVerifier(&fakeVerifier{}), gate.MaxReportAge(time.Hour)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := gate.New(tt.opts...)
			require.Error(t, err)
			assert.ErrorIs(t, err, deploy.ErrInvalidOption)
		})
	}
	t.Run("every bad option at once", func(t *testing.T) {
		_, err := gate.New(gate.RequireAttestations(sign.PredicateVuln), gate.WithConcurrency(-1),
			gate.MaxReportAge(time.Hour), gate.WithRegistries(gate.Registries{Hosts: []string{"https://x/"}, Insecure: []string{""}}))
		require.Error(t, err)
		assert.ErrorIs(t, err, deploy.ErrInvalidOption)
		for _, want := range []string{"add WithVerifier", "WithConcurrency(-1)", "MaxReportAge bounds", `host "https://x/"`, `insecure registry ""`} {
			assert.Contains(t, err.Error(), want)
		}
		t.Log(err)
	})
}

// TestManifestPolicy: scan/policy's violations become reasons naming the object (with
// its API group), the rule and the fix; a policy that cannot read an object is a
// failure to decide.
func TestManifestPolicy(t *testing.T) {
	checker, err := policy.New(policy.WithLevel(policy.Baseline))
	require.NoError(t, err)
	g, err := gate.New(gate.WithManifestPolicy(checker))
	require.NoError(t, err)

	privileged := deployment("root", "registry.example/app@"+digestA)
	containers, _, _ := unstructured.NestedSlice(privileged.Object, "spec", "template", "spec", "containers")
	containers[0].(map[string]any)["securityContext"] = map[string]any{"privileged": true}
	require.NoError(t, unstructured.SetNestedSlice(privileged.Object, containers, "spec", "template", "spec", "containers"))

	d, err := g.Check(t.Context(), []*unstructured.Unstructured{privileged})
	require.NoError(t, err)
	require.False(t, d.Allowed())
	var rules []string
	for _, r := range d.Reasons {
		assert.Equal(t, deploy.ReasonPolicy, r.Code)
		assert.Equal(t, deploy.ObjectRef{Group: "apps", Kind: "Deployment", Namespace: "shop", Name: "root"}, r.Object)
		rules = append(rules, r.Rule)
	}
	assert.Contains(t, rules, "pss/privileged")
	assert.Contains(t, d.String(), "Deployment/shop/root: [pss/privileged] spec.template.spec.containers[name=app].securityContext.privileged")
	t.Log(d)

	// Bring your own policy: anything that returns a policy.Result.
	own := policyFunc(func(context.Context, []*unstructured.Unstructured) (*policy.Result, error) {
		return &policy.Result{Violations: []policy.Violation{{Rule: "team/owner-label", Object: deploy.ObjectRef{Group: "apps", Kind: "Deployment", Namespace: "shop", Name: "web"},
			Message: "no owner label", Fix: "add label team"}}}, nil
	})
	g, err = gate.New(gate.WithManifestPolicy(own))
	require.NoError(t, err)
	d, err = g.Check(t.Context(), []*unstructured.Unstructured{deployment("web", "registry.example/app@"+digestA)})
	require.NoError(t, err)
	assert.Equal(t, "denied:\n  Deployment/shop/web: [team/owner-label] no owner label (fix: add label team)", d.String())

	broken := policyFunc(func(context.Context, []*unstructured.Unstructured) (*policy.Result, error) {
		return nil, errors.New("cannot read Deployment shop/web")
	})
	g, err = gate.New(gate.WithManifestPolicy(broken))
	require.NoError(t, err)
	_, err = g.Check(t.Context(), []*unstructured.Unstructured{deployment("web", "registry.example/app@"+digestA)})
	assert.ErrorContains(t, err, "manifest policy: cannot read Deployment shop/web")
}

type policyFunc func(context.Context, []*unstructured.Unstructured) (*policy.Result, error)

func (f policyFunc) Check(ctx context.Context, objs []*unstructured.Unstructured) (*policy.Result, error) {
	return f(ctx, objs)
}
