package policy_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/shipkit/shipkit/scan/policy"
)

// FuzzCheck feeds arbitrary JSON objects through the object reader and every rule:
// no panic, and either an error naming the object or findings that name their rule
// and path.
func FuzzCheck(f *testing.F) {
	for _, file := range []string{"restricted.yaml", "baseline-violations.yaml", "restricted-violations.yaml"} {
		b, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			f.Fatal(err)
		}
		for _, u := range decode(&testing.T{}, string(b)) {
			j, err := json.Marshal(u.Object)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(j)
		}
	}
	f.Add([]byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"},"spec":{"template":{"spec":{"containers":[{"securityContext":{"capabilities":{"add":[1]}}}]}}}}`))
	f.Add([]byte(`{"apiVersion":"v1","kind":"Pod","spec":{"containers":[{"resources":{"limits":{"memory":"x"}}}]}}`))
	f.Add([]byte(`{"apiVersion":"batch/v1","kind":"CronJob","spec":{"jobTemplate":{"spec":{"template":null}}}}`))
	c, err := policy.New()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m map[string]any
		if err := yaml.Unmarshal(data, &m); err != nil || m == nil {
			return
		}
		u := &unstructured.Unstructured{Object: m}
		res, err := c.Check(t.Context(), []*unstructured.Unstructured{u})
		if res == nil {
			t.Fatal("Check returned no result")
		}
		if err != nil {
			if len(res.Violations) != 0 {
				t.Fatalf("violations for an unreadable object: %v", res.Violations)
			}
			return
		}
		for _, fd := range res.Violations {
			if fd.Rule == "" || fd.Path == "" || fd.Message == "" || fd.Fix == "" {
				t.Fatalf("incomplete violation %+v", fd)
			}
		}
	})
}
