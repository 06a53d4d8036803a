// Package gateway is a [mesh.Router] over a Gateway API HTTPRoute
// (gateway.networking.k8s.io/v1).
//
// The route's author writes an HTTPRoute whose rules send traffic to the stable
// Service. The router manages those rules only: it sets the weights of their stable
// and canary backendRefs (adding the canary's, copied from the stable one, on the
// first call), and for an A/B test it adds, before each of them, a rule of its own
// that matches the header and sends everything to the canary. Every other field of
// the route, and every rule that sends traffic elsewhere, stays as it is.
//
// Writes are server-side applies under the router's own field manager. The Gateway
// API declares spec.rules an atomic list, so whoever applies one rule owns the whole
// list: the router reads the route, changes its rules, and applies the list with the
// resourceVersion it read (a concurrent change makes it read again instead of being
// overwritten). A tool that re-applies the route's original rules afterwards (a GitOps
// controller) gets a field conflict, or with force undoes the split; let the router
// own the rules while a rollout runs.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/shipkit/shipkit/mesh"
	"github.com/shipkit/shipkit/mesh/internal/kube"
)

// DefaultFieldManager is the field manager a router applies under unless
// [WithFieldManager] names another.
const DefaultFieldManager = "shipkit-mesh"

// DefaultHeaderRule names the rule that [Router.SetHeaderMatch] adds unless
// [WithHeaderRule] names another.
const DefaultHeaderRule = "canary-header"

// HTTPRoutes is the resource the router writes.
var HTTPRoutes = schema.GroupVersionResource{Group: gatewayv1.GroupName, Version: "v1", Resource: "httproutes"}

var httpRoutes = kube.Kind{GVR: HTTPRoutes, Kind: "HTTPRoute"}

// Route names the HTTPRoute and the two Services, in the route's namespace, between
// which it splits traffic.
type Route struct {
	Namespace string
	// Name is the HTTPRoute's.
	Name string
	// Stable and Canary are the names of the Services of the two versions.
	Stable, Canary string
}

// String returns "HTTPRoute namespace/name".
func (r Route) String() string { return kube.Name(httpRoutes.Kind, r.Namespace, r.Name) }

// Option configures a [Router]. An option given a value it cannot use makes [New]
// fail with an error wrapping [mesh.ErrInvalidOption] that names it.
type Option func(*options)

type options struct {
	kube.Settings
	headerRule string
}

// WithFieldManager names the field manager that owns the rules the router applies
// (1 to 128 printable characters). Default: [DefaultFieldManager].
func WithFieldManager(name string) Option { return func(o *options) { o.SetFieldManager(name) } }

// WithHeaderRule names the rule SetHeaderMatch adds (a lower-case DNS subdomain of at
// most 240 characters); with several weighted rules, the n-th (from 1) gets the
// suffix "-n". Rules of these names belong to the router. Default:
// [DefaultHeaderRule].
func WithHeaderRule(name string) Option {
	return func(o *options) {
		if !ruleName.MatchString(name) || len(name) > 240 {
			o.Invalid("WithHeaderRule(%.250q): not a lower-case DNS subdomain of at most 240 characters", name)
			return
		}
		o.headerRule = name
	}
}

// WithLogger sends the router's debug logs to l. Default (and nil): discard.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.Logger = l } }

// Router splits the traffic of one HTTPRoute between two Services. It is safe for
// concurrent use; concurrent writes are serialised by the API server.
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
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return NewWithClient(dyn, route, opts...)
}

// ruleName is the Gateway API's pattern for a rule name (a DNS subdomain).
var ruleName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// NewWithClient returns a Router that uses the given dynamic client, for callers
// that share one.
func NewWithClient(dyn dynamic.Interface, route Route, opts ...Option) (*Router, error) {
	o := options{headerRule: DefaultHeaderRule}
	for _, f := range opts {
		f(&o)
	}
	var errs []error
	for _, f := range []struct{ name, value string }{
		{"namespace", route.Namespace}, {"name", route.Name}, {"stable Service", route.Stable}, {"canary Service", route.Canary},
	} {
		if f.value == "" {
			errs = append(errs, fmt.Errorf("%s is empty", f.name))
		}
	}
	if route.Stable != "" && route.Stable == route.Canary {
		errs = append(errs, fmt.Errorf("stable and canary are the same Service %q", route.Stable))
	}
	if err := o.Err(dyn, errs); err != nil {
		return nil, fmt.Errorf("gateway: %s: %w", route, err)
	}
	return &Router{c: o.Client(dyn, DefaultFieldManager), route: route, opts: o, log: o.Log()}, nil
}

