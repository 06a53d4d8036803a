package main

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/build"
	"github.com/shipkit/shipkit/examples/pipeline/job"
	"github.com/shipkit/shipkit/internal/testbed/registry"
	"github.com/shipkit/shipkit/scan/vulndb"
)

// TestMainJobUsersDB: -db points the scan at a database the user wrote (with
// scan/vulndb, from their own advisories); the finding comes from it, and none of the
// embedded advisories is used.
func TestMainJobUsersDB(t *testing.T) {
	db := t.TempDir()
	_, err := vulndb.Write(t.Context(), db, []vulndb.Record{{
		ID: "GHSA-user-0000-0001", Type: "go-module", Package: "golang.org/x/text",
		Ranges: []vulndb.Range{{FixedIn: "0.3.9"}}, Severity: "medium",
		Description: "an advisory only the user's database has",
	}})
	require.NoError(t, err)

	out, err := runJob(t, "-platforms", "linux/amd64", "-db", db)
	require.NoError(t, err, out)
	assert.Regexp(t, `(?m)^    golang\.org/x/text +v0\.3\.7 +0\.3\.9 +go-module +GHSA-user-0000-0001 +Medium$`, out)
	assert.Contains(t, out, "1 finding (1 Medium) against "+db+"; passes fail-on critical")
	assert.NotContains(t, out, "GHSA-69ch-w2m2-3vjp", "the embedded advisories are not used")
	assert.NotContains(t, out, "embedded advisories")
	assert.Contains(t, out, "allowed: 3 objects, fail-on critical, Pod Security restricted; 1 finding (1 Medium) below the threshold")
}

// TestMainJobUsersOverlay: -overlay renders the user's kustomize directory — here a
// copy of the embedded one with its own namespace, an extra ConfigMap and the
// placeholder image mapped to the user's registry — with the image pinned by digest.
func TestMainJobUsersOverlay(t *testing.T) {
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	defer stop()
	repo := host + "/team/hello"
	overlay, err := job.WriteManifests(t.TempDir())
	require.NoError(t, err)
	for file, content := range map[string]string{
		"kustomization.yaml": `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: team-hello
resources:
- namespace.yaml
- greeting.yaml
- ../../base
images:
- name: hello
  newName: ` + repo + "\n",
		"namespace.yaml": `apiVersion: v1
kind: Namespace
metadata:
  name: team-hello
  labels:
    pod-security.kubernetes.io/enforce: restricted
`,
		"greeting.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: greeting
data:
  GREETING: hello from the user's overlay
`,
	} {
		require.NoError(t, os.WriteFile(filepath.Join(overlay, file), []byte(content), 0o644))
	}

	out, err := runJob(t, "-platforms", "linux/amd64", "-registry", repo, "-overlay", overlay)
	require.NoError(t, err, out)
	assert.Regexp(t, `(?m)^    ok in \d+\.\d\ds: 4 objects \(Namespace, ConfigMap, Deployment, Service\), image pinned to sha256:[0-9a-f]{12}$`, out)
	for _, obj := range []string{"Namespace/team-hello", "ConfigMap/team-hello/greeting", "Deployment/team-hello/hello", "Service/team-hello/hello"} {
		assert.Contains(t, out, "    "+obj+" created\n")
	}
	assert.NotContains(t, out, "Namespace/hello ", "the embedded overlay is not rendered")
	assert.Contains(t, out, "allowed: 4 objects, fail-on critical, Pod Security restricted")
	assert.Regexp(t, `(?m)^image `+regexp.QuoteMeta(repo)+`@sha256:[0-9a-f]{64}$`, out)
}

// TestMainJobBaseImage: -base builds on a base image from a registry; the pushed
// index and its image record the base by name and digest, and the image has the
// base's layer under the service's.
func TestMainJobBaseImage(t *testing.T) {
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	defer stop()
	baseRef := host + "/base/static:v1"
	baseIdx, baseImg := pushBase(t, baseRef)
	baseIdxDigest, err := baseIdx.Digest()
	require.NoError(t, err)
	baseImgDigest, err := baseImg.Digest()
	require.NoError(t, err)
	baseLayers, err := baseImg.Layers()
	require.NoError(t, err)
	baseLayer, err := baseLayers[0].Digest()
	require.NoError(t, err)

	out, err := runJob(t, "-platforms", "linux/amd64", "-registry", host+"/team/hello", "-base", baseRef)
	require.NoError(t, err, out)
	m := regexp.MustCompile(`(?m)^image (\S+)$`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	d, err := name.NewDigest(m[1])
	require.NoError(t, err)

	idx, err := remote.Index(d, remote.WithContext(t.Context()))
	require.NoError(t, err)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	assert.Equal(t, baseIdxDigest.String(), im.Annotations[build.AnnotationBaseDigest], "the index records the base index")
	assert.Equal(t, baseRef, im.Annotations[build.AnnotationBaseName])
	require.Len(t, im.Manifests, 1)
	img, err := idx.Image(im.Manifests[0].Digest)
	require.NoError(t, err)
	mf, err := img.Manifest()
	require.NoError(t, err)
	assert.Equal(t, baseImgDigest.String(), mf.Annotations[build.AnnotationBaseDigest], "the image records the base's linux/amd64 image")
	assert.Equal(t, baseRef, mf.Annotations[build.AnnotationBaseName])
	require.Greater(t, len(mf.Layers), 1)
	assert.Equal(t, baseLayer, mf.Layers[0].Digest, "the base's layer comes first")
}

// pushBase pushes a one-platform (linux/amd64) base index with one small layer to ref
// and returns it with its image.
func pushBase(t *testing.T, ref string) (v1.ImageIndex, v1.Image) {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	content := "a base image of the test\n"
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755}))
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "etc/base-release", Mode: 0o644, Size: int64(len(content))}))
	_, err := tw.Write([]byte(content))
	require.NoError(t, err)
	require.NoError(t, tw.Close())

	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b.Bytes())), nil },
		tarball.WithMediaType(types.OCILayer))
	require.NoError(t, err)
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	require.NoError(t, err)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	cf.OS, cf.Architecture = "linux", "amd64"
	img, err = mutate.ConfigFile(img, cf)
	require.NoError(t, err)
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}})
	r, err := name.ParseReference(ref)
	require.NoError(t, err)
	require.NoError(t, remote.WriteIndex(r, idx, remote.WithContext(t.Context())))
	return idx, img
}
