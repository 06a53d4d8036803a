// Package deploy takes rendered Kubernetes objects to a cluster safely: it renders a
// kustomize directory with every image pinned by digest, gates the objects on
// signatures, attestations, vulnerability reports and manifest policy, applies them
// server-side in stages, waits for them to become healthy and prunes what a previous
// apply made and this one no longer has. Every operation can be planned first.
//
// Objects move between the steps as []*unstructured.Unstructured.
package deploy

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

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

// Applier makes the cluster match the objects and says what it changed.
type Applier interface {
	Apply(ctx context.Context, objs []*unstructured.Unstructured) (*ChangeSet, error)
}

// Decision is a gate's answer.
type Decision struct {
	// Allowed is true when no reason denies the objects.
	Allowed bool
	// Reasons lists every denial, each naming the object and image it concerns.
	Reasons []string
}

// Action is what an apply did, or would do, to one object.
type Action string

// The actions of an apply.
const (
	Created    Action = "created"
	Configured Action = "configured"
	Unchanged  Action = "unchanged"
	Pruned     Action = "pruned"
)

// Change is the action taken on one object.
type Change struct {
	// Object names the object as Kind/namespace/name (Kind/name when cluster-scoped).
	Object string
	Action Action
}

// String prints the change the way kubectl does: "Deployment/ns/web configured".
func (c Change) String() string { return fmt.Sprintf("%s %s", c.Object, c.Action) }

// ChangeSet is the result of an apply, in the order the objects were applied.
type ChangeSet struct {
	Changes []Change
}
