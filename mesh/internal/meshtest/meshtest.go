// Package meshtest installs the CRDs that mesh's routers write into a test cluster:
// the Gateway API's standard channel and Istio's, read from the YAML files that ship
// in their Go modules (sigs.k8s.io/gateway-api and istio.io/api), so the CRDs always
// match the versions of the Go types in go.mod.
package meshtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// CRDSet names the CRD files of one module.
type CRDSet struct {
	// Module is the Go module the files ship in.
	Module string
	// Files are globs relative to the module's directory.
	Files []string
}

// The CRD sets of the Gateway API (standard channel) and of Istio.
var (
	GatewayAPI = CRDSet{Module: "sigs.k8s.io/gateway-api", Files: []string{"config/crd/standard/gateway.networking.k8s.io_*.yaml"}}
	Istio      = CRDSet{Module: "istio.io/api", Files: []string{"kubernetes/customresourcedefinitions.gen.yaml"}}
)

// CRDs reads the set's CustomResourceDefinitions (and nothing else its files hold).
func (s CRDSet) CRDs(ctx context.Context) ([]*unstructured.Unstructured, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", s.Module).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return nil, fmt.Errorf("go list -m %s: %w: %s", s.Module, err, ee.Stderr)
	}
	if err != nil {
		return nil, fmt.Errorf("go list -m %s: %w", s.Module, err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return nil, fmt.Errorf("module %s is not in the module cache (run go mod download)", s.Module)
	}
	var crds []*unstructured.Unstructured
	for _, glob := range s.Files {
		files, err := filepath.Glob(filepath.Join(dir, glob))
		if err != nil || len(files) == 0 {
			return nil, fmt.Errorf("no CRD files %s in %s", glob, dir)
		}
		for _, f := range files {
			objs, err := parse(f)
			if err != nil {
				return nil, err
			}
			crds = append(crds, objs...)
		}
	}
	return crds, nil
}

// parse returns the CustomResourceDefinitions of a multi-document YAML file.
func parse(file string) ([]*unstructured.Unstructured, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if u := (&unstructured.Unstructured{Object: m}); u.GetKind() == "CustomResourceDefinition" {
			objs = append(objs, u)
		}
	}
}

// crds is the kind of the objects Install applies.
var crds = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// Install applies the sets' CRDs to the cluster of cfg (server-side, field manager
// "meshtest") and waits until they are Established.
func Install(ctx context.Context, cfg *rest.Config, sets ...CRDSet) error {
	c, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	var names []string
	for _, s := range sets {
		objs, err := s.CRDs(ctx)
		if err != nil {
			return err
		}
		for _, o := range objs {
			_, err := c.Resource(crds).Apply(ctx, o.GetName(), o, metav1.ApplyOptions{FieldManager: "meshtest", Force: true})
			if err != nil {
				return fmt.Errorf("apply CustomResourceDefinition %s: %w", o.GetName(), err)
			}
			names = append(names, o.GetName())
		}
	}
	for _, name := range names {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			o, err := c.Resource(crds).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
			for _, cond := range conds {
				m, _ := cond.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("CustomResourceDefinition %s not Established: %w", name, err)
		}
	}
	return nil
}
