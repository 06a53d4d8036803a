// Package replicas is a [mesh.Router] for clusters without a mesh: the stable and
// the canary Deployment sit behind one Service, which spreads requests evenly over
// the ready pods of both, so the canary's share of traffic is its share of the
// replicas.
//
// The total number of replicas stays fixed. [Split] rounds the canary's share down,
// so it never exceeds the requested weight: 10% of 4 replicas is 0 canary replicas,
// not 1 (25%). 0 and 100 are exact. The canary is scaled first: on the way up its
// share of ready pods stays below the new weight until the stable Deployment has
// shrunk, and on the way down (an abort) it falls at once.
//
// The router cannot route by header; SetHeaderMatch returns an error wrapping
// [mesh.ErrUnsupported]. Writes are server-side applies of spec.replicas under the
// router's field manager, which takes that field from whoever set it (remove
// replicas from the manifests a GitOps tool re-applies, as for an autoscaler).
package replicas

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/shipkit/shipkit/mesh"
	"github.com/shipkit/shipkit/mesh/internal/kube"
)

// DefaultFieldManager is the field manager a router applies under unless
// [WithFieldManager] names another.
const DefaultFieldManager = "shipkit-mesh"

// Workload names the Service and the two Deployments behind it, in one namespace.
type Workload struct {
	Namespace string
	// Service selects the pods of both Deployments.
	Service string
	// Stable and Canary are the names of the two versions' Deployments.
	Stable, Canary string
}

// String returns "Service namespace/name".
func (w Workload) String() string { return kube.Name("Service", w.Namespace, w.Service) }

// Option configures a [Router]. An option given a value it cannot use makes [New]
// fail with an error wrapping [mesh.ErrInvalidOption] that names it.
type Option func(*options)

type options struct {
	kube.Settings
	total int32
}

// WithFieldManager names the field manager that owns the replica counts the router
// applies (1 to 128 printable characters). Default: [DefaultFieldManager].
func WithFieldManager(name string) Option { return func(o *options) { o.SetFieldManager(name) } }

// WithTotal sets the number of replicas the two Deployments share, at least 1.
// Default: the sum of their replicas when a call starts (which the router keeps
// constant).
func WithTotal(n int32) Option {
	return func(o *options) {
		if n < 1 {
			o.Invalid("WithTotal(%d): want at least 1 replica (leave it out to share the Deployments' sum)", n)
			return
		}
		o.total = n
	}
}

// WithLogger sends the router's debug logs to l. Default (and nil): discard.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.Logger = l } }

// Router approximates a traffic split with replica counts. It is safe for
// concurrent use, but concurrent calls with different weights race.
type Router struct {
	c       *kube.Client
	w       Workload
	opts    options
	log     *slog.Logger
	checked atomic.Bool
}

var (
	_ mesh.Router       = (*Router)(nil)
	_ mesh.Checker      = (*Router)(nil)
	_ mesh.WeightReader = (*Router)(nil)
)

// New returns a Router for w in the cluster of cfg; it contacts nothing (see
// [Router.Check]).
func New(cfg *rest.Config, w Workload, opts ...Option) (*Router, error) {
	dyn, err := kube.NewDynamic(cfg)
	if err != nil {
		return nil, fmt.Errorf("replicas: %w", err)
	}
	return NewWithClient(dyn, w, opts...)
}

// NewWithClient returns a Router that uses the given dynamic client, for callers
// that share one.
func NewWithClient(dyn dynamic.Interface, w Workload, opts ...Option) (*Router, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	var errs []error
	for _, f := range []struct{ name, value string }{
		{"namespace", w.Namespace}, {"Service", w.Service}, {"stable Deployment", w.Stable}, {"canary Deployment", w.Canary},
	} {
		if f.value == "" {
			errs = append(errs, fmt.Errorf("%s is empty", f.name))
		}
	}
	if w.Stable != "" && w.Stable == w.Canary {
		errs = append(errs, fmt.Errorf("stable and canary are the same Deployment %q", w.Stable))
	}
	if err := o.Err(dyn, errs); err != nil {
		return nil, fmt.Errorf("replicas: %s: %w", w, err)
	}
	return &Router{c: o.Client(dyn, DefaultFieldManager), w: w, opts: o, log: o.Log()}, nil
}

// Split returns how many of total replicas the stable and the canary version get
// for a canary weight in percent: the canary gets total*canary/100 rounded down, so
// its share never exceeds the weight, and stable the rest.
func Split(total, canary int32) (stableReplicas, canaryReplicas int32) {
	c := int32(int64(total) * int64(canary) / 100)
	return total - c, c
}

// Check verifies, without changing anything, that the Service and both Deployments
// exist, that the Service selects the pods of both, that neither Deployment's
// selector takes the other's pods, and that there are replicas to share. The error
// wraps [mesh.ErrPrerequisite] and names every problem found.
func (r *Router) Check(ctx context.Context) error {
	if err := r.check(ctx); err != nil {
		return fmt.Errorf("replicas: check %s: %w", r.w, err)
	}
	r.checked.Store(true)
	return nil
}

