package admission_test

import (
	"context"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shipkit/shipkit/deploy/admission"
	"github.com/shipkit/shipkit/deploy/gate"
	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/internal/testbed/kube"
	"github.com/shipkit/shipkit/internal/testbed/registry"
	"github.com/shipkit/shipkit/scan/policy"
	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

var cluster = testbed.Lazy[*kube.Cluster]{Start: kube.Start}

func TestMain(m *testing.M) {
	code := m.Run()
	cluster.Stop()
	os.Exit(code)
}

// signedImage pushes a random image to host/repo and, when key is set, signs it and
// attests a vulnerability report with the findings.
func signedImage(t *testing.T, host, repo string, key *cosign.PrivateKey, findings ...report.Finding) name.Digest {
	t.Helper()
	img, err := random.Image(256, 1)
	require.NoError(t, err)
	tag, err := name.NewTag(host + "/" + repo + ":v1")
	require.NoError(t, err)
	require.NoError(t, remote.Write(tag, img))
	h, err := img.Digest()
	require.NoError(t, err)
	d := tag.Context().Digest(h.String())
	if key == nil {
		return d
	}
	s, err := cosign.NewSigner(key)
	require.NoError(t, err)
	require.NoError(t, s.Sign(t.Context(), d))
	vuln, err := sign.VulnPredicate(&report.Report{Target: d.String(), Findings: findings, Tool: &report.Tool{Name: "grype", FinishedOn: time.Now()}})
	require.NoError(t, err)
	require.NoError(t, s.Attest(t.Context(), d, vuln))
	return d
}

// TestWebhook registers the gate as a ValidatingAdmissionWebhook of the real API
// server: creates of Pods and Deployments whose images are unsigned, vulnerable or
// named by tag are refused with the gate's reasons (dry runs too), and a signed,
// clean Deployment is created and its pods admitted.
func TestWebhook(t *testing.T) {
	c := cluster.Get(t)
	ns := c.NewNamespace(t)
	ctx := t.Context()
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	t.Cleanup(stop)

	pair, err := cosign.GenerateKeyPair([]byte("pw"))
	require.NoError(t, err)
	key, err := cosign.LoadPrivateKey(pair.PrivatePEM, []byte("pw"))
	require.NoError(t, err)
	clean := signedImage(t, host, "shop/web", key)
	vulnerable := signedImage(t, host, "shop/old", key, report.Finding{ID: "CVE-2024-3094", Package: "xz", Version: "5.6.0", Severity: report.Critical})
	unsigned := signedImage(t, host, "shop/unsigned", nil)

	verifier, err := cosign.NewVerifier(sign.Policy{TrustedKeys: []sign.TrustedKey{key.TrustedKey("ci")}})
	require.NoError(t, err)
	checker, err := policy.New() // Pod Security "restricted" and the hardening rules
	require.NoError(t, err)
	g, err := gate.New(gate.WithVerifier(verifier), gate.FailOn(report.High), gate.WithManifestPolicy(checker),
		gate.WithRegistries(gate.Registries{Insecure: []string{host}})) // the in-process registry is plain HTTP
	require.NoError(t, err)

	h, err := admission.NewHandler(g)
	require.NoError(t, err)
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	register(t, c, ns, srv)

	pods := c.Clientset().CoreV1().Pods(ns)
	deployments := c.Clientset().AppsV1().Deployments(ns)
	for _, tt := range []struct {
		name   string
		create func(ctx context.Context, opts metav1.CreateOptions) error
		says   []string
	}{
		{"unsigned deployment", func(ctx context.Context, o metav1.CreateOptions) error {
			_, err := deployments.Create(ctx, deploymentOf("unsigned", unsigned.String()), o)
			return err
		}, []string{"Deployment/" + ns + "/unsigned: container app: image " + unsigned.String(), "no signature"}},
		{"vulnerable deployment", func(ctx context.Context, o metav1.CreateOptions) error {
			_, err := deployments.Create(ctx, deploymentOf("old", vulnerable.String()), o)
			return err
		}, []string{"Deployment/" + ns + "/old", "CVE-2024-3094 (Critical, xz@5.6.0)"}},
		{"privileged pod", func(ctx context.Context, o metav1.CreateOptions) error {
			p := podOf("root", clean.String())
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr(true)}
			_, err := pods.Create(ctx, p, o)
			return err
		}, []string{"Pod/" + ns + "/root: [pss/privileged] spec.containers[name=app].securityContext.privileged", "[read-only-root-fs]"}},
		{"latest pod", func(ctx context.Context, o metav1.CreateOptions) error {
			_, err := pods.Create(ctx, podOf("latest", host+"/shop/web:latest"), o)
			return err
		}, []string{"Pod/" + ns + "/latest: container app: image " + host + "/shop/web:latest: not pinned by digest"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, dryRun := range []bool{true, false} {
				opts := metav1.CreateOptions{}
				if dryRun {
					opts.DryRun = []string{metav1.DryRunAll}
				}
				err := tt.create(ctx, opts)
				require.Error(t, err, "dry run %v", dryRun)
				assert.Contains(t, err.Error(), `admission webhook "gate.shipkit.dev" denied the request`)
				for _, s := range tt.says {
					assert.Contains(t, err.Error(), s)
				}
				t.Log(err)
			}
		})
	}
	_, err = pods.Get(ctx, "latest", metav1.GetOptions{})
	assert.Error(t, err, "the denied pod was not created")

	// A signed, clean image passes, and so do the pods its ReplicaSet creates.
	_, err = deployments.Create(ctx, deploymentOf("web", clean.String()), metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		d, err := deployments.Get(ctx, "web", metav1.GetOptions{})
		return err == nil && d.Status.AvailableReplicas == 1
	}, time.Minute, 200*time.Millisecond, "the Deployment's pod was admitted and became available")
}

