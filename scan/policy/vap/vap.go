// Package vap evaluates the user's ValidatingAdmissionPolicies offline: the
// admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy and
// ValidatingAdmissionPolicyBinding objects a cluster would enforce, judged against
// rendered manifests before they are applied, so CI sees the denial the API server
// would give.
//
// It runs the API server's own validating admission policy plugin
// (k8s.io/apiserver/pkg/admission/plugin/policy/validating: its compiler, CEL
// environment, matcher and dispatcher), not a CEL environment of its own:
// matchConstraints (resource rules, namespace and object selectors, exclusions),
// matchConditions, variables, validations with message and messageExpression,
// paramKind with the binding's paramRef (params are looked up among the objects
// given with [WithParams] and the objects judged), failurePolicy, and the binding's
// validationActions: Deny is a denial, Warn a warning, Audit a warning marked as
// audit (a cluster only records it). Each object is judged as a CREATE by the user
// of [WithUser] (default: none); expressions that ask the authorizer get no
// permission.
//
// Offline, the API server's discovery is missing: a kind's resource name and scope
// come from, first to last, Kubernetes' own kinds, [WithRESTMapper] (for example a
// cluster's discovery), the CustomResourceDefinitions among the objects (and
// [WithParams]), then [WithClusterScopedKinds] and [WithNamespacedKinds] (with
// [WithResource]). One that contradicts an earlier source (a CRD redefining
// RoleBinding, or any CRD in a group Kubernetes serves built in), a malformed CRD,
// or a kind listed both ways is an error from Eval naming it. A kind known from none (a
// custom resource whose CRD is already installed) is an error from Eval wrapping
// [ErrUnknownKind], never assumed namespaced; a cluster-scoped object is judged
// without a namespace, as the API server drops one. A
// Namespace among the objects gives its labels to namespaceSelectors; any other
// namespace has only kubernetes.io/metadata.name, as a new namespace would. A
// namespaced object without metadata.namespace (Helm leaves it empty; apply fills
// in the release's namespace) is judged in the namespace of
// [WithDefaultNamespace]; without that option it is an error from Eval, never
// judged as if cluster-scoped.
//
// Bad input: objects without a ValidatingAdmissionPolicy are [ErrNoPolicies] from
// [New]; an expression that does not compile is a [*CompileError] from [New]
// naming the policy and the field; a policy without a binding, or a binding whose
// policy is missing or that matches none of the objects, is a warning
// ([Result.Unmatched]).
package vap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	k8serrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/admission/plugin/policy/generic"
	"k8s.io/apiserver/pkg/admission/plugin/policy/matching"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/warning"
	"k8s.io/client-go/informers"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/internal/kindscope"
	"github.com/shipkit/shipkit/internal/option"
)

// ErrInvalidOption is the shared sentinel (deploy.ErrInvalidOption) wrapped by the
// error of an option given a value it cannot use.
var ErrInvalidOption = option.ErrInvalid

// ErrNoPolicies is returned by [New] when the objects hold no
// ValidatingAdmissionPolicy: judging with none would allow everything silently.
var ErrNoPolicies = errors.New("vap: no ValidatingAdmissionPolicy among the objects")

// Action is what a binding does with a failed validation.
type Action string

// The binding's validationActions.
const (
	Deny  Action = Action(admissionregistrationv1.Deny)
	Warn  Action = Action(admissionregistrationv1.Warn)
	Audit Action = Action(admissionregistrationv1.Audit)
)

// Finding is one failed validation of one object under one binding.
type Finding struct {
	Object  deploy.ObjectRef
	Policy  string
	Binding string
	Action  Action
	// Message is the API server's: for Deny the error it would return ("… is
	// forbidden: ValidatingAdmissionPolicy 'p' with binding 'b' denied request: …"),
	// for Warn its warning, for Audit the failed validation's message.
	Message string
}

// RuleID names the policy and binding as gate reasons do: "vap:policy/binding".
func (f Finding) RuleID() string { return "vap:" + f.Policy + "/" + f.Binding }

// String prints "[vap:policy/binding] Kind/namespace/name: Action: message".
func (f Finding) String() string {
	return fmt.Sprintf("[%s] %s: %s: %s", f.RuleID(), f.Object, f.Action, f.Message)
}

