package sbom

import (
	"bytes"
	"container/list"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/anchore/syft/syft"
	"github.com/anchore/syft/syft/artifact"
	"github.com/anchore/syft/syft/cataloging"
	"github.com/anchore/syft/syft/cataloging/pkgcataloging"
	"github.com/anchore/syft/syft/file"
	"github.com/anchore/syft/syft/pkg"
	"github.com/anchore/syft/syft/pkg/cataloger/alpine"
	"github.com/anchore/syft/syft/pkg/cataloger/debian"
	"github.com/anchore/syft/syft/pkg/cataloger/redhat"
	sbomsyft "github.com/anchore/syft/syft/sbom"
	"github.com/anchore/syft/syft/source/directorysource"
)

// Default bounds of a [LayerCache].
const (
	DefaultLayerCacheEntries       = 256
	DefaultLayerCacheBytes   int64 = 256 << 20
)

// LayerCache keeps the results of syft's OS package database catalogers (dpkg,
// apk, RPM: the ones that parse a base image's package database and scan every
// package's copyright file for licenses) across images, so that a second image on
// the same base does not parse and license-scan the base's packages again. Give
// it to a [Cataloger] with [WithLayerCache]; one cache may serve several
// Catalogers and goroutines.
//
// # Exact or not used
//
// The SBOM of an image cataloged with the cache is the SBOM syft makes of the
// whole image, byte for byte: the cache never merges per-layer results itself.
// syft still reads the whole squashed image and runs every other cataloger, the
// file catalogers (digests of owned files), the relationship and file-ownership
// overlap rules and the distro detection on it; only the OS catalogers' Catalog
// calls may be answered from the cache. The argument:
//
//  1. A cataloger's result is a function of the answers it gets from the file
//     resolver (paths, globs, MIME types, file contents, metadata) and of the
//     license scanner in its context: it keeps no other state and reads nothing
//     else (dpkg, apk and RPM catalogers take no configuration, reach no network
//     and read the distro through the resolver too).
//  2. On a miss the cataloger runs on a recording resolver that logs every call
//     with a SHA-256 of its answer: each returned location by real path, access
//     path, layer diffID and annotations; for each file opened, the bytes the
//     cataloger read, how many, and whether the file ends there (what it did not
//     read cannot have decided anything, and is not read here either, but for
//     one byte that tells whether the file goes on); each metadata record. The
//     result is stored only if every opened file was closed with no read error
//     and not read after, the license scanner in the context is the Cataloger's
//     own (built from the configuration in the key), and, with a directory, the
//     stored form decodes back to a value reflect.DeepEqual to the result (else
//     it is kept in memory only).
//     It is kept only once the whole catalog run ended with no error and its
//     context not done: syft's catalogers may return a truncated result with no
//     error when the context is cancelled partway.
//  3. For another image, an entry is used only if replaying every logged call
//     against that image's resolver gives the same digests: the cataloger, run
//     there, would get the same answers, hence return the same result (1). Its
//     locations then get that image's file references.
//
// So the result depends on the layer digests and paths the cataloger read, not on
// the layer order: a base layer under any app layers hits, while an upper layer
// that rewrites /var/lib/dpkg/status, deletes (whiteout) a package's files under
// /var/lib/dpkg/info or /usr/share/doc, or changes /etc/os-release changes an
// answer and the cataloger runs again. The cache is not used (syft runs as
// without it) when [WithConfig] sets a cataloger selection or archive search, or
// when the rewrite of the SBOM's record of the cataloger selection (checked once
// per cache on an empty directory) does not fit this version of syft.
//
// Entries are bounded by count and bytes (least recently used go first; an
// entry kept in memory only is counted by an estimate of its packages, and one
// larger than the byte bound is not kept); with
// [WithCacheDir] they are also written to a directory, each file carrying an
// HMAC-SHA256 of its body under the secret of [WithCacheSecret], which
// [WithCacheDir] requires: what is read back from the directory is untrusted
// until its HMAC verifies (what shipkit wrote is authenticated), since whoever
// can write the directory could otherwise decide every image's OS packages. A
// file that fails the check is removed and the cataloger runs again; an entry
// whose calls include no FilesByGlob or FilesByPath (one that would replay on any
// image) is refused too. Files are read one at a time (regular files only,
// symlinks not followed, at most the byte bound each), and writing removes the
// oldest files past the entry and byte bounds. The directory is used only when the build names syft's
// release (build information with a module version, not a replacement by a local
// path); otherwise entries stay in memory. A [Cataloger] given a cache with a directory and no
// secret fails every Catalog call with an error naming the options.
type LayerCache struct {
	maxEntries int
	maxBytes   int64
	dir        string
	secret     []byte
	err        error // a misconfiguration, reported by the Cataloger's Catalog
	buildInfo  func() (*debug.BuildInfo, bool)
	auditOnce  sync.Once
	auditErr   error
	auditProbe func(context.Context) error // probeAudit, replaceable in tests

	mu    sync.Mutex
	lru   *list.List // of *cacheEntry, most recent first
	bytes int64

	hits, misses, stored, corrupt, evicted, unusable atomic.Int64
}

