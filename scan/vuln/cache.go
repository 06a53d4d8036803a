package vuln

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/anchore/grype/grype/distro"
	"github.com/anchore/grype/grype/match"
	grypepkg "github.com/anchore/grype/grype/pkg"
	"github.com/anchore/grype/grype/vulnerability"
)

// maxCachedPackages bounds the memory of a DB's match cache.
const maxCachedPackages = 100_000

// matchCache keeps what each grype matcher returned for each package, for the life
// of a DB: its database does not change under it, so a package seen again (the
// packages of a base image that 20 images share) is not queried again. All of
// grype's cross-package steps (ignore filters, de-duplication) still run per scan;
// only the per-package matcher call is remembered.
type matchCache struct {
	mu      sync.RWMutex
	entries map[string]cachedMatch
	max     int
}

type cachedMatch struct {
	matches  []match.Match
	ignorers []match.IgnoreFilter
}

func newMatchCache(max int) *matchCache {
	return &matchCache{entries: map[string]cachedMatch{}, max: max}
}

// wrap returns the matchers, each remembering its results in c.
func (c *matchCache) wrap(ms []match.Matcher) []match.Matcher {
	out := make([]match.Matcher, len(ms))
	for i, m := range ms {
		out[i] = cachingMatcher{Matcher: m, cache: c}
	}
	return out
}

type cachingMatcher struct {
	match.Matcher
	cache *matchCache
}

// Match returns the matches of p, from the cache when p was matched before.
func (m cachingMatcher) Match(vp vulnerability.Provider, p grypepkg.Package) ([]match.Match, []match.IgnoreFilter, error) {
	key, ok := packageKey(p)
	if !ok {
		return m.Matcher.Match(vp, p)
	}
	key = string(m.Type()) + "\x00" + key
	m.cache.mu.RLock()
	hit, found := m.cache.entries[key]
	m.cache.mu.RUnlock()
	if found {
		matches := slices.Clone(hit.matches)
		for i := range matches {
			matches[i].Package = p
		}
		return matches, slices.Clone(hit.ignorers), nil
	}
	matches, ignorers, err := m.Matcher.Match(vp, p)
	if err != nil {
		return matches, ignorers, err
	}
	m.cache.mu.Lock()
	if len(m.cache.entries) < m.cache.max {
		m.cache.entries[key] = cachedMatch{matches: slices.Clone(matches), ignorers: slices.Clone(ignorers)}
	}
	m.cache.mu.Unlock()
	return matches, ignorers, nil
}

// packageKey identifies a package by every field a matcher may read. Packages with
// related packages are not cached (ok is false), nor are those whose metadata does
// not encode.
func packageKey(p grypepkg.Package) (string, bool) {
	if len(p.RelatedPackages) > 0 {
		return "", false
	}
	type location struct{ Real, Access, FS string }
	k := struct {
		ID, Name, Version, Language, Type, PURL string
		Licenses                                []string
		CPEs                                    []string
		Upstreams                               []grypepkg.UpstreamPackage
		Distro                                  *distro.Distro
		Locations                               []location
		Annotations                             map[string][]string
		MetadataType                            string
		Metadata                                any
	}{
		ID: string(p.ID), Name: p.Name, Version: p.Version, Language: string(p.Language), Type: string(p.Type),
		PURL: p.PURL, Licenses: p.Licenses, Upstreams: p.Upstreams, Annotations: p.Annotations, Metadata: p.Metadata,
	}
	for _, c := range p.CPEs {
		k.CPEs = append(k.CPEs, c.Attributes.BindToFmtString()+"|"+string(c.Source))
	}
	k.Distro = p.Distro
	for _, l := range p.Locations.ToSlice() {
		k.Locations = append(k.Locations, location{l.RealPath, l.AccessPath, l.FileSystemID})
	}
	if p.Metadata != nil {
		k.MetadataType = fmt.Sprintf("%T", p.Metadata)
	}
	b, err := json.Marshal(k)
	if err != nil {
		return "", false
	}
	return string(b), true
}
