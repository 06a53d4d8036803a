package sbom

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/anchore/syft/syft/file"
	"github.com/anchore/syft/syft/source"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/scan/internal/testimage"
)

// The memo changes nothing in the SBOM: the same syft JSON, byte for byte, with
// and without it, on images whose OS packages own files (so syft's whole-image
// rules look them up by path).
func TestPathMemoSameSBOM(t *testing.T) {
	testimage.GoBinary(t)
	for name, img := range map[string]v1.Image{
		"debian": testimage.Debian(t, "amd64"),
		"alpine": testimage.Alpine(t, "arm64"),
	} {
		t.Run(name, func(t *testing.T) {
			doc := func(c *Cataloger) []byte {
				s, err := c.Catalog(t.Context(), img)
				require.NoError(t, err)
				var b bytes.Buffer
				require.NoError(t, Encode(&b, s, SyftJSON))
				return b.Bytes()
			}
			plain := New()
			plain.noPathMemo = true
			want := doc(plain)
			assert.Equal(t, string(want), string(doc(New())))
			assert.Contains(t, string(want), `"type":"evident-by"`, "the rules the memo serves ran")
		})
	}
}

// countingPaths counts FilesByPath calls.
type countingPaths struct {
	file.Resolver
	n int
}

func (c *countingPaths) FilesByPath(paths ...string) ([]file.Location, error) {
	c.n++
	return c.Resolver.FilesByPath(paths...)
}

// A repeated lookup is answered from memory, each caller with its own copy, errors
// too; past the bound lookups go to the resolver.
func TestPathMemo(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(p, []byte("x"), 0o600))
	inner := &countingPaths{Resolver: file.NewMockResolverForPaths(p)}
	m := &pathMemo{Resolver: inner, answers: map[string]pathAnswer{}}

	first, err := m.FilesByPath(p)
	require.NoError(t, err)
	require.Len(t, first, 1)
	first[0] = first[0].WithAnnotation("k", "v") // syft writes into the map
	again, err := m.FilesByPath(p)
	require.NoError(t, err)
	assert.Equal(t, 1, inner.n, "asked once")
	assert.Empty(t, again[0].Annotations, "a caller's write does not reach the memo")
	assert.Equal(t, first[0].Coordinates, again[0].Coordinates)

	none, err := m.FilesByPath("/missing", p)
	require.NoError(t, err)
	_, _ = m.FilesByPath("/missing", p)
	assert.Equal(t, 2, inner.n, "the argument list is the key")
	assert.Len(t, none, 1)

	// an error is an answer too
	bad := &pathMemo{Resolver: failingPaths{}, answers: map[string]pathAnswer{}}
	_, err1 := bad.FilesByPath("/a")
	_, err2 := bad.FilesByPath("/a")
	assert.ErrorIs(t, err1, errPaths)
	assert.ErrorIs(t, err2, errPaths)
}

var errPaths = errors.New("no paths")

type failingPaths struct{ file.Resolver }

func (failingPaths) FilesByPath(...string) ([]file.Location, error) { return nil, errPaths }

// fakeSource is a source with a given resolver, with or without ExcludedPaths.
type fakeSource struct {
	source.Source
	res file.Resolver
}

func (f fakeSource) FileResolver(source.Scope) (file.Resolver, error) { return f.res, nil }

type excludingSource struct{ fakeSource }

func (excludingSource) ExcludedPaths() []string { return []string{"/proc"} }

type ociResolver struct{ file.Resolver }

func (ociResolver) FilesByMediaType(...string) ([]file.Location, error) { return nil, nil }

// The memo never hides what syft asks of a source or resolver by type assertion:
// a source without ExcludedPaths is left as it is, ExcludedPaths is kept, and a
// resolver with an optional interface (FilesByMediaType here) is not wrapped.
func TestPathMemoKeepsInterfaces(t *testing.T) {
	// file.Resolver's methods only (syft's mock has more)
	plain := struct{ file.Resolver }{file.NewMockResolverForPaths()}
	src := fakeSource{res: plain}
	assert.Equal(t, source.Source(src), withPathMemo(src))

	ex := withPathMemo(excludingSource{src})
	pe, ok := ex.(source.PathExcluder)
	require.True(t, ok)
	assert.Equal(t, []string{"/proc"}, pe.ExcludedPaths())
	res, err := ex.FileResolver(source.SquashedScope)
	require.NoError(t, err)
	assert.IsType(t, &pathMemo{}, res)

	oci := ociResolver{plain}
	res, err = withPathMemo(excludingSource{fakeSource{res: oci}}).FileResolver(source.SquashedScope)
	require.NoError(t, err)
	_, isOCI := res.(file.OCIMediaTypeResolver)
	assert.True(t, isOCI, "not wrapped")
}
