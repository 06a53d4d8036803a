package gatekeeper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/open-policy-agent/frameworks/constraint/pkg/apis"
	apiconstraints "github.com/open-policy-agent/frameworks/constraint/pkg/apis/constraints"
	constraintclient "github.com/open-policy-agent/frameworks/constraint/pkg/client"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers/rego"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/reviews"
	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	"github.com/open-policy-agent/frameworks/constraint/pkg/types"
	mutationtypes "github.com/open-policy-agent/gatekeeper/v3/pkg/mutation/types"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/target"
	"github.com/open-policy-agent/opa/v1/ast"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

const (
	templatesGroup   = "templates.gatekeeper.sh"
	constraintsGroup = "constraints.gatekeeper.sh"
	// enforcementPoint is the admission webhook's: shipkit judges what an apply
	// would send to it.
	enforcementPoint = apiconstraints.WebhookEnforcementPoint
	regoEngine       = "Rego"
)

// engine is the constraint framework's client with Gatekeeper's target and the
// Rego driver. Its Review is safe for concurrent use once nothing is added.
type engine struct {
	client *constraintclient.Client
}

// New reads the ConstraintTemplates and Constraints among objs (others are
// ignored), compiles each template's Rego once and adds the Constraints. A
// template that does not compile is a [*CompileError]; see the package doc for the
// other errors.
func New(ctx context.Context, objs []*unstructured.Unstructured, opts ...Option) (*Policies, error) {
	c := defaults()
	for _, o := range opts {
		o(&c)
	}
	if err := c.errs.Err("gatekeeper"); err != nil {
		return nil, err
	}
	var tmpls, cons []*unstructured.Unstructured
	for _, o := range objs {
		switch gvk := o.GroupVersionKind(); {
		case gvk.Group == templatesGroup && gvk.Kind == "ConstraintTemplate":
			tmpls = append(tmpls, o)
		case gvk.Group == constraintsGroup:
			cons = append(cons, o)
		}
	}
	if len(tmpls) == 0 {
		return nil, fmt.Errorf("%w (%d objects given, %d constraints)", ErrNoPolicies, len(objs), len(cons))
	}
	driver, err := rego.New()
	if err != nil {
		return nil, fmt.Errorf("gatekeeper: the Rego driver: %w", err)
	}
	client, err := constraintclient.NewClient(
		constraintclient.Targets(&target.K8sValidationTarget{}),
		constraintclient.Driver(driver),
		constraintclient.EnforcementPoints(enforcementPoint),
	)
	if err != nil {
		return nil, fmt.Errorf("gatekeeper: the constraint client: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := apis.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("gatekeeper: the template scheme: %w", err)
	}

	kinds := map[string]string{} // constraint kind -> template name
	var problems []Problem
	for _, u := range tmpls {
		t, err := toTemplate(scheme, u)
		if err != nil {
			return nil, err
		}
		kind := t.Spec.CRD.Spec.Names.Kind
		if other, dup := kinds[kind]; dup {
			return nil, fmt.Errorf("gatekeeper: templates %s and %s both define kind %s", other, t.Name, kind)
		}
		if _, err := client.AddTemplate(ctx, t); err != nil {
			if p := compileProblems(t.Name, err); p != nil {
				problems = append(problems, p...)
				kinds[kind] = t.Name
				continue
			}
			return nil, fmt.Errorf("gatekeeper: ConstraintTemplate %s: %w", t.Name, err)
		}
		kinds[kind] = t.Name
	}
	if len(problems) > 0 {
		return nil, &CompileError{Problems: problems}
	}

	constrained := map[string]bool{}
	for _, u := range cons {
		kind := u.GetKind()
		tmpl, ok := kinds[kind]
		if !ok {
			known := make([]string, 0, len(kinds))
			for k := range kinds {
				known = append(known, k)
			}
			sort.Strings(known)
			return nil, fmt.Errorf("gatekeeper: constraint %s/%s: %w (templates define %s)", kind, u.GetName(), ErrNoTemplate, strings.Join(known, ", "))
		}
		if _, err := client.AddConstraint(ctx, u); err != nil {
			return nil, fmt.Errorf("gatekeeper: constraint %s/%s: %w", kind, u.GetName(), err)
		}
		constrained[tmpl] = true
	}

	p := &Policies{
		engine:      &engine{client: client},
		namespaces:  map[string]*unstructured.Unstructured{},
		inventory:   c.inventory,
		defaultNS:   c.defaultNS,
		scopes:      c.scopes,
		timeout:     c.timeout,
		concurrency: c.concurrency,
	}
	for _, u := range tmpls {
		if !constrained[u.GetName()] {
			p.unmatched = append(p.unmatched, fmt.Sprintf("template %s has no constraint among the policies: it judges nothing", u.GetName()))
		}
	}
	for _, o := range c.inventory {
		if isNamespace(o) {
			p.namespaces[o.GetName()] = o
		}
		if _, err := client.AddData(ctx, o); err != nil {
			return nil, fmt.Errorf("gatekeeper: inventory %s/%s %s: %w", o.GetAPIVersion(), o.GetKind(), o.GetName(), err)
		}
	}
	return p, nil
}

// toTemplate converts a ConstraintTemplate of any served version
// (templates.gatekeeper.sh/v1, v1beta1, v1alpha1) to the framework's versionless
// type, as Gatekeeper's API server conversion does.
func toTemplate(scheme *runtime.Scheme, u *unstructured.Unstructured) (*templates.ConstraintTemplate, error) {
	name := u.GetName()
	typed, err := scheme.New(u.GroupVersionKind())
	if err != nil {
		return nil, fmt.Errorf("gatekeeper: ConstraintTemplate %s: %w", name, err)
	}
	b, err := u.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("gatekeeper: ConstraintTemplate %s: %w", name, err)
	}
	if err := json.Unmarshal(b, typed); err != nil {
		return nil, fmt.Errorf("gatekeeper: ConstraintTemplate %s: %w", name, err)
	}
	t := &templates.ConstraintTemplate{}
	if err := scheme.Convert(typed, t, nil); err != nil {
		return nil, fmt.Errorf("gatekeeper: ConstraintTemplate %s: convert %s: %w", name, u.GetAPIVersion(), err)
	}
	if t.Spec.CRD.Spec.Names.Kind == "" {
		return nil, fmt.Errorf("gatekeeper: ConstraintTemplate %s: no spec.crd.spec.names.kind", name)
	}
	if len(t.Spec.Targets) != 1 || t.Spec.Targets[0].Target != target.Name {
		return nil, fmt.Errorf("gatekeeper: ConstraintTemplate %s: want one target %s", name, target.Name)
	}
	tg := t.Spec.Targets[0]
	if tg.Rego == "" && !slices.ContainsFunc(tg.Code, func(c templates.Code) bool { return c.Engine == regoEngine }) {
		engines := make([]string, 0, len(tg.Code))
		for _, c := range tg.Code {
			engines = append(engines, c.Engine)
		}
		return nil, fmt.Errorf("gatekeeper: ConstraintTemplate %s: %w (engines: %s)", name, ErrUnsupportedEngine, strings.Join(engines, ", "))
	}
	return t, nil
}

