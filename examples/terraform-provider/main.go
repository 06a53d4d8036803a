// Command terraform-provider-shipkit is the shipkit Terraform (and OpenTofu)
// provider: shipkit_image builds, pushes and signs a Go service's image and
// shipkit_release renders, gates and applies its Kubernetes objects. See README.md.
//
// Terraform starts it as a plugin; with -debug it runs on its own and prints the
// TF_REATTACH_PROVIDERS value that points Terraform at it, for a debugger.
package main

import (
	"context"
	"flag"
	"log"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/shipkit/shipkit/examples/terraform-provider/provider"
)

// version is set by the release build (-ldflags "-X main.version=...").
var version = "dev"

// Address is the provider's source address in the registry it would be published to.
const Address = "registry.terraform.io/shipkit/shipkit"

func main() {
	debug := flag.Bool("debug", false, "run for a debugger: print TF_REATTACH_PROVIDERS instead of being started by Terraform")
	flag.Parse()
	err := providerserver.Serve(context.Background(), provider.New(version), providerserver.ServeOpts{
		Address: Address,
		Debug:   *debug,
	})
	if err != nil {
		log.Fatal(err)
	}
}
