package sign_test

import (
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/shipkit/shipkit/sign"
)

// A denial carries every reason, and callers branch on it with errors.Is.
func ExampleDeniedError() {
	d, _ := name.NewDigest("registry.example.com/app@sha256:" + fmt.Sprintf("%064d", 0))
	var err error = &sign.DeniedError{Digest: d, Reasons: []string{"no signature by a trusted key", "no SLSA provenance"}}
	fmt.Println(errors.Is(err, sign.ErrDenied))
	fmt.Println(err)
	// Output:
	// true
	// registry.example.com/app@sha256:0000000000000000000000000000000000000000000000000000000000000000 denied: no signature by a trusted key; no SLSA provenance
}
