package provider_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shipkit/shipkit/deploy/apply"
	"github.com/shipkit/shipkit/examples/terraform-provider/provider"
	"github.com/shipkit/shipkit/sign/cosign"
)

const (
	namespace = "shop"
	release   = "shipkit_release.web"
	image     = "shipkit_image.web"
)

var providers = map[string]func() (tfprotov6.ProviderServer, error){
	"shipkit": providerserver.NewProtocol6WithError(provider.New("test")()),
}

// app writes the service's source: a main package that prints greeting.
func app(t *testing.T, dir, greeting string) {
	t.Helper()
	write(t, dir, "go.mod", "module example.com/web\n\ngo 1.26\n")
	write(t, dir, "main.go", fmt.Sprintf("package main\n\nfunc main() { println(%q) }\n", greeting))
}

// manifests writes the kustomization: a Deployment of the registry's web image with
// replicas, a Secret web holding password, and a ConfigMap when extra is set.
func manifests(t *testing.T, dir, registry string, replicas int, extra bool, password string) {
	t.Helper()
	resources := "- deployment.yaml\n"
	if extra {
		resources += "- extra.yaml\n"
		write(t, dir, "extra.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  greeting: hello\n")
	}
	write(t, dir, "kustomization.yaml", "resources:\n"+resources+
		"secretGenerator:\n- name: web\n  literals: [password="+password+"]\n"+
		"generatorOptions:\n  disableNameSuffixHash: true\n")
	write(t, dir, "deployment.yaml", fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: %d
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: %s/web:latest
`, replicas, registry))
}

func write(t *testing.T, dir, file, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644))
}

// config is the Terraform configuration of the tests: the image, signed, and a
// release of it, gated on a signature by gateKey.
func config(kubeconfig, registry, src, kdir, keyFile, gateKey string, force bool) string {
	return fmt.Sprintf(`
provider "shipkit" {
  kubernetes = {
    config_path = %[1]q
  }
}

resource "shipkit_image" "web" {
  source_dir = %[3]q
  repository = "%[2]s/web"
  sign = {
    key_file = %[5]q
  }
}

resource "shipkit_release" "web" {
  name            = "web"
  namespace       = %[7]q
  kustomize_dir   = %[4]q
  images          = [shipkit_image.web.image]
  force_conflicts = %[8]t
  gate = {
    public_keys         = [file(%[6]q)]
    insecure_registries = [%[2]q]
  }
}
`, kubeconfig, registry, src, kdir, keyFile, gateKey, namespace, force)
}

// TestAccImageAndRelease walks one service through its life with OpenTofu: a gate
// that denies applies nothing; the image is built, pushed and signed, and the release
// applies its Deployment pinned to the digest; a change to the manifests shows in
// the plan as a diff and a dropped object is pruned; a change made in the cluster
// shows as a diff after refresh and is taken back only with force_conflicts; a
// source change rebuilds the image and rolls the Deployment to the new digest; both
// resources import; destroy prunes everything the release applied.
func TestAccImageAndRelease(t *testing.T) {
	accEnv(t)
	registry := startRegistry(t)
	k := startCluster(t)
	ctx := t.Context()
	_, err := k.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
	require.NoError(t, err)

	dir := t.TempDir()
	src, kdir := filepath.Join(dir, "src"), filepath.Join(dir, "deploy")
	keys, other := keyPair(t, filepath.Join(dir, "keys")), keyPair(t, filepath.Join(dir, "other"))
	t.Setenv(provider.DefaultPasswordEnv, "test-password")
	cfg := func(gateKey string, force bool) string {
		return config(k.kubeconfig, registry, src, kdir, filepath.Join(keys, cosign.PrivateKeyFile), gateKey, force)
	}
	pub, otherPub := filepath.Join(keys, cosign.PublicKeyFile), filepath.Join(other, cosign.PublicKeyFile)
	var firstDigest, current string

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: providers,
		CheckDestroy:             k.checkDestroyed(registry),
		Steps: []resource.TestStep{
			{
				// The gate trusts another key: the image is built and signed, the release is denied.
				PreConfig: func() {
					app(t, src, "hello")
					manifests(t, kdir, registry, 1, true, "s3cr3t-1")
				},
				Config:      cfg(otherPub, false),
				ExpectError: regexp.MustCompile(`denied by the deploy gate`),
			},
			{
				PreConfig: func() { require.NoError(t, k.checkNoDeployment()(nil)) },
				Config:    cfg(pub, false),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(image, plancheck.ResourceActionNoop),
					plancheck.ExpectResourceAction(release, plancheck.ResourceActionCreate),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestMatchResourceAttr(image, "digest", regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)),
					resource.TestMatchResourceAttr(image, "image", regexp.MustCompile(`^`+regexp.QuoteMeta(registry)+`/web@sha256:[0-9a-f]{64}$`)),
					resource.TestCheckResourceAttrPair(image, "id", image, "image"),
					resource.TestMatchResourceAttr(image, "source_hash", regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)),
					resource.TestMatchResourceAttr(image, "signed_by", regexp.MustCompile(`^sha256:[0-9a-f]{16}$`)),
					resource.TestCheckResourceAttr(release, "id", namespace+"/web"),
					resource.TestCheckResourceAttr(release, "applyset_id", (&apply.ApplySet{Name: "shipkit-release-web", Namespace: namespace}).ID()),
					resource.TestCheckResourceAttr(release, "objects.%", "2"),
					resource.TestCheckResourceAttrSet(release, "objects.ConfigMap/extra"),
					resource.TestCheckResourceAttr(release, "secret_objects.%", "1"),
					resource.TestCheckResourceAttrSet(release, "secret_objects.Secret/web"),
					k.checkSecret("s3cr3t-1"),
					k.checkDeployment(1),
					k.checkConfigMap("extra", true),
					checkInRegistry(),
					func(s *terraform.State) error {
						firstDigest = s.RootModule().Resources[image].Primary.Attributes["digest"]
						return nil
					},
				),
			},
			{
				// The manifests change: the plan shows the new replicas and the dropped
				// ConfigMap; the apply prunes it.
				PreConfig: func() { manifests(t, kdir, registry, 2, false, "s3cr3t-2") },
				Config:    cfg(pub, false),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(image, plancheck.ResourceActionNoop),
					plancheck.ExpectResourceAction(release, plancheck.ResourceActionUpdate),
					expectObjects(release, func(before, after map[string]string) error {
						if !strings.Contains(before["Deployment/web"], "replicas: 1\n") || !strings.Contains(after["Deployment/web"], "replicas: 2\n") {
							return fmt.Errorf("want replicas 1 -> 2 in the planned Deployment, got\n%s\n->\n%s", before["Deployment/web"], after["Deployment/web"])
						}
						if _, ok := after["ConfigMap/extra"]; ok || before["ConfigMap/extra"] == "" {
							return errors.New("want the ConfigMap planned away")
						}
						if _, ok := after["Secret/web"]; ok {
							return errors.New("the Secret is in objects, want it in secret_objects only")
						}
						return nil
					}),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(k.checkDeployment(2), k.checkConfigMap("extra", false), k.checkSecret("s3cr3t-2")),
			},
			{
				// Someone scales the Deployment: the refresh shows it as a diff, and the
				// apply refuses to take the field from its new owner without force.
				PreConfig:   func() { k.scale(t, 5) },
				Config:      cfg(pub, false),
				ExpectError: regexp.MustCompile(`(?s)owned by other managers.*force_conflicts = true`),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(release, plancheck.ResourceActionUpdate),
					expectObjects(release, func(before, after map[string]string) error {
						if !strings.Contains(before["Deployment/web"], "replicas: 5\n") || !strings.Contains(after["Deployment/web"], "replicas: 2\n") {
							return fmt.Errorf("want the drift replicas 5 -> 2, got\n%s\n->\n%s", before["Deployment/web"], after["Deployment/web"])
						}
						return nil
					}),
				}},
			},
			{
				Config: cfg(pub, true),
				Check:  k.checkDeployment(2),
			},
			{
				// The source changes: a new image, and the Deployment moves to its digest.
				PreConfig: func() { app(t, src, "hello again") },
				Config:    cfg(pub, true),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(image, plancheck.ResourceActionUpdate),
					plancheck.ExpectResourceAction(release, plancheck.ResourceActionUpdate),
					plancheck.ExpectUnknownValue(image, tfjsonpath.New("digest")),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					func(s *terraform.State) error {
						if d := s.RootModule().Resources[image].Primary.Attributes["digest"]; d == firstDigest {
							return fmt.Errorf("digest %s did not change with the source", d)
						}
						return nil
					},
					k.checkDeployment(2),
					checkInRegistry(),
					func(s *terraform.State) error {
						current = s.RootModule().Resources[image].Primary.Attributes["image"]
						return nil
					},
				),
			},
			{
				// The signature is deleted from the registry: the refresh notices, the
				// apply signs again, and the release is left alone.
				PreConfig: func() { deleteSignatures(t, current) },
				Config:    cfg(pub, true),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(image, plancheck.ResourceActionUpdate),
					plancheck.ExpectUnknownValue(image, tfjsonpath.New("signed_by")),
					plancheck.ExpectKnownValue(image, tfjsonpath.New("image"), knownvalue.StringFunc(func(v string) error {
						if v != current {
							return fmt.Errorf("image %s, want %s kept", v, current)
						}
						return nil
					})),
					plancheck.ExpectResourceAction(release, plancheck.ResourceActionNoop),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestMatchResourceAttr(image, "signed_by", regexp.MustCompile(`^sha256:[0-9a-f]{16}$`)),
					checkSigned(&current),
				),
			},
			{
				// The image is deleted from the registry: the refresh drops it, the apply
				// builds it again, to the same digest, and the release stays as it is.
				PreConfig: func() { deleteManifest(t, current) },
				Config:    cfg(pub, true),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(image, plancheck.ResourceActionCreate),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttrPtr(image, "image", &current),
					checkInRegistry(),
					k.checkDeployment(2),
				),
			},
			{
				ResourceName:      image,
				ImportState:       true,
				ImportStateVerify: true,
				ImportStateVerifyIgnore: []string{
					"source_dir", "package", "platforms", "base", "ldflags", "sign", "source_hash", "signed_by",
				},
			},
			{
				ResourceName:            release,
				ImportState:             true,
				ImportStateId:           namespace + "/web",
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"kustomize_dir", "images", "force_conflicts", "gate", "objects", "objects.%", "objects.Deployment/web", "secret_objects", "secret_objects.%", "secret_objects.Secret/web"},
			},
		},
	})
}

// keyPair writes a cosign key pair, encrypted with the test's password, into dir.
func keyPair(t *testing.T, dir string) string {
	t.Helper()
	kp, err := cosign.GenerateKeyPair([]byte("test-password"))
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(dir, 0o700))
	_, _, err = kp.WriteFiles(dir)
	require.NoError(t, err)
	return dir
}

// checkDeployment checks that the cluster runs the state's image with replicas, as a
// member of the release's ApplySet.
func (k *cluster) checkDeployment(replicas int32) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		want := s.RootModule().Resources[image].Primary.Attributes["image"]
		d, err := k.client.AppsV1().Deployments(namespace).Get(context.Background(), "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got := d.Spec.Template.Spec.Containers[0].Image; got != want {
			return fmt.Errorf("Deployment runs %s, want %s (the image's digest)", got, want)
		}
		if *d.Spec.Replicas != replicas {
			return fmt.Errorf("Deployment has %d replicas, want %d", *d.Spec.Replicas, replicas)
		}
		set := s.RootModule().Resources[release].Primary.Attributes["applyset_id"]
		if got := d.Labels[apply.ApplySetPartOfLabel]; got != set {
			return fmt.Errorf("Deployment is part of ApplySet %q, want %q", got, set)
		}
		return nil
	}
}

func (k *cluster) checkConfigMap(name string, exists bool) resource.TestCheckFunc {
	return func(*terraform.State) error {
		_, err := k.client.CoreV1().ConfigMaps(namespace).Get(context.Background(), name, metav1.GetOptions{})
		switch {
		case exists && err != nil:
			return fmt.Errorf("ConfigMap %s: %w", name, err)
		case !exists && !apierrors.IsNotFound(err):
			return fmt.Errorf("ConfigMap %s: want it pruned, got %w", name, err)
		}
		return nil
	}
}

func (k *cluster) checkNoDeployment() resource.TestCheckFunc {
	return func(*terraform.State) error {
		_, err := k.client.AppsV1().Deployments(namespace).Get(context.Background(), "web", metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("the gate denied the release, yet Deployment web: %w", err)
		}
		return nil
	}
}

// checkSecret checks the password in the Secret the release applied.
func (k *cluster) checkSecret(password string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		s, err := k.client.CoreV1().Secrets(namespace).Get(context.Background(), "web", metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("Secret web: %w", err)
		}
		if got := string(s.Data["password"]); got != password {
			return fmt.Errorf("Secret web has another password than the manifests (%d bytes)", len(got))
		}
		return nil
	}
}

// scale changes the Deployment's replicas as kubectl scale would, under another
// field manager.
func (k *cluster) scale(t *testing.T, replicas int32) {
	t.Helper()
	ctx := context.Background()
	d, err := k.client.AppsV1().Deployments(namespace).Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	d.Spec.Replicas = &replicas
	_, err = k.client.AppsV1().Deployments(namespace).Update(ctx, d, metav1.UpdateOptions{FieldManager: "kubectl-scale"})
	require.NoError(t, err)
}

// checkDestroyed checks that destroy pruned the release's objects and ApplySet parent,
// and left the image in the registry.
func (k *cluster) checkDestroyed(registry string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		ctx := context.Background()
		if _, err := k.client.AppsV1().Deployments(namespace).Get(ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("after destroy, Deployment web: want it pruned, got %w", err)
		}
		if _, err := k.client.CoreV1().ConfigMaps(namespace).Get(ctx, "shipkit-release-web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("after destroy, the ApplySet parent: want it deleted, got %w", err)
		}
		repo, err := name.NewRepository(registry + "/web")
		if err != nil {
			return err
		}
		tags, err := remote.List(repo)
		if err != nil {
			return fmt.Errorf("after destroy, list the registry's tags: %w", err)
		}
		if len(tags) == 0 {
			return errors.New("after destroy, the registry should keep the image and its signature, but has no tag")
		}
		return nil
	}
}

// checkInRegistry checks that the registry serves the state's image by digest.
func checkInRegistry() resource.TestCheckFunc {
	return func(s *terraform.State) error {
		ref, err := name.NewDigest(s.RootModule().Resources[image].Primary.Attributes["image"])
		if err != nil {
			return err
		}
		desc, err := remote.Head(ref)
		if err != nil {
			return fmt.Errorf("registry: %w", err)
		}
		if desc.Digest.String() != ref.DigestStr() || !desc.MediaType.IsIndex() {
			return fmt.Errorf("registry serves %s (%s) for %s, want the index", desc.Digest, desc.MediaType, ref)
		}
		return nil
	}
}

// signPredicateType marks a sigstore bundle that signs an image (cosign v3's
// layout, which the provider's signer writes by default).
const signPredicateType = "https://sigstore.dev/cosign/sign/v1"

// signatureReferrers returns the referrers of d that are signatures in bundle form.
func signatureReferrers(d name.Digest) ([]v1.Descriptor, error) {
	idx, err := remote.Referrers(d)
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var out []v1.Descriptor
	for _, m := range im.Manifests {
		if m.Annotations["dev.sigstore.bundle.predicateType"] == signPredicateType {
			out = append(out, m)
		}
	}
	return out, nil
}

// deleteSignatures deletes an image's signatures from its registry: the bundle
// referrers that sign it, and their entries in the referrers tag (sha256-HEX)
// where the registry keeps one.
func deleteSignatures(t *testing.T, ref string) {
	t.Helper()
	d, err := name.NewDigest(ref)
	require.NoError(t, err)
	sigs, err := signatureReferrers(d)
	require.NoError(t, err)
	require.NotEmpty(t, sigs, "the signature to delete is there")
	gone := map[v1.Hash]bool{}
	for _, m := range sigs {
		require.NoError(t, remote.Delete(d.Context().Digest(m.Digest.String())))
		gone[m.Digest] = true
	}
	tag := d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1))
	if idx, err := remote.Index(tag); err == nil {
		require.NoError(t, remote.WriteIndex(tag, mutate.RemoveManifests(idx, func(desc v1.Descriptor) bool { return gone[desc.Digest] })))
	}
}

// deleteManifest deletes an image's manifest from its registry.
func deleteManifest(t *testing.T, ref string) {
	t.Helper()
	d, err := name.NewDigest(ref)
	require.NoError(t, err)
	require.NoError(t, remote.Delete(d))
	_, err = remote.Head(d)
	require.Error(t, err, "the registry no longer has %s", d)
}

// checkSigned checks that the registry has a signature of the image *ref.
func checkSigned(ref *string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		d, err := name.NewDigest(*ref)
		if err != nil {
			return err
		}
		sigs, err := signatureReferrers(d)
		if err != nil {
			return fmt.Errorf("registry: referrers of %s: %w", d, err)
		}
		if len(sigs) == 0 {
			return fmt.Errorf("registry: no signature refers to %s", d)
		}
		return nil
	}
}
