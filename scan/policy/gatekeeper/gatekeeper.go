// Package gatekeeper evaluates the user's OPA Gatekeeper policies offline:
// ConstraintTemplates (templates.gatekeeper.sh, Rego) and their Constraints
// (constraints.gatekeeper.sh), judged against rendered manifests before they are
// applied, so CI sees the denial Gatekeeper's admission webhook would give.
//
// It runs Gatekeeper's own parts, as its gator CLI does: the constraint framework's
// client and Rego driver (github.com/open-policy-agent/frameworks/constraint) with
// Gatekeeper's admission.k8s.gatekeeper.sh target handler
// (github.com/open-policy-agent/gatekeeper/v3/pkg/target). So a template sees
// input.review as the webhook builds it ({kind: {group, version, kind}, name,
// namespace, operation: "CREATE", object}) and input.parameters from the
// Constraint's spec.parameters, and a Constraint's spec.match (kinds, namespaces,
// excludedNamespaces with glob prefixes, labelSelector, namespaceSelector, scope,
// name) selects objects with Gatekeeper's matcher. Each object is judged as a CREATE
// at the admission webhook's enforcement point (validation.gatekeeper.sh).
//
// A namespaced object without metadata.namespace (Helm leaves it empty; apply
// fills in the release's namespace) is judged in the namespace of
// [WithDefaultNamespace]; without that option it is an error from Eval, never
// judged as if cluster-scoped. A kind's scope comes from, first to last,
// Kubernetes' own kinds, [WithRESTMapper], the CustomResourceDefinitions among the
// objects (and [WithInventory]), then [WithClusterScopedKinds] and
// [WithNamespacedKinds]; one that contradicts an earlier source (a CRD redefining
// RoleBinding, or any CRD in a group Kubernetes serves built in), a malformed CRD,
// or a kind listed both ways is an error from Eval naming it. A kind known from none
// (a custom resource whose CRD is already installed) is an error from Eval, never
// assumed namespaced. A cluster-scoped object is judged without a
// namespace, as the API server drops one.
//
// A namespaceSelector reads the labels of the Namespace object of that name among
// the objects judged (or given with [WithInventory]); any other namespace has only
// kubernetes.io/metadata.name, as a new namespace would. Objects given with
// [WithInventory] are also Gatekeeper's replicated data, data.inventory, for
// templates that look at other objects (unique ingress hosts, for example).
//
// A Constraint's enforcementAction decides: deny is a denial, warn and dryrun are
// warnings (dryrun marked as such), and scoped uses the actions its
// scopedEnforcementActions give the webhook enforcement point.
//
// Bad input: no ConstraintTemplate among the policies is [ErrNoPolicies]; a
// template whose Rego does not compile is a [*CompileError] naming the template and
// the line in its Rego; a template with only a CEL (K8sNativeValidation) engine is
// [ErrUnsupportedEngine]; a Constraint whose kind no template defines is
// [ErrNoTemplate]. Each object's evaluation is bounded by [WithTimeout] (past it,
// [ErrTimeout]).
//
// The package links OPA and Gatekeeper's libraries; deploy and deploy/gate do not:
// Policies.Check makes it a deploy gate's object policy
// (deploy/gate.WithObjectPolicy).
package gatekeeper

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/internal/kindscope"
	"github.com/shipkit/shipkit/internal/option"
)

// ErrInvalidOption is the shared sentinel (deploy.ErrInvalidOption) wrapped by the
// error of an option given a value it cannot use.
var ErrInvalidOption = option.ErrInvalid

// ErrNoPolicies is returned when the policies hold no ConstraintTemplate: judging
// with none would allow everything silently.
var ErrNoPolicies = errors.New("gatekeeper: no ConstraintTemplate among the policies")

// ErrNoTemplate is wrapped by the error for a Constraint whose kind no
// ConstraintTemplate defines (Gatekeeper would have no CRD for it).
var ErrNoTemplate = errors.New("no ConstraintTemplate defines the constraint's kind")

// ErrUnsupportedEngine is wrapped by the error for a ConstraintTemplate with no
// Rego code (only K8sNativeValidation, CEL): this package runs Rego templates.
var ErrUnsupportedEngine = errors.New("template has no Rego code (only CEL K8sNativeValidation, which this package does not run)")

