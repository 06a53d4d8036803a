package admission_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shipkit/shipkit/deploy/admission"
	"github.com/shipkit/shipkit/deploy/gate"
	"github.com/shipkit/shipkit/internal/testbed/kube"
	"github.com/shipkit/shipkit/internal/testbed/registry"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

// webhook serves a gate that verifies signatures by key, reading only from the
// registries reg allows (its transport too), as the API server's webhook for
// pods in a new namespace, and returns the namespace.
func webhook(t *testing.T, c *kube.Cluster, key *cosign.PrivateKey, reg gate.Registries) string {
	t.Helper()
	rt, err := reg.Transport(nil)
	require.NoError(t, err)
	verifier, err := cosign.NewVerifier(sign.Policy{TrustedKeys: []sign.TrustedKey{key.TrustedKey("ci")}}, cosign.WithTransport(rt))
	require.NoError(t, err)
	g, err := gate.New(gate.WithVerifier(verifier), gate.WithRegistries(reg))
	require.NoError(t, err)
	h, err := admission.NewHandler(g)
	require.NoError(t, err)
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	ns := c.NewNamespace(t)
	register(t, c, ns, srv)
	return ns
}

// create creates pod in ns, as a dry run or not, and returns the API server's error.
func create(ctx context.Context, c *kube.Cluster, ns string, pod *corev1.Pod, dryRun bool) error {
	opts := metav1.CreateOptions{}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	_, err := c.Clientset().CoreV1().Pods(ns).Create(ctx, pod, opts)
	return err
}

func newKey(t *testing.T) *cosign.PrivateKey {
	t.Helper()
	pair, err := cosign.GenerateKeyPair([]byte("pw"))
	require.NoError(t, err)
	key, err := cosign.LoadPrivateKey(pair.PrivatePEM, []byte("pw"))
	require.NoError(t, err)
	return key
}

// withImageVolume mounts image into the pod as volume "tools".
func withImageVolume(p *corev1.Pod, image string) *corev1.Pod {
	p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "tools",
		VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: image, PullPolicy: corev1.PullIfNotPresent}}})
	p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "tools", MountPath: "/tools"})
	return p
}

// TestWebhookImageVolume: an unsigned image mounted as an image volume into a pod
// whose container is signed is refused by the webhook, by tag and by digest.
func TestWebhookImageVolume(t *testing.T) {
	c := cluster.Get(t)
	ctx := t.Context()
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	t.Cleanup(stop)
	key := newKey(t)
	signed := signedImage(t, host, "shop/web", key)
	unsigned := signedImage(t, host, "shop/tools", nil)
	ns := webhook(t, c, key, gate.Registries{Insecure: []string{host}})

	require.NoError(t, create(ctx, c, ns, withImageVolume(podOf("control", signed.String()), signed.String()), true),
		"a signed image volume in a signed pod is admitted")
	for _, tt := range []struct{ name, image, says string }{
		{"by tag", host + "/shop/tools:v1", `spec.volumes[name=tools].image.reference: not pinned by digest (tag "v1")`},
		{"by digest", unsigned.String(), "spec.volumes[name=tools].image.reference: no signature"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := create(ctx, c, ns, withImageVolume(podOf("tools", signed.String()), tt.image), false)
			require.Error(t, err)
			assert.Contains(t, err.Error(), `admission webhook "gate.shipkit.dev" denied the request`)
			assert.Contains(t, err.Error(), "Pod/"+ns+"/tools: image "+tt.image+": "+tt.says)
			t.Log(err)
		})
	}
}

// hostile serves every request with status and body on 127.0.0.1 and counts the
// requests.
func hostile(t *testing.T, status int, body string) (host string, hits *atomic.Int32) {
	t.Helper()
	hits = &atomic.Int32{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), hits
}

// pinnedIn names a random digest in repository repo of host.
func pinnedIn(t *testing.T, host, repo string) string {
	t.Helper()
	img, err := random.Image(64, 1)
	require.NoError(t, err)
	h, err := img.Digest()
	require.NoError(t, err)
	return host + "/" + repo + "@" + h.String()
}

// TestWebhookRegistryAllowList: the webhook fetches only from allowed registries,
// over plain HTTP only from those listed as insecure, and never sends back what a
// registry answered.
func TestWebhookRegistryAllowList(t *testing.T) {
	c := cluster.Get(t)
	ctx := t.Context()
	key := newKey(t)
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	t.Cleanup(stop)
	signed := signedImage(t, host, "shop/web", key)

	secret := "INTERNAL-ADMIN-PAGE-7f3a"
	echo, echoHits := hostile(t, http.StatusForbidden, secret+strings.Repeat(" <td>internal</td>", 25<<10/18))
	outside, outsideHits := hostile(t, http.StatusOK, "{}")
	ns := webhook(t, c, key, gate.Registries{Insecure: []string{host, echo}})

	t.Run("a registry's answer is not echoed", func(t *testing.T) {
		img := pinnedIn(t, echo, "app")
		err := create(ctx, c, ns, podOf("echo", img), false)
		require.Error(t, err)
		assert.Positive(t, echoHits.Load(), "the allowed registry was asked")
		assert.NotContains(t, err.Error(), secret)
		assert.NotContains(t, err.Error(), "internal</td>")
		assert.Contains(t, err.Error(), "the deploy gate could not decide: image "+img+": the registry answered HTTP 403; see the webhook's logs")
		assert.Less(t, len(err.Error()), 1024)
		t.Log(err)
	})
	t.Run("a registry outside the allow-list is never asked", func(t *testing.T) {
		img := pinnedIn(t, outside, "app")
		err := create(ctx, c, ns, podOf("outside", img), false)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "Pod/"+ns+"/outside: container app: image "+img+": registry "+outside+" is not in the gate's allow-list")
		assert.Zero(t, outsideHits.Load(), "no request reached the registry")
		t.Log(err)
	})
	t.Run("a signed image from an allowed registry is admitted", func(t *testing.T) {
		require.NoError(t, create(ctx, c, ns, podOf("web", signed.String()), true))
	})
	t.Run("without an allow-list plain HTTP is refused", func(t *testing.T) {
		verifier, err := cosign.NewVerifier(sign.Policy{TrustedKeys: []sign.TrustedKey{key.TrustedKey("ci")}})
		require.NoError(t, err)
		g, err := gate.New(gate.WithVerifier(verifier)) // no WithRegistries: HTTPS anywhere, no plain HTTP
		require.NoError(t, err)
		h, err := admission.NewHandler(g)
		require.NoError(t, err)
		srv := httptest.NewTLSServer(h)
		t.Cleanup(srv.Close)
		ns := c.NewNamespace(t)
		register(t, c, ns, srv)
		before := outsideHits.Load()
		for _, img := range []string{pinnedIn(t, outside, "app"), signed.String()} {
			err := create(ctx, c, ns, podOf("plain", img), false)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "image "+img+": registry ")
			assert.Contains(t, err.Error(), "would be read over plain HTTP")
			t.Log(err)
		}
		assert.Equal(t, before, outsideHits.Load(), "no request reached the registry")
	})
	t.Run("an insecure registry not listed as insecure", func(t *testing.T) {
		ns := webhook(t, c, key, gate.Registries{Hosts: []string{host}})
		err := create(ctx, c, ns, podOf("web", signed.String()), false)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "registry "+host+" would be read over plain HTTP")
		t.Log(err)
	})
}
