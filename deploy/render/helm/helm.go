// Package helm renders Helm charts into the objects a deploy applies, with the Helm v4
// SDK (helm.sh/helm/v4), as `helm template` does: the same objects in the same order,
// as []*unstructured.Unstructured in the shape deploy/render produces, so the images
// are pinned by deploy/render's own pinning ([WithRender] takes render.WithImages,
// render.WithImage, render.WithApp, render.WithRevision) and the gate applies
// unchanged. A [Renderer] implements deploy.Renderer.
//
// A chart comes from a directory (its .helmignore honoured), a .tgz archive, or an
// OCI registry ("oci://registry/repository/chart:tag" or "@sha256:…"): the reference
// is resolved to its manifest's digest, which [Release.Digest] records, and read with
// the docker keychain ([WithKeychain], [WithTransport] to change that).
//
// What rendering does and does not do:
//
//   - Values: the chart's values.yaml, then [WithValuesFiles] in order, then
//     [WithValues], then [WithSet] (helm's --set syntax), merged as helm merges -f and
//     --set; values.schema.json is enforced.
//   - Capabilities: [WithKubeVersion] and [WithAPIVersions], over Helm's defaults;
//     nothing is asked of a cluster. `lookup` returns nothing (an empty map) and
//     getHostByName no address, as in `helm template` and Argo CD.
//   - Dependencies come only from what the chart vendors in charts/ (directories or
//     archives); nothing is fetched. A Chart.yaml dependency missing from charts/ is
//     an error naming it ([ErrMissingDependency]); a vendored dependency whose version
//     is not the one Chart.lock records is an error naming both ([ErrDependencyLock]).
//     Conditions, tags and aliases apply as in Helm. A Helm v2-era chart (Chart.yaml
//     apiVersion v1, or none) lists its dependencies in requirements.yaml and locks
//     them in requirements.lock, which stand for Chart.yaml's and Chart.lock's.
//   - CRDs from crds/ (of the chart and its subcharts) come first, then the templates'
//     objects in Helm's install order (kind, then name), as `helm template
//     --include-crds` prints them.
//   - Hooks (templates annotated helm.sh/hook) are refused: Render fails with
//     [ErrHook] naming each, since applying a pre-install Job or a post-upgrade hook as
//     an ordinary object would run it at the wrong time, or every time. [WithoutHooks]
//     drops them instead (`helm template --no-hooks`). Test hooks (helm.sh/hook: test)
//     run only under `helm test` and are always dropped (`--skip-tests`).
//
// Charts are untrusted input: an archive or an OCI layer larger than
// [WithMaxArchiveSize], more files than [WithMaxFiles] or more bytes unpacked than
// [WithMaxChartSize] fail with [ErrTooLarge]; entries with absolute or ../ paths,
// symbolic or hard links and device files fail with [ErrUnsafeChart] (in a directory
// too: a chart directory may hold no symbolic link). Helm's own loader, which this
// package hands the checked files to, bounds archives of subcharts nested in charts/
// by its own limits (100 MiB unpacked, 5 MiB a file).
package helm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/strvals"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/render"
	"github.com/shipkit/shipkit/internal/option"
)

// ErrInvalidOption is deploy.ErrInvalidOption: [New] wraps it for every option given a
// value it cannot use.
var ErrInvalidOption = deploy.ErrInvalidOption

// The ways loading or rendering a chart fails; errors wrap one of them and name the
// chart, and the file, dependency or object at fault.
var (
	// ErrTooLarge: an archive, the unpacked chart or its number of files is past a limit.
	ErrTooLarge = errors.New("chart too large")
	// ErrUnsafeChart: a chart file with an absolute or ../ path, a symbolic or hard
	// link, or a device, pipe or socket.
	ErrUnsafeChart = errors.New("unsafe chart file")
	// ErrMissingDependency: a dependency of Chart.yaml that charts/ does not vendor.
	ErrMissingDependency = errors.New("dependency not vendored in charts/")
	// ErrDependencyLock: a vendored dependency whose version is not Chart.lock's.
	ErrDependencyLock = errors.New("vendored dependency does not match Chart.lock")
	// ErrHook: the chart renders Helm hooks, which are refused (see [WithoutHooks]).
	ErrHook = errors.New("chart has Helm hooks")
	// ErrNotInstallable: a library chart, or a chart whose Chart.yaml kubeVersion
	// excludes [WithKubeVersion].
	ErrNotInstallable = errors.New("chart cannot be installed")
)

// Default limits, for [WithMaxArchiveSize], [WithMaxChartSize] and [WithMaxFiles].
const (
	DefaultMaxArchiveSize = 16 << 20  // compressed .tgz or OCI layer
	DefaultMaxChartSize   = 100 << 20 // unpacked, every file together (Helm's own limit)
	DefaultMaxFiles       = 10000
)

