package registry_test

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/shipkit/shipkit/internal/testbed/registry"
)

func ExampleNewInProcess() {
	host, stop, err := registry.NewInProcess()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()

	img, _ := random.Image(256, 1)
	ref, _ := name.NewTag(host + "/example/app:v1")
	if err := remote.Write(ref, img); err != nil {
		fmt.Println(err)
		return
	}
	desc, _ := remote.Head(ref)
	want, _ := img.Digest()
	fmt.Println("pushed:", desc.Digest == want)
	// Output: pushed: true
}
