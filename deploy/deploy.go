// Package deploy takes rendered Kubernetes objects to a cluster safely: it renders a
// kustomize directory with every image pinned by digest, gates the objects on
// signatures, attestations, vulnerability reports and manifest policy, applies them
// server-side in stages, waits for them to become healthy and prunes what a previous
// apply made and this one no longer has. Every operation can be planned first.
//
// Objects move between the steps as []*unstructured.Unstructured. [Walk] and
// [Images] are the one reading of the images objects use (containers of every pod
// template shape, image volumes, the pods inside common workload custom resources,
// and what looks like an image where no shape is known): render pinning, the gate,
// scan/policy and the webhook all use them, so none can see fewer images than
// another. The steps are
// interfaces ([Renderer], [Gate], [Applier], [Planner]) so a caller can swap any one;
// the implementations live in subpackages:
//
//   - deploy/render: kustomize and plain YAML, images pinned to digests;
//   - deploy/gate: the [Gate] (pinning, signatures through a sign.Verifier,
//     attestations, vulnerability severity, scan/policy's Pod Security rules), whose
//     [Decision] lists every [Reason];
//   - deploy/admission: the same gate as a ValidatingAdmissionWebhook handler;
//   - deploy/apply: server-side apply in stages, wait, plan with field diffs and
//     drift, ApplySet prune, RBAC preflight, rollback to the last good revision;
//   - deploy/fleet: one set applied to several clusters at once.
//
// This package itself links no Kubernetes client, no kustomize and no signing code
// (it shares package sign's reason vocabulary, which links none).
package deploy

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/sign"
)

// RevisionAnnotation names the revision an object belongs to. deploy/render sets it
// (WithRevision); deploy/apply names the revision it keeps for rollback by it.
const RevisionAnnotation = "deploy.shipkit.dev/revision"

// Renderer produces the objects to deploy.
type Renderer interface {
	Render(ctx context.Context) ([]*unstructured.Unstructured, error)
}

// Gate decides whether objects may be deployed. It returns a [Decision] with every
// reason, not just the first; the error is for failures to decide (a registry that
// cannot be reached), never for a denial.
type Gate interface {
	Check(ctx context.Context, objs []*unstructured.Unstructured) (*Decision, error)
}

// Applier makes the cluster match the objects and says what it changed. Applying the
// same objects again changes nothing and reports every object [Unchanged].
type Applier interface {
	Apply(ctx context.Context, objs []*unstructured.Unstructured) (*ChangeSet, error)
}

// Planner says what an [Applier] would do with the objects without changing anything:
// the ChangeSet's actions are the ones Apply would report, updates carry a field-level
// [Change.Diff] and objects that someone else changed carry their [Change.Drift].
type Planner interface {
	Plan(ctx context.Context, objs []*unstructured.Unstructured) (*ChangeSet, error)
}

// Decision is a gate's answer: allowed when it has no reason, else denied with
// every reason. The zero Decision allows.
type Decision struct {
	// Reasons lists every denial, each naming the object and, where it concerns one,
	// the image.
	Reasons []Reason
	// Warnings lists what a policy warns about without denying (a Rego warn rule, a
	// ValidatingAdmissionPolicy binding's Warn or Audit action): they never make
	// the decision a denial.
	Warnings []Reason
}

// Allowed reports whether no reason denies the objects.
func (d *Decision) Allowed() bool { return len(d.Reasons) == 0 }

// Deny adds reasons to the decision.
func (d *Decision) Deny(r ...Reason) { d.Reasons = append(d.Reasons, r...) }

// Warn adds warnings to the decision; they do not deny.
func (d *Decision) Warn(r ...Reason) { d.Warnings = append(d.Warnings, r...) }

// String prints "allowed", or "denied:" and one reason a line, then, when there are
// warnings, "warnings:" and one a line.
func (d *Decision) String() string {
	var b strings.Builder
	if d.Allowed() {
		b.WriteString("allowed")
	} else {
		b.WriteString("denied:")
		for _, r := range d.Reasons {
			b.WriteString("\n  ")
			b.WriteString(r.String())
		}
	}
	if len(d.Warnings) > 0 {
		b.WriteString("\nwarnings:")
		for _, r := range d.Warnings {
			b.WriteString("\n  ")
			b.WriteString(r.String())
		}
	}
	return b.String()
}

