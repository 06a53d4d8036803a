package helm

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"helm.sh/helm/v4/pkg/action"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	release "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/strvals"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/shipkit/shipkit/deploy/render"
)

// RenderRelease loads the chart, renders it as `helm template --include-crds` does
// (see the package documentation for values, capabilities, dependencies and hooks),
// applies [WithRender]'s options and returns the objects with what they came from.
func (r *Renderer) RenderRelease(ctx context.Context) (rel *Release, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ch, digest, err := r.load(ctx)
	if err != nil {
		return nil, err
	}
	what := r.what()
	if digest.DigestStr() != "" {
		what += "@" + digest.DigestStr()
	}
	if err := checkDependencies(what, ch); err != nil {
		return nil, err
	}
	if ch.Metadata.Type == "library" {
		return nil, fmt.Errorf("%s: %s is a library chart: %w", what, ch.Name(), ErrNotInstallable)
	}
	kv := r.cfg.kubeVersion
	if c := ch.Metadata.KubeVersion; c != "" && !chartutil.IsCompatibleRange(c, kv.String()) {
		return nil, fmt.Errorf("%s: %s requires Kubernetes %s, not %s: %w", what, ch.Name(), c, kv.String(), ErrNotInstallable)
	}
	vals, err := r.values(what)
	if err != nil {
		return nil, err
	}
	name := r.cfg.releaseName
	if name == "" {
		name = ch.Name()
	}
	hrel, err := r.install(ctx, what, ch, name, vals)
	if err != nil {
		return nil, err
	}
	rel = &Release{Name: name, Namespace: r.cfg.namespace, Digest: digest, Notes: hrel.Info.Notes,
		Chart: Chart{Name: ch.Metadata.Name, Version: ch.Metadata.Version, AppVersion: ch.Metadata.AppVersion}}
	if rel.Objects, err = parseManifest(what, hrel.Manifest); err != nil {
		return nil, err
	}
	var hooks []string
	for _, h := range hrel.Hooks {
		desc := fmt.Sprintf("%s/%s (%s) from %s", h.Kind, h.Name, joinEvents(h.Events), h.Path)
		if slices.Contains(h.Events, release.HookTest) || r.cfg.withoutHooks {
			rel.DroppedHooks = append(rel.DroppedHooks, desc)
			continue
		}
		hooks = append(hooks, desc)
	}
	if len(hooks) > 0 {
		return nil, fmt.Errorf("%s: %s; render with WithoutHooks to drop them: %w", what, strings.Join(hooks, ", "), ErrHook)
	}
	if err := render.Apply(rel.Objects, r.cfg.renderOptions...); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return rel, nil
}

// install renders the chart with Helm's install action in client-only dry-run mode,
// exactly what `helm template` runs: no cluster is contacted, lookup returns nothing.
func (r *Renderer) install(ctx context.Context, what string, ch *chart.Chart, name string, vals map[string]any) (rel *release.Release, err error) {
	// Helm's template engine is a big library fed with the chart's templates: a bug
	// in it surfaces as an error, not a crash of the program that embeds us.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s: helm internal error: %v", what, p)
		}
	}()
	inst := action.NewInstall(action.NewConfiguration(action.ConfigurationSetLogger(r.cfg.logger.Handler())))
	inst.DryRunStrategy = action.DryRunClient
	inst.ReleaseName = name
	inst.Namespace = r.cfg.namespace
	inst.Replace = true // no release storage to check the name against
	inst.IncludeCRDs = true
	inst.KubeVersion = r.cfg.kubeVersion
	inst.APIVersions = append(inst.APIVersions, r.cfg.apiVersions...)
	out, err := inst.RunWithContext(ctx, ch, vals)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	rel, ok := out.(*release.Release)
	if !ok {
		return nil, fmt.Errorf("%s: helm returned a release of type %T", what, out)
	}
	return rel, nil
}

// values merges the values files, WithValues and WithSet, as helm merges -f,
// and --set.
func (r *Renderer) values(what string) (map[string]any, error) {
	base := map[string]any{}
	for _, p := range r.cfg.valuesFiles {
		data, err := readFileMax(p, r.cfg.maxChart)
		if err != nil {
			return nil, fmt.Errorf("%s: values file: %w", what, err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("%s: values file %s: %w", what, p, err)
		}
		base = loader.MergeMaps(base, m)
	}
	for _, v := range r.cfg.values {
		base = loader.MergeMaps(base, deepCopy(v))
	}
	for _, s := range r.cfg.sets {
		if err := strvals.ParseInto(s, base); err != nil {
			return nil, fmt.Errorf("%s: --set %q: %w", what, s, err)
		}
	}
	return base, nil
}

// checkDependencies checks that charts/ vendors every dependency of Chart.yaml and,
// when there is a Chart.lock, the version it locked.
func checkDependencies(what string, ch *chart.Chart) error {
	vendored := map[string][]string{} // name -> versions
	for _, d := range ch.Dependencies() {
		vendored[d.Name()] = append(vendored[d.Name()], d.Metadata.Version)
	}
	var missing []string
	for _, d := range ch.Metadata.Dependencies {
		if _, ok := vendored[d.Name]; !ok && !slices.Contains(missing, d.Name) {
			missing = append(missing, d.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s: %s (nothing is fetched: vendor them with helm dependency build): %w",
			what, strings.Join(missing, ", "), ErrMissingDependency)
	}
	if ch.Lock == nil {
		return nil
	}
	var bad []string
	for _, l := range ch.Lock.Dependencies {
		versions, ok := vendored[l.Name]
		switch {
		case !ok:
			bad = append(bad, fmt.Sprintf("%s %s is locked but not vendored", l.Name, l.Version))
		case !slices.Contains(versions, l.Version):
			bad = append(bad, fmt.Sprintf("%s is locked at %s, vendored at %s", l.Name, l.Version, strings.Join(versions, ", ")))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s: %s: %w", what, strings.Join(bad, "; "), ErrDependencyLock)
	}
	return nil
}

// docSeparator splits Helm's manifest into documents.
var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// parseManifest parses Helm's rendered manifest into objects, in order, naming each
// document's template in errors.
func parseManifest(what, manifest string) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	for _, doc := range docSeparator.Split(manifest, -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		source := "manifest"
		for _, line := range strings.SplitN(strings.TrimLeft(doc, "\n"), "\n", 2)[:1] {
			if s, ok := strings.CutPrefix(line, "# Source: "); ok {
				source = s
			}
		}
		got, err := render.Parse(what+": "+source, []byte(doc))
		if err != nil {
			return nil, err
		}
		for _, o := range got {
			if err := integers(o); err != nil {
				return nil, fmt.Errorf("%s: %s: %w", what, source, err)
			}
		}
		objs = append(objs, got...)
	}
	return objs, nil
}

// integers re-reads obj through JSON, so whole numbers are int64 as in
// deploy/render's kustomize output and the API machinery's (render.Parse, through
// YAML, leaves them float64).
func integers(obj *unstructured.Unstructured) error {
	b, err := obj.MarshalJSON()
	if err != nil {
		return err
	}
	return obj.UnmarshalJSON(b)
}

func joinEvents(events []release.HookEvent) string {
	s := make([]string, len(events))
	for i, e := range events {
		s[i] = e.String()
	}
	return strings.Join(s, ",")
}

// deepCopy copies a values map, its nested maps and slices.
func deepCopy(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = deepCopyValue(v)
	}
	return out
}

func deepCopyValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return deepCopy(v)
	case []any:
		s := make([]any, len(v))
		for i := range v {
			s[i] = deepCopyValue(v[i])
		}
		return s
	default:
		return v
	}
}
