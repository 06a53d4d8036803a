// Package mesh moves traffic between the stable and the canary version of a
// workload, and writes the objects that secure traffic between services: mTLS and
// NetworkPolicy derived from label intent.
//
// A [Router] is the one thing a progressive rollout needs from a mesh: set the
// canary's share of traffic, route a matching request header to the canary for A/B
// tests, and send everything back to stable. Routers may also implement [Checker],
// so a rollout can verify before any traffic moves that the router's CRDs and
// objects exist, and [WeightReader], so a rollout that restarts can see where the
// traffic stands.
//
// The implementations live in subpackages and this package links no Kubernetes
// client:
//
//   - mesh/gateway: Gateway API HTTPRoute backend weights and header rules.
//   - mesh/istio: Istio VirtualService weights over DestinationRule subsets.
//   - mesh/replicas: no mesh; the weight is approximated by replica counts.
//   - mesh/mtls: Istio PeerAuthentication and DestinationRule TLS for mutual TLS.
//   - mesh/netpol: NetworkPolicies from label intent ("app=api may receive from
//     app=web on 8080").
//
// Every router is made the same way: New(cfg, route, opts...) takes the cluster's
// *rest.Config (the one deploy/apply and deploy/rollout take) and functional options
// (WithFieldManager, WithLogger, and the router's own), NewWithClient a dynamic
// client the caller shares; neither contacts the cluster, and an option given a
// value it cannot use is refused with an error wrapping [ErrInvalidOption].
package mesh

import (
	"context"
	"errors"
	"fmt"

	"github.com/shipkit/shipkit/internal/option"
)

// Router shifts traffic between the stable and the canary version of one workload.
// Implementations exist per traffic layer (Gateway API HTTPRoute, Istio
// VirtualService, replica counts without a mesh); a caller may bring its own.
//
// Calls are idempotent: setting the weight it already has changes nothing.
type Router interface {
	// SetWeight sends canary percent (0-100) of traffic to the canary, the rest to stable.
	SetWeight(ctx context.Context, canary int32) error
	// SetHeaderMatch routes requests whose header name equals value to the canary.
	// A router that cannot match headers returns an error wrapping [ErrUnsupported].
	SetHeaderMatch(ctx context.Context, name, value string) error
	// Reset sends all traffic to stable and removes any header match.
	Reset(ctx context.Context) error
}

// Checker is implemented by routers that can verify their prerequisites (the CRDs
// they write are installed; the route, Services and Deployments they name exist and
// fit together) without changing anything. A rollout calls Check before it moves any
// traffic. The error wraps [ErrPrerequisite] when something is missing or does not
// fit, and names it.
type Checker interface {
	Check(ctx context.Context) error
}

// WeightReader is implemented by routers that can read the canary's current share
// of traffic back from the cluster, in percent (0-100, rounded down).
type WeightReader interface {
	Weight(ctx context.Context) (int32, error)
}

// ErrUnsupported is wrapped by the error of a router asked for something its
// traffic layer cannot do, such as a header match without an L7 proxy.
var ErrUnsupported = errors.New("not supported by this router")

// ErrInvalidOption is matched (errors.Is) by the error of a router's constructor
// (New and NewWithClient of mesh/gateway, mesh/istio and mesh/replicas) given an
// option with a value it cannot use, such as an empty field manager. The error
// names the option; nothing is contacted before it is returned. It is the same
// sentinel as deploy.ErrInvalidOption and cosign.ErrInvalidOption, one value for
// every stage.
var ErrInvalidOption = option.ErrInvalid

// ErrPrerequisite is wrapped by the errors of [Checker.Check] (and of the router's
// other methods, which check before their first write) when a CRD is not installed or
// an object the router needs is missing or unusable.
var ErrPrerequisite = errors.New("router prerequisite not met")

// PrerequisiteError says which prerequisite of a router is not met. It wraps
// [ErrPrerequisite] and, when there is one, the API error behind it.
type PrerequisiteError struct {
	// Object names what is missing or unusable, e.g. "HTTPRoute shop/web" or
	// "CustomResourceDefinition httproutes.gateway.networking.k8s.io".
	Object string
	// Problem says what is wrong with it, e.g. "not found".
	Problem string
	// Err is the underlying error, if any.
	Err error
}

// Error names the object, what is wrong with it and, when there is one, the cause.
func (e *PrerequisiteError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Object, e.Problem, e.Err)
	}
	return e.Object + ": " + e.Problem
}

// Is reports whether target is [ErrPrerequisite].
func (e *PrerequisiteError) Is(target error) bool { return target == ErrPrerequisite }

// Unwrap returns the underlying error.
func (e *PrerequisiteError) Unwrap() error { return e.Err }

// ValidateWeight returns an error unless canary is a percentage (0-100).
func ValidateWeight(canary int32) error {
	if canary < 0 || canary > 100 {
		return fmt.Errorf("canary weight %d is outside 0-100", canary)
	}
	return nil
}

// MaxHeaderValueLength is the longest header value a header match accepts (the
// Gateway API's limit).
const MaxHeaderValueLength = 4096

// ValidateHeader returns an error unless name is an HTTP header name (an RFC 9110
// token of at most 256 characters) and value is a non-empty header value without
// control characters, of at most [MaxHeaderValueLength] bytes.
func ValidateHeader(name, value string) error {
	switch {
	case name == "":
		return errors.New("header name is empty")
	case len(name) > 256:
		return fmt.Errorf("header name %.20q... is longer than 256 characters", name)
	case value == "":
		return fmt.Errorf("header %s: value is empty", name)
	case len(value) > MaxHeaderValueLength:
		return fmt.Errorf("header %s: value is longer than %d bytes", name, MaxHeaderValueLength)
	}
	for i := range len(name) {
		if !isTokenChar(name[i]) {
			return fmt.Errorf("header name %q: character %q is not allowed in a header name", name, name[i])
		}
	}
	for i := range len(value) {
		if c := value[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return fmt.Errorf("header %s: value contains control character %#x", name, c)
		}
	}
	return nil
}

// isTokenChar reports whether c may appear in an RFC 9110 token.
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
