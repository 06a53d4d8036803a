// Package apply makes a cluster match a set of objects with server-side apply, the way
// a GitOps controller or a Terraform provider needs it: idempotent, staged, observable
// and plannable.
//
//   - [Manager.Apply] applies in stages: CustomResourceDefinitions first (waiting until
//     they are Established), then namespaces and other cluster-scoped objects, then the
//     rest. It reports every object as created, configured or unchanged in a
//     [deploy.ChangeSet], optionally waits for health ([Options.Wait]) and prunes what a
//     previous apply of the same [ApplySet] made and this one no longer has
//     ([Options.Prune]).
//   - [Manager.Plan] answers the same question with a server-side dry run and changes
//     nothing: creates, updates with a field-level diff, unchanged objects, prunes,
//     and drift (fields another field manager took over).
//   - [Manager.Wait] waits until objects are healthy, judged by kstatus
//     (sigs.k8s.io/cli-utils/pkg/kstatus): Deployments Available with their new
//     ReplicaSet, Jobs Complete, custom resources by their Ready or Available
//     conditions. A failed rollout fails at once.
//   - With an [ApplySet], a Secret beside the parent keeps the last revision that
//     applied and became healthy, sealed with [Options.RevisionKey];
//     [Options.Rollback] re-applies it when a wait fails, and [Manager.Rollback]
//     does so on demand, from any process. A revision whose seal does not verify is
//     refused ([RevisionError]): nothing is applied or pruned.
//
// Progress goes to an observe.Observer ([Options.Observer]) as stage "deploy" events.
// Lists replace per-object reads where a set has many objects of one kind in one
// namespace, so an apply costs about one request per object.
//
// A field owned by another manager is a conflict ([ConflictError]) unless
// [Options.Force] is set. Transient API errors (429, 5xx, timeouts, refused
// connections) are retried with backoff; any other error names the object it concerns.
package apply

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/util/retry"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/internal/seal"
	"github.com/shipkit/shipkit/internal/kindscope"
	"github.com/shipkit/shipkit/internal/option"
	"github.com/shipkit/shipkit/observe"
)

// DefaultFieldManager is the field manager of a zero [Options].
const DefaultFieldManager = "shipkit"

// Options configure a [Manager]. The zero value applies with field manager "shipkit",
// without force, without waiting and without an inventory.
type Options struct {
	// FieldManager owns the fields this manager applies. Default: "shipkit".
	FieldManager string
	// Force takes ownership of fields other managers own instead of failing with a
	// [ConflictError].
	Force bool
	// Namespace is given to namespaced objects that have none. When empty, such an
	// object is an error.
	Namespace string
	// Wait, when positive, makes Apply wait up to this long for every applied object
	// to become healthy (see [Manager.Wait]).
	Wait time.Duration
	// PollInterval is how often Wait looks at the objects. Default:
	// [DefaultPollInterval].
	PollInterval time.Duration
	// ApplySet records the applied objects in an inventory so a later apply can
	// prune; nil keeps no inventory.
	ApplySet *ApplySet
	// Prune deletes, after a successful apply (and wait), the objects of ApplySet
	// that this apply no longer has. It needs ApplySet.
	Prune bool
	// Preflight makes Apply check with [Manager.Preflight] that the caller may do
	// everything it needs before it touches anything.
	Preflight bool
	// Concurrency bounds the requests in flight within one stage. Default:
	// [DefaultConcurrency].
	Concurrency int
	// Logger receives debug logs. Default: discard.
	Logger *slog.Logger
	// Observer receives progress events (stage "deploy"; steps "apply", "plan",
	// "wait", "prune" and "rollback"; one Progress event per object). It must be safe
	// for concurrent use. Default (and nil): discard.
	Observer observe.Observer
	// Rollback, after a failed wait (a rollout that failed or timed out), re-applies
	// the last revision of the ApplySet that applied and became healthy, and waits for
	// it; the error is then a [*RolledBackError]. It needs ApplySet and Wait. Each
	// healthy revision is kept, gzipped, in a Secret beside the ApplySet's parent
	// (named with [RevisionSecretSuffix]; a Secret because the set may hold Secrets),
	// so [Manager.Rollback] in a new process can roll back too. [Manager.Preflight]
	// then also checks access to that Secret. It needs RevisionKey.
	Rollback bool
	// RevisionKey seals the kept revision (an HMAC-SHA256 over the ApplySet's id, its
	// parent, the revision's name and the stored objects), so that a rollback
	// re-applies only what this deployer applied: anyone who may write Secrets in the
	// parent's namespace could otherwise choose what a rollback applies and prunes
	// with the deployer's credentials. It must be at least [MinRevisionKeySize]
	// random bytes, and is needed with Rollback and by [Manager.Rollback].
	//
	// Keep it where the deployer's credentials are kept (a CI secret, a Secret in a
	// namespace only the deployer reads, a KMS), never beside the revision, and give
	// the same key to every process that applies or rolls back the ApplySet. A
	// revision sealed with another key is refused: rotating the key makes the kept
	// revision unusable until the next apply with the new key keeps a new one. The
	// key is never logged or printed.
	RevisionKey Key
	// Gate, when set, judges the objects of a kept revision before a rollback
	// re-applies them (normally the gate the objects passed before Apply): a denial
	// fails the rollback with the decision's error (deploy.Decision.Err) and
	// nothing is applied.
	Gate deploy.Gate
}

