package sbom_test

import (
	"bytes"
	"context"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/scan"
	"github.com/shipkit/shipkit/scan/internal/testimage"
	"github.com/shipkit/shipkit/scan/sbom"
)

// syftJSON encodes an SBOM as syft JSON: every package with its id, name, version,
// PURL, locations, licenses and metadata, the relationships, the distro and the
// source.
func syftJSON(t *testing.T, s *scan.SBOM) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, sbom.Encode(&b, s, sbom.SyftJSON))
	return b.String()
}

// TestConcurrencySameSBOMs catalogs the same images one at a time and three at a
// time: the SBOMs come back in the same order and encode to the same bytes.
func TestConcurrencySameSBOMs(t *testing.T) {
	testimage.GoBinary(t)
	isolateTemp(t)
	ctx := context.Background()
	imgs := []v1.Image{
		testimage.Debian(t, "amd64"), testimage.Alpine(t, "arm64"),
		testimage.Debian(t, "arm64"), testimage.Alpine(t, "amd64"),
	}
	var want []string
	for _, img := range imgs {
		s, err := sbom.New().Catalog(ctx, img)
		require.NoError(t, err)
		want = append(want, syftJSON(t, s))
	}
	for _, n := range []int{1, 3} {
		got, err := sbom.New(sbom.WithConcurrency(n)).CatalogImages(ctx, imgs)
		require.NoError(t, err, "concurrency %d", n)
		require.Len(t, got, len(imgs))
		for i := range got {
			d, err := imgs[i].Digest()
			require.NoError(t, err)
			assert.Equal(t, d, got[i].Subject, "concurrency %d, image %d", n, i)
			assert.Equal(t, want[i], syftJSON(t, got[i]), "concurrency %d, image %d", n, i)
		}
	}

	idx := testimage.Index(t)
	one, err := sbom.New(sbom.WithConcurrency(1)).CatalogIndex(ctx, idx)
	require.NoError(t, err)
	two, err := sbom.New(sbom.WithConcurrency(2)).CatalogIndex(ctx, idx)
	require.NoError(t, err)
	require.Len(t, two, 2)
	for i := range one {
		assert.Equal(t, one[i].Platform, two[i].Platform)
		assert.Equal(t, syftJSON(t, one[i]), syftJSON(t, two[i]), "platform %d", i)
	}
}

func TestConcurrencyInvalid(t *testing.T) {
	ctx := context.Background()
	for _, n := range []int{0, -1} {
		c := sbom.New(sbom.WithConcurrency(n))
		_, err := c.Catalog(ctx, testimage.Debian(t, "amd64"))
		require.ErrorIs(t, err, sbom.ErrInvalidOption)
		assert.ErrorContains(t, err, "WithConcurrency")
		_, err = c.CatalogIndex(ctx, testimage.Index(t))
		require.ErrorIs(t, err, sbom.ErrInvalidOption)
		_, err = c.CatalogImages(ctx, []v1.Image{testimage.Debian(t, "amd64")})
		require.ErrorIs(t, err, sbom.ErrInvalidOption)
	}
}

// TestConcurrencyFailure: one bad image among good ones fails the batch with that
// image's error, and every image's temporary files are gone.
func TestConcurrencyFailure(t *testing.T) {
	testimage.GoBinary(t)
	isolateTemp(t)
	full := testimage.Tar(t, testimage.DebianFiles()...)
	bad := testimage.Image(t, "amd64", testimage.Layer(t, full[:len(full)/2+7]))
	badDigest, err := bad.Digest()
	require.NoError(t, err)
	imgs := []v1.Image{testimage.Debian(t, "amd64"), bad, testimage.Debian(t, "arm64"), testimage.Alpine(t, "amd64")}
	_, err = sbom.New(sbom.WithConcurrency(2)).CatalogImages(context.Background(), imgs)
	require.Error(t, err)
	assert.ErrorContains(t, err, "catalog "+badDigest.String())
	assert.ErrorContains(t, err, "read image")
	assert.NotErrorIs(t, err, context.Canceled)

	_, err = sbom.New().CatalogImages(context.Background(), []v1.Image{imgs[0], nil})
	require.ErrorContains(t, err, "image 1: no image")
}

// TestConcurrencyObserver: with both platforms cataloged at once, each step still
// starts before it finishes and names its platform.
func TestConcurrencyObserver(t *testing.T) {
	testimage.GoBinary(t)
	isolateTemp(t)
	var mu sync.Mutex
	var events []observe.Event
	obs := observe.ObserverFunc(func(e observe.Event) { mu.Lock(); events = append(events, e); mu.Unlock() })
	_, err := sbom.New(sbom.WithObserver(obs), sbom.WithConcurrency(2)).CatalogIndex(context.Background(), testimage.Index(t))
	require.NoError(t, err)
	phases := map[string][]string{}
	for _, e := range events {
		phases[e.Step] = append(phases[e.Step], e.Phase.String())
	}
	assert.Equal(t, map[string][]string{
		"catalog linux/amd64": {"started", "finished"},
		"catalog linux/arm64": {"started", "finished"},
	}, phases)
}