// CacheOption configures a [LayerCache].
type CacheOption func(*LayerCache)

// WithCacheEntries bounds the entries kept in memory (default
// [DefaultLayerCacheEntries]; n < 1 means the default).
func WithCacheEntries(n int) CacheOption { return func(c *LayerCache) { c.maxEntries = n } }

// WithCacheBytes bounds the size of the entries kept in memory, encoded or (for a
// cache with no directory, which encodes only the calls) estimated (default
// [DefaultLayerCacheBytes]; n < 1 means the default).
func WithCacheBytes(n int64) CacheOption { return func(c *LayerCache) { c.maxBytes = n } }

// WithCacheDir also keeps entries in dir (created if needed), for later
// processes. It requires [WithCacheSecret]: each file is checked against its
// HMAC on read. Without a secret, a [Cataloger] using the cache fails.
func WithCacheDir(dir string) CacheOption { return func(c *LayerCache) { c.dir = dir } }

// WithCacheSecret is the key of the HMAC-SHA256 that authenticates each file in
// the cache directory, so that a file written by someone without the secret (a
// poisoned entry with a recomputed checksum) is refused like a corrupt one.
// [WithCacheDir] requires it; without a directory it is unused.
func WithCacheSecret(secret []byte) CacheOption {
	return func(c *LayerCache) { c.secret = append([]byte(nil), secret...) }
}

// NewLayerCache returns an empty cache.
func NewLayerCache(opts ...CacheOption) *LayerCache {
	c := &LayerCache{lru: list.New(), buildInfo: debug.ReadBuildInfo, auditProbe: probeAudit}
	for _, o := range opts {
		if o != nil {
			o(c)
		}
	}
	if c.maxEntries < 1 {
		c.maxEntries = DefaultLayerCacheEntries
	}
	if c.maxBytes < 1 {
		c.maxBytes = DefaultLayerCacheBytes
	}
	if c.dir != "" && len(c.secret) == 0 {
		c.err = errors.New("layer cache: WithCacheDir requires WithCacheSecret (entries read back are untrusted until authenticated)")
	}
	return c
}

// WithLayerCache makes the Cataloger answer syft's OS package database catalogers
// from c when that is provably the same (see [LayerCache]); nil means none.
func WithLayerCache(c *LayerCache) Option { return func(k *Cataloger) { k.layers = c } }

// LayerCacheStats counts what a [LayerCache] did.
type LayerCacheStats struct {
	Hits, Misses int64 // cataloger runs answered from the cache, and not
	Stored       int64 // results stored
	Corrupt      int64 // files in the directory that failed their checksum (removed)
	Evicted      int64 // entries dropped from memory or the directory for the bounds
	Unusable     int64 // results not stored (see LayerCache), or runs not allowed to use it
	Entries      int   // entries in memory
	Bytes        int64 // their size: encoded, or estimated for a cache with no directory
}

// Stats returns the counters.
func (c *LayerCache) Stats() LayerCacheStats {
	c.mu.Lock()
	n, b := c.lru.Len(), c.bytes
	c.mu.Unlock()
	return LayerCacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Stored: c.stored.Load(),
		Corrupt: c.corrupt.Load(), Evicted: c.evicted.Load(), Unusable: c.unusable.Load(), Entries: n, Bytes: b}
}