// Manager applies, plans, waits for and prunes objects in one cluster. It is safe
// for concurrent use; concurrent applies of the same ApplySet are not coordinated.
type Manager struct {
	client dynamic.Interface
	mapper meta.ResettableRESTMapper
	opts   Options
	log    *slog.Logger
	sealer *seal.Sealer // nil without RevisionKey
}

var (
	_ deploy.Applier = (*Manager)(nil)
	_ deploy.Planner = (*Manager)(nil)
)

// Client-side rate limits New uses when cfg sets none. client-go's own default (5
// requests a second) would make an apply of a few hundred objects take minutes; the
// API server protects itself with priority and fairness.
const (
	DefaultQPS   = 50
	DefaultBurst = 300
)

// New returns a Manager for the cluster of cfg; it contacts nothing. When cfg sets
// no QPS and no rate limiter, the Manager's clients allow [DefaultQPS] requests a
// second in bursts of [DefaultBurst]. Options that cannot work are refused as
// [NewWithClient] says.
func New(cfg *rest.Config, opts Options) (*Manager, error) {
	if cfg == nil {
		return nil, errors.New("apply: no *rest.Config")
	}
	if cfg.QPS == 0 && cfg.RateLimiter == nil {
		cfg = rest.CopyConfig(cfg)
		cfg.QPS, cfg.Burst = DefaultQPS, max(cfg.Burst, DefaultBurst)
	}
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("apply: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("apply: %w", err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	return NewWithClient(client, mapper, opts)
}

// Defaults of [Options].
const (
	DefaultPollInterval = 500 * time.Millisecond
	DefaultConcurrency  = 8
)

// maxFieldManager is the longest field manager the API server accepts.
const maxFieldManager = 128

// NewWithClient returns a Manager that uses the given client and REST mapper, for
// callers that share them (or tests that fake them). The mapper is reset after CRDs
// are applied so their kinds become known.
//
// Options that cannot work are refused, each named, with an error wrapping
// [deploy.ErrInvalidOption]: a negative Wait, PollInterval or Concurrency; a
// FieldManager longer than 128 characters or with unprintable ones; a Namespace that
// is not a DNS label; an ApplySet without a name or namespace; Prune, RevisionKey or
// Gate without an ApplySet (nothing to prune, seal or roll back); Rollback without
// ApplySet, Wait and RevisionKey; a RevisionKey shorter than [MinRevisionKeySize].
// Zero values take the defaults.
func NewWithClient(client dynamic.Interface, mapper meta.ResettableRESTMapper, opts Options) (*Manager, error) {
	sealer, err := opts.validate()
	if client == nil || mapper == nil {
		err = errors.Join(err, errors.New("apply: no client or no REST mapper"))
	}
	if err != nil {
		return nil, err
	}
	opts.Observer = observe.OrDiscard(opts.Observer)
	opts.FieldManager = cmp.Or(opts.FieldManager, DefaultFieldManager)
	opts.PollInterval = cmp.Or(opts.PollInterval, DefaultPollInterval)
	opts.Concurrency = cmp.Or(opts.Concurrency, DefaultConcurrency)
	return &Manager{client: client, mapper: mapper, opts: opts, log: observe.OrDiscardLogger(opts.Logger), sealer: sealer}, nil
}

// validate returns the sealer of RevisionKey (nil without one), or an error naming
// every option that cannot work.
func (o *Options) validate() (*seal.Sealer, error) {
	var errs option.List
	if o.Wait < 0 {
		errs.Addf("Wait %v is negative", o.Wait)
	}
	if o.PollInterval < 0 {
		errs.Addf("PollInterval %v is negative", o.PollInterval)
	}
	if o.Concurrency < 0 {
		errs.Addf("Concurrency %d is negative", o.Concurrency)
	}
	if len(o.FieldManager) > maxFieldManager || strings.IndexFunc(o.FieldManager, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		errs.Addf("FieldManager %.140q: want at most %d printable characters", o.FieldManager, maxFieldManager)
	}
	if o.Namespace != "" {
		if msgs := validation.IsDNS1123Label(o.Namespace); len(msgs) > 0 {
			errs.Addf("Namespace %.80q: %s", o.Namespace, strings.Join(msgs, "; "))
		}
	}
	if o.ApplySet != nil {
		if err := o.ApplySet.validate(); err != nil {
			errs.Addf("%s", strings.TrimPrefix(err.Error(), "apply: "))
		}
	} else {
		for _, f := range []struct {
			set  bool
			what string
		}{
			{o.Prune, "Prune needs an ApplySet to know what a previous apply made"},
			{len(o.RevisionKey) > 0, "RevisionKey needs an ApplySet, whose revisions it seals"},
			{o.Gate != nil, "Gate needs an ApplySet, whose kept revision it judges before a rollback"},
		} {
			if f.set {
				errs.Addf("%s", f.what)
			}
		}
	}
	if o.Rollback && (o.ApplySet == nil || o.Wait <= 0) {
		errs.Addf("Rollback needs an ApplySet (which keeps the last good revision) and Wait (which tells a failed rollout)")
	}
	var sealer *seal.Sealer
	switch {
	case len(o.RevisionKey) > 0:
		var err error
		if sealer, err = seal.New(o.RevisionKey); err != nil {
			errs.Addf("RevisionKey: %w", err)
		}
	case o.Rollback:
		errs.Addf("Rollback needs RevisionKey (at least %d random bytes) to seal the revisions it keeps", MinRevisionKeySize)
	}
	if err := errs.Err("apply"); err != nil {
		return nil, err
	}
	return sealer, nil
}

// Options returns the manager's options with defaults filled in.
func (m *Manager) Options() Options { return m.opts }

// object is one object of the set, resolved against the cluster.
type object struct {
	obj     *unstructured.Unstructured // a copy, with namespace and inventory label set
	ref     deploy.ObjectRef
	gvk     schema.GroupVersionKind
	mapping *meta.RESTMapping // nil until known (kinds of CRDs of the same set)
	crd     bool
	cluster bool   // cluster-scoped
	plural  string // the kind's resource (lower-case plural), known before mapping is
}

func (o *object) resource(c dynamic.Interface) dynamic.ResourceInterface {
	r := c.Resource(o.mapping.Resource)
	if o.cluster {
		return r
	}
	return r.Namespace(o.obj.GetNamespace())
}

// ObjectError is an error about one object.
type ObjectError struct {
	Object deploy.ObjectRef
	Op     string // what was done: "apply", "get", "map", "delete", ...
	Err    error
}

// Error reads "<op> <object>: <cause>".
func (e *ObjectError) Error() string { return fmt.Sprintf("%s %s: %v", e.Op, e.Object, e.Err) }

// Unwrap returns the cause.
func (e *ObjectError) Unwrap() error { return e.Err }

// ErrUnknownKind is wrapped by an [ObjectError] for an object whose kind the cluster
// does not serve and no CRD of the set defines.
var ErrUnknownKind = errors.New("kind not served by the cluster (is its CRD installed?)")

// prepare copies the objects and resolves their kinds and scopes. The scope of a
// kind is kindscope's answer (Kubernetes' own kinds, then the cluster's mapper, then
// a CRD of the same set), so an unknown kind, a missing namespace, a malformed CRD
// or a CRD that contradicts a kind Kubernetes or the cluster serves fails here,
// before anything is applied.
func (m *Manager) prepare(objs []*unstructured.Unstructured) ([]*object, error) {
	scopes, err := kindscope.New(kindscope.Options{Mapper: m.mapper}, objs)
	if err != nil {
		return nil, fmt.Errorf("apply: %w", err)
	}
	builtin := kindscope.Builtin()
	seen := map[deploy.ObjectRef]bool{}
	var errs []error
	out := make([]*object, 0, len(objs))
	for _, in := range objs {
		o := &object{obj: in.DeepCopy(), gvk: in.GroupVersionKind(), crd: isCRD(in)}
		o.ref = deploy.RefOf(in)
		unstructured.RemoveNestedField(o.obj.Object, "metadata", "managedFields")
		unstructured.RemoveNestedField(o.obj.Object, "metadata", "resourceVersion")
		unstructured.RemoveNestedField(o.obj.Object, "metadata", "uid")
		unstructured.RemoveNestedField(o.obj.Object, "metadata", "creationTimestamp")
		if o.obj.GetName() == "" {
			errs = append(errs, &ObjectError{Object: o.ref, Op: "check", Err: errors.New("no metadata.name")})
			continue
		}
		if err := m.resolve(o, scopes, builtin); err != nil {
			errs = append(errs, &ObjectError{Object: o.ref, Op: "map", Err: err})
			continue
		}
		if o.cluster {
			o.obj.SetNamespace("")
		} else if o.obj.GetNamespace() == "" {
			if m.opts.Namespace == "" {
				errs = append(errs, &ObjectError{Object: o.ref, Op: "check", Err: errors.New("namespaced object without a namespace (and no default namespace in Options)")})
				continue
			}
			o.obj.SetNamespace(m.opts.Namespace)
		}
		o.ref = deploy.RefOf(o.obj)
		if m.opts.ApplySet != nil && o.ref == m.opts.ApplySet.ref() {
			errs = append(errs, &ObjectError{Object: o.ref, Op: "check", Err: errors.New("is the ApplySet's parent, which cannot be a member")})
			continue
		}
		if seen[o.ref] {
			errs = append(errs, &ObjectError{Object: o.ref, Op: "check", Err: errors.New("appears twice in the set")})
			continue
		}
		seen[o.ref] = true
		out = append(out, o)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// resolve sets o's scope and resource from scopes and, when the cluster serves the
// kind in o's version, its mapping. A kind only a CRD of the set defines has no
// mapping until that CRD is Established (see afterCRDs).
func (m *Manager) resolve(o *object, scopes *kindscope.Scopes, builtin map[schema.GroupKind]kindscope.Kind) error {
	k, err := scopes.Lookup(o.gvk, "")
	if errors.Is(err, kindscope.ErrUnknownKind) {
		return fmt.Errorf("%s: %w", o.gvk, ErrUnknownKind)
	}
	if err != nil {
		return err
	}
	o.cluster, o.plural = k.Cluster, k.Resource
	mapping, err := m.mapper.RESTMapping(o.gvk.GroupKind(), o.gvk.Version)
	_, isBuiltin := builtin[o.gvk.GroupKind()]
	switch {
	case err == nil:
		if got := mapping.Scope.Name() == meta.RESTScopeNameRoot; got != k.Cluster || mapping.Resource.Resource != k.Resource {
			return fmt.Errorf("%s: the cluster's mapper has resource %q (cluster-scoped: %t), expected resource %q (cluster-scoped: %t)",
				o.gvk, mapping.Resource.Resource, got, k.Resource, k.Cluster)
		}
		o.mapping = mapping
	case meta.IsNoMatchError(err) && isBuiltin:
		// Kubernetes' kind, but not served here in this version (an API that is
		// off, a version that was removed).
		return fmt.Errorf("%s: %w", o.gvk, ErrUnknownKind)
	case !meta.IsNoMatchError(err):
		return err
	}
	return nil
}

func isCRD(o *unstructured.Unstructured) bool {
	gvk := o.GroupVersionKind()
	return gvk.Group == "apiextensions.k8s.io" && gvk.Kind == "CustomResourceDefinition"
}

// stages splits objects into CRDs, cluster-scoped objects (namespaces first) and
// namespaced objects, keeping the set's order within each stage.
func stages(objs []*object) [3][]*object {
	var s [3][]*object
	var namespaces, cluster []*object
	for _, o := range objs {
		switch {
		case o.crd:
			s[0] = append(s[0], o)
		case o.cluster && o.gvk.Group == "" && o.gvk.Kind == "Namespace":
			namespaces = append(namespaces, o)
		case o.cluster:
			cluster = append(cluster, o)
		default:
			s[2] = append(s[2], o)
		}
	}
	s[1] = append(namespaces, cluster...)
	return s
}

// Apply applies objs in stages and returns what it did, in the order it applied
// them, followed by the prunes. With [Options.Wait] it waits for every object to be
// healthy before pruning; with [Options.Rollback] a failed wait re-applies the last
// good revision. On error the ChangeSet holds what was done before it.
//
// Nothing is applied (and the ChangeSet is nil) when an object's kind is unknown, or
// when a CustomResourceDefinition of the set is malformed, redefines a kind in a group
// Kubernetes serves built in (a CRD rolebindings.rbac.authorization.k8s.io, say), or
// gives a kind the cluster serves another scope or resource.
func (m *Manager) Apply(ctx context.Context, objs []*unstructured.Unstructured) (*deploy.ChangeSet, error) {
	return m.apply(ctx, objs, m.opts.Rollback)
}

func (m *Manager) apply(ctx context.Context, objs []*unstructured.Unstructured, rollback bool) (*deploy.ChangeSet, error) {
	prepared, err := m.prepare(objs)
	if err != nil {
		return nil, err
	}
	if m.opts.Preflight {
		if err := m.Preflight(ctx, objs); err != nil {
			return nil, err
		}
	}
	cs := &deploy.ChangeSet{}
	var inv *inventory
	if m.opts.ApplySet != nil {
		if inv, err = m.openInventory(ctx, prepared); err != nil {
			return cs, err
		}
		if m.opts.Rollback {
			if err := m.readRevision(ctx, inv); err != nil {
				return cs, err
			}
		}
	}
	st := m.step("apply", len(prepared))
	err = m.applyStages(ctx, inv, prepared, cs, st)
	st.End(err, cs.Summary())
	if err != nil {
		return cs, err
	}
	if m.opts.Wait > 0 {
		if err := m.wait(ctx, prepared, m.opts.Wait); err != nil {
			if rollback && isRolloutFailure(err) {
				return cs, m.rollBack(ctx, inv, err)
			}
			return cs, err
		}
	}
	if inv != nil {
		pruned, err := m.finishInventory(ctx, inv, prepared, m.opts.Prune)
		cs.Append(pruned...)
		if err != nil {
			return cs, err
		}
		if m.opts.Rollback {
			inv.keep(ctx, m.log, prepared)
			if err := m.writeRevision(ctx, inv); err != nil {
				return cs, fmt.Errorf("applied, but cannot keep the revision for a rollback: %w", err)
			}
		}
	}
	return cs, nil
}

// applyStages applies the prepared objects stage by stage, writing the ApplySet's
// parent before the first member.
func (m *Manager) applyStages(ctx context.Context, inv *inventory, prepared []*object, cs *deploy.ChangeSet, st *observe.Step) error {
	stages := stages(prepared)
	for i, stage := range stages {
		if len(stage) == 0 {
			continue
		}
		if inv != nil && !inv.written {
			// The parent goes first, unless its namespace is one the set creates.
			err := m.writeParent(ctx, inv, prepared, true)
			later := i < 2 && apierrors.IsNotFound(errors.Unwrap(err)) && createsNamespace(stages[1], inv.set.Namespace)
			if err != nil && !later {
				return err
			}
		}
		changes, err := m.applyStage(ctx, stage, false, st)
		cs.Append(changes...)
		if err != nil {
			return err
		}
		if i == 0 {
			if err := m.afterCRDs(ctx, stage, stages[1:]); err != nil {
				return err
			}
		}
	}
	return nil
}

func createsNamespace(stage []*object, ns string) bool {
	for _, o := range stage {
		if o.gvk.Group == "" && o.gvk.Kind == "Namespace" && o.obj.GetName() == ns {
			return true
		}
	}
	return false
}

// afterCRDs waits until the CRDs are Established, then forgets the cluster's
// discovery so the new kinds map, and maps the objects that waited for them.
func (m *Manager) afterCRDs(ctx context.Context, crds []*object, later [][]*object) error {
	if err := m.wait(ctx, crds, cmp.Or(m.opts.Wait, time.Minute)); err != nil {
		return err
	}
	m.mapper.Reset()
	for _, stage := range later {
		for _, o := range stage {
			if o.mapping != nil {
				continue
			}
			err := retryTransient(ctx, func() error {
				mapping, err := m.mapper.RESTMapping(o.gvk.GroupKind(), o.gvk.Version)
				if meta.IsNoMatchError(err) {
					m.mapper.Reset() // discovery can lag a freshly Established CRD
					return errRetry
				}
				o.mapping = mapping
				return err
			})
			if err != nil {
				return &ObjectError{Object: o.ref, Op: "map", Err: err}
			}
		}
	}
	return nil
}

// applyStage applies the objects of one stage concurrently and returns their
// changes in the stage's order.
func (m *Manager) applyStage(ctx context.Context, stage []*object, dryRun bool, st *observe.Step) ([]deploy.Change, error) {
	live := m.prefetch(ctx, stage)
	changes := make([]deploy.Change, len(stage))
	errs := make([]error, len(stage))
	m.forEach(ctx, len(stage), func(ctx context.Context, i int) {
		o := stage[i]
		l, known := live[o.ref]
		if dryRun {
			changes[i], errs[i] = m.dryRunDrift(ctx, o, l, known)
		} else {
			changes[i], errs[i] = m.applyOnce(ctx, o, l, known, false, m.opts.Force)
		}
		if errs[i] == nil {
			st.Progress(changes[i].String())
		}
	})
	var done []deploy.Change
	for i, c := range changes {
		if errs[i] == nil && c.Action != "" {
			done = append(done, c)
		}
	}
	return done, errors.Join(errs...)
}

// forEach runs fn for 0..n-1 with at most Concurrency at once, stopping new calls
// when ctx ends.
func (m *Manager) forEach(ctx context.Context, n int, fn func(ctx context.Context, i int)) {
	sem := make(chan struct{}, m.opts.Concurrency)
	var wg sync.WaitGroup
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(ctx, i)
		})
	}
	wg.Wait()
}