// ErrTimeout is wrapped by the error of an object whose evaluation ran past the
// timeout ([WithTimeout]).
var ErrTimeout = errors.New("gatekeeper evaluation timed out")

// DefaultTimeout bounds one object's evaluation unless [WithTimeout] says otherwise.
const DefaultTimeout = 10 * time.Second

// Action is a Constraint's enforcementAction for a finding.
type Action string

// The enforcement actions.
const (
	// Deny: the webhook would refuse the object.
	Deny Action = "deny"
	// Warn: the webhook would admit it with a warning.
	Warn Action = "warn"
	// DryRun: the webhook would admit it silently; audit would record it.
	DryRun Action = "dryrun"
)

// Finding is one violation of one Constraint by one object.
type Finding struct {
	// Object is the object judged.
	Object deploy.ObjectRef
	// Kind is the Constraint's kind (the template's CRD kind: K8sRequiredLabels).
	Kind string
	// Constraint is the Constraint's name.
	Constraint string
	// Action is what the webhook would do with it.
	Action Action
	// Message is the template's msg.
	Message string
	// Details is the violation's details, nil without any.
	Details map[string]any
}

// RuleID names the Constraint as gate reasons do: "gatekeeper:Kind/name".
func (f Finding) RuleID() string { return "gatekeeper:" + f.Kind + "/" + f.Constraint }

// String prints "[gatekeeper:Kind/name] Kind/namespace/name: action: message".
func (f Finding) String() string {
	return fmt.Sprintf("[%s] %s: %s: %s", f.RuleID(), f.Object, f.Action, f.Message)
}

// Result is what the Constraints found, in the order of the objects, then of the
// Constraints (by kind and name).
type Result struct {
	Findings []Finding
	// Unmatched names each template without a Constraint: it judges nothing.
	Unmatched []string
}

// Denied reports whether any finding denies.
func (r *Result) Denied() bool {
	return slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.Action == Deny })
}

// Option configures [Policies].
type Option func(*config)

type config struct {
	timeout     time.Duration
	concurrency int
	inventory   []*unstructured.Unstructured
	defaultNS   string
	scopes      kindscope.Options
	errs        option.List
}

// WithTimeout bounds one object's evaluation (default [DefaultTimeout]); past it
// the evaluation fails with [ErrTimeout].
func WithTimeout(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 {
			c.errs.Addf("WithTimeout(%s): want a positive duration", d)
		}
		c.timeout = d
	}
}

// WithConcurrency bounds how many objects are evaluated at once (default
// GOMAXPROCS).
func WithConcurrency(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.errs.Addf("WithConcurrency(%d): want at least 1", n)
		}
		c.concurrency = n
	}
}

// WithInventory gives the objects templates see as data.inventory (Gatekeeper's
// replicated cluster state: the objects of the release, or of the cluster) and
// whose Namespaces give their labels to namespaceSelectors. Without it
// data.inventory is empty.
func WithInventory(objs ...*unstructured.Unstructured) Option {
	return func(c *config) {
		for i, o := range objs {
			if o == nil {
				c.errs.Addf("WithInventory: object %d is nil", i+1)
			}
		}
		c.inventory = append(c.inventory, objs...)
	}
}

// Policies is a compiled set of ConstraintTemplates and Constraints. It is
// immutable and safe for concurrent use.
type Policies struct {
	engine      *engine
	unmatched   []string
	namespaces  map[string]*unstructured.Unstructured // Namespaces of the inventory
	inventory   []*unstructured.Unstructured
	defaultNS   string
	scopes      kindscope.Options
	timeout     time.Duration
	concurrency int
}