// Result is what the policies found, in the order of the objects, then of the
// bindings.
type Result struct {
	Findings []Finding
	// Unmatched names each policy without a binding ("policy NAME has no
	// binding...") and each binding that judged none of the objects (it matches
	// nothing, or its policy is missing: "binding NAME ..."), with why.
	Unmatched []string
}

// Denied reports whether any finding denies.
func (r *Result) Denied() bool {
	return slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.Action == Deny })
}

// Option configures [Policies].
type Option func(*config)

type config struct {
	params    []*unstructured.Unstructured
	scopes    kindscope.Options
	user      user.Info
	defaultNS string
	errs      option.List
}

// WithDefaultNamespace judges a namespaced object without metadata.namespace in
// namespace ns, as kubectl apply -n ns or helm install -n ns would create it.
// Without it such an object is an error from [Policies.Eval].
func WithDefaultNamespace(ns string) Option {
	return func(c *config) {
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			c.errs.Addf("WithDefaultNamespace(%q): not a namespace name: %s", ns, strings.Join(msgs, "; "))
			return
		}
		c.defaultNS = ns
	}
}

// WithParams gives the objects bindings' paramRefs may name (a ConfigMap, a custom
// resource), beside the objects judged.
func WithParams(objs ...*unstructured.Unstructured) Option {
	return func(c *config) {
		for i, o := range objs {
			if o == nil {
				c.errs.Addf("WithParams: object %d is nil", i+1)
			}
		}
		c.params = append(c.params, objs...)
	}
}

// WithUser judges the objects as created by u (request.userInfo in expressions).
func WithUser(u user.Info) Option {
	return func(c *config) {
		if u == nil {
			c.errs.Addf("WithUser(nil)")
		}
		c.user = u
	}
}

// Policies is a compiled set of ValidatingAdmissionPolicies and their bindings. It
// is immutable and safe for concurrent use.
type Policies struct {
	hooks     []hook
	orphans   []string // bindings without a policy, policies without a binding
	defaultNS string
	params    []*unstructured.Unstructured
	scopes    kindscope.Options
	user      user.Info
	compiled  int
}

// hook is one binding of one compiled policy.
type hook struct {
	policy    *admissionregistrationv1.ValidatingAdmissionPolicy
	binding   *admissionregistrationv1.ValidatingAdmissionPolicyBinding
	validator validating.Validator
}

// New reads the ValidatingAdmissionPolicy and ValidatingAdmissionPolicyBinding
// objects among objs (others are ignored) and compiles each policy once with the
// API server's compiler. An expression that does not compile is a [*CompileError];
// an object that is not a valid policy or binding is an error naming it.
func New(objs []*unstructured.Unstructured, opts ...Option) (*Policies, error) {
	c := config{user: &user.DefaultInfo{}}
	for _, o := range opts {
		o(&c)
	}
	if err := c.errs.Err("vap"); err != nil {
		return nil, err
	}
	policies := map[string]*admissionregistrationv1.ValidatingAdmissionPolicy{}
	var names []string
	var bindings []*admissionregistrationv1.ValidatingAdmissionPolicyBinding
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		if gvk.Group != admissionregistrationv1.GroupName {
			continue
		}
		switch gvk.Kind {
		case "ValidatingAdmissionPolicy":
			p := &admissionregistrationv1.ValidatingAdmissionPolicy{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, p); err != nil {
				return nil, fmt.Errorf("vap: ValidatingAdmissionPolicy %s: %w", o.GetName(), err)
			}
			if _, dup := policies[p.Name]; dup {
				return nil, fmt.Errorf("vap: two ValidatingAdmissionPolicies named %s", p.Name)
			}
			defaultPolicy(p)
			policies[p.Name] = p
			names = append(names, p.Name)
		case "ValidatingAdmissionPolicyBinding":
			b := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, b); err != nil {
				return nil, fmt.Errorf("vap: ValidatingAdmissionPolicyBinding %s: %w", o.GetName(), err)
			}
			if len(b.Spec.ValidationActions) == 0 {
				return nil, fmt.Errorf("vap: ValidatingAdmissionPolicyBinding %s: no validationActions (want Deny, Warn or Audit)", b.Name)
			}
			defaultBinding(b)
			bindings = append(bindings, b)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%w (%d objects given, %d bindings)", ErrNoPolicies, len(objs), len(bindings))
	}
	ps := &Policies{params: c.params, scopes: c.scopes, user: c.user, defaultNS: c.defaultNS}
	validators := map[string]validating.Validator{}
	var problems []Problem
	for _, name := range names {
		p := policies[name]
		problems = append(problems, compileProblems(p)...)
		validators[name] = compile(p)
	}
	if len(problems) > 0 {
		return nil, &CompileError{Problems: problems}
	}
	ps.compiled = len(names)
	for _, b := range bindings {
		p, ok := policies[b.Spec.PolicyName]
		if !ok {
			ps.orphans = append(ps.orphans, fmt.Sprintf("binding %s names policy %s, which is not among the policies given", b.Name, b.Spec.PolicyName))
			continue
		}
		ps.hooks = append(ps.hooks, hook{policy: p, binding: b, validator: validators[p.Name]})
	}
	for _, name := range names {
		if !slices.ContainsFunc(ps.hooks, func(h hook) bool { return h.policy.Name == name }) {
			ps.orphans = append(ps.orphans, fmt.Sprintf("policy %s has no binding among the objects given: it judges nothing", name))
		}
	}
	return ps, nil
}