// register points a ValidatingWebhookConfiguration for Pods and Deployments in ns at
// srv and waits until the API server calls it.
func register(t *testing.T, c *kube.Cluster, ns string, srv *httptest.Server) {
	t.Helper()
	ctx := t.Context()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	url := srv.URL + "/validate"
	none := admissionregv1.SideEffectClassNone
	fail := admissionregv1.Fail
	timeout := int32(10)
	rule := func(group, resource string) admissionregv1.RuleWithOperations {
		return admissionregv1.RuleWithOperations{
			Operations: []admissionregv1.OperationType{admissionregv1.Create, admissionregv1.Update},
			Rule:       admissionregv1.Rule{APIGroups: []string{group}, APIVersions: []string{"v1"}, Resources: []string{resource}},
		}
	}
	cfg := &admissionregv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "gate-" + ns},
		Webhooks: []admissionregv1.ValidatingWebhook{{
			Name:                    "gate.shipkit.dev",
			ClientConfig:            admissionregv1.WebhookClientConfig{URL: &url, CABundle: ca},
			Rules:                   []admissionregv1.RuleWithOperations{rule("", "pods"), rule("apps", "deployments")},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
			SideEffects:             &none,
			FailurePolicy:           &fail,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	hooks := c.Clientset().AdmissionregistrationV1().ValidatingWebhookConfigurations()
	_, err := hooks.Create(ctx, cfg, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = hooks.Delete(context.Background(), cfg.Name, metav1.DeleteOptions{}) })
	// The API server picks the configuration up asynchronously: probe with dry runs.
	probe := podOf("probe", "registry.example/probe:latest")
	require.Eventually(t, func() bool {
		_, err := c.Clientset().CoreV1().Pods(ns).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && strings.Contains(err.Error(), "gate.shipkit.dev")
	}, 30*time.Second, 100*time.Millisecond, "the API server did not call the webhook")
}

// podSpec runs image in a pod hardened as Pod Security "restricted" and the
// hardening rules of scan/policy want.
func podSpec(image string) corev1.PodSpec {
	return corev1.PodSpec{
		AutomountServiceAccountToken: ptr(false),
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot: ptr(true), RunAsUser: ptr(int64(65532)),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Containers: []corev1.Container{{
			Name: "app", Image: image,
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr(false), ReadOnlyRootFilesystem: ptr(true),
				Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("16Mi")},
			},
		}},
	}
}

func ptr[T any](v T) *T { return &v }

func podOf(name, image string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: podSpec(image)}
}

func deploymentOf(name, image string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec(image)},
		},
	}
}
