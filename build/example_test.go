package build_test

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/shipkit/shipkit/build"
	"github.com/shipkit/shipkit/build/publish"
)

// Build a Go service for two platforms on the default base (CA certificates,
// tzdata, a nonroot user) and push it by digest.
func ExampleNewGo() {
	ctx := context.Background()
	b, err := build.NewGo(build.WithPlatforms("linux/amd64", "linux/arm64"))
	if err != nil {
		fmt.Println(err)
		return
	}
	idx, err := b.Build(ctx, build.Source{Dir: ".", Path: "./cmd/server"})
	if err != nil {
		fmt.Println(err)
		return
	}
	repo, err := name.NewRepository("registry.example.com/team/server")
	if err != nil {
		fmt.Println(err)
		return
	}
	digest, err := publish.Index(ctx, idx, repo)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(digest)
}

// Build on a base image from a registry, resolved to a digest once per build and
// recorded in the image's annotations.
func ExampleRemoteBase() {
	b, err := build.NewGo(build.WithBase(build.RemoteBase("gcr.io/distroless/static:nonroot")))
	if err != nil {
		fmt.Println(err)
		return
	}
	_, _ = b.Build(context.Background(), build.Source{Dir: ".", Path: "./cmd/server"})
}
