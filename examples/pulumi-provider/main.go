// Command pulumi-resource-shipkit is the shipkit Pulumi provider: shipkit:index:Image
// builds, pushes and signs a Go service's image, and shipkit:index:Release renders,
// gates and applies its Kubernetes objects. The Pulumi engine starts it as a plugin.
// See README.md.
//
// With -schema it prints the Pulumi package schema instead.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"

	shipkit "github.com/shipkit/shipkit/examples/pulumi-provider/provider"
)

// version is set by the release build (-ldflags "-X main.version=...").
var version = "0.1.0"

func main() {
	ctx := context.Background()
	if len(os.Args) == 2 && os.Args[1] == "-schema" {
		s, err := shipkit.New(ctx, version)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(string(s.Schema()))
		return
	}
	err := provider.Main(shipkit.Package, func(*provider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		return shipkit.New(ctx, version)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