// Check verifies, without changing anything, that the HTTPRoute CRD is installed,
// that the route exists and has at least one rule that sends traffic to the stable
// (or canary) Service and nowhere else, and that both Services exist with the port the
// rules name. The error wraps [mesh.ErrPrerequisite] and names every problem found.
func (r *Router) Check(ctx context.Context) error {
	if err := r.check(ctx); err != nil {
		return fmt.Errorf("gateway: check %s: %w", r.route, err)
	}
	r.checked.Store(true)
	return nil
}

func (r *Router) check(ctx context.Context) error {
	if err := r.c.Served(ctx, httpRoutes, r.route.Namespace); err != nil {
		return err
	}
	obj, err := r.c.Get(ctx, httpRoutes, r.route.Namespace, r.route.Name)
	if err != nil {
		return err
	}
	rules, err := r.parse(obj)
	if err != nil {
		return err
	}
	var errs []error
	for _, svc := range []string{r.route.Stable, r.route.Canary} {
		s, err := r.c.Get(ctx, kube.Services, r.route.Namespace, svc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, servesPorts(s, rules.ports()))
	}
	return errors.Join(errs...)
}

// SetWeight sends canary percent of the route's traffic to the canary Service and
// the rest to the stable one, in every rule that routes to them.
func (r *Router) SetWeight(ctx context.Context, canary int32) error {
	if err := mesh.ValidateWeight(canary); err != nil {
		return fmt.Errorf("gateway: %s: %w", r.route, err)
	}
	return r.update(ctx, fmt.Sprintf("set canary weight %d", canary), func(rs *rules) error {
		rs.setWeight(canary)
		return nil
	})
}

// SetHeaderMatch adds, before each rule that routes to the Services, a rule with the
// same matches and filters plus the header match name: value (exact), which sends
// all of its traffic to the canary. It replaces any header match it set before.
func (r *Router) SetHeaderMatch(ctx context.Context, name, value string) error {
	if err := mesh.ValidateHeader(name, value); err != nil {
		return fmt.Errorf("gateway: %s: %w", r.route, err)
	}
	return r.update(ctx, fmt.Sprintf("route header %s to the canary", name), func(rs *rules) error {
		rs.setHeader(name, value)
		return nil
	})
}

// Reset sends all traffic to the stable Service (the canary's backendRefs stay with
// weight 0) and removes the header rules.
func (r *Router) Reset(ctx context.Context) error {
	return r.update(ctx, "reset to stable", func(rs *rules) error {
		rs.removeHeaderRules()
		rs.setWeight(0)
		return nil
	})
}

// Weight returns the canary's share of the first rule that routes to the Services,
// in percent rounded down.
func (r *Router) Weight(ctx context.Context) (int32, error) {
	obj, err := r.c.Get(ctx, httpRoutes, r.route.Namespace, r.route.Name)
	if err != nil {
		return 0, fmt.Errorf("gateway: %w", err)
	}
	rs, err := r.parse(obj)
	if err != nil {
		return 0, fmt.Errorf("gateway: %w", err)
	}
	return rs.weight(), nil
}

// update runs Check once, then reads the route, lets change edit its rules and
// applies them when they changed, reading again when another writer got there first.
func (r *Router) update(ctx context.Context, what string, change func(*rules) error) error {
	if !r.checked.Load() {
		if err := r.Check(ctx); err != nil {
			return err
		}
	}
	err := kube.RetryOnConflict(ctx, func() error {
		obj, err := r.c.Get(ctx, httpRoutes, r.route.Namespace, r.route.Name)
		if err != nil {
			return err
		}
		rs, err := r.parse(obj)
		if err != nil {
			return err
		}
		before := rs.clone()
		if err := change(rs); err != nil {
			return err
		}
		if equality.Semantic.DeepEqual(before, rs.list) {
			r.log.DebugContext(ctx, "route unchanged", "route", r.route.String(), "change", what)
			return nil
		}
		apply := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"rules": rs.list}}}
		apply.SetName(r.route.Name)
		apply.SetNamespace(r.route.Namespace)
		apply.SetResourceVersion(obj.GetResourceVersion())
		if _, err := r.c.Apply(ctx, httpRoutes, apply); err != nil {
			return err
		}
		r.log.DebugContext(ctx, "route applied", "route", r.route.String(), "change", what)
		return nil
	})
	if err != nil {
		return fmt.Errorf("gateway: %s: %s: %w", r.route, what, err)
	}
	return nil
}