// review judges one object at the webhook's enforcement point, as a CREATE.
func (e *engine) review(ctx context.Context, o *unstructured.Unstructured, ns *corev1.Namespace) ([]Finding, error) {
	au := target.AugmentedUnstructured{Object: *o, Namespace: ns, Operation: admissionv1.Create, Source: mutationtypes.SourceTypeOriginal}
	resp, err := e.client.Review(ctx, au, reviews.EnforcementPoint(enforcementPoint))
	if err != nil {
		return nil, err
	}
	var out []Finding
	for _, r := range resp.ByTarget {
		for _, res := range r.Results {
			out = append(out, finding(res))
		}
	}
	return out, nil
}

func finding(r *types.Result) Finding {
	f := Finding{Message: r.Msg, Action: actionOf(r)}
	if r.Constraint != nil {
		f.Kind, f.Constraint = r.Constraint.GetKind(), r.Constraint.GetName()
	}
	if d, ok := r.Metadata["details"].(map[string]any); ok && len(d) > 0 {
		f.Details = d
	}
	return f
}

// actionOf reads the result's enforcement action; a scoped one takes the strongest
// of the actions it has at the webhook.
func actionOf(r *types.Result) Action {
	actions := []string{r.EnforcementAction}
	if apiconstraints.IsEnforcementActionScoped(r.EnforcementAction) {
		actions = r.ScopedEnforcementActions
	}
	switch {
	case slices.Contains(actions, string(Deny)):
		return Deny
	case slices.Contains(actions, string(Warn)):
		return Warn
	case slices.Contains(actions, string(DryRun)):
		return DryRun
	case len(actions) == 1 && actions[0] == "":
		return Deny // Gatekeeper's default
	}
	return DryRun
}