// cacheEntry is one cataloger result and the calls that prove it applies.
type cacheEntry struct {
	Key    string   `json:"key"`
	Calls  []call   `json:"calls"`
	Layers []string `json:"layers"` // diffIDs of every location answered
	Pkgs   []pkgDTO `json:"pkgs"`   // on disk only
	Rels   []relDTO `json:"rels"`   // on disk only
	// EmptyPkgs and EmptyRels tell an empty result from none (nil).
	EmptyPkgs bool `json:"emptyPkgs,omitempty"`
	EmptyRels bool `json:"emptyRels,omitempty"`
	pkgs      []pkg.Package
	rels      []artifact.Relationship
	size      int64
}

// cachedOS lists the catalogers the cache answers: syft's own constructors, the
// same ones (no configuration) as its default tasks for images.
func cachedOS() []pkgcataloging.CatalogerReference {
	mk := func(c pkg.Cataloger, tags ...string) pkgcataloging.CatalogerReference {
		return pkgcataloging.CatalogerReference{Cataloger: c, AlwaysEnabled: true, Tags: append([]string{
			pkgcataloging.DirectoryTag, pkgcataloging.InstalledTag, pkgcataloging.ImageTag, pkgcataloging.OSTag, "linux"}, tags...)}
	}
	return []pkgcataloging.CatalogerReference{
		mk(alpine.NewDBCataloger(), "apk", "alpine"),
		mk(debian.NewDBCataloger(), "dpkg", "debian"),
		mk(redhat.NewDBCataloger(), "rpm", "redhat"),
	}
}

// apply changes conf so that the OS catalogers run through the cache: syft's own
// tasks for them are deselected by name and the same catalogers, wrapped, are
// added. The run's finish puts the configuration audit trail of the SBOM back to
// what the unchanged conf records and commits the run's new entries. ok is false
// (conf unchanged) when the cache cannot be used with conf.
func (c *LayerCache) apply(conf *syft.CreateSBOMConfig, lic *licenseScanner, diffIDs []string) (run *cacheRun, ok bool) {
	if !reflect.DeepEqual(conf.CatalogerSelection, cataloging.SelectionRequest{}) || conf.Archive.MaxDepth != 0 || len(lic.keys) == 0 {
		c.unusable.Add(1)
		return nil, false
	}
	c.auditOnce.Do(func() { c.auditErr = c.auditProbe(lic.ctx) })
	if c.auditErr != nil {
		// restoreAudit would fail after syft did the work: run without the cache
		c.unusable.Add(1)
		return nil, false
	}
	bi, biOK := c.buildInfo()
	syftVersion, durable := syftModuleVersion(bi, biOK)
	fp, err := json.Marshal(struct {
		Format   int
		Licenses cataloging.LicenseConfig
		Syft     string
	}{layerCacheFormat, conf.Licenses, syftVersion})
	if err != nil {
		c.unusable.Add(1)
		return nil, false
	}
	layers := map[string]bool{}
	for _, d := range diffIDs {
		layers[d] = true
	}
	run = &cacheRun{cache: c, disk: c.dir != "" && durable}
	refs := cachedOS()
	names := make([]string, len(refs))
	for i := range refs {
		names[i] = refs[i].Cataloger.Name()
		refs[i].Cataloger = &cachedCataloger{inner: refs[i].Cataloger, cache: c, run: run, lic: lic, layers: layers,
			key: hashString(names[i] + "\x00" + string(fp))}
	}
	conf.CatalogerSelection = cataloging.SelectionRequest{RemoveNamesOrTags: names}
	conf.WithCatalogers(refs...)
	return run, true
}

// cacheRun holds the entries made during one catalog run until the run is known
// to be whole: syft hides a cancellation (its workers stop starting work once the
// context is done and the dpkg parser returns what it has with no error), so a
// result is committed only after syft.CreateSBOM returned no error with the
// context not done.
type cacheRun struct {
	cache   *LayerCache
	disk    bool // the directory may be used (see syftModuleVersion)
	mu      sync.Mutex
	pending []*pendingEntry
}

type pendingEntry struct {
	ent    *cacheEntry
	body   []byte
	diskOK bool
}

func (r *cacheRun) add(p *pendingEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending = append(r.pending, p)
}

