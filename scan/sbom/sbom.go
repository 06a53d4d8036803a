// Package sbom catalogs the packages of an image value in memory into a
// [scan.SBOM] with syft, and writes SBOMs as SPDX 2.3, CycloneDX 1.6 and syft JSON
// with syft's own encoders (see [Encode] for the one change: the image's package
// URL).
//
// An image value has a digest but no name: [WithSourceName] gives the repository it
// is pushed to, so that an SBOM's root component is that image by name and digest,
// pkg:oci/app@sha256:…?repository_url=registry.example%2Fteam%2Fapp.
//
// The image is read through stereoscope straight from the go-containerregistry value
// the build stage holds: no Docker daemon, no registry, no second pull. Layers are
// unpacked into a temporary directory that is removed before Catalog returns; tar
// entries are indexed, never extracted, so hostile paths ("../", absolute paths,
// symlinks out of the image, device files) cannot write or read outside it.
package sbom

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/anchore/stereoscope/pkg/file"
	"github.com/anchore/stereoscope/pkg/image"
	"github.com/anchore/syft/syft"
	"github.com/anchore/syft/syft/cataloging"
	"github.com/anchore/syft/syft/source"
	"github.com/anchore/syft/syft/source/stereoscopesource"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	// syft's RPM and Nix catalogers open SQLite through database/sql under the
	// driver name "sqlite" and fail every scan when none is registered. This is the
	// driver grype links (via gorm), so a program using both registers it once.
	_ "github.com/glebarez/go-sqlite"

	"github.com/shipkit/shipkit/internal/oci"
	"github.com/shipkit/shipkit/internal/option"
	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/scan"
	"github.com/shipkit/shipkit/scan/internal/parallel"
)

// DefaultMaxImageSize is the default limit on the uncompressed size of all layers of
// one image (see [WithMaxImageSize]).
const DefaultMaxImageSize int64 = 16 << 30

// ErrImageTooLarge is returned (wrapped) when an image's uncompressed layers exceed
// the limit set with [WithMaxImageSize].
var ErrImageTooLarge = errors.New("image layers exceed the size limit")

// ErrInvalidOption is matched (errors.Is) by the error of every Catalog method of a
// Cataloger made with an option value it cannot use, such as a concurrency below
// one ([New] returns no error, so the cataloger reports it on use). The error names
// the option and the value. It is the one invalid-option sentinel of every stage
// (deploy.ErrInvalidOption, mesh.ErrInvalidOption and cosign.ErrInvalidOption are
// the same value).
var ErrInvalidOption = option.ErrInvalid

// Option configures a [Cataloger].
type Option func(*Cataloger)

// WithTempDir sets the directory under which the cataloger unpacks layers (default:
// os.TempDir()). Everything it writes there is removed before Catalog returns.
// stereoscope and syft keep their own scratch directories under os.TempDir() (set
// TMPDIR to move them); those are removed too.
func WithTempDir(dir string) Option { return func(c *Cataloger) { c.tempDir = dir } }

// WithMaxImageSize limits the uncompressed size of all layers of one image, so a
// hostile image (a layer that inflates without end, huge sparse files) cannot fill
// the disk; zero means [DefaultMaxImageSize], and a negative n is refused (every
// Catalog method then returns an error wrapping [ErrInvalidOption]).
func WithMaxImageSize(n int64) Option { return func(c *Cataloger) { c.maxSize = n } }

// WithLogger sets the logger for the cataloger's own messages (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *Cataloger) { c.log = l } }

// WithObserver sets where the cataloger reports its steps (default: none;
// nil means none): one "catalog <platform>" step per image ("catalog <digest>"
// when the image names no platform), Started with the image digest, then Finished
// with the package count or Failed with the error.
func WithObserver(o observe.Observer) Option { return func(c *Cataloger) { c.observer = o } }

// WithSourceName names the repository the images are (or will be) pushed to, e.g.
// the one a build stage pushed the index to. The SBOM's root component (SPDX's
// described package, CycloneDX's metadata.component) is then the image by name and
// digest, "registry.example/team/app" at "sha256:…", with the package URL the purl
// spec gives an OCI image:
//
//	pkg:oci/app@sha256:…?arch=amd64&repository_url=registry.example%2Fteam%2Fapp
//
// Without it an image value has no name: the root component is named by its digest
// and has no package URL. [Cataloger.CatalogRemote] names the images by the
// reference it is given unless WithSourceName is set. A zero Repository is
// refused (by Catalog, as New returns no error).
func WithSourceName(repo name.Repository) Option {
	return func(c *Cataloger) { c.repo, c.hasRepo = repo, true }
}