// Eval judges each object by every Constraint that matches it, up to
// [WithConcurrency] at once. ConstraintTemplates and Constraints among the objects
// are the policy, not judged. The error is for an object that could not be judged
// (no kind, [ErrTimeout], an evaluation error), naming it; never for a violation.
func (p *Policies) Eval(ctx context.Context, objs []*unstructured.Unstructured) (*Result, error) {
	namespaces := p.namespacesOf(objs)
	scopes, err := kindscope.New(p.scopes, p.inventory, objs)
	if err != nil {
		return nil, fmt.Errorf("gatekeeper: %w", err)
	}
	per := make([][]Finding, len(objs))
	errs := make([]error, len(objs))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(p.concurrency, len(objs)) {
		wg.Go(func() {
			for i := range next {
				if isPolicy(objs[i]) {
					continue
				}
				o, err := p.place(objs[i], scopes)
				if err == nil {
					per[i], err = p.evalOne(ctx, o, namespaces)
				}
				if err != nil {
					errs[i] = fmt.Errorf("gatekeeper: %s: %w", deploy.RefOf(objs[i]), err)
					cancel()
				}
			}
		})
	}
feed:
	for i := range objs {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	var first []error
	for _, err := range errs {
		if err != nil && (len(first) == 0 || !errors.Is(err, context.Canceled)) {
			first = append(first, err)
		}
	}
	if len(first) > 0 {
		return nil, errors.Join(first...)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("gatekeeper: %w", err)
	}
	res := &Result{Unmatched: slices.Clone(p.unmatched)}
	for _, found := range per {
		res.Findings = append(res.Findings, found...)
	}
	return res, nil
}

// evalOne judges one object within the timeout.
func (p *Policies) evalOne(ctx context.Context, o *unstructured.Unstructured, namespaces map[string]*unstructured.Unstructured) ([]Finding, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	gvk := o.GroupVersionKind()
	if gvk.Kind == "" || gvk.Version == "" {
		return nil, errors.New("object without apiVersion or kind")
	}
	ns, err := namespaceOf(o, namespaces)
	if err != nil {
		return nil, err
	}
	ectx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	found, err := p.engine.review(ectx, o, ns)
	// The Rego driver turns an evaluation error into a violation (Gatekeeper fails
	// closed); a cancelled or timed-out one is an error here, not a finding.
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if ectx.Err() != nil {
		return nil, fmt.Errorf("%w after %s", ErrTimeout, p.timeout)
	}
	if err != nil {
		return nil, err
	}
	ref := deploy.RefOf(o)
	for i := range found {
		found[i].Object = ref
	}
	return found, nil
}

// namespacesOf returns the Namespace objects among objs and the inventory, by name.
func (p *Policies) namespacesOf(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	out := make(map[string]*unstructured.Unstructured, len(p.namespaces))
	for n, ns := range p.namespaces {
		out[n] = ns
	}
	for _, o := range objs {
		if isNamespace(o) {
			out[o.GetName()] = o
		}
	}
	return out
}

func isNamespace(o *unstructured.Unstructured) bool {
	gvk := o.GroupVersionKind()
	return gvk.Group == "" && gvk.Kind == "Namespace"
}

// isPolicy reports whether o is a ConstraintTemplate or a Constraint.
func isPolicy(o *unstructured.Unstructured) bool {
	gvk := o.GroupVersionKind()
	return gvk.Group == templatesGroup || gvk.Group == constraintsGroup
}

// Check judges the objects (see [Policies.Eval]) as a deploy gate's object policy
// (deploy/gate.WithObjectPolicy): deny findings are reasons of code
// deploy.ReasonPolicy, warn and dryrun findings and templates without a Constraint
// warnings, each with the rule "gatekeeper:Kind/name".
func (p *Policies) Check(ctx context.Context, objs []*unstructured.Unstructured) (*deploy.Decision, error) {
	res, err := p.Eval(ctx, objs)
	if err != nil {
		return nil, err
	}
	d := &deploy.Decision{}
	for _, f := range res.Findings {
		r := deploy.Reason{Object: f.Object, Rule: f.RuleID()}
		r.Code = deploy.ReasonPolicy
		r.Message = "[" + f.RuleID() + "] " + f.Message
		switch f.Action {
		case Deny:
			d.Deny(r)
		case DryRun:
			r.Message = "[" + f.RuleID() + "] dryrun: " + f.Message
			d.Warn(r)
		default:
			d.Warn(r)
		}
	}
	for _, u := range res.Unmatched {
		r := deploy.Reason{Object: deploy.ObjectRef{Group: templatesGroup, Kind: "ConstraintTemplate", Name: strings.Fields(u)[1]}}
		r.Code = deploy.ReasonPolicy
		r.Message = u
		d.Warn(r)
	}
	return d, nil
}

func defaults() config {
	return config{timeout: DefaultTimeout, concurrency: runtime.GOMAXPROCS(0)}
}