// applyOnce applies (or dry-runs) one object and says what happened to it. live is
// the object as it was before, when known (a nil live that is known means absent);
// otherwise applyOnce reads it.
func (m *Manager) applyOnce(ctx context.Context, o *object, live *unstructured.Unstructured, known, dryRun, force bool) (deploy.Change, error) {
	if err := ctx.Err(); err != nil {
		return deploy.Change{}, &ObjectError{Object: o.ref, Op: "apply", Err: err}
	}
	c := deploy.Change{Object: o.ref}
	res := o.resource(m.client)
	if !known {
		err := retryTransient(ctx, func() error {
			var err error
			live, err = res.Get(ctx, o.obj.GetName(), metav1.GetOptions{})
			return err
		})
		switch {
		case apierrors.IsNotFound(err):
			live = nil
		case err != nil:
			return c, &ObjectError{Object: o.ref, Op: "get", Err: err}
		}
	}
	opts := metav1.ApplyOptions{FieldManager: m.opts.FieldManager, Force: force}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	var applied *unstructured.Unstructured
	err := retryTransient(ctx, func() error {
		var err error
		applied, err = res.Apply(ctx, o.obj.GetName(), o.obj, opts)
		return err
	})
	if err != nil {
		if conflicts := conflictsOf(err); len(conflicts) > 0 {
			return c, &ConflictError{Object: o.ref, Conflicts: conflicts, Err: err}
		}
		return c, &ObjectError{Object: o.ref, Op: "apply", Err: err}
	}
	switch {
	case live == nil:
		c.Action = deploy.Created
	case applied.GetResourceVersion() == live.GetResourceVersion():
		c.Action = deploy.Unchanged
	default:
		c.Action = deploy.Configured
	}
	if dryRun && live != nil {
		// A dry run gets no new resourceVersion: compare the objects instead.
		c.Diff = diffObjects(live.Object, applied.Object)
		if len(c.Diff) == 0 {
			c.Action = deploy.Unchanged
		} else {
			c.Action = deploy.Configured
		}
	}
	m.log.DebugContext(ctx, "applied", "object", o.ref.String(), "action", c.Action, "dryRun", dryRun)
	return c, nil
}

// errRetry asks retryTransient for another attempt.
var errRetry = errors.New("not yet")

// retryTransient calls fn until it succeeds, fails with an error that is not
// transient, or five attempts (about 3 s) have been made.
func retryTransient(ctx context.Context, fn func() error) error {
	backoff := wait.Backoff{Steps: 5, Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.1}
	err := retry.OnError(backoff, func(err error) bool { return ctx.Err() == nil && transient(err) }, fn)
	if errors.Is(err, errRetry) {
		return fmt.Errorf("gave up after retries: %w", err)
	}
	return err
}

func transient(err error) bool {
	return errors.Is(err, errRetry) ||
		apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err) || apierrors.IsUnexpectedServerError(err) ||
		utilnet.IsConnectionRefused(err) || utilnet.IsConnectionReset(err) || utilnet.IsProbableEOF(err)
}
