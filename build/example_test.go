package build_test

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/shipkit/shipkit/build"
)

// Build a Go service for two platforms on a distroless base and push it by digest.
func ExampleNewGo() {
	ctx := context.Background()
	b, err := build.NewGo(
		build.WithPlatforms("linux/amd64", "linux/arm64"),
		build.WithBase(build.RemoteBase("gcr.io/distroless/static:nonroot")),
	)
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
	digest, err := build.Publish(ctx, idx, repo)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(digest)
}
