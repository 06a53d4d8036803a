// Package kube holds what the routers of mesh share to talk to the API server:
// checks that a kind is served and an object exists (as [mesh.PrerequisiteError]),
// server-side apply under the router's field manager, and retries of
// read-modify-apply cycles that lost a race.
package kube

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/shipkit/shipkit/internal/option"
	"github.com/shipkit/shipkit/mesh"
	"github.com/shipkit/shipkit/observe"
)

// Kind is one API kind a router reads or writes.
type Kind struct {
	GVR  schema.GroupVersionResource
	Kind string
}

// The kinds the routers use from Kubernetes itself.
var (
	Services    = Kind{schema.GroupVersionResource{Version: "v1", Resource: "services"}, "Service"}
	Deployments = Kind{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, "Deployment"}
)

// APIVersion returns the kind's apiVersion ("group/version", or "v1").
func (k Kind) APIVersion() string { return k.GVR.GroupVersion().String() }

// Client reads and applies objects for one router. It uses the dynamic client
// only: client-go's discovery client would link every built-in API type and triple
// the size of a program that imports a router.
type Client struct {
	Dynamic dynamic.Interface
	// FieldManager owns what the router applies.
	FieldManager string
}

// NewDynamic returns a dynamic client for the cluster of cfg; it contacts nothing.
func NewDynamic(cfg *rest.Config) (dynamic.Interface, error) {
	if cfg == nil {
		return nil, errors.New("no *rest.Config")
	}
	return dynamic.NewForConfig(cfg)
}

// maxFieldManager is the longest field manager the API server accepts.
const maxFieldManager = 128

// Settings are the options every router has. A router's options embed them, its
// WithFieldManager and WithLogger set them, and its constructor takes the router's
// client, logger and the options' errors from them.
type Settings struct {
	// FieldManager owns what the router applies; empty until set.
	FieldManager string
	// Logger receives the router's debug logs; nil discards them.
	Logger *slog.Logger
	// Errs are the errors of the options given values they cannot use, each
	// wrapping [mesh.ErrInvalidOption].
	Errs option.List
}

// Invalid records that an option was given a value it cannot use.
func (s *Settings) Invalid(format string, args ...any) { s.Errs.Addf(format, args...) }

// SetFieldManager sets the field manager, or records why name cannot be one (the API
// server's rule: 1 to 128 printable characters).
func (s *Settings) SetFieldManager(name string) {
	if name == "" || len(name) > maxFieldManager || strings.IndexFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		s.Invalid("WithFieldManager(%.140q): want 1 to %d printable characters", name, maxFieldManager)
		return
	}
	s.FieldManager = name
}

// Client returns the router's client: dyn, applying under the field manager set, or
// fallback when none was.
func (s *Settings) Client(dyn dynamic.Interface, fallback string) *Client {
	return &Client{Dynamic: dyn, FieldManager: cmp.Or(s.FieldManager, fallback)}
}

// Err joins the options' errors, errs (the route's) and, when dyn is nil, a missing
// client.
func (s *Settings) Err(dyn dynamic.Interface, errs []error) error {
	if dyn == nil {
		errs = append(errs, errors.New("no client"))
	}
	return s.Errs.Err("", errs...)
}

// Log returns the logger set, or one that discards.
func (s *Settings) Log() *slog.Logger { return observe.OrDiscardLogger(s.Logger) }

// Served returns a [mesh.PrerequisiteError] unless the cluster serves kind, which a
// CRD defines. It lists at most one object of the kind in namespace: the API server
// answers 404 for a resource it does not serve and an empty list for one it does.
func (c *Client) Served(ctx context.Context, k Kind, namespace string) error {
	_, err := c.Dynamic.Resource(k.GVR).Namespace(namespace).List(ctx, metav1.ListOptions{Limit: 1})
	switch {
	case apierrors.IsNotFound(err):
		return &mesh.PrerequisiteError{
			Object:  "CustomResourceDefinition " + k.GVR.GroupResource().String(),
			Problem: fmt.Sprintf("not installed (the cluster serves no %s %s)", k.APIVersion(), k.Kind),
		}
	case err != nil:
		return fmt.Errorf("list %s in namespace %s: %w", k.Kind, namespace, err)
	}
	return nil
}

// Get reads an object; one that does not exist is a [mesh.PrerequisiteError].
func (c *Client) Get(ctx context.Context, k Kind, namespace, name string) (*unstructured.Unstructured, error) {
	obj, err := c.Dynamic.Resource(k.GVR).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, &mesh.PrerequisiteError{Object: Name(k.Kind, namespace, name), Problem: "not found"}
	case err != nil:
		return nil, fmt.Errorf("get %s: %w", Name(k.Kind, namespace, name), err)
	}
	return obj, nil
}

// Apply applies obj server-side under the client's field manager. Force takes the
// fields obj sets from other managers: a router applies lists that the CRDs declare
// atomic (route rules, subsets) and must own them whole; it sets the object's
// resourceVersion to the one it read, so a concurrent change fails with a conflict
// instead of being overwritten (see [RetryOnConflict]).
func (c *Client) Apply(ctx context.Context, k Kind, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	obj.SetAPIVersion(k.APIVersion())
	obj.SetKind(k.Kind)
	out, err := c.Dynamic.Resource(k.GVR).Namespace(obj.GetNamespace()).Apply(ctx, obj.GetName(), obj,
		metav1.ApplyOptions{FieldManager: c.FieldManager, Force: true})
	if err != nil {
		return nil, fmt.Errorf("apply %s: %w", Name(k.Kind, obj.GetNamespace(), obj.GetName()), err)
	}
	return out, nil
}

// Name returns "Kind namespace/name".
func Name(kind, namespace, name string) string { return kind + " " + namespace + "/" + name }

// conflictAttempts bounds [RetryOnConflict].
const conflictAttempts = 8

// RetryOnConflict calls fn until it returns an error that is not a conflict (409),
// which happens when another writer changed the object between fn's read and its
// apply. It waits a little longer after each conflict and stops when ctx ends.
func RetryOnConflict(ctx context.Context, fn func() error) error {
	delay := 10 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || !apierrors.IsConflict(err) || attempt == conflictAttempts {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		delay *= 2
	}
}
