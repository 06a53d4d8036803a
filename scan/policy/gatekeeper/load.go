package gatekeeper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/shipkit/shipkit/scan/policy/internal/policyfile"
)

// LoadFiles reads the ConstraintTemplates and Constraints in the YAML or JSON files
// at paths (a directory: every .yaml, .yml and .json file below it) and compiles
// them with [New]; other objects in the files are ignored.
func LoadFiles(ctx context.Context, paths []string, opts ...Option) (*Policies, error) {
	var objs []*unstructured.Unstructured
	if err := files().ReadPaths(ctx, paths, addPolicies(&objs)); err != nil {
		return nil, err
	}
	return New(ctx, objs, opts...)
}

// LoadFS reads the ConstraintTemplates and Constraints in every .yaml, .yml and
// .json file of fsys (an embed.FS, for example) and compiles them with [New];
// errors name the files by their paths in fsys.
func LoadFS(ctx context.Context, fsys fs.FS, opts ...Option) (*Policies, error) {
	var objs []*unstructured.Unstructured
	if err := files().ReadFS(ctx, fsys, addPolicies(&objs)); err != nil {
		return nil, err
	}
	return New(ctx, objs, opts...)
}

// files reads policy files: below a directory, the .yaml, .yml and .json files.
func files() policyfile.Reader {
	return policyfile.Reader{Engine: "gatekeeper", Want: func(path string) bool {
		ext := filepath.Ext(path)
		return ext == ".yaml" || ext == ".yml" || ext == ".json"
	}}
}

// addPolicies parses each file into objs.
func addPolicies(objs *[]*unstructured.Unstructured) func(name string, data []byte) error {
	return func(name string, data []byte) error {
		found, err := parse(name, data)
		if err != nil {
			return err
		}
		*objs = append(*objs, found...)
		return nil
	}
}

// parse decodes the YAML or JSON documents of one file, keeping the templates and
// constraints.
func parse(file string, data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for doc := 1; ; doc++ {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("gatekeeper: %s: document %d: %w", file, doc, err)
		}
		u := &unstructured.Unstructured{Object: m}
		if len(m) == 0 || !isPolicy(u) {
			continue
		}
		if u.GetKind() == "" || u.GetName() == "" || !strings.Contains(u.GetAPIVersion(), "/") {
			return nil, fmt.Errorf("gatekeeper: %s: document %d: a %s without kind or metadata.name", file, doc, u.GetAPIVersion())
		}
		out = append(out, u)
	}
}