// finish restores s's audit trail and commits the pending entries if ctx is not
// done; call it only when syft.CreateSBOM succeeded.
func (r *cacheRun) finish(ctx context.Context, s *sbomsyft.SBOM) error {
	if err := restoreAudit(s); err != nil {
		r.commit(ctx, false)
		return err
	}
	r.commit(ctx, true)
	return nil
}

// commit stores the pending entries when ok and ctx is not done, else drops them
// (counted as unusable).
func (r *cacheRun) commit(ctx context.Context, ok bool) {
	r.mu.Lock()
	pend := r.pending
	r.pending = nil
	r.mu.Unlock()
	if !ok || ctx.Err() != nil {
		r.cache.unusable.Add(int64(len(pend)))
		return
	}
	for _, p := range pend {
		r.cache.commit(p, r.disk)
	}
}

// restoreAudit sets the SBOM's record of the cataloger selection back to the
// default one (no removals); the list of catalogers used is the same names.
func restoreAudit(s *sbomsyft.SBOM) error {
	v := reflect.ValueOf(s.Descriptor.Configuration)
	if v.Kind() != reflect.Struct {
		return errors.New("layer cache: unexpected configuration audit trail")
	}
	cp := reflect.New(v.Type()).Elem()
	cp.Set(v)
	rm := cp.FieldByName("Catalogers").FieldByName("Requested").FieldByName("RemoveNamesOrTags")
	if !rm.IsValid() || !rm.CanSet() {
		return errors.New("layer cache: unexpected configuration audit trail")
	}
	rm.Set(reflect.Zero(rm.Type()))
	s.Descriptor.Configuration = cp.Interface()
	return nil
}

// layerCacheFormat is the version of the entry format, part of every key.
const layerCacheFormat = 4

// syftModuleVersion returns the version of syft in bi (from
// debug.ReadBuildInfo), and whether it names one release for sure: not without
// build info, not a development or empty version, not a replacement by a local
// path. Only then may entries be kept in the directory, where they outlive the
// process (an entry of one syft must not answer another).
// probeAudit checks once that restoreAudit fits the audit trail of this syft:
// it catalogs an empty directory with a cataloger removed and restores the
// record of the selection. ctx carries the Cataloger's license scanner, so syft
// does not build its own for nothing (about half a second of CPU).
func probeAudit(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "shipkit-layercache-probe-")
	if err != nil {
		return fmt.Errorf("layer cache: probe audit trail: %w", err)
	}
	defer os.RemoveAll(dir)
	src, err := directorysource.NewFromPath(dir)
	if err != nil {
		return fmt.Errorf("layer cache: probe audit trail: %w", err)
	}
	conf := syft.DefaultCreateSBOMConfig()
	conf.CatalogerSelection = cataloging.SelectionRequest{RemoveNamesOrTags: []string{"dpkg-db-cataloger"}}
	s, err := syft.CreateSBOM(ctx, src, conf)
	if err != nil {
		return fmt.Errorf("layer cache: probe audit trail: %w", err)
	}
	return restoreAudit(s)
}

func syftModuleVersion(bi *debug.BuildInfo, ok bool) (string, bool) {
	if !ok || bi == nil {
		return "unknown", false
	}
	for _, d := range bi.Deps {
		if d.Path != "github.com/anchore/syft" {
			continue
		}
		v := d.Version
		if d.Replace != nil {
			v += "=>" + d.Replace.Path + "@" + d.Replace.Version
			return v, d.Replace.Version != "" && d.Replace.Version != "(devel)"
		}
		return v, d.Version != "" && d.Version != "(devel)"
	}
	return "unknown", false
}

