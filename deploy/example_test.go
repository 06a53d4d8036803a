package deploy_test

import (
	"fmt"

	"github.com/shipkit/shipkit/deploy"
)

// A ChangeSet prints like kubectl's output, one object a line.
func ExampleChangeSet() {
	cs := deploy.ChangeSet{Changes: []deploy.Change{
		{Object: "Namespace/shop", Action: deploy.Created},
		{Object: "Deployment/shop/web", Action: deploy.Configured},
	}}
	for _, c := range cs.Changes {
		fmt.Println(c)
	}
	// Output:
	// Namespace/shop created
	// Deployment/shop/web configured
}