// WithConcurrency sets how many images [Cataloger.CatalogIndex],
// [Cataloger.CatalogLayout], [Cataloger.CatalogRemote] and [Cataloger.CatalogImages]
// catalog at once (default: runtime.GOMAXPROCS(0) when New is called); 1
// catalogs them one after another. The SBOMs come back in the same order, with the
// same content, whatever n is. Each image in flight has its layers unpacked on disk
// and syft's index of its files in memory, so n bounds both. n < 1 is refused:
// every Catalog method then returns an error wrapping [ErrInvalidOption].
func WithConcurrency(n int) Option {
	return func(c *Cataloger) { c.workers, c.workersSet = n, true }
}

// WithConfig replaces syft's default cataloging configuration, e.g. to select
// catalogers or to change the search scope. The function receives the default
// configuration and returns the one to use.
func WithConfig(f func(*syft.CreateSBOMConfig) *syft.CreateSBOMConfig) Option {
	return func(c *Cataloger) { c.config = f }
}

// Cataloger reads images into SBOMs with syft. The zero value is not usable; make
// one with [New]. It is safe for concurrent use.
//
// A Cataloger builds syft's license scanner (its license corpus compiled into
// matchers: over a second of CPU and some tens of MiB) once, on first use, and
// keeps it for its life, where syft builds one for every image; a scanner the
// caller put in the context with syft.SetContextLicenseScanner is used instead.
type Cataloger struct {
	tempDir    string
	maxSize    int64
	log        *slog.Logger
	observer   observe.Observer
	config     func(*syft.CreateSBOMConfig) *syft.CreateSBOMConfig
	repo       name.Repository
	hasRepo    bool
	workers    int
	workersSet bool

	licMu    sync.Mutex
	licenses map[cataloging.LicenseConfig]*licenseScanner
	layers   *LayerCache

	noPathMemo bool // tests: catalog with syft's resolver as it is (see withPathMemo)
}

// licenseScanner is a context holding syft's license scanner for one license
// configuration, built once.
type licenseScanner struct {
	once sync.Once
	ctx  context.Context
	err  error
	keys []any // its context keys (see probeKeys)
}

var _ scan.Cataloger = (*Cataloger)(nil)

// New returns a cataloger with syft's default catalogers: among others, Go module
// build info in binaries, dpkg, apk and RPM databases, and Java archives.
func New(opts ...Option) *Cataloger {
	c := &Cataloger{}
	for _, o := range opts {
		if o != nil {
			o(c)
		}
	}
	if c.maxSize == 0 {
		c.maxSize = DefaultMaxImageSize
	}
	if !c.workersSet {
		c.workers = runtime.GOMAXPROCS(0)
	}
	c.licenses = map[cataloging.LicenseConfig]*licenseScanner{}
	c.log = observe.OrDiscardLogger(c.log)
	c.observer = observe.OrDiscard(c.observer)
	return c
}

// Catalog reads the packages of img into an SBOM whose subject is the image's
// digest. The image is read from the value, layer by layer, once. Its root
// component is named by [WithSourceName], else by its digest alone.
func (c *Cataloger) Catalog(ctx context.Context, img v1.Image) (*scan.SBOM, error) {
	return c.catalogNamed(ctx, img, c.repo)
}

// catalogNamed is Catalog with the image's repository (zero: unnamed).
func (c *Cataloger) catalogNamed(ctx context.Context, img v1.Image, repo name.Repository) (*scan.SBOM, error) {
	st := observe.NewStep(c.observer, observe.StageScan, "catalog", 0)
	s, err := c.catalog(ctx, img, repo, st)
	if err != nil {
		return nil, st.Fail(err)
	}
	st.Finish(fmt.Sprintf("%d packages", s.Syft().Artifacts.Packages.PackageCount()))
	return s, nil
}