// DefaultKubeVersion is .Capabilities.KubeVersion without [WithKubeVersion]: the
// version Helm's SDK derives from the k8s.io/client-go it is built with (v0.37 ->
// v1.37.0), which the Helm CLI built from this module's go.mod uses too. (Helm's SDK
// itself answers v1.20.0 inside test binaries; this package does not.)
const DefaultKubeVersion = "v1.37.0"

// DefaultNamespace is the namespace of a release without [WithNamespace], as in Helm.
const DefaultNamespace = "default"

// Option configures a [Renderer]; [New] validates every option.
type Option func(*config)

type config struct {
	errs          option.List
	valuesFiles   []string
	values        []map[string]any
	sets          []string
	releaseName   string
	namespace     string
	kubeVersion   *common.KubeVersion
	apiVersions   []string
	withoutHooks  bool
	keychain      authn.Keychain
	transport     http.RoundTripper
	maxArchive    int64
	maxChart      int64
	maxFiles      int
	renderOptions []render.Option
	logger        *slog.Logger
}

// WithValuesFiles merges YAML values files, in order, over the chart's values.yaml
// (helm's -f). They are read by each Render.
func WithValuesFiles(paths ...string) Option {
	return func(c *config) {
		for _, p := range paths {
			if p == "" {
				c.errs.Addf("WithValuesFiles: empty path")
				continue
			}
			c.valuesFiles = append(c.valuesFiles, p)
		}
	}
}

// WithValues merges values over the chart's and the values files' (after
// [WithValuesFiles], before [WithSet]). The map is copied.
func WithValues(values map[string]any) Option {
	return func(c *config) {
		if values != nil {
			c.values = append(c.values, deepCopy(values))
		}
	}
}

// WithSet merges overrides in helm's --set syntax ("image.tag=v2,replicas=3"), last,
// in order.
func WithSet(exprs ...string) Option {
	return func(c *config) {
		for _, e := range exprs {
			if _, err := strvals.Parse(e); err != nil {
				c.errs.Addf("WithSet(%q): %w", e, err)
				continue
			}
			c.sets = append(c.sets, e)
		}
	}
}

// WithReleaseName names the release (.Release.Name); the default is the chart's name.
func WithReleaseName(name string) Option {
	return func(c *config) {
		if err := chartutil.ValidateReleaseName(name); err != nil {
			c.errs.Addf("WithReleaseName(%q): %w", name, err)
			return
		}
		c.releaseName = name
	}
}

// WithNamespace sets the release's namespace (.Release.Namespace); the default is
// [DefaultNamespace]. Helm does not set it on the objects; templates do.
func WithNamespace(ns string) Option {
	return func(c *config) {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			c.errs.Addf("WithNamespace(%q): %s", ns, strings.Join(errs, "; "))
			return
		}
		c.namespace = ns
	}
}

// WithKubeVersion sets .Capabilities.KubeVersion ("v1.34.1" or "1.34"), which a
// chart's kubeVersion constraint is checked against; the default is
// [DefaultKubeVersion].
func WithKubeVersion(v string) Option {
	return func(c *config) {
		kv, err := common.ParseKubeVersion(v)
		if err != nil {
			c.errs.Addf("WithKubeVersion(%q): %w", v, err)
			return
		}
		c.kubeVersion = kv
	}
}

// WithAPIVersions adds to .Capabilities.APIVersions ("monitoring.coreos.com/v1" or
// "monitoring.coreos.com/v1/ServiceMonitor"), as helm's --api-versions.
func WithAPIVersions(versions ...string) Option {
	return func(c *config) {
		for _, v := range versions {
			if v == "" || strings.ContainsAny(v, " \t\n,") {
				c.errs.Addf("WithAPIVersions(%q): not a group/version", v)
				continue
			}
			c.apiVersions = append(c.apiVersions, v)
		}
	}
}

// WithoutHooks drops the chart's hooks instead of refusing the chart ([ErrHook]), as
// `helm template --no-hooks` does: what the hooks would have done is not done.
func WithoutHooks() Option { return func(c *config) { c.withoutHooks = true } }

// WithKeychain sets the credentials for oci:// charts; the default is
// authn.DefaultKeychain (the docker config).
func WithKeychain(k authn.Keychain) Option {
	return func(c *config) {
		if k == nil {
			c.errs.Addf("WithKeychain: nil keychain")
			return
		}
		c.keychain = k
	}
}

// WithTransport sets the HTTP transport for oci:// charts; the default is
// go-containerregistry's.
func WithTransport(t http.RoundTripper) Option {
	return func(c *config) {
		if t == nil {
			c.errs.Addf("WithTransport: nil transport")
			return
		}
		c.transport = t
	}
}

