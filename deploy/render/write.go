package render

import (
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/shipkit/shipkit/deploy"
)

// Write writes objs to w as a YAML stream: one document an object, in order,
// separated by "---" lines, as kubectl and kustomize print them; [Parse] reads it
// back. A nil object is skipped.
func Write(w io.Writer, objs []*unstructured.Unstructured) error {
	first := true
	for _, o := range objs {
		if o == nil {
			continue
		}
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			return fmt.Errorf("render: write %s: %w", deploy.RefOf(o), err)
		}
		if !first {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return fmt.Errorf("render: write: %w", err)
			}
		}
		first = false
		if _, err := w.Write(b); err != nil {
			return fmt.Errorf("render: write %s: %w", deploy.RefOf(o), err)
		}
	}
	return nil
}
