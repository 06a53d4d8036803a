// Package mesh moves traffic between the stable and the canary version of a
// workload, and writes the objects that secure traffic between services: mTLS and
// NetworkPolicy derived from label intent.
//
// A [Router] is the one thing a progressive rollout needs from a mesh: set the
// canary's share of traffic, route a matching request header to the canary for A/B
// tests, and send everything back to stable.
package mesh

import "context"

// Router shifts traffic between the stable and the canary version of one workload.
// Implementations exist per traffic layer (Gateway API HTTPRoute, Istio
// VirtualService, replica counts without a mesh); a caller may bring its own.
type Router interface {
	// SetWeight sends canary percent (0-100) of traffic to the canary, the rest to stable.
	SetWeight(ctx context.Context, canary int32) error
	// SetHeaderMatch routes requests whose header name equals value to the canary.
	SetHeaderMatch(ctx context.Context, name, value string) error
	// Reset sends all traffic to stable and removes any header match.
	Reset(ctx context.Context) error
}