// namespaceOf returns the Namespace an object is judged in for namespaceSelectors:
// the Namespace object of that name, or a new one with only
// kubernetes.io/metadata.name. A cluster-scoped object has none. A Namespace object
// that does not convert is an error naming it: judged without its labels, a
// namespaceSelector would miss and allow what the cluster denies.
func namespaceOf(o *unstructured.Unstructured, known map[string]*unstructured.Unstructured) (*corev1.Namespace, error) {
	name := o.GetNamespace()
	if name == "" {
		return nil, nil
	}
	ns := &corev1.Namespace{}
	if u, ok := known[name]; ok {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, ns); err != nil {
			return nil, fmt.Errorf("the Namespace object of namespace %s does not convert: %w", name, err)
		}
	}
	ns.Name = name
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	ns.Labels[corev1.LabelMetadataName] = name // the API server sets it
	return ns, nil
}

// Problem is one error in a template's Rego, where it is.
type Problem struct {
	// Template is the ConstraintTemplate's name.
	Template string
	// Line is the line in the template's Rego (0 when unknown).
	Line    int
	Message string
}

// String prints "template NAME: line L: message".
func (p Problem) String() string {
	if p.Line == 0 {
		return "template " + p.Template + ": " + p.Message
	}
	return fmt.Sprintf("template %s: line %d: %s", p.Template, p.Line, p.Message)
}

// CompileError is the error for templates whose Rego does not parse or compile.
type CompileError struct {
	Problems []Problem
}

// Error lists the problems, one a line.
func (e *CompileError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.String()
	}
	return "gatekeeper: compile: " + strings.Join(msgs, "\n")
}

// problemRE finds OPA's "file:line: rego_..._error: message" in the framework's
// error text (it formats OPA's errors with %v, so they are not in the chain).
var problemRE = regexp.MustCompile(`(?m)(?:^|\s)([\w./-]+):(\d+): (rego_\w+: [^\n]*)`)

// compileProblems reads OPA's errors in err, nil when it holds none. The file is
// the framework's name for the template's Rego ("template") or a lib.
func compileProblems(template string, err error) []Problem {
	var out []Problem
	var astErrs ast.Errors
	if errors.As(err, &astErrs) {
		for _, e := range astErrs {
			p := Problem{Template: template, Message: e.Code + ": " + e.Message}
			if e.Location != nil {
				p.Line = e.Location.Row
			}
			out = append(out, p)
		}
		return out
	}
	for _, m := range problemRE.FindAllStringSubmatch(err.Error(), -1) {
		line, _ := strconv.Atoi(m[2])
		msg := m[3]
		if m[1] != "template" {
			msg = m[1] + ": " + msg
		}
		out = append(out, Problem{Template: template, Line: line, Message: msg})
	}
	return out
}
