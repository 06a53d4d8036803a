package publish_test

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/shipkit/shipkit/build"
	"github.com/shipkit/shipkit/build/publish"
)

// Build an index, then push it by digest and point a tag at it.
func ExampleIndex() {
	ctx := context.Background()
	b, err := build.NewGo()
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
	digest, err := publish.Index(ctx, idx, repo, publish.WithTags("latest"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(digest) // deploy this, never the tag
}