// Err returns nil when the objects are allowed, else a *[DecisionError] with the
// reasons, for callers that treat a denial as an error (errors.Is
// sign.ErrDenied).
func (d *Decision) Err() error {
	if d.Allowed() {
		return nil
	}
	return &DecisionError{Reasons: d.Reasons}
}

// ReasonCode classifies a [Reason]; it is package sign's ReasonCode, so the codes of
// the signature policy and the vulnerability judgement (sign.ReasonUnsigned,
// sign.ReasonMissingAttestation, sign.ReasonVulnerable, …) and the gate's own below
// are one vocabulary, each code defined once.
type ReasonCode = sign.ReasonCode

// The reasons a gate denies objects for, besides the signature policy's and the
// vulnerability judgement's (package sign).
const (
	// ReasonNotPinned: an image named by tag (or by nothing but its repository), not
	// by digest: what a tag points to can change after the gate looked.
	ReasonNotPinned ReasonCode = "not-pinned"
	// ReasonBadImage: an image reference that cannot be parsed.
	ReasonBadImage ReasonCode = "bad-image"
	// ReasonPolicy: a manifest policy rule (Pod Security, hardening, or the user's
	// own: a Rego rule, a ValidatingAdmissionPolicy) fails.
	ReasonPolicy ReasonCode = "policy"
)

// Reason is one reason a gate denied objects: a sign.Reason (code and message) and
// where it applies.
type Reason struct {
	sign.Reason
	// Object is the object the reason concerns.
	Object ObjectRef
	// Image is the image as the object names it, empty for a reason about the
	// manifest itself.
	Image string
	// Container names the container (or init or ephemeral container) that runs Image.
	Container string
	// Rule names the manifest policy rule, for [ReasonPolicy]: a scan/policy rule id
	// ("pss/privileged"), a Rego rule ("rego:main.deny") or a ValidatingAdmissionPolicy
	// ("vap:<policy>/<binding>").
	Rule string
}

// String prints "object: image: message", or "object: message" for a reason about
// the manifest itself.
func (r Reason) String() string {
	var b strings.Builder
	b.WriteString(r.Object.String())
	if r.Container != "" {
		fmt.Fprintf(&b, ": container %s", r.Container)
	}
	if r.Image != "" {
		fmt.Fprintf(&b, ": image %s", r.Image)
	}
	b.WriteString(": ")
	b.WriteString(r.Message)
	return b.String()
}

// DecisionError is a gate's denial as an error, from [Decision.Err]. It matches
// sign.ErrDenied (errors.Is), the one sentinel of every denial.
type DecisionError struct {
	Reasons []Reason
}

// Error lists the reasons, one a line when there are several.
func (e *DecisionError) Error() string {
	msgs := make([]string, len(e.Reasons))
	for i, r := range e.Reasons {
		msgs[i] = r.String()
	}
	return sign.ListReasons("objects "+sign.ErrDenied.Error(), msgs)
}

// Unwrap makes errors.Is(err, sign.ErrDenied) true.
func (e *DecisionError) Unwrap() error { return sign.ErrDenied }

// Action is what an apply did, or would do, to one object.
type Action string

// The actions of an apply.
const (
	Created    Action = "created"
	Configured Action = "configured"
	Unchanged  Action = "unchanged"
	Pruned     Action = "pruned"
)

// ObjectRef names one object.
type ObjectRef struct {
	Group     string // API group, empty for the core group
	Kind      string
	Namespace string // empty for cluster-scoped objects
	Name      string
}

// RefOf returns the reference of obj.
func RefOf(obj *unstructured.Unstructured) ObjectRef {
	gvk := obj.GroupVersionKind()
	return ObjectRef{Group: gvk.Group, Kind: gvk.Kind, Namespace: obj.GetNamespace(), Name: obj.GetName()}
}

// String returns Kind/namespace/name, or Kind/name for a cluster-scoped object, the
// kind qualified by its group unless it is in the core or apps group
// (Deployment/shop/web, Certificate.cert-manager.io/shop/web).
func (r ObjectRef) String() string {
	kind := r.Kind
	if r.Group != "" && r.Group != "apps" {
		kind += "." + r.Group
	}
	if r.Namespace == "" {
		return kind + "/" + r.Name
	}
	return kind + "/" + r.Namespace + "/" + r.Name
}

