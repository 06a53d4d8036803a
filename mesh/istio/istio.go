// Package istio is a [mesh.Router] over an Istio VirtualService and
// DestinationRule (networking.istio.io/v1).
//
// The DestinationRule of the Service defines two subsets, "stable" and "canary",
// that select pods by a version label (version=v1, version=v2); the router writes
// them, creating the DestinationRule when there is none and keeping every other field
// and subset of one that exists (its trafficPolicy, say, which mesh/mtls writes). In
// the VirtualService, every HTTP route whose destination is the Service becomes a
// weighted route over the two subsets; for an A/B test the router puts before each of
// them a route of its own that matches the header and sends everything to the canary
// subset (Istio takes the first route that matches). Every other field and route
// stays as it is.
//
// The router objects are unstructured; the package links no Istio client. Writes are
// server-side applies under the router's field manager. Istio's CRDs declare
// spec.http and spec.subsets atomic lists, so the router reads the object, edits the
// list and applies the whole list with the resourceVersion it read: a concurrent
// change makes it read again instead of being overwritten.
package istio

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/shipkit/shipkit/mesh"
	"github.com/shipkit/shipkit/mesh/internal/kube"
)

// DefaultFieldManager is the field manager a router applies under unless
// [WithFieldManager] names another.
const DefaultFieldManager = "shipkit-mesh"

// DefaultHeaderRoute names the HTTP route that [Router.SetHeaderMatch] adds unless
// [WithHeaderRoute] names another.
const DefaultHeaderRoute = "canary-header"

// DefaultVersionLabel is the pod label the subsets select by when [Route] names none.
const DefaultVersionLabel = "version"

// The names of the DestinationRule subsets the router writes and routes to.
const (
	StableSubset = "stable"
	CanarySubset = "canary"
)

// The resources the router writes.
var (
	VirtualServices  = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
	DestinationRules = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "destinationrules"}
)

var (
	virtualServices  = kube.Kind{GVR: VirtualServices, Kind: "VirtualService"}
	destinationRules = kube.Kind{GVR: DestinationRules, Kind: "DestinationRule"}
)

// Route names the objects of one workload, all in one namespace.
type Route struct {
	Namespace string
	// VirtualService routes the traffic to split; it must exist.
	VirtualService string
	// Service is the Kubernetes Service whose traffic is split: the VirtualService's
	// routes to its host ("web", "web.shop", "web.shop.svc.cluster.local") are weighted.
	Service string
	// DestinationRule holds the subsets. Default: the Service's name.
	DestinationRule string
	// VersionLabel is the pod label the subsets select by. Default: "version".
	VersionLabel string
	// Stable and Canary are the VersionLabel values of the two versions' pods.
	Stable, Canary string
}

// String returns "VirtualService namespace/name".
func (r Route) String() string {
	return kube.Name(virtualServices.Kind, r.Namespace, r.VirtualService)
}

// Option configures a [Router]. An option given a value it cannot use makes [New]
// fail with an error wrapping [mesh.ErrInvalidOption] that names it.
type Option func(*options)

type options struct {
	kube.Settings
	headerRoute string
}

// WithFieldManager names the field manager that owns what the router applies (1 to
// 128 printable characters). Default: [DefaultFieldManager].
func WithFieldManager(name string) Option { return func(o *options) { o.SetFieldManager(name) } }

// WithHeaderRoute names the HTTP route SetHeaderMatch adds (a lower-case name without
// dots of at most 240 characters); with several weighted routes, the n-th (from 1)
// gets the suffix "-n". Routes of these names belong to the router. Default:
// [DefaultHeaderRoute].
func WithHeaderRoute(name string) Option {
	return func(o *options) {
		if !routeName.MatchString(name) || len(name) > 240 {
			o.Invalid("WithHeaderRoute(%.250q): not a lower-case name of at most 240 characters", name)
			return
		}
		o.headerRoute = name
	}
}

// WithLogger sends the router's debug logs to l. Default (and nil): discard.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.Logger = l } }

// Router splits the traffic of one Service between two versions with Istio. It is
// safe for concurrent use; concurrent writes are serialised by the API server.
type Router struct {
	c       *kube.Client
	route   Route
	opts    options
	log     *slog.Logger
	checked atomic.Bool
}

var (
	_ mesh.Router       = (*Router)(nil)
	_ mesh.Checker      = (*Router)(nil)
	_ mesh.WeightReader = (*Router)(nil)
)

// New returns a Router for route in the cluster of cfg; it contacts nothing (see
// [Router.Check]).
func New(cfg *rest.Config, route Route, opts ...Option) (*Router, error) {
	dyn, err := kube.NewDynamic(cfg)
	if err != nil {
		return nil, fmt.Errorf("istio: %w", err)
	}
	return NewWithClient(dyn, route, opts...)
}

// routeName is a lower-case name without dots, which Istio route names may be.
var routeName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// NewWithClient returns a Router that uses the given dynamic client, for callers
// that share one.
func NewWithClient(dyn dynamic.Interface, route Route, opts ...Option) (*Router, error) {
	route.DestinationRule = cmp.Or(route.DestinationRule, route.Service)
	route.VersionLabel = cmp.Or(route.VersionLabel, DefaultVersionLabel)
	o := options{headerRoute: DefaultHeaderRoute}
	for _, f := range opts {
		f(&o)
	}
	var errs []error
	for _, f := range []struct{ name, value string }{
		{"namespace", route.Namespace}, {"VirtualService", route.VirtualService}, {"Service", route.Service},
		{"stable version", route.Stable}, {"canary version", route.Canary},
	} {
		if f.value == "" {
			errs = append(errs, fmt.Errorf("%s is empty", f.name))
		}
	}
	if route.Stable != "" && route.Stable == route.Canary {
		errs = append(errs, fmt.Errorf("stable and canary are the same version %q", route.Stable))
	}
	for _, msg := range validation.IsQualifiedName(route.VersionLabel) {
		errs = append(errs, fmt.Errorf("version label %q: %s", route.VersionLabel, msg))
	}
	for _, v := range []string{route.Stable, route.Canary} {
		for _, msg := range validation.IsValidLabelValue(v) {
			errs = append(errs, fmt.Errorf("version %q: %s", v, msg))
		}
	}
	if err := o.Err(dyn, errs); err != nil {
		return nil, fmt.Errorf("istio: %s: %w", route, err)
	}
	return &Router{c: o.Client(dyn, DefaultFieldManager), route: route, opts: o, log: o.Log()}, nil
}

