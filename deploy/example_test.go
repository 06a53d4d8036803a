package deploy_test

import (
	"fmt"

	"github.com/shipkit/shipkit/deploy"
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
