package apply

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/observe"
)

// Plan says what Apply would do with objs, changing nothing: every object is
// dry-run applied server-side (so defaulting, admission and validation run as in a
// real apply) and compared with the live object. Updates carry the changed fields in
// [deploy.Change.Diff]; fields another manager took over carry [deploy.Change.Drift]
// (their diff is what a forced apply would do). With [Options.Prune] the plan ends
// with the objects a prune would delete.
//
// Objects whose kind a CRD of the same set defines, and objects in a namespace the
// set creates, cannot be dry-run before their CRD or namespace exists; they are
// planned as created.
func (m *Manager) Plan(ctx context.Context, objs []*unstructured.Unstructured) (*deploy.ChangeSet, error) {
	prepared, err := m.prepare(objs)
	if err != nil {
		return nil, err
	}
	var inv *inventory
	if m.opts.ApplySet != nil {
		if inv, err = m.openInventory(ctx, prepared); err != nil {
			return nil, err
		}
	}
	st := m.step("plan", len(prepared))
	cs, err := m.plan(ctx, inv, prepared, st)
	st.End(err, cs.Summary())
	return cs, err
}

func (m *Manager) plan(ctx context.Context, inv *inventory, prepared []*object, st *observe.Step) (*deploy.ChangeSet, error) {
	cs := &deploy.ChangeSet{}
	newNamespaces := map[string]bool{}
	for _, stage := range stages(prepared) {
		var run []*object
		for _, o := range stage {
			if o.mapping == nil || (!o.cluster && newNamespaces[o.obj.GetNamespace()]) {
				cs.Append(deploy.Change{Object: o.ref, Action: deploy.Created})
				st.Progress(o.ref.String() + " " + string(deploy.Created))
				continue
			}
			run = append(run, o)
		}
		changes, err := m.applyStage(ctx, run, true, st)
		if err != nil {
			return nil, err
		}
		for _, c := range changes {
			if c.Object.Group == "" && c.Object.Kind == "Namespace" && c.Action == deploy.Created {
				newNamespaces[c.Object.Name] = true
			}
		}
		cs.Append(changes...)
	}
	if inv != nil && m.opts.Prune {
		pruned, err := m.prune(ctx, inv, prepared, true, nil)
		if err != nil {
			return nil, err
		}
		cs.Append(pruned...)
	}
	return cs, nil
}

// dryRunDrift is applyOne's dry run: without force first, so fields another manager
// took over show up as drift, then with force to learn the diff a forced apply makes.
func (m *Manager) dryRunDrift(ctx context.Context, o *object, live *unstructured.Unstructured, known bool) (deploy.Change, error) {
	c, err := m.applyOnce(ctx, o, live, known, true, false)
	var ce *ConflictError
	if !errors.As(err, &ce) {
		return c, err
	}
	c, err = m.applyOnce(ctx, o, live, known, true, true)
	c.Drift = ce.Conflicts
	return c, err
}

// ignoredFields are server-maintained and left out of diffs.
var ignoredFields = [][]string{
	{"metadata", "managedFields"},
	{"metadata", "resourceVersion"},
	{"metadata", "generation"},
	{"metadata", "creationTimestamp"},
	{"metadata", "uid"},
	{"status"},
}