func (c *Cataloger) catalog(ctx context.Context, img v1.Image, repo name.Repository, st *observe.Step) (_ *scan.SBOM, err error) {
	if img == nil {
		return nil, errors.New("catalog: no image")
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("catalog: image digest: %w", err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("catalog %s: manifest: %w", digest, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("catalog %s: config: %w", digest, err)
	}
	if cfg == nil {
		return nil, fmt.Errorf("catalog %s: image has no config", digest)
	}
	var platform *v1.Platform
	if p := cfg.Platform(); p != nil && p.OS != "" {
		platform = p
	}
	if platform != nil {
		st.Start("catalog "+platform.String(), digest.String())
	} else {
		st.Start("catalog "+digest.String(), digest.String())
	}

	dir, err := os.MkdirTemp(c.tempDir, "shipkit-sbom-")
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", digest, err)
	}
	defer func() {
		if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
			err = fmt.Errorf("catalog %s: remove temp dir: %w", digest, rerr)
		}
	}()
	layers := filepath.Join(dir, "layers")
	if err := os.Mkdir(layers, 0o700); err != nil {
		return nil, fmt.Errorf("catalog %s: %w", digest, err)
	}

	limited := &limitedImage{Image: img, budget: &atomic.Int64{}}
	limited.budget.Store(c.maxSize)
	gen := file.NewTempDirGenerator("shipkit-stereoscope")
	simg := image.New(limited, gen, layers,
		image.WithManifestDigest(digest.String()), image.WithManifest(raw))
	// Cleanup closes the layer files and removes gen's directories and layers
	// (the source's Close calls it too; it is safe twice).
	defer func() {
		if cerr := simg.Cleanup(); cerr != nil && err == nil {
			err = fmt.Errorf("catalog %s: clean up: %w", digest, cerr)
		}
	}()

	c.log.DebugContext(ctx, "reading image", "digest", digest.String())
	if err := simg.Read(ctx); err != nil {
		return nil, fmt.Errorf("catalog %s: read image: %w", digest, err)
	}
	src := stereoscopesource.New(simg, sourceConfig(repo, digest))
	if !c.noPathMemo {
		src = withPathMemo(src)
	}
	conf := syft.DefaultCreateSBOMConfig().WithTool("shipkit", "")
	if c.config != nil {
		conf = c.config(conf)
	}
	lctx, err := c.licenseScanner(conf.Licenses)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", digest, err)
	}
	run := c.useLayerCache(conf, img)
	s, err := syft.CreateSBOM(valuesFrom{ctx, lctx}, src, conf)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", digest, err)
	}
	if run != nil {
		if err := run.finish(ctx, s); err != nil {
			return nil, fmt.Errorf("catalog %s: %w", digest, err)
		}
	}
	c.log.DebugContext(ctx, "cataloged image", "digest", digest.String(), "packages", s.Artifacts.Packages.PackageCount())
	return scan.NewSBOM(digest, platform, *s), nil
}

// check reports the options New could not refuse.
func (c *Cataloger) check() error {
	var bad option.List
	if c.hasRepo && c.repo.RepositoryStr() == "" {
		bad.Addf("WithSourceName: no repository given")
	}
	if c.workers < 1 {
		bad.Addf("WithConcurrency(%d): want at least 1", c.workers)
	}
	if c.maxSize < 0 {
		bad.Addf("WithMaxImageSize(%d): want 0 (the default) or more", c.maxSize)
	}
	if c.layers != nil && c.layers.err != nil {
		bad.Addf("WithLayerCache: %v", c.layers.err)
	}
	return bad.Err("")
}

// licenseScanner returns a context holding syft's license scanner for cfg, built
// on first use (one at a time per configuration; cataloging waits for it).
func (c *Cataloger) licenseScanner(cfg cataloging.LicenseConfig) (context.Context, error) {
	l, err := c.scanner(cfg)
	if err != nil {
		return nil, err
	}
	return l.ctx, nil
}

// scanner is licenseScanner's value.
func (c *Cataloger) scanner(cfg cataloging.LicenseConfig) (*licenseScanner, error) {
	c.licMu.Lock()
	l := c.licenses[cfg]
	if l == nil {
		l = &licenseScanner{}
		c.licenses[cfg] = l
	}
	c.licMu.Unlock()
	l.once.Do(func() {
		l.ctx, l.err = syft.SetContextLicenseScanner(context.Background(), cfg)
		if l.err == nil {
			l.keys = probeKeys(l.ctx)
		}
	})
	if l.err != nil {
		return nil, fmt.Errorf("license scanner: %w", l.err)
	}
	return l, nil
}

