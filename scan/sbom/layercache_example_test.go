package sbom_test

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/shipkit/shipkit/scan/internal/testimage"
	"github.com/shipkit/shipkit/scan/sbom"
)

// Catalog two images built on the same Debian base with one LayerCache: the
// second reuses the dpkg, apk and RPM catalogers' results for the base (the files
// they read are the same, in the same layer), and its SBOM is the one syft makes
// without the cache. The counters add up over the cache's life.
func ExampleWithLayerCache() {
	base, err := crane.Image(map[string][]byte{
		"etc/os-release":      []byte(testimage.OSRelease),
		"var/lib/dpkg/status": []byte(testimage.DpkgStatus),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	cache := sbom.NewLayerCache(sbom.WithCacheEntries(64), sbom.WithCacheBytes(64<<20))
	cat := sbom.New(sbom.WithLayerCache(cache))
	for _, app := range []string{"one", "two"} {
		layer, err := crane.Layer(map[string][]byte{"app/" + app: []byte(app)})
		if err != nil {
			fmt.Println(err)
			return
		}
		img, err := mutate.AppendLayers(base, layer)
		if err != nil {
			fmt.Println(err)
			return
		}
		s, err := cat.Catalog(context.Background(), img)
		if err != nil {
			fmt.Println(err)
			return
		}
		st := cache.Stats()
		fmt.Println(app, sbom.Summary(s), "hits:", st.Hits, "misses:", st.Misses)
	}
	// Output:
	// one map[deb:1] hits: 0 misses: 3
	// two map[deb:1] hits: 3 misses: 3
}