// Check verifies, without changing anything, that Istio's VirtualService and
// DestinationRule CRDs are installed, that the VirtualService exists and has at least
// one HTTP route to the Service and to nothing else, that the Service exists, and
// that the DestinationRule, if there is one, is for the Service's host. The error
// wraps [mesh.ErrPrerequisite] and names every problem found.
func (r *Router) Check(ctx context.Context) error {
	if err := r.check(ctx); err != nil {
		return fmt.Errorf("istio: check %s: %w", r.route, err)
	}
	r.checked.Store(true)
	return nil
}

func (r *Router) check(ctx context.Context) error {
	if err := errors.Join(r.c.Served(ctx, virtualServices, r.route.Namespace), r.c.Served(ctx, destinationRules, r.route.Namespace)); err != nil {
		return err
	}
	var errs []error
	if vs, err := r.c.Get(ctx, virtualServices, r.route.Namespace, r.route.VirtualService); err != nil {
		errs = append(errs, err)
	} else if _, err := r.parse(vs); err != nil {
		errs = append(errs, err)
	}
	if _, err := r.c.Get(ctx, kube.Services, r.route.Namespace, r.route.Service); err != nil {
		errs = append(errs, err)
	}
	if _, err := r.destinationRule(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// SetWeight sends canary percent of the Service's traffic to the canary subset and
// the rest to the stable one, in every HTTP route to the Service.
func (r *Router) SetWeight(ctx context.Context, canary int32) error {
	if err := mesh.ValidateWeight(canary); err != nil {
		return fmt.Errorf("istio: %s: %w", r.route, err)
	}
	return r.update(ctx, fmt.Sprintf("set canary weight %d", canary), func(rs *routes) { rs.setWeight(canary) })
}

// SetHeaderMatch puts before each HTTP route to the Service a route with the same
// matches plus the header match name: value (exact; Istio matches header names in
// lower case), which sends all of its traffic to the canary subset. It replaces any
// header match it set before.
func (r *Router) SetHeaderMatch(ctx context.Context, name, value string) error {
	if err := mesh.ValidateHeader(name, value); err != nil {
		return fmt.Errorf("istio: %s: %w", r.route, err)
	}
	return r.update(ctx, fmt.Sprintf("route header %s to the canary", name), func(rs *routes) { rs.setHeader(name, value) })
}

// Reset sends all traffic to the stable subset (the canary destinations stay with
// weight 0) and removes the header routes.
func (r *Router) Reset(ctx context.Context) error {
	return r.update(ctx, "reset to stable", func(rs *routes) {
		rs.rebuild(nil)
		rs.setWeight(0)
	})
}

// Weight returns the canary subset's share of the first HTTP route to the Service,
// in percent rounded down.
func (r *Router) Weight(ctx context.Context) (int32, error) {
	vs, err := r.c.Get(ctx, virtualServices, r.route.Namespace, r.route.VirtualService)
	if err != nil {
		return 0, fmt.Errorf("istio: %w", err)
	}
	rs, err := r.parse(vs)
	if err != nil {
		return 0, fmt.Errorf("istio: %w", err)
	}
	return rs.weight(), nil
}

// update runs Check once, makes the DestinationRule's subsets match the versions,
// then reads the VirtualService, lets change edit its HTTP routes and applies them
// when they changed, reading again when another writer got there first.
func (r *Router) update(ctx context.Context, what string, change func(*routes)) error {
	err := r.updateOnce(ctx, what, change)
	if err != nil {
		return fmt.Errorf("istio: %s: %s: %w", r.route, what, err)
	}
	return nil
}

func (r *Router) updateOnce(ctx context.Context, what string, change func(*routes)) error {
	if !r.checked.Load() {
		if err := r.check(ctx); err != nil {
			return fmt.Errorf("check: %w", err)
		}
		r.checked.Store(true)
	}
	if err := kube.RetryOnConflict(ctx, func() error { return r.applySubsets(ctx) }); err != nil {
		return err
	}
	return kube.RetryOnConflict(ctx, func() error {
		vs, err := r.c.Get(ctx, virtualServices, r.route.Namespace, r.route.VirtualService)
		if err != nil {
			return err
		}
		rs, err := r.parse(vs)
		if err != nil {
			return err
		}
		before := runtime.DeepCopyJSONValue(rs.list)
		change(rs)
		if equality.Semantic.DeepEqual(before, rs.list) {
			r.log.DebugContext(ctx, "virtual service unchanged", "route", r.route.String(), "change", what)
			return nil
		}
		apply := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"http": rs.list}}}
		apply.SetName(r.route.VirtualService)
		apply.SetNamespace(r.route.Namespace)
		apply.SetResourceVersion(vs.GetResourceVersion())
		if _, err := r.c.Apply(ctx, virtualServices, apply); err != nil {
			return err
		}
		r.log.DebugContext(ctx, "virtual service applied", "route", r.route.String(), "change", what)
		return nil
	})
}