// valuesFrom is ctx with the values of another context added underneath: a value
// ctx holds wins, and the deadline and cancellation are ctx's alone.
type valuesFrom struct {
	context.Context
	values context.Context
}

func (v valuesFrom) Value(key any) any {
	if x := v.Context.Value(key); x != nil {
		return x
	}
	return v.values.Value(key)
}

// sourceConfig names the image for syft: as repo@digest when the repository is
// known, else by its digest alone (syft would read a bare "sha256:…" as an image
// named "sha256" tagged with the hex digits).
func sourceConfig(repo name.Repository, digest v1.Hash) stereoscopesource.ImageConfig {
	if repo.RepositoryStr() != "" {
		return stereoscopesource.ImageConfig{Reference: repo.Digest(digest.String()).String()}
	}
	return stereoscopesource.ImageConfig{Reference: digest.String(),
		Alias: source.Alias{Name: digest.String(), Version: digest.String()}}
}

// CatalogIndex catalogs every platform image of an index, in the index's order, and
// returns one SBOM per platform. Entries that are not images (nested indexes,
// attestation manifests with platform unknown/unknown) are skipped. Up to
// [WithConcurrency] images are cataloged at once.
func (c *Cataloger) CatalogIndex(ctx context.Context, idx v1.ImageIndex) ([]*scan.SBOM, error) {
	return c.catalogIndex(ctx, idx, c.repo)
}

// CatalogImages catalogs independent images, up to [WithConcurrency] at once, and
// returns their SBOMs in the order of imgs: the same SBOMs as [Cataloger.Catalog]
// of each in turn. It stops at the first failure; the error names the image.
func (c *Cataloger) CatalogImages(ctx context.Context, imgs []v1.Image) ([]*scan.SBOM, error) {
	targets := make([]target, len(imgs))
	for i, img := range imgs {
		if img == nil {
			return nil, fmt.Errorf("catalog images: image %d: no image", i)
		}
		targets[i] = target{img: img, repo: c.repo}
	}
	out, err := c.catalogAll(ctx, targets)
	if err != nil {
		return nil, fmt.Errorf("catalog images: %w", err)
	}
	return out, nil
}

// target is one image to catalog: its repository, and the platform its index gives.
type target struct {
	img      v1.Image
	platform *v1.Platform
	repo     name.Repository
}