// defaultPolicy sets what the API server defaults: failurePolicy Fail,
// matchPolicy Equivalent, empty selectors.
func defaultPolicy(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
	if p.Spec.FailurePolicy == nil {
		fail := admissionregistrationv1.Fail
		p.Spec.FailurePolicy = &fail
	}
	if p.Spec.MatchConstraints != nil {
		defaultMatch(p.Spec.MatchConstraints)
	}
}

func defaultBinding(b *admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
	if b.Spec.MatchResources != nil {
		defaultMatch(b.Spec.MatchResources)
	}
}

func defaultMatch(m *admissionregistrationv1.MatchResources) {
	if m.MatchPolicy == nil {
		eq := admissionregistrationv1.Equivalent
		m.MatchPolicy = &eq
	}
	if m.NamespaceSelector == nil {
		m.NamespaceSelector = &metav1.LabelSelector{}
	}
	if m.ObjectSelector == nil {
		m.ObjectSelector = &metav1.LabelSelector{}
	}
	for _, rules := range [][]admissionregistrationv1.NamedRuleWithOperations{m.ResourceRules, m.ExcludeResourceRules} {
		for i := range rules {
			if rules[i].Scope == nil {
				all := admissionregistrationv1.AllScopes
				rules[i].Scope = &all
			}
		}
	}
}

// Eval judges each object by every binding that matches it. The error is for a
// failure to judge (an object without kind or name), never for a denial.
func (ps *Policies) Eval(ctx context.Context, objs []*unstructured.Unstructured) (*Result, error) {
	env, err := ps.newEnv(objs)
	if err != nil {
		return nil, err
	}
	res := &Result{}
	judged := make([]bool, len(ps.hooks))
	for _, o := range objs {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("vap: %w", err)
		}
		ref := deploy.RefOf(o)
		attrs, err := env.attributes(o, ps.user)
		if err != nil {
			return nil, fmt.Errorf("vap: %s: %w", ref, err)
		}
		ref.Namespace = attrs.GetNamespace()
		for i, h := range ps.hooks {
			matched, fs, err := env.judge(ctx, attrs, h)
			if err != nil {
				return nil, fmt.Errorf("vap: %s: policy %s, binding %s: %w", ref, h.policy.Name, h.binding.Name, err)
			}
			judged[i] = judged[i] || matched
			for _, f := range fs {
				f.Object = ref
				res.Findings = append(res.Findings, f)
			}
		}
	}
	res.Unmatched = slices.Clone(ps.orphans)
	for i, h := range ps.hooks {
		if !judged[i] {
			res.Unmatched = append(res.Unmatched, fmt.Sprintf("binding %s (policy %s) matches none of the %d objects", h.binding.Name, h.policy.Name, len(objs)))
		}
	}
	return res, nil
}