func hashString(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// cachedCataloger answers one OS cataloger from the cache, or runs it and stores
// its result.
type cachedCataloger struct {
	inner  pkg.Cataloger
	cache  *LayerCache
	run    *cacheRun
	lic    *licenseScanner
	layers map[string]bool
	key    string
}

func (w *cachedCataloger) Name() string { return w.inner.Name() }

func (w *cachedCataloger) Catalog(ctx context.Context, res file.Resolver) ([]pkg.Package, []artifact.Relationship, error) {
	if !w.lic.isOwn(ctx) {
		w.cache.unusable.Add(1)
		return w.inner.Catalog(ctx, res)
	}
	if pkgs, rels, ok := w.cache.lookup(w.key, w.layers, res, w.run.disk); ok {
		w.cache.hits.Add(1)
		return pkgs, rels, nil
	}
	w.cache.misses.Add(1)
	rec := newRecorder(res)
	pkgs, rels, err := w.inner.Catalog(ctx, rec.wrap())
	if err != nil {
		return pkgs, rels, err
	}
	w.pend(ctx, rec, pkgs, rels)
	return pkgs, rels, nil
}

// pend adds the result to the run's pending entries if it may be cached: not
// when ctx is done (syft's catalogers may then stop early without an error and
// return a truncated result), not when prepare refuses it.
func (w *cachedCataloger) pend(ctx context.Context, rec *recorder, pkgs []pkg.Package, rels []artifact.Relationship) {
	if ctx.Err() != nil {
		w.cache.unusable.Add(1)
		return
	}
	p, err := w.cache.prepare(w.key, rec, pkgs, rels, w.run.disk)
	if err != nil {
		w.cache.unusable.Add(1)
		return
	}
	w.run.add(p)
}

// lookup returns the result of the most recent entry for key whose calls replay
// with the same answers on res.
func (c *LayerCache) lookup(key string, layers map[string]bool, res file.Resolver, disk bool) ([]pkg.Package, []artifact.Relationship, bool) {
	c.mu.Lock()
	var cands []*list.Element
	for e := c.lru.Front(); e != nil; e = e.Next() {
		if e.Value.(*cacheEntry).Key == key {
			cands = append(cands, e)
		}
	}
	c.mu.Unlock()
	try := func(ent *cacheEntry) ([]pkg.Package, []artifact.Relationship, bool) {
		for _, l := range ent.Layers {
			if !layers[l] {
				return nil, nil, false
			}
		}
		locs, ok := replay(res, ent.Calls)
		if !ok {
			return nil, nil, false
		}
		pkgs, rels, err := copyResult(ent.pkgs, ent.rels, locs)
		if err != nil {
			return nil, nil, false
		}
		return pkgs, rels, true
	}
	for _, e := range cands {
		if p, r, ok := try(e.Value.(*cacheEntry)); ok {
			c.mu.Lock()
			if e.Next() != nil || e.Prev() != nil || c.lru.Front() == e {
				c.lru.MoveToFront(e)
			}
			c.mu.Unlock()
			return p, r, true
		}
	}
	if !disk {
		return nil, nil, false
	}
	var p []pkg.Package
	var r []artifact.Relationship
	found := c.readDir(key, func(ent *cacheEntry) bool {
		var ok bool
		p, r, ok = try(ent)
		return ok
	})
	if found != nil {
		c.keep(found)
		return p, r, true
	}
	return nil, nil, false
}

// prepare makes the entry for a result if it can be given back exactly: the copy
// a hit returns (made here with this image's locations) must be
// reflect.DeepEqual to it. The entry is kept by commit (see cacheRun); when the
// run may use the directory (disk), it is written there too if its encoded form
// decodes to the same. Without, the result is not encoded at all.
func (c *LayerCache) prepare(key string, rec *recorder, pkgs []pkg.Package, rels []artifact.Relationship, disk bool) (*pendingEntry, error) {
	calls, err := rec.result()
	if err != nil {
		return nil, err
	}
	ent := &cacheEntry{Key: key, Calls: calls}
	seen := map[string]bool{}
	for _, l := range rec.locs {
		if l.FileSystemID != "" && !seen[l.FileSystemID] {
			seen[l.FileSystemID] = true
			ent.Layers = append(ent.Layers, l.FileSystemID)
		}
	}
	sort.Strings(ent.Layers)
	gotP, gotR, err := copyResult(pkgs, rels, rec.locs)
	if err != nil {
		return nil, err
	}
	if !reflect.DeepEqual(gotP, pkgs) || !reflect.DeepEqual(gotR, rels) {
		return nil, errors.New("result cannot be copied exactly")
	}
	// the cache keeps the copy: syft's package task rewrites the slice it gets
	ent.pkgs, ent.rels = gotP, gotR
	var body []byte
	var diskOK bool
	if disk {
		body, diskOK = encodeEntry(ent, rec.locs)
	} else if body, err = json.Marshal(ent); err != nil {
		return nil, err
	}
	ent.size = entrySize(ent, body, diskOK)
	return &pendingEntry{ent: ent, body: body, diskOK: diskOK}, nil
}

// commit keeps a prepared entry in memory and, with a directory, on disk.
func (c *LayerCache) commit(p *pendingEntry, disk bool) {
	c.keep(p.ent)
	c.stored.Add(1)
	if disk && p.diskOK {
		_ = c.writeDir(p.ent, p.body) // best effort: memory still has it
	}
}

func (c *LayerCache) keep(ent *cacheEntry) {
	if ent.size > c.maxBytes {
		// it would evict everything, then itself
		c.unusable.Add(1)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.PushFront(ent)
	c.bytes += ent.size
	for c.lru.Len() > c.maxEntries || (c.bytes > c.maxBytes && c.lru.Len() > 0) {
		e := c.lru.Back()
		c.bytes -= e.Value.(*cacheEntry).size
		c.lru.Remove(e)
		c.evicted.Add(1)
	}
}

// entrySize is the bytes an entry is counted for: its encoding, plus an estimate
// of its result when that is kept in memory only (the encoding then holds the
// calls alone).
func entrySize(ent *cacheEntry, body []byte, diskOK bool) int64 {
	n := int64(len(body))
	if diskOK {
		return n
	}
	locs := func(set file.LocationSet) int64 {
		var m int64
		for _, l := range set.ToSlice() {
			m += 128 + int64(len(l.RealPath)+len(l.AccessPath)+len(l.FileSystemID))
		}
		return m
	}
	for _, p := range ent.pkgs {
		n += 512 + int64(len(p.Name)+len(p.Version)+len(p.PURL)+len(p.FoundBy)) + 256*int64(len(p.CPEs)) + locs(p.Locations)
		for _, l := range p.Licenses.ToSlice() {
			n += 128 + int64(len(l.Value)+len(l.SPDXExpression)+len(l.Contents)) + locs(l.Locations)
			for _, u := range l.URLs {
				n += int64(len(u))
			}
		}
		if p.Metadata != nil {
			if b, err := json.Marshal(p.Metadata); err == nil {
				n += int64(len(b))
			} else {
				n += 4096
			}
		}
	}
	return n + 256*int64(len(ent.rels))
}

// copyResult returns fresh copies of a stored result, with the locations of locs
// (this image's file references) for the same real path, access path and layer:
// new location and license sets and annotation maps, CPE slices that an append
// cannot share, relationships pointing at the copies.
func copyResult(pkgs []pkg.Package, rels []artifact.Relationship, locs map[string]file.Location) ([]pkg.Package, []artifact.Relationship, error) {
	fix := func(set file.LocationSet) file.LocationSet {
		ls := set.ToSlice()
		for i, l := range ls {
			if n, ok := locs[locKey(l)]; ok {
				ls[i].LocationData = n.LocationData
			}
			ls[i].Annotations = maps.Clone(ls[i].Annotations)
		}
		return file.NewLocationSet(ls...)
	}
	var out []pkg.Package
	if pkgs != nil {
		out = make([]pkg.Package, 0, len(pkgs))
	}
	byID := map[artifact.ID]pkg.Package{}
	for _, p := range pkgs {
		q := p
		q.Locations = fix(p.Locations)
		lics := p.Licenses.ToSlice()
		for i := range lics {
			lics[i].Locations = fix(lics[i].Locations)
			lics[i].URLs = slices.Clone(lics[i].URLs)
		}
		q.Licenses = pkg.NewLicenseSet(lics...)
		q.CPEs = slices.Clip(p.CPEs)
		out = append(out, q)
		byID[q.ID()] = q
	}
	var orels []artifact.Relationship
	if rels != nil {
		orels = make([]artifact.Relationship, 0, len(rels))
	}
	for _, r := range rels {
		for _, end := range []*artifact.Identifiable{&r.From, &r.To} {
			if p, ok := (*end).(pkg.Package); ok {
				q, found := byID[p.ID()]
				if !found {
					return nil, nil, fmt.Errorf("relationship to package %s outside the result", p.ID())
				}
				*end = q
			}
		}
		orels = append(orels, r)
	}
	return out, orels, nil
}

// On disk: <dir>/<key>/<checksum of body>, holding the checksum (hex SHA-256,
// or HMAC-SHA256 with a secret), a newline, and the body.
func (c *LayerCache) writeDir(ent *cacheEntry, body []byte) error {
	d := filepath.Join(c.dir, ent.Key[:32])
	if err := os.MkdirAll(d, 0o700); err != nil {
		return err
	}
	name := c.checksum(body)
	tmp, err := os.CreateTemp(d, ".tmp-")
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(tmp, "%s\n%s", name, body); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(d, name)); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	c.trimDir()
	return nil
}

// readDir reads the entries for key on disk one at a time (at most the memory
// bound of them, each at most maxBytes, regular files only, symlinks not
// followed), removing those that fail their checksum, until use accepts one,
// which it returns; nil if none.
func (c *LayerCache) readDir(key string, use func(*cacheEntry) bool) *cacheEntry {
	if c.dir == "" {
		return nil
	}
	d := filepath.Join(c.dir, key[:32])
	f, err := os.Open(d)
	if err != nil {
		return nil
	}
	des, _ := f.ReadDir(c.maxEntries)
	f.Close()
	for _, de := range des {
		if strings.HasPrefix(de.Name(), ".") {
			continue
		}
		p := filepath.Join(d, de.Name())
		raw, err := c.readFile(p)
		if err != nil {
			continue
		}
		ent, ok := c.checkEntry(raw, key)
		if !ok {
			c.corrupt.Add(1)
			os.Remove(p)
			continue
		}
		ent.size = int64(len(raw))
		if ent.pkgs, ent.rels, err = decodeEntry(ent); err != nil {
			c.corrupt.Add(1)
			os.Remove(p)
			continue
		}
		if use(ent) {
			return ent
		}
	}
	return nil
}

// readFile reads the regular file p, not following a symlink and not waiting
// on a FIFO, and fails if it holds more than maxBytes.
func (c *LayerCache) readFile(p string) ([]byte, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", p)
	}
	raw, err := io.ReadAll(io.LimitReader(f, c.maxBytes+1))
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) > c.maxBytes {
		return nil, fmt.Errorf("%s: more than %d bytes", p, c.maxBytes)
	}
	return raw, nil
}

