package policyfile_test

import (
	"context"
	"fmt"
	"strings"
	"testing/fstest"

	"github.com/shipkit/shipkit/scan/policy/internal/policyfile"
)

func ExampleReader_ReadFS() {
	policies := fstest.MapFS{
		"policies/deny.rego":      {Data: []byte("package main")},
		"policies/deny_test.rego": {Data: []byte("package main")},
		"policies/README.md":      {Data: []byte("# policies")},
	}
	r := policyfile.Reader{Engine: "rego", Want: func(path string) bool {
		return strings.HasSuffix(path, ".rego") && !strings.HasSuffix(path, "_test.rego")
	}}
	err := r.ReadFS(context.Background(), policies, func(name string, data []byte) error {
		fmt.Printf("%s: %d bytes\n", name, len(data))
		return nil
	})
	fmt.Println("error:", err)
	// Output:
	// policies/deny.rego: 12 bytes
	// error: <nil>
}