// Check judges the objects (see [Policies.Eval]) as a deploy gate's object policy
// (deploy/gate.WithObjectPolicy): Deny findings are reasons of code
// deploy.ReasonPolicy, Warn and Audit findings and unmatched bindings warnings,
// each with the rule "vap:policy/binding".
func (ps *Policies) Check(ctx context.Context, objs []*unstructured.Unstructured) (*deploy.Decision, error) {
	res, err := ps.Eval(ctx, objs)
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
		case Audit:
			r.Message = "[" + f.RuleID() + "] audit: " + f.Message
			d.Warn(r)
		default:
			d.Warn(r)
		}
	}
	for _, u := range res.Unmatched {
		r := deploy.Reason{Object: deploy.ObjectRef{Group: admissionregistrationv1.GroupName, Kind: "ValidatingAdmissionPolicyBinding"}}
		if strings.HasPrefix(u, "policy ") {
			r.Object.Kind = "ValidatingAdmissionPolicy"
		}
		r.Code = deploy.ReasonPolicy
		r.Message = u
		r.Object.Name = strings.Fields(u)[1]
		d.Warn(r)
	}
	return d, nil
}

// env is what one Eval shares: the namespaces, params and resource mapping of the
// objects.
type env struct {
	ps         *Policies
	matcher    generic.PolicyMatcher
	dispatcher generic.Dispatcher[validating.PolicyHook]
	objIfaces  admission.ObjectInterfaces
	mapping    func(schema.GroupVersionKind) (schema.GroupVersionResource, meta.RESTScope, error)
	params     []*unstructured.Unstructured
}

func (ps *Policies) newEnv(objs []*unstructured.Unstructured) (*env, error) {
	nsIndex := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	known := map[string]bool{}
	addNS := func(ns *corev1.Namespace) error {
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		ns.Labels[corev1.LabelMetadataName] = ns.Name // the API server sets it
		known[ns.Name] = true
		return nsIndex.Add(ns)
	}
	all := append(slices.Clone(objs), ps.params...)
	for _, o := range all {
		if o.GroupVersionKind() == corev1.SchemeGroupVersion.WithKind("Namespace") {
			ns := &corev1.Namespace{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, ns); err != nil {
				return nil, fmt.Errorf("vap: Namespace %s: %w", o.GetName(), err)
			}
			if err := addNS(ns); err != nil {
				return nil, fmt.Errorf("vap: %w", err)
			}
		}
	}
	if n := ps.defaultNS; n != "" && !known[n] {
		if err := addNS(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}); err != nil {
			return nil, fmt.Errorf("vap: %w", err)
		}
	}
	for _, o := range all {
		if n := o.GetNamespace(); n != "" && !known[n] {
			if err := addNS(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}); err != nil {
				return nil, fmt.Errorf("vap: %w", err)
			}
		}
	}
	m := matching.NewMatcher(listersv1.NewNamespaceLister(nsIndex), nil)
	e := &env{
		ps:         ps,
		matcher:    generic.NewPolicyMatcher(m),
		dispatcher: validating.NewDispatcher(noPermissions{}, generic.NewPolicyMatcher(m)),
		objIfaces:  admission.NewObjectInterfacesFromScheme(runtime.NewScheme()),
		params:     all,
	}
	mapping, err := ps.mappingFor(all)
	if err != nil {
		return nil, fmt.Errorf("vap: %w", err)
	}
	e.mapping = mapping
	return e, nil
}

// attributes is a CREATE of o, as server-side apply of a new object is.
func (e *env) attributes(o *unstructured.Unstructured, u user.Info) (*recordingAttributes, error) {
	gvk := o.GroupVersionKind()
	if gvk.Kind == "" || gvk.Version == "" {
		return nil, errors.New("object without apiVersion or kind")
	}
	if o.GetName() == "" && o.GetGenerateName() == "" {
		return nil, errors.New("object without a name")
	}
	gvr, scope, err := e.mapping(gvk)
	if err != nil {
		return nil, err
	}
	obj := o.DeepCopy()
	ns := o.GetNamespace()
	if scope.Name() == meta.RESTScopeNameRoot {
		ns = "" // the API server drops it
		obj.SetNamespace("")
	} else if ns == "" {
		if e.ps.defaultNS == "" {
			return nil, fmt.Errorf("%s is namespaced but has no metadata.namespace: set it, or give the namespace it will be applied in with WithDefaultNamespace", gvk.Kind)
		}
		ns = e.ps.defaultNS
		obj.SetNamespace(ns)
	}
	a := admission.NewAttributesRecord(obj, nil, gvk, ns, o.GetName(), gvr, "",
		admission.Create, &metav1.CreateOptions{}, false, u)
	return &recordingAttributes{Attributes: a}, nil
}

