package mesh_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/shipkit/shipkit/mesh"
)

// logRouter is a Router of your own: here it only prints what it is asked to do.
type logRouter struct{}

func (logRouter) SetWeight(_ context.Context, canary int32) error {
	fmt.Printf("canary %d%%, stable %d%%\n", canary, 100-canary)
	return nil
}

func (logRouter) SetHeaderMatch(_ context.Context, name, value string) error {
	fmt.Printf("%s: %s -> canary\n", name, value)
	return nil
}

func (logRouter) Reset(context.Context) error { fmt.Println("all traffic to stable"); return nil }

// Any traffic layer can drive a rollout by implementing Router.
func ExampleRouter() {
	var r mesh.Router = logRouter{}
	ctx := context.Background()
	for _, w := range []int32{10, 50} {
		_ = r.SetWeight(ctx, w)
	}
	_ = r.Reset(ctx)
	// Output:
	// canary 10%, stable 90%
	// canary 50%, stable 50%
	// all traffic to stable
}

// checkedRouter also implements mesh.Checker; here its route is missing.
type checkedRouter struct{ logRouter }

func (checkedRouter) Check(context.Context) error {
	return &mesh.PrerequisiteError{Object: "HTTPRoute shop/web", Problem: "not found"}
}

// A rollout checks a router's prerequisites, when it can, before it moves traffic.
func ExampleChecker() {
	var r mesh.Router = checkedRouter{}
	if c, ok := r.(mesh.Checker); ok {
		if err := c.Check(context.Background()); errors.Is(err, mesh.ErrPrerequisite) {
			fmt.Println("not starting:", err)
			return
		}
	}
	_ = r.SetWeight(context.Background(), 10)
	// Output:
	// not starting: HTTPRoute shop/web: not found
}
