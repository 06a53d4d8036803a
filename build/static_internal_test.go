package build

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The digests of Static: its layer and its linux/amd64 image. They change only when
// the vendored files change (build/internal/static/update.sh) or Go's gzip output
// does; then update them here and in the README.
const (
	staticLayerDigest = "sha256:0061849c393a6bd34fe13a9ba3f84ef4890c5d5d0ba389eea4fcc6295c5c0b0d"
	staticDiffID      = "sha256:8d1fd253320f2fd067bcaa89b7e8db0283696b24899f49d0705c01f924a05ffc"
	staticAMD64Digest = "sha256:11feed4e4d2b333993b7f6f8bcc04f050afc8bf64fc8c97a997252fa6259ace4"
)

// TestStaticDigest writes Static's layer twice, independently, and gets the same
// bytes, the digests pinned above: the base is the same on every machine and in
// every process, whatever SOURCE_DATE_EPOCH says.
func TestStaticDigest(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	var layers, diffIDs, images []string
	for range 2 {
		l, err := newStaticLayer()
		require.NoError(t, err)
		d, err := l.layer.Digest()
		require.NoError(t, err)
		diff, err := l.layer.DiffID()
		require.NoError(t, err)
		img, err := staticImage(l, v1.Platform{OS: "linux", Architecture: "amd64"})
		require.NoError(t, err)
		id, err := img.Digest()
		require.NoError(t, err)
		layers, diffIDs, images = append(layers, d.String()), append(diffIDs, diff.String()), append(images, id.String())
		size, err := l.layer.Size()
		require.NoError(t, err)
		t.Logf("layer %s (%d bytes compressed), diff ID %s, linux/amd64 image %s", d, size, diff, id)
	}
	assert.Equal(t, []string{staticLayerDigest, staticLayerDigest}, layers)
	assert.Equal(t, []string{staticDiffID, staticDiffID}, diffIDs)
	assert.Equal(t, []string{staticAMD64Digest, staticAMD64Digest}, images)
}
