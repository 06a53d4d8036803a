package deploy_test

import (
	"errors"
	"fmt"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/sign"
)

// A ChangeSet prints like kubectl's output, one object a line, with the field-level
// diff of a plan below each update.
func ExampleChangeSet() {
	cs := deploy.ChangeSet{Changes: []deploy.Change{
		{Object: deploy.ObjectRef{Kind: "Namespace", Name: "shop"}, Action: deploy.Created},
		{
			Object: deploy.ObjectRef{Group: "apps", Kind: "Deployment", Namespace: "shop", Name: "web"},
			Action: deploy.Configured,
			Diff:   []deploy.FieldDiff{{Path: "spec.replicas", Before: int64(2), After: int64(3)}},
		},
	}}
	fmt.Print(cs.String())
	fmt.Println(cs.Changed(), cs.Count(deploy.Created))
	// Output:
	// Namespace/shop created
	// Deployment/shop/web configured
	//   spec.replicas: 2 -> 3
	// true 1
}

// A Decision lists every reason a gate denied the objects for; Err turns a denial
// into an error for callers that stop on it.
func ExampleDecision() {
	d := &deploy.Decision{}
	fmt.Println(d.Allowed(), d.Err())
	web := deploy.ObjectRef{Group: "apps", Kind: "Deployment", Namespace: "shop", Name: "web"}
	d.Deny(
		deploy.Reason{Reason: sign.Reason{Code: deploy.ReasonNotPinned, Message: "not pinned by digest"},
			Object: web, Container: "app", Image: "nginx:latest"},
		deploy.Reason{Reason: sign.Reason{Code: deploy.ReasonPolicy, Message: "[pss/privileged] privileged container"},
			Object: web, Rule: "pss/privileged"},
	)
	fmt.Println(d.Allowed(), errors.Is(d.Err(), sign.ErrDenied))
	fmt.Println(d)
	fmt.Println(d.Err())
	// Output:
	// true <nil>
	// false true
	// denied:
	//   Deployment/shop/web: container app: image nginx:latest: not pinned by digest
	//   Deployment/shop/web: [pss/privileged] privileged container
	// objects denied by policy: 2 reasons:
	//   Deployment/shop/web: container app: image nginx:latest: not pinned by digest
	//   Deployment/shop/web: [pss/privileged] privileged container
}
