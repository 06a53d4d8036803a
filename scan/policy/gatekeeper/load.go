package gatekeeper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// LoadFiles reads the ConstraintTemplates and Constraints in the YAML or JSON files
// at paths (a directory: every .yaml, .yml and .json file below it) and compiles
// them with [New]; other objects in the files are ignored.
func LoadFiles(ctx context.Context, paths []string, opts ...Option) (*Policies, error) {
	var objs []*unstructured.Unstructured
	for _, path := range paths {
		info, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("gatekeeper: %w", err)
		}
		if !info.IsDir() {
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("gatekeeper: %w", err)
			}
			found, err := parse(path, b)
			if err != nil {
				return nil, err
			}
			objs = append(objs, found...)
			continue
		}
		found, err := readFS(os.DirFS(path), path)
		if err != nil {
			return nil, err
		}
		objs = append(objs, found...)
	}
	return New(ctx, objs, opts...)
}

// LoadFS reads the ConstraintTemplates and Constraints in every .yaml, .yml and
// .json file of fsys (an embed.FS, for example) and compiles them with [New];
// errors name the files by their paths in fsys.
func LoadFS(ctx context.Context, fsys fs.FS, opts ...Option) (*Policies, error) {
	objs, err := readFS(fsys, "")
	if err != nil {
		return nil, err
	}
	return New(ctx, objs, opts...)
}

func readFS(fsys fs.FS, prefix string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		ext := filepath.Ext(path)
		if d.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
			return nil
		}
		b, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		name := path
		if prefix != "" {
			name = filepath.Join(prefix, filepath.FromSlash(path))
		}
		found, err := parse(name, b)
		if err != nil {
			return err
		}
		out = append(out, found...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("gatekeeper: read policies: %w", err)
	}
	return out, nil
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
