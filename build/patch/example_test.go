package patch_test

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/shipkit/shipkit/build/patch"
	"github.com/shipkit/shipkit/sign"
)

// A daily job: which running images are on a base the catalog has patched since,
// and move them onto it. The signer, the attester and the predicates (SBOM
// re-cataloged, vulnerability report re-run) are the caller's.
func Example() {
	ctx := context.Background()
	var (
		running []name.Digest // e.g. deploy/fleet's inventory, by digest
		signer  interface {
			sign.Signer
			sign.Attester
		}
		predicates func(context.Context, name.Digest, v1.ImageIndex) ([]sign.Predicate, error)
	)
	rep, err := patch.Check(ctx, running, []string{"registry.example.com/catalog/static:1"}, patch.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, im := range rep.Images {
		switch im.Status {
		case patch.Stale:
			p, err := patch.Rebase(ctx, im, patch.RebaseConfig{Signer: signer, Attester: signer,
				Predicates: predicates, BuilderID: "https://ci.example.com/patch"}, patch.Options{})
			if err != nil {
				fmt.Println(err)
				continue
			}
			fmt.Println(im.Ref, "->", p.New) // gate it, then roll it out as a canary
		case patch.Unknown, patch.BaseGone, patch.ImageGone:
			fmt.Println(im.Ref, im.Status, im.Reason)
		}
	}
}
