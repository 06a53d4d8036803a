package sbom_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/package-url/packageurl-go"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/scan"
	"github.com/shipkit/shipkit/scan/internal/testimage"
	"github.com/shipkit/shipkit/scan/sbom"
)

// debianImage is a small linux/arm64 image with a dpkg database: no Go build.
func debianImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := crane.Image(map[string][]byte{
		"etc/os-release":      []byte(testimage.OSRelease),
		"var/lib/dpkg/status": []byte(testimage.DpkgStatus),
	})
	require.NoError(t, err)
	cfg, err := img.ConfigFile()
	require.NoError(t, err)
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "arm64"
	img, err = mutate.ConfigFile(img, cfg)
	require.NoError(t, err)
	return img
}

// root is the root component of an encoded SBOM: SPDX's described package or
// CycloneDX's metadata.component.
type root struct{ name, version, purl string }

func rootOf(t *testing.T, s *scan.SBOM, f sbom.Format) root {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, sbom.Encode(&buf, s, f))
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	assert.NoError(t, schemas(t)[f].Validate(doc), "the document still follows the %s schema", f)
	switch f {
	case sbom.SPDXJSON:
		var d struct {
			Relationships []struct {
				A   string `json:"spdxElementId"`
				B   string `json:"relatedSpdxElement"`
				Typ string `json:"relationshipType"`
			} `json:"relationships"`
			Packages []struct {
				ID      string `json:"SPDXID"`
				Name    string `json:"name"`
				Version string `json:"versionInfo"`
				Refs    []struct {
					Type    string `json:"referenceType"`
					Locator string `json:"referenceLocator"`
				} `json:"externalRefs"`
			} `json:"packages"`
		}
		require.NoError(t, json.Unmarshal(buf.Bytes(), &d))
		for _, r := range d.Relationships {
			if r.A != "SPDXRef-DOCUMENT" || r.Typ != "DESCRIBES" {
				continue
			}
			for _, p := range d.Packages {
				if p.ID == r.B {
					out := root{name: p.Name, version: p.Version}
					for _, ref := range p.Refs {
						if ref.Type == "purl" {
							assert.Empty(t, out.purl, "one purl")
							out.purl = ref.Locator
						}
					}
					return out
				}
			}
		}
		t.Fatal("no package the document DESCRIBES")
	case sbom.CycloneDXJSON:
		var d struct {
			Metadata struct {
				Component struct {
					Name    string `json:"name"`
					Version string `json:"version"`
					PURL    string `json:"purl"`
				} `json:"component"`
			} `json:"metadata"`
		}
		require.NoError(t, json.Unmarshal(buf.Bytes(), &d))
		c := d.Metadata.Component
		return root{name: c.Name, version: c.Version, purl: c.PURL}
	}
	t.Fatalf("format %s", f)
	return root{}
}

// The root component of an SBOM names the image by repository and digest, with the
// purl spec's OCI package URL, in SPDX and CycloneDX; unnamed, it is the digest.
func TestSourceName(t *testing.T) {
	isolateTemp(t)
	img := debianImage(t)
	digest, err := img.Digest()
	require.NoError(t, err)
	ctx := context.Background()

	for _, tc := range []struct {
		repo, name, purlName, repositoryURL string
	}{
		{"registry.example:5000/team/app", "registry.example:5000/team/app", "app", "registry.example:5000/team/app"},
		{"ghcr.io/org/tools/scanner", "ghcr.io/org/tools/scanner", "scanner", "ghcr.io/org/tools/scanner"},
		{"debian", "index.docker.io/library/debian", "debian", "docker.io/library/debian"},
	} {
		t.Run(tc.repo, func(t *testing.T) {
			repo, err := name.NewRepository(tc.repo)
			require.NoError(t, err)
			s, err := sbom.New(sbom.WithSourceName(repo)).Catalog(ctx, img)
			require.NoError(t, err)
			assert.Equal(t, digest, s.Subject)
			for _, f := range []sbom.Format{sbom.SPDXJSON, sbom.CycloneDXJSON} {
				r := rootOf(t, s, f)
				assert.Equal(t, tc.name, r.name, f)
				assert.Equal(t, digest.String(), r.version, f)
				p, err := packageurl.FromString(r.purl)
				require.NoError(t, err, "%s purl %q", f, r.purl)
				assert.Equal(t, "oci", p.Type)
				assert.Equal(t, tc.purlName, p.Name)
				assert.Equal(t, digest.String(), p.Version)
				assert.Equal(t, map[string]string{"arch": "arm64", "repository_url": tc.repositoryURL}, p.Qualifiers.Map(), f)
			}
			var buf bytes.Buffer
			require.NoError(t, sbom.Encode(&buf, s, sbom.SyftJSON))
			assert.Contains(t, buf.String(), `"userInput":"`+tc.name+`@`+digest.String()+`"`)
		})
	}

	t.Run("unnamed", func(t *testing.T) {
		s, err := sbom.New().Catalog(ctx, img)
		require.NoError(t, err)
		for _, f := range []sbom.Format{sbom.SPDXJSON, sbom.CycloneDXJSON} {
			r := rootOf(t, s, f)
			assert.Equal(t, root{name: digest.String(), version: digest.String()}, r,
				"%s: named by its digest, no package URL (syft's would call it \"sha256\")", f)
		}
	})

	t.Run("index", func(t *testing.T) {
		idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, "application/vnd.oci.image.index.v1+json"),
			mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
		repo, err := name.NewRepository("registry.example/team/app")
		require.NoError(t, err)
		sboms, err := sbom.New(sbom.WithSourceName(repo)).CatalogIndex(ctx, idx)
		require.NoError(t, err)
		require.Len(t, sboms, 1)
		assert.Equal(t, "pkg:oci/app@"+digest.String()+"?arch=arm64&repository_url=registry.example%2Fteam%2Fapp",
			rootOf(t, sboms[0], sbom.CycloneDXJSON).purl, "each platform image is named by the index's repository and its own digest")
	})

	t.Run("zero repository", func(t *testing.T) {
		_, err := sbom.New(sbom.WithSourceName(name.Repository{})).Catalog(ctx, img)
		require.ErrorContains(t, err, "WithSourceName: no repository given")
		require.ErrorIs(t, err, sbom.ErrInvalidOption)
	})
}
