package sbom

import (
	"maps"
	"strings"
	"sync"

	"github.com/anchore/syft/syft/file"
	"github.com/anchore/syft/syft/source"
)

// syft's rules over the whole image (file-ownership overlap, binary library
// ownership, package-to-file relationships, the unknowns labeler) each look up
// every file a package owns by path on the image's resolver: for a Debian base,
// four searches of stereoscope's tree per owned file, a third of a catalog run
// when the OS packages come from the layer cache. pathMemo answers a repeated
// FilesByPath from memory. The image does not change during a run, so the answer
// is the same; each caller gets its own copy (slice and annotation maps, which
// syft's Location.WithAnnotation writes into).

// maxPathMemo bounds the answers kept in one run; past it, lookups go to the tree.
const maxPathMemo = 1 << 20

// memoSource is a source whose file resolver memoizes FilesByPath. It keeps the
// source's ExcludedPaths (syft asks for it by type assertion).
type memoSource struct {
	source.Source
	excluder source.PathExcluder
}

// withPathMemo returns src with a memoizing resolver, or src itself when its
// shape is not the one this is known to keep (syft type-asserts sources and
// resolvers for optional interfaces; a wrapper must not hide one).
func withPathMemo(src source.Source) source.Source {
	ex, ok := src.(source.PathExcluder)
	if !ok {
		return src
	}
	return memoSource{Source: src, excluder: ex}
}

func (s memoSource) ExcludedPaths() []string { return s.excluder.ExcludedPaths() }

func (s memoSource) FileResolver(scope source.Scope) (file.Resolver, error) {
	res, err := s.Source.FileResolver(scope)
	if err != nil || !plainResolver(res) {
		return res, err
	}
	return &pathMemo{Resolver: res, answers: map[string]pathAnswer{}}, nil
}

// plainResolver reports whether res has none of the optional interfaces syft
// asserts on a resolver (so a wrapper with only file.Resolver's methods hides
// nothing).
func plainResolver(res file.Resolver) bool {
	_, oci := res.(file.OCIMediaTypeResolver)
	_, writable := res.(file.WritableResolver)
	_, ref := res.(interface{ ImageReference() string })
	return !oci && !writable && !ref
}

type pathAnswer struct {
	locs []file.Location
	err  error
}

type pathMemo struct {
	file.Resolver
	mu      sync.Mutex
	answers map[string]pathAnswer
}

func (m *pathMemo) FilesByPath(paths ...string) ([]file.Location, error) {
	key := strings.Join(paths, "\x00")
	m.mu.Lock()
	a, ok := m.answers[key]
	m.mu.Unlock()
	if ok {
		return copyLocations(a.locs), a.err
	}
	locs, err := m.Resolver.FilesByPath(paths...)
	m.mu.Lock()
	if len(m.answers) < maxPathMemo {
		m.answers[key] = pathAnswer{locs: copyLocations(locs), err: err}
	}
	m.mu.Unlock()
	return locs, err
}

// copyLocations copies locs with their annotation maps.
func copyLocations(locs []file.Location) []file.Location {
	if locs == nil {
		return nil
	}
	out := make([]file.Location, len(locs))
	for i, l := range locs {
		l.Annotations = maps.Clone(l.Annotations)
		out[i] = l
	}
	return out
}