func (r *Router) check(ctx context.Context) error {
	var errs []error
	var svc corev1.Service
	if err := r.get(ctx, kube.Services, r.w.Service, &svc); err != nil {
		errs = append(errs, err)
	}
	stable, canary := &appsv1.Deployment{}, &appsv1.Deployment{}
	errS, errC := r.get(ctx, kube.Deployments, r.w.Stable, stable), r.get(ctx, kube.Deployments, r.w.Canary, canary)
	if errs = append(errs, errS, errC); errors.Join(errs...) != nil {
		return errors.Join(errs...)
	}
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	for _, d := range []*appsv1.Deployment{stable, canary} {
		if len(svc.Spec.Selector) == 0 || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			errs = append(errs, &mesh.PrerequisiteError{Object: r.w.String(),
				Problem: fmt.Sprintf("selector %q does not select the pods of Deployment %s", sel, d.Name)})
		}
	}
	for _, p := range [][2]*appsv1.Deployment{{stable, canary}, {canary, stable}} {
		s, err := metav1.LabelSelectorAsSelector(p[0].Spec.Selector)
		if err == nil && s.Matches(labels.Set(p[1].Spec.Template.Labels)) {
			errs = append(errs, &mesh.PrerequisiteError{Object: kube.Name("Deployment", r.w.Namespace, p[0].Name),
				Problem: fmt.Sprintf("selector %q also selects the pods of Deployment %s; give each version a label of its own", s, p[1].Name)})
		}
	}
	if r.total(stable, canary) == 0 {
		errs = append(errs, &mesh.PrerequisiteError{Object: r.w.String(),
			Problem: fmt.Sprintf("Deployments %s and %s have no replicas to share; give WithTotal", stable.Name, canary.Name)})
	}
	return errors.Join(errs...)
}

// get reads an object into a typed value.
func (r *Router) get(ctx context.Context, k kube.Kind, name string, into any) error {
	u, err := r.c.Get(ctx, k, r.w.Namespace, name)
	if err != nil {
		return err
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into); err != nil {
		return fmt.Errorf("%s: %w", kube.Name(k.Kind, r.w.Namespace, name), err)
	}
	return nil
}

// total returns the replicas to share: WithTotal's or the Deployments' sum.
func (r *Router) total(stable, canary *appsv1.Deployment) int32 {
	if r.opts.total > 0 {
		return r.opts.total
	}
	return replicas(stable) + replicas(canary)
}

// replicas returns d's desired replicas (the API's default is 1).
func replicas(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// SetWeight scales the Deployments so that the canary has canary percent of the
// replicas, rounded down, scaling the canary first.
func (r *Router) SetWeight(ctx context.Context, canary int32) error {
	if err := mesh.ValidateWeight(canary); err != nil {
		return fmt.Errorf("replicas: %s: %w", r.w, err)
	}
	if err := r.setWeight(ctx, canary); err != nil {
		return fmt.Errorf("replicas: %s: set canary weight %d: %w", r.w, canary, err)
	}
	return nil
}

func (r *Router) setWeight(ctx context.Context, weight int32) error {
	if !r.checked.Load() {
		if err := r.check(ctx); err != nil {
			return fmt.Errorf("check: %w", err)
		}
		r.checked.Store(true)
	}
	stable, canary := &appsv1.Deployment{}, &appsv1.Deployment{}
	if err := errors.Join(r.get(ctx, kube.Deployments, r.w.Stable, stable), r.get(ctx, kube.Deployments, r.w.Canary, canary)); err != nil {
		return err
	}
	total := r.total(stable, canary)
	if total == 0 {
		return &mesh.PrerequisiteError{Object: r.w.String(), Problem: "no replicas to share; give WithTotal"}
	}
	s, c := Split(total, weight)
	if err := r.scale(ctx, canary, c); err != nil {
		return err
	}
	if err := r.scale(ctx, stable, s); err != nil {
		return err
	}
	r.log.DebugContext(ctx, "replicas set", "service", r.w.String(), "weight", weight, "stable", s, "canary", c)
	return nil
}

// scale applies d's replica count unless it already has it.
func (r *Router) scale(ctx context.Context, d *appsv1.Deployment, n int32) error {
	if replicas(d) == n {
		return nil
	}
	apply := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"replicas": int64(n)}}}
	apply.SetName(d.Name)
	apply.SetNamespace(d.Namespace)
	_, err := r.c.Apply(ctx, kube.Deployments, apply)
	return err
}

// SetHeaderMatch returns an error wrapping [mesh.ErrUnsupported]: a Service cannot
// route by header.
func (r *Router) SetHeaderMatch(context.Context, string, string) error {
	return fmt.Errorf("replicas: %s: route by header: %w (a Service balances over pods; use a mesh router)", r.w, mesh.ErrUnsupported)
}

// Reset gives every replica to the stable Deployment and scales the canary to zero.
func (r *Router) Reset(ctx context.Context) error {
	if err := r.setWeight(ctx, 0); err != nil {
		return fmt.Errorf("replicas: %s: reset to stable: %w", r.w, err)
	}
	return nil
}

// Weight returns the canary's share of the Deployments' desired replicas, in
// percent rounded down.
func (r *Router) Weight(ctx context.Context) (int32, error) {
	stable, canary := &appsv1.Deployment{}, &appsv1.Deployment{}
	if err := errors.Join(r.get(ctx, kube.Deployments, r.w.Stable, stable), r.get(ctx, kube.Deployments, r.w.Canary, canary)); err != nil {
		return 0, fmt.Errorf("replicas: %w", err)
	}
	total := replicas(stable) + replicas(canary)
	if total == 0 {
		return 0, nil
	}
	return int32(int64(replicas(canary)) * 100 / int64(total)), nil
}