// Change is the action taken, or planned, on one object.
type Change struct {
	Object ObjectRef
	Action Action
	// Diff lists the fields an update changes (plans only), by path, in path order.
	Diff []FieldDiff
	// Drift lists the fields the live object has that differ from what this field
	// manager last applied because another manager changed them (plans only). A
	// forced apply takes them back; an apply without force fails on them.
	Drift []Conflict
}

// FieldDiff is one changed field. Path is a dotted path with list items by index or,
// for lists of named items such as containers, by name: spec.template.spec.containers[name=web].image.
// Before is absent for an added field, After for a removed one. A value that must not
// be shown (a key of a Secret's data or stringData) is [Redacted]: the diff says
// which key is added, changed or removed, never its value.
type FieldDiff struct {
	Path          string
	Before, After any
}

// RedactedValue is the type of [Redacted].
type RedactedValue string

// Redacted stands in a [FieldDiff] for a value that is never shown: the values of a
// Secret's data and stringData (base64 is no protection), in plans, diffs, drift
// reports, events and errors alike. It prints as "(redacted)".
const Redacted RedactedValue = "(redacted)"

// String prints "path: before -> after", or for a redacted value "path: added",
// "changed" or "removed", with "(value redacted)".
func (d FieldDiff) String() string {
	if d.Before == Redacted || d.After == Redacted {
		what := "changed"
		switch {
		case d.Before == nil:
			what = "added"
		case d.After == nil:
			what = "removed"
		}
		return fmt.Sprintf("%s: %s (value redacted)", d.Path, what)
	}
	return fmt.Sprintf("%s: %s -> %s", d.Path, show(d.Before), show(d.After))
}

func show(v any) string {
	if v == nil {
		return "(none)"
	}
	return fmt.Sprintf("%v", v)
}

// Conflict is a field another field manager owns.
type Conflict struct {
	Field   string // e.g. .spec.replicas
	Manager string // e.g. kubectl-edit
}

// String prints "field (owned by manager)".
func (c Conflict) String() string { return fmt.Sprintf("%s (owned by %q)", c.Field, c.Manager) }

// String prints the change the way kubectl does: "Deployment/ns/web configured".
func (c Change) String() string { return fmt.Sprintf("%s %s", c.Object, c.Action) }

// ChangeSet is the result of an apply or a plan, in the order the objects were (or
// would be) applied, then pruned.
type ChangeSet struct {
	Changes []Change
}

// Append adds changes to the set.
func (cs *ChangeSet) Append(c ...Change) { cs.Changes = append(cs.Changes, c...) }

// Changed reports whether any change is not [Unchanged].
func (cs *ChangeSet) Changed() bool {
	for _, c := range cs.Changes {
		if c.Action != Unchanged {
			return true
		}
	}
	return false
}

// Count returns how many changes have the action.
func (cs *ChangeSet) Count(a Action) int {
	n := 0
	for _, c := range cs.Changes {
		if c.Action == a {
			n++
		}
	}
	return n
}

// Summary counts the changes by action, in the order created, configured,
// unchanged, pruned: "2 created, 1 configured, 3 unchanged"; "no objects" for an
// empty or nil set.
func (cs *ChangeSet) Summary() string {
	var counts []string
	if cs != nil {
		for _, a := range []Action{Created, Configured, Unchanged, Pruned} {
			if n := cs.Count(a); n > 0 {
				counts = append(counts, fmt.Sprintf("%d %s", n, a))
			}
		}
	}
	if len(counts) == 0 {
		return "no objects"
	}
	return strings.Join(counts, ", ")
}

// String prints one change a line, each update's diff and drift indented below it.
func (cs *ChangeSet) String() string {
	var b strings.Builder
	for _, c := range cs.Changes {
		fmt.Fprintln(&b, c)
		for _, d := range c.Diff {
			fmt.Fprintf(&b, "  %s\n", d)
		}
		for _, d := range c.Drift {
			fmt.Fprintf(&b, "  drift: %s\n", d)
		}
	}
	return b.String()
}