// diffObjects returns the fields that differ between two versions of an object,
// sorted by path. The values of a Secret are never in it (see redactSecret).
func diffObjects(before, after map[string]any) []deploy.FieldDiff {
	b := (&unstructured.Unstructured{Object: before}).DeepCopy().Object
	a := (&unstructured.Unstructured{Object: after}).DeepCopy().Object
	for _, f := range ignoredFields {
		unstructured.RemoveNestedField(b, f...)
		unstructured.RemoveNestedField(a, f...)
	}
	var out []deploy.FieldDiff
	if isSecret(before) || isSecret(after) {
		redactSecret(b, a, &out)
	}
	diffValue("", b, a, &out)
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func isSecret(obj map[string]any) bool {
	return obj["apiVersion"] == "v1" && obj["kind"] == "Secret"
}

// secretValues are the fields of a Secret whose values are secret: its data and
// stringData, and the annotation in which kubectl apply keeps a copy of them.
var secretValues = [][]string{
	{"data"},
	{"stringData"},
	{"metadata", "annotations", "kubectl.kubernetes.io/last-applied-configuration"},
}

// redactSecret moves the secret values out of a Secret's two versions b and a, and
// adds a diff with [deploy.Redacted] values for each key that is added, changed or
// removed: a plan says which keys change, never their values.
func redactSecret(b, a map[string]any, out *[]deploy.FieldDiff) {
	for _, f := range secretValues {
		bv, bok, _ := unstructured.NestedFieldNoCopy(b, f...)
		av, aok, _ := unstructured.NestedFieldNoCopy(a, f...)
		unstructured.RemoveNestedField(b, f...)
		unstructured.RemoveNestedField(a, f...)
		path := ""
		for _, p := range f {
			path = joinPath(path, p)
		}
		bm, bIsMap := bv.(map[string]any)
		am, aIsMap := av.(map[string]any)
		if (bIsMap || !bok) && (aIsMap || !aok) && len(f) == 1 {
			for k := range bm {
				redacted(joinPath(path, k), bm[k], am[k], true, hasKey(am, k), out)
			}
			for k := range am {
				if !hasKey(bm, k) {
					redacted(joinPath(path, k), nil, am[k], false, true, out)
				}
			}
			continue
		}
		redacted(path, bv, av, bok, aok, out)
	}
}

// redacted adds the diff of a secret value at path, without the value.
func redacted(path string, b, a any, bok, aok bool, out *[]deploy.FieldDiff) {
	if bok == aok && reflect.DeepEqual(b, a) {
		return
	}
	d := deploy.FieldDiff{Path: path}
	if bok {
		d.Before = deploy.Redacted
	}
	if aok {
		d.After = deploy.Redacted
	}
	*out = append(*out, d)
}

func hasKey(m map[string]any, k string) bool {
	_, ok := m[k]
	return ok
}

func diffValue(path string, b, a any, out *[]deploy.FieldDiff) {
	switch bt := b.(type) {
	case map[string]any:
		at, ok := a.(map[string]any)
		if !ok {
			break
		}
		for k, bv := range bt {
			diffValue(joinPath(path, k), bv, at[k], out)
		}
		for k, av := range at {
			if _, ok := bt[k]; !ok {
				diffValue(joinPath(path, k), nil, av, out)
			}
		}
		return
	case []any:
		at, ok := a.([]any)
		if !ok {
			break
		}
		bn, an := named(bt), named(at)
		if bn != nil && an != nil {
			for n, bv := range bn {
				diffValue(fmt.Sprintf("%s[name=%s]", path, n), bv, an[n], out)
			}
			for n, av := range an {
				if _, ok := bn[n]; !ok {
					diffValue(fmt.Sprintf("%s[name=%s]", path, n), nil, av, out)
				}
			}
			return
		}
		if len(bt) == len(at) {
			for i := range bt {
				diffValue(fmt.Sprintf("%s[%d]", path, i), bt[i], at[i], out)
			}
			return
		}
	}
	if !reflect.DeepEqual(b, a) {
		*out = append(*out, deploy.FieldDiff{Path: path, Before: b, After: a})
	}
}

// named indexes a list whose items are all maps with a distinct string "name"
// (containers, ports, env, volumes), or returns nil.
func named(list []any) map[string]any {
	out := make(map[string]any, len(list))
	for _, v := range list {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		n, ok := m["name"].(string)
		if !ok || out[n] != nil {
			return nil
		}
		out[n] = m
	}
	return out
}

func joinPath(path, key string) string {
	if strings.ContainsAny(key, "./[]") {
		return path + "[" + key + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}