// judge runs one binding of one policy on one object through the API server's
// dispatcher and reads its verdict: the error it returns (Deny), the warnings it
// adds (Warn) and the audit annotation it writes (Audit). matched reports whether
// the binding applied to the object.
func (e *env) judge(ctx context.Context, attrs *recordingAttributes, h hook) (matched bool, found []Finding, err error) {
	policyMatches, _, _, err := e.matcher.DefinitionMatches(attrs, e.objIfaces, validating.NewValidatingAdmissionPolicyAccessor(h.policy))
	if err == nil && policyMatches {
		matched, err = e.matcher.BindingMatches(attrs, e.objIfaces, validating.NewValidatingAdmissionPolicyBindingAccessor(h.binding))
	}
	if err != nil {
		// The dispatcher reports a configuration error under the failure policy.
		matched = true
	}
	if !matched {
		return false, nil, nil
	}
	ph := validating.PolicyHook{Policy: h.policy, Bindings: []*admissionregistrationv1.ValidatingAdmissionPolicyBinding{h.binding}, Evaluator: h.validator}
	if pk := h.policy.Spec.ParamKind; pk != nil {
		gv, perr := schema.ParseGroupVersion(pk.APIVersion)
		if perr != nil {
			ph.ConfigurationError = fmt.Errorf("paramKind %s: %w", pk.APIVersion, perr)
		} else {
			_, scope, merr := e.mapping(gv.WithKind(pk.Kind))
			if merr != nil {
				ph.ConfigurationError = merr
			} else {
				ph.ParamScope = scope
				ph.ParamInformer = e.paramInformer(gv.WithKind(pk.Kind))
			}
		}
	}
	attrs.annotations = nil
	rec := &warnings{}
	derr := e.dispatcher.Dispatch(warning.WithWarningRecorder(ctx, rec), attrs, e.objIfaces, []validating.PolicyHook{ph})
	f := Finding{Policy: h.policy.Name, Binding: h.binding.Name}
	if derr != nil {
		var status *k8serrors.StatusError
		if !errors.As(derr, &status) {
			return true, nil, derr
		}
		f.Action, f.Message = Deny, status.Error()
		found = append(found, f)
	}
	for _, w := range rec.texts {
		f.Action, f.Message = Warn, w
		found = append(found, f)
	}
	if v, ok := attrs.annotations["validation.policy.admission.k8s.io/validation_failure"]; ok {
		var failures []validating.ValidationFailureValue
		if err := json.Unmarshal([]byte(v), &failures); err != nil {
			return true, nil, fmt.Errorf("read the audit annotation: %w", err)
		}
		for _, fv := range failures {
			f.Action, f.Message = Audit, fv.Message
			found = append(found, f)
		}
	}
	return true, found, nil
}

// paramInformer serves the params of kind gvk among the objects, as the API
// server's informer would.
func (e *env) paramInformer(gvk schema.GroupVersionKind) informers.GenericInformer {
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, o := range e.params {
		if o.GroupVersionKind() == gvk {
			_ = idx.Add(o) // keys by namespace/name; a duplicate replaces
		}
	}
	gvr, _, _ := e.mapping(gvk)
	return staticInformer{lister: cache.NewGenericLister(idx, gvr.GroupResource())}
}

type staticInformer struct{ lister cache.GenericLister }

func (s staticInformer) Informer() cache.SharedIndexInformer { return synced{} }
func (s staticInformer) Lister() cache.GenericLister         { return s.lister }

// synced is an informer that has synced: the params are all there is. Only
// HasSynced is called.
type synced struct{ cache.SharedIndexInformer }

func (synced) HasSynced() bool { return true }

// recordingAttributes keeps the audit annotations the dispatcher adds.
type recordingAttributes struct {
	admission.Attributes
	annotations map[string]string
}

func (r *recordingAttributes) AddAnnotation(key, value string) error {
	if r.annotations == nil {
		r.annotations = map[string]string{}
	}
	r.annotations[key] = value
	return nil
}

// warnings records the warnings the dispatcher adds.
type warnings struct{ texts []string }

func (w *warnings) AddWarning(_, text string) { w.texts = append(w.texts, text) }

// noPermissions answers every authorizer check in expressions with no opinion
// (not allowed): offline there is no RBAC to ask.
type noPermissions struct{}

func (noPermissions) Authorize(context.Context, authorizer.Attributes) (authorizer.Decision, string, error) {
	return authorizer.DecisionNoOpinion, "offline evaluation has no authorizer", nil
}
