package sbom_test

import (
	"bytes"
	"context"
	"testing"

	syftpkg "github.com/anchore/syft/syft/pkg"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/scan/internal/testimage"
	"github.com/shipkit/shipkit/scan/sbom"
)

// TestDecode: what Encode writes in each format decodes back to the same packages
// and distro, the format recognised from the document; other documents are refused.
func TestDecode(t *testing.T) {
	testimage.GoBinary(t)
	isolateTemp(t)
	s, err := sbom.New().Catalog(context.Background(), testimage.Debian(t, "amd64"))
	require.NoError(t, err)
	want := packages(s)
	platform := &v1.Platform{OS: "linux", Architecture: "arm64"}

	for _, f := range []sbom.Format{sbom.SPDXJSON, sbom.CycloneDXJSON, sbom.SyftJSON} {
		t.Run(string(f), func(t *testing.T) {
			var buf bytes.Buffer
			require.NoError(t, sbom.Encode(&buf, s, f))
			got, format, err := sbom.Decode(buf.Bytes(), s.Subject, platform)
			require.NoError(t, err)
			assert.Equal(t, f, format)
			assert.Equal(t, s.Subject, got.Subject)
			assert.Equal(t, platform, got.Platform)
			have := packages(got)
			for _, typ := range []syftpkg.Type{syftpkg.GoModulePkg, syftpkg.DebPkg, syftpkg.JavaPkg} {
				assert.ElementsMatch(t, want[typ], have[typ], "%s packages", typ)
			}
			rel := got.Syft().Artifacts.LinuxDistribution
			require.NotNil(t, rel, "the distro survives")
			assert.Equal(t, "debian", rel.ID)
		})
	}

	for name, doc := range map[string]string{
		"not JSON":         "garbage",
		"other JSON":       `{"hello": "world"}`,
		"empty":            "",
		"SPDX, wrong type": `{"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "packages": 7}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := sbom.Decode([]byte(doc), s.Subject, nil)
			require.Error(t, err)
		})
	}
	_, _, err = sbom.Decode([]byte(`{"hello": "world"}`), s.Subject, nil)
	assert.ErrorIs(t, err, sbom.ErrUnknownFormat)
}