// WithMaxArchiveSize bounds a .tgz chart or an OCI chart layer, compressed; 0 means
// [DefaultMaxArchiveSize].
func WithMaxArchiveSize(n int64) Option {
	return func(c *config) {
		if n < 0 {
			c.errs.Addf("WithMaxArchiveSize(%d): negative", n)
			return
		}
		c.maxArchive = n
	}
}

// WithMaxChartSize bounds the bytes of the chart's files together, unpacked; 0 means
// [DefaultMaxChartSize].
func WithMaxChartSize(n int64) Option {
	return func(c *config) {
		if n < 0 {
			c.errs.Addf("WithMaxChartSize(%d): negative", n)
			return
		}
		c.maxChart = n
	}
}

// WithMaxFiles bounds the number of the chart's files; 0 means [DefaultMaxFiles].
func WithMaxFiles(n int) Option {
	return func(c *config) {
		if n < 0 {
			c.errs.Addf("WithMaxFiles(%d): negative", n)
			return
		}
		c.maxFiles = n
	}
}

// WithRender applies deploy/render's options to the rendered objects, by
// render.Apply: pins (render.WithImages, render.WithImage, render.AllowUnusedImages),
// labels (render.WithApp) and the revision (render.WithRevision), exactly as for a
// kustomization.
func WithRender(opts ...render.Option) Option {
	return func(c *config) { c.renderOptions = append(c.renderOptions, opts...) }
}

// WithLogger sets the logger Helm's SDK writes to; the default discards.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l == nil {
			c.errs.Addf("WithLogger: nil logger")
			return
		}
		c.logger = l
	}
}

// Renderer renders one chart. It implements deploy.Renderer; a Renderer is immutable
// and safe for concurrent use.
type Renderer struct {
	source string
	oci    name.Reference // set for oci:// sources
	cfg    config
}

var _ deploy.Renderer = (*Renderer)(nil)

// New returns a Renderer for the chart at source: a chart directory, a .tgz archive,
// or "oci://registry/repository/chart" with a tag or a digest. Every option given a
// value it cannot use is named in the error, which wraps [ErrInvalidOption].
func New(source string, opts ...Option) (*Renderer, error) {
	r := &Renderer{source: source, cfg: config{
		namespace: DefaultNamespace, keychain: authn.DefaultKeychain,
		maxArchive: DefaultMaxArchiveSize, maxChart: DefaultMaxChartSize, maxFiles: DefaultMaxFiles,
		logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}}
	for _, o := range opts {
		o(&r.cfg)
	}
	c := &r.cfg
	if c.kubeVersion == nil {
		kv, err := common.ParseKubeVersion(DefaultKubeVersion)
		if err != nil {
			return nil, fmt.Errorf("helm: DefaultKubeVersion: %w", err)
		}
		c.kubeVersion = kv
	}
	if c.maxArchive == 0 {
		c.maxArchive = DefaultMaxArchiveSize
	}
	if c.maxChart == 0 {
		c.maxChart = DefaultMaxChartSize
	}
	if c.maxFiles == 0 {
		c.maxFiles = DefaultMaxFiles
	}
	switch {
	case source == "":
		c.errs.Addf("source: empty")
	case strings.HasPrefix(source, "oci://"):
		ref, err := name.ParseReference(strings.TrimPrefix(source, "oci://"), name.StrictValidation)
		if err != nil {
			c.errs.Addf("source %q: %w", source, err)
		}
		r.oci = ref
	case strings.Contains(source, "://"):
		c.errs.Addf("source %q: only directories, .tgz files and oci:// references are read (nothing is fetched from chart repositories)", source)
	}
	if err := c.errs.Err("helm"); err != nil {
		return nil, err
	}
	return r, nil
}

// Chart describes the chart a [Release] was rendered from.
type Chart struct {
	Name       string
	Version    string
	AppVersion string
}

// Release is what [Renderer.RenderRelease] returns.
type Release struct {
	// Objects are the rendered objects: CRDs first, then in Helm's install order,
	// with [WithRender]'s options applied.
	Objects []*unstructured.Unstructured
	// Name and Namespace are the release's.
	Name, Namespace string
	// Chart is the chart's name and versions.
	Chart Chart
	// Digest is the manifest an oci:// source resolved to (the zero value for a
	// directory or an archive): render by it again to get the same chart.
	Digest name.Digest
	// Notes is the chart's rendered NOTES.txt, if any.
	Notes string
	// DroppedHooks names the hooks dropped: test hooks, and every hook with
	// [WithoutHooks], as "kind/name (events) from path".
	DroppedHooks []string
}

// Render renders the chart and returns its objects (see [Release.Objects]).
func (r *Renderer) Render(ctx context.Context) ([]*unstructured.Unstructured, error) {
	rel, err := r.RenderRelease(ctx)
	if err != nil {
		return nil, err
	}
	return rel.Objects, nil
}

// what names the chart in errors.
func (r *Renderer) what() string { return "helm: chart " + r.source }
