package sbom

import (
	"context"
	"io"
	"reflect"
	"strings"

	"github.com/anchore/syft/syft"
	"github.com/anchore/syft/syft/file"
	"github.com/anchore/syft/syft/pkg"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// keyRecorder records the context keys syft looks up that the scanner context
// answers: the keys under which syft keeps its license scanner.
type keyRecorder struct {
	context.Context
	scanner context.Context
	keys    *[]any
}

func (k keyRecorder) Value(key any) any {
	v := k.scanner.Value(key)
	if v != nil {
		for _, have := range *k.keys {
			if have == key {
				return v
			}
		}
		*k.keys = append(*k.keys, key)
	}
	return v
}

// probeKeys finds the keys of the license scanner in sctx by asking syft to find
// licenses in an empty file through it.
func probeKeys(sctx context.Context) []any {
	var keys []any
	ctx := keyRecorder{Context: context.Background(), scanner: sctx, keys: &keys}
	pkg.NewLicensesFromReadCloserWithContext(ctx, file.NewLocationReadCloser(file.NewLocation("/"),
		io.NopCloser(strings.NewReader(""))))
	for _, k := range keys {
		if k == nil || !reflect.TypeOf(k).Comparable() {
			return nil
		}
	}
	return keys
}

// isOwn reports whether ctx holds this scanner (not one the caller put there).
func (l *licenseScanner) isOwn(ctx context.Context) bool {
	if len(l.keys) == 0 {
		return false
	}
	for _, k := range l.keys {
		a, b := ctx.Value(k), l.ctx.Value(k)
		if a == nil || b == nil || reflect.TypeOf(a) != reflect.TypeOf(b) || !reflect.TypeOf(a).Comparable() || a != b {
			return false
		}
	}
	return true
}

// useLayerCache prepares conf for c.layers (see LayerCache.apply) and returns the
// run whose finish restores the SBOM's audit trail and commits the new entries
// once syft succeeded, or nil.
func (c *Cataloger) useLayerCache(conf *syft.CreateSBOMConfig, img v1.Image) *cacheRun {
	if c.layers == nil {
		return nil
	}
	ls, err := c.scanner(conf.Licenses)
	if err != nil {
		return nil
	}
	ids, err := img.ConfigFile()
	if err != nil || ids == nil {
		return nil
	}
	var diffIDs []string
	for _, d := range ids.RootFS.DiffIDs {
		diffIDs = append(diffIDs, d.String())
	}
	run, ok := c.layers.apply(conf, ls, diffIDs)
	if !ok {
		return nil
	}
	return run
}
