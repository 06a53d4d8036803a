package provider

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/apply"
	"github.com/shipkit/shipkit/deploy/render"
)

// FieldManager owns the fields the provider applies. It is not the shipkit CLI's, so
// the pipeline and Terraform applying the same objects show up as conflicts.
const FieldManager = "shipkit-terraform"

// applySetPrefix starts the name of a release's ApplySet parent ConfigMap.
const applySetPrefix = "shipkit-release-"

// releaseSpec is what shipkit_release deploys, read from its configuration.
type releaseSpec struct {
	name, namespace string
	kustomizeDir    string
	files           []string
	images          []name.Digest
	revision        string
	wait            time.Duration
	force           bool
}

// applySet is the release's inventory in the cluster.
func (s releaseSpec) applySet() *apply.ApplySet {
	return &apply.ApplySet{Name: applySetPrefix + s.name, Namespace: s.namespace}
}

// render renders the release's objects with its images pinned.
func (s releaseSpec) render(ctx context.Context) ([]*unstructured.Unstructured, error) {
	opts := []render.Option{render.WithImages(s.images...)}
	if s.revision != "" {
		opts = append(opts, render.WithRevision(s.revision))
	}
	var r *render.Renderer
	if s.kustomizeDir != "" {
		r = render.Kustomize(nil, s.kustomizeDir, opts...)
	} else {
		r = render.Files(nil, s.files, opts...)
	}
	return r.Render(ctx)
}

// manager returns a deploy/apply manager for the release: its ApplySet, pruning on,
// the release's namespace for objects that name none.
func (c *clients) manager(ctx context.Context, s releaseSpec) (*apply.Manager, error) {
	cfg, err := c.restConfig()
	if err != nil {
		return nil, err
	}
	return apply.New(cfg, apply.Options{
		FieldManager: FieldManager,
		Force:        s.force,
		Namespace:    s.namespace,
		Wait:         s.wait,
		ApplySet:     s.applySet(),
		Prune:        true,
		Observer:     logObserver{ctx},
	})
}

// objectKey names an object in the objects map: Kind/namespace/name as deploy prints
// it, the namespace left out when the object names none (the release's namespace).
func objectKey(obj *unstructured.Unstructured) string { return deploy.RefOf(obj).String() }

// encodeObjects returns the objects as YAML, keyed by [objectKey].
func encodeObjects(objs []*unstructured.Unstructured) (map[string]string, error) {
	out := make(map[string]string, len(objs))
	for _, o := range objs {
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", objectKey(o), err)
		}
		k := objectKey(o)
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%s appears twice in the release", k)
		}
		out[k] = string(b)
	}
	return out, nil
}

// decodeObjects parses the objects map back, in key order.
func decodeObjects(m map[string]string) ([]*unstructured.Unstructured, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]*unstructured.Unstructured, 0, len(m))
	for _, k := range keys {
		objs, err := render.Parse(k, []byte(m[k]))
		if err != nil {
			return nil, err
		}
		if len(objs) != 1 {
			return nil, fmt.Errorf("%s: %d objects, want 1", k, len(objs))
		}
		out = append(out, objs[0])
	}
	return out, nil
}

// keyOf finds the key in m of the object a change concerns: the change names the
// namespace an object got from the release, the key may not.
func keyOf[V any](m map[string]V, ref deploy.ObjectRef, namespace string) (string, bool) {
	if _, ok := m[ref.String()]; ok {
		return ref.String(), true
	}
	if ref.Namespace == namespace {
		ref.Namespace = ""
		if _, ok := m[ref.String()]; ok {
			return ref.String(), true
		}
	}
	return "", false
}

// changedInCluster stands for a Secret value the cluster has and a plan never shows
// (deploy.Redacted): base64 under data, which must hold base64, plain elsewhere.
const changedInCluster = "(changed in the cluster; value not shown)"

// liveValue is the live value a diff records, or for a redacted one a placeholder
// that differs from the value to apply, so the plan still shows the Secret changing.
func liveValue(d deploy.FieldDiff) any {
	if d.Before != deploy.Redacted {
		return d.Before
	}
	if strings.HasPrefix(d.Path, "data.") || strings.HasPrefix(d.Path, "data[") {
		return base64.StdEncoding.EncodeToString([]byte(changedInCluster))
	}
	return changedInCluster
}

// liveView returns the objects as the cluster has them, field by field, judged by a
// plan of the objects: an object the plan would create is left out, an object it
// would configure gets the live value of every field the plan would change (the
// plan's Before), and an unchanged object stays as it is. Compared with the objects
// to apply, it shows exactly what an apply would change.
func liveView(objs map[string]string, cs *deploy.ChangeSet, namespace string) (map[string]string, error) {
	out := make(map[string]string, len(objs))
	for k, v := range objs {
		out[k] = v
	}
	for _, c := range cs.Changes {
		k, ok := keyOf(out, c.Object, namespace)
		if !ok {
			continue // a prune: not one of the objects
		}
		switch c.Action {
		case deploy.Created:
			delete(out, k)
		case deploy.Configured:
			var obj map[string]any
			if err := yaml.Unmarshal([]byte(out[k]), &obj); err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			for _, d := range c.Diff {
				if err := setPath(obj, d.Path, liveValue(d), d.Before == nil); err != nil {
					return nil, fmt.Errorf("%s: %w", k, err)
				}
			}
			b, err := yaml.Marshal(obj)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = string(b)
		}
	}
	return out, nil
}
