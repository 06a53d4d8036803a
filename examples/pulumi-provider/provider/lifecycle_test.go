package provider_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shipkit/shipkit/examples/pulumi-provider/provider"
	"github.com/shipkit/shipkit/sign/cosign"
)

var opts = plugin.MarshalOptions{KeepUnknowns: true, KeepSecrets: true, SkipNulls: true}

func props(t *testing.T, pm resource.PropertyMap) *structpb.Struct {
	t.Helper()
	st, err := plugin.MarshalProperties(pm, opts)
	require.NoError(t, err)
	return st
}

func unprops(t *testing.T, st *structpb.Struct) resource.PropertyMap {
	t.Helper()
	pm, err := plugin.UnmarshalProperties(st, opts)
	require.NoError(t, err)
	return pm
}

// TestLifecycle drives the provider as the engine does (the calls of a preview, an
// up, a refresh and a destroy) without the engine, so that a translation error shows
// here with the provider's own message: the image is built, pushed and signed, the
// release applied; an unchanged diff is empty; a change in the cluster shows after
// Read; Delete prunes.
func TestLifecycle(t *testing.T) {
	registry := startRegistry(t)
	k := startCluster(t)
	ctx := t.Context()
	_, err := k.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Setenv("KUBECONFIG", k.kubeconfig)
	t.Setenv("COSIGN_PASSWORD", "test-password")

	dir := t.TempDir()
	src, kdir, keys := filepath.Join(dir, "src"), filepath.Join(dir, "deploy"), filepath.Join(dir, "keys")
	app(t, src, "hello")
	manifests(t, kdir, registry, 1, false, "s3cr3t-1")
	kp, err := cosign.GenerateKeyPair([]byte("test-password"))
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(keys, 0o700))
	_, _, err = kp.WriteFiles(keys)
	require.NoError(t, err)
	pub, err := os.ReadFile(filepath.Join(keys, cosign.PublicKeyFile))
	require.NoError(t, err)

	s, err := provider.New(ctx, "test")
	require.NoError(t, err)
	_, err = s.Configure(ctx, &pulumirpc.ConfigureRequest{Args: props(t, resource.PropertyMap{}), AcceptSecrets: true})
	require.NoError(t, err)

	const imageURN = "urn:pulumi:dev::web::shipkit:index:Image::image"
	const releaseURN = "urn:pulumi:dev::web::shipkit:index:Release::release"
	imageIn := resource.PropertyMap{
		"sourceDir":  resource.NewProperty(src),
		"repository": resource.NewProperty(registry + "/web"),
		"sign":       resource.NewProperty(resource.PropertyMap{"keyFile": resource.NewProperty(filepath.Join(keys, cosign.PrivateKeyFile))}),
	}
	chk, err := s.Check(ctx, &pulumirpc.CheckRequest{Urn: imageURN, News: props(t, imageIn)})
	require.NoError(t, err)
	require.Empty(t, chk.Failures)

	// Preview of the create: the digest is computed.
	pre, err := s.Create(ctx, &pulumirpc.CreateRequest{Urn: imageURN, Properties: props(t, imageIn), Preview: true})
	require.NoError(t, err)
	require.True(t, unprops(t, pre.Properties)["digest"].IsComputed())

	img, err := s.Create(ctx, &pulumirpc.CreateRequest{Urn: imageURN, Properties: props(t, imageIn)})
	require.NoError(t, err)
	imgOut := unprops(t, img.Properties)
	ref := imgOut["image"].StringValue()
	require.Equal(t, ref, img.Id)
	require.Regexp(t, `^sha256:[0-9a-f]{16}$`, imgOut["signedBy"].StringValue())
	checkInRegistry(t, ref)

	releaseIn := resource.PropertyMap{
		"name":         resource.NewProperty("web"),
		"namespace":    resource.NewProperty(namespace),
		"kustomizeDir": resource.NewProperty(kdir),
		"images":       resource.NewProperty([]resource.PropertyValue{resource.NewProperty(ref)}),
		"gate": resource.NewProperty(resource.PropertyMap{
			"publicKeys":         resource.NewProperty([]resource.PropertyValue{resource.NewProperty(string(pub))}),
			"insecureRegistries": resource.NewProperty([]resource.PropertyValue{resource.NewProperty(registry)}),
		}),
	}
	rel, err := s.Create(ctx, &pulumirpc.CreateRequest{Urn: releaseURN, Properties: props(t, releaseIn)})
	require.NoError(t, err)
	require.Equal(t, namespace+"/web", rel.Id)
	relOut := unprops(t, rel.Properties)
	require.True(t, relOut["secretObjects"].IsSecret(), "secretObjects is a secret")
	require.Contains(t, relOut["objects"].ObjectValue(), resource.PropertyKey("Deployment/web"))
	k.checkDeployment(t, ref, 1)
	k.checkSecret(t, "s3cr3t-1")

	// No change: both diffs are empty.
	d, err := s.Diff(ctx, &pulumirpc.DiffRequest{Id: img.Id, Urn: imageURN, Olds: img.Properties, News: props(t, imageIn)})
	require.NoError(t, err)
	require.Equal(t, pulumirpc.DiffResponse_DIFF_NONE, d.Changes, "image diffs %v", d.Diffs)
	d, err = s.Diff(ctx, &pulumirpc.DiffRequest{Id: rel.Id, Urn: releaseURN, Olds: rel.Properties, News: props(t, releaseIn)})
	require.NoError(t, err)
	require.Equal(t, pulumirpc.DiffResponse_DIFF_NONE, d.Changes, "release diffs %v", d.Diffs)

	// Drift: Read brings the cluster's replicas into the state; the diff shows it.
	k.scale(t, 5)
	rd, err := s.Read(ctx, &pulumirpc.ReadRequest{Id: rel.Id, Urn: releaseURN, Properties: rel.Properties, Inputs: props(t, releaseIn)})
	require.NoError(t, err)
	require.Equal(t, rel.Id, rd.Id)
	require.Contains(t, unprops(t, rd.Properties)["objects"].ObjectValue()["Deployment/web"].StringValue(), "replicas: 5")
	d, err = s.Diff(ctx, &pulumirpc.DiffRequest{Id: rel.Id, Urn: releaseURN, Olds: rd.Properties, News: props(t, releaseIn)})
	require.NoError(t, err)
	require.Equal(t, pulumirpc.DiffResponse_DIFF_SOME, d.Changes)
	require.Contains(t, d.Diffs, "objects")

	// Update with forceConflicts takes it back.
	releaseIn["forceConflicts"] = resource.NewProperty(true)
	up, err := s.Update(ctx, &pulumirpc.UpdateRequest{Id: rel.Id, Urn: releaseURN, Olds: rd.Properties, News: props(t, releaseIn)})
	require.NoError(t, err)
	k.checkDeployment(t, ref, 1)

	// Delete prunes.
	_, err = s.Delete(ctx, &pulumirpc.DeleteRequest{Id: rel.Id, Urn: releaseURN, Properties: up.Properties})
	require.NoError(t, err)
	_, err = k.client.AppsV1().Deployments(namespace).Get(ctx, "web", metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "after Delete, Deployment web: %v", err)
	_, err = s.Delete(ctx, &pulumirpc.DeleteRequest{Id: img.Id, Urn: imageURN, Properties: img.Properties})
	require.NoError(t, err)
}