// catalogAll catalogs the targets, up to c.workers at once, into SBOMs in their
// order.
func (c *Cataloger) catalogAll(ctx context.Context, targets []target) ([]*scan.SBOM, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	out := make([]*scan.SBOM, len(targets))
	err := parallel.Do(ctx, c.workers, len(targets), func(ctx context.Context, i int) error {
		t := targets[i]
		s, err := c.catalogNamed(ctx, t.img, t.repo)
		if err != nil {
			return err
		}
		if t.platform != nil {
			s.Platform = t.platform
		}
		out[i] = s
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (c *Cataloger) catalogIndex(ctx context.Context, idx v1.ImageIndex, repo name.Repository) ([]*scan.SBOM, error) {
	if idx == nil {
		return nil, errors.New("catalog index: no index")
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("catalog index: %w", err)
	}
	var targets []target
	for _, desc := range m.Manifests {
		if !desc.MediaType.IsImage() {
			continue
		}
		if p := desc.Platform; p != nil && p.OS == "unknown" {
			continue
		}
		img, err := idx.Image(desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("catalog index: image %s: %w", desc.Digest, err)
		}
		targets = append(targets, target{img: img, platform: desc.Platform, repo: repo})
	}
	if len(targets) == 0 {
		return nil, errors.New("catalog index: index holds no platform image")
	}
	out, err := c.catalogAll(ctx, targets)
	if err != nil {
		return nil, fmt.Errorf("catalog index: %w", err)
	}
	return out, nil
}

// CatalogLayout catalogs the images of an OCI image layout directory (as written by
// go-containerregistry's layout package, `crane pull --format=oci` or `skopeo copy
// oci:`), one SBOM per platform image, nested indexes included, in the order of
// the layout's index (depth first). Up to [WithConcurrency] images are cataloged
// at once.
func (c *Cataloger) CatalogLayout(ctx context.Context, path string) ([]*scan.SBOM, error) {
	idx, err := layout.ImageIndexFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("catalog OCI layout %s: %w", path, err)
	}
	var targets []target
	if err := walk(idx, c.repo, &targets, 0); err != nil {
		return nil, fmt.Errorf("catalog OCI layout %s: %w", path, err)
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("catalog OCI layout %s: no image", path)
	}
	out, err := c.catalogAll(ctx, targets)
	if err != nil {
		return nil, fmt.Errorf("catalog OCI layout %s: %w", path, err)
	}
	return out, nil
}

// CatalogRemote catalogs the image or image index that ref names in a registry:
// one SBOM per platform image. Each image's layers are fetched once, as stereoscope
// reads them; up to [WithConcurrency] platform images are cataloged at once, and
// a layer that several platforms share is fetched once for each of them. The
// SBOMs' root components are named by ref's repository (unless [WithSourceName]
// names another). Pass remote options for authentication and transport (e.g.
// remote.WithAuthFromKeychain(authn.DefaultKeychain)). The context is passed to
// the registry calls.
func (c *Cataloger) CatalogRemote(ctx context.Context, ref name.Reference, opts ...remote.Option) ([]*scan.SBOM, error) {
	repo := c.repo
	if !c.hasRepo {
		repo = ref.Context()
	}
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	a, err := oci.Get(ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", ref, err)
	}
	if a.Index != nil {
		out, err := c.catalogIndex(ctx, a.Index, repo)
		if err != nil {
			return nil, fmt.Errorf("catalog %s: %w", ref, err)
		}
		return out, nil
	}
	s, err := c.catalogNamed(ctx, a.Image, repo)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", ref, err)
	}
	return []*scan.SBOM{s}, nil
}

// walk lists the platform images of idx and of the indexes it nests, depth first,
// to a bounded depth.
func walk(idx v1.ImageIndex, repo name.Repository, out *[]target, depth int) error {
	if depth > 4 {
		return errors.New("image indexes nested too deep")
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, desc := range m.Manifests {
		switch {
		case desc.MediaType.IsIndex():
			child, err := idx.ImageIndex(desc.Digest)
			if err != nil {
				return fmt.Errorf("index %s: %w", desc.Digest, err)
			}
			if err := walk(child, repo, out, depth+1); err != nil {
				return err
			}
		case desc.MediaType.IsImage():
			if p := desc.Platform; p != nil && p.OS == "unknown" {
				continue
			}
			img, err := idx.Image(desc.Digest)
			if err != nil {
				return fmt.Errorf("image %s: %w", desc.Digest, err)
			}
			*out = append(*out, target{img: img, platform: desc.Platform, repo: repo})
		}
	}
	return nil
}

// limitedImage is an image whose layers' uncompressed streams share a byte budget.
type limitedImage struct {
	v1.Image
	budget *atomic.Int64
}

func (i *limitedImage) Layers() ([]v1.Layer, error) {
	ls, err := i.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for n, l := range ls {
		out[n] = &limitedLayer{Layer: l, budget: i.budget}
	}
	return out, nil
}

// limitedLayer charges what its uncompressed stream yields to the image's budget.
type limitedLayer struct {
	v1.Layer
	budget *atomic.Int64
}

func (l *limitedLayer) Uncompressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Uncompressed()
	if err != nil {
		return nil, err
	}
	return &budgetReader{ReadCloser: rc, budget: l.budget}, nil
}

type budgetReader struct {
	io.ReadCloser
	budget *atomic.Int64
}

func (r *budgetReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if n > 0 && r.budget.Add(-int64(n)) < 0 {
		return n, ErrImageTooLarge
	}
	return n, err
}

// Summary counts the packages of an SBOM by syft package type, e.g.
// {"deb": 1, "go-module": 2}.
func Summary(s *scan.SBOM) map[string]int {
	out := map[string]int{}
	if s == nil || s.Syft().Artifacts.Packages == nil {
		return out
	}
	for p := range s.Syft().Artifacts.Packages.Enumerate() {
		out[strings.TrimSpace(string(p.Type))]++
	}
	return out
}