// trimDir removes the oldest files of the directory past the entry and byte
// bounds.
func (c *LayerCache) trimDir() {
	type fileAt struct {
		path string
		mod  int64
		size int64
	}
	var files []fileAt
	keys, _ := os.ReadDir(c.dir)
	for _, k := range keys {
		if !k.IsDir() {
			continue
		}
		des, _ := os.ReadDir(filepath.Join(c.dir, k.Name()))
		for _, de := range des {
			fi, err := de.Info()
			if err != nil || strings.HasPrefix(de.Name(), ".") {
				continue
			}
			files = append(files, fileAt{filepath.Join(c.dir, k.Name(), de.Name()), fi.ModTime().UnixNano(), fi.Size()})
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].mod > files[j].mod })
	var n int
	var total int64
	for _, f := range files {
		n++
		total += f.size
		if n > c.maxEntries || total > c.maxBytes {
			if os.Remove(f.path) == nil {
				c.evicted.Add(1)
			}
		}
	}
}

// checksum is the hex SHA-256 of body, or its HMAC-SHA256 under the secret.
func (c *LayerCache) checksum(body []byte) string {
	if len(c.secret) > 0 {
		m := hmac.New(sha256.New, c.secret)
		m.Write(body)
		return hex.EncodeToString(m.Sum(nil))
	}
	s := sha256.Sum256(body)
	return hex.EncodeToString(s[:])
}

func (c *LayerCache) checkEntry(raw []byte, key string) (*cacheEntry, bool) {
	sumHex, body, ok := bytes.Cut(raw, []byte("\n"))
	if !ok {
		return nil, false
	}
	if !hmac.Equal([]byte(c.checksum(body)), sumHex) {
		return nil, false
	}
	var ent cacheEntry
	if err := json.Unmarshal(body, &ent); err != nil || ent.Key != key || !locates(ent.Calls) {
		return nil, false
	}
	return &ent, true
}

// locates reports whether calls look for files by glob or path: an entry without
// such a call would replay on any image.
func locates(calls []call) bool {
	for _, c := range calls {
		if c.Op == "FilesByGlob" || c.Op == "FilesByPath" {
			return true
		}
	}
	return false
}
