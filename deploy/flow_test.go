package deploy_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/apply"
	"github.com/shipkit/shipkit/deploy/gate"
	"github.com/shipkit/shipkit/deploy/render"
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

// The base holds a hardened Deployment (Pod Security "restricted" and scan/policy's
// hardening rules pass), a Service and a ConfigMap; HOST is the test registry.
const base = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: web
        image: HOST/shop/web:dev
        ports: [{containerPort: 8080}]
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
        resources:
          requests: {cpu: 10m, memory: 32Mi}
          limits: {memory: 32Mi}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: extra}
data: {greeting: hello}
`

// overlay renders the prod overlay of the base into ns with the image pinned to d:
// replicas as given, the ConfigMap kept or deleted.
func overlay(t *testing.T, host, ns string, d name.Digest, rev string, replicas int, extra bool) []*unstructured.Unstructured {
	t.Helper()
	fs := filesys.MakeFsInMemory()
	require.NoError(t, fs.WriteFile("/app/base/kustomization.yaml", []byte("resources: [app.yaml]\n")))
	require.NoError(t, fs.WriteFile("/app/base/app.yaml", []byte(strings.ReplaceAll(base, "HOST", host))))
	k := "namespace: " + ns + "\nresources: [../base]\nreplicas:\n- name: web\n  count: " + string(rune('0'+replicas)) + "\n"
	if !extra {
		k += "patches:\n- target: {kind: ConfigMap, name: extra}\n  patch: |\n    $patch: delete\n    apiVersion: v1\n    kind: ConfigMap\n    metadata: {name: extra}\n"
	}
	require.NoError(t, fs.WriteFile("/app/prod/kustomization.yaml", []byte(k)))
	objs, err := render.Kustomize(fs, "/app/prod", render.WithImages(d), render.WithRevision(rev),
		render.WithApp(render.App{Name: "web", PartOf: "shop", ManagedBy: "shipkit"})).Render(t.Context())
	require.NoError(t, err)
	return objs
}

// push pushes a random image and, with a key, signs it and attests a clean
// vulnerability report.
func push(t *testing.T, host, repo string, key *cosign.PrivateKey) name.Digest {
	t.Helper()
	img, err := random.Image(512, 1)
	require.NoError(t, err)
	tag, err := name.NewTag(host + "/" + repo + ":build")
	require.NoError(t, err)
	require.NoError(t, remote.Write(tag, img))
	h, err := img.Digest()
	require.NoError(t, err)
	d := tag.Context().Digest(h.String())
	if key != nil {
		s, err := cosign.NewSigner(key)
		require.NoError(t, err)
		require.NoError(t, s.Sign(t.Context(), d))
		vuln, err := sign.VulnPredicate(&report.Report{Target: d.String(),
			Findings: []report.Finding{{ID: "CVE-2023-0001", Package: "zlib", Version: "1.2", Severity: report.Low}},
			Tool:     &report.Tool{Name: "grype", FinishedOn: time.Now()}})
		require.NoError(t, err)
		require.NoError(t, s.Attest(t.Context(), d, vuln))
	}
	return d
}

// deployment returns the Deployment of objs.
func deployment(t *testing.T, objs []*unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			return o
		}
	}
	t.Fatal("no Deployment")
	return nil
}

func setImage(t *testing.T, objs []*unstructured.Unstructured, image string) []*unstructured.Unstructured {
	t.Helper()
	out := make([]*unstructured.Unstructured, len(objs))
	for i, o := range objs {
		out[i] = o.DeepCopy()
	}
	d := deployment(t, out)
	cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	cs[0].(map[string]any)["image"] = image
	require.NoError(t, unstructured.SetNestedSlice(d.Object, cs, "spec", "template", "spec", "containers"))
	return out
}

func reasonCodes(d *deploy.Decision) map[deploy.ReasonCode][]string {
	out := map[deploy.ReasonCode][]string{}
	for _, r := range d.Reasons {
		out[r.Code] = append(out[r.Code], r.String())
	}
	return out
}

// TestFlow is the flow against a real registry and control plane: render an
// overlay; gate it (a signed, clean image passes; an unsigned image, a latest tag and
// a privileged pod are each denied with their reasons); apply and wait until the
// Deployment is Available; change and re-apply; prune a removed object; a third run
// plans no change.
func TestFlow(t *testing.T) {
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
	web := push(t, host, "shop/web", key)
	unsigned := push(t, host, "shop/web", nil)

	verifier, err := cosign.NewVerifier(sign.Policy{TrustedKeys: []sign.TrustedKey{key.TrustedKey("ci")}})
	require.NoError(t, err)
	checker, err := policy.New(policy.WithLevel(policy.Restricted))
	require.NoError(t, err)
	g, err := gate.New(gate.WithVerifier(verifier), gate.RequireAttestations(sign.PredicateVuln),
		gate.FailOn(report.High), gate.WithManifestPolicy(checker),
		gate.WithRegistries(gate.Registries{Insecure: []string{host}})) // the in-process registry is plain HTTP
	require.NoError(t, err)

	// Render and gate: the signed, clean image passes.
	objs := overlay(t, host, ns, web, "1", 1, true)
	require.Len(t, objs, 3)
	assert.Equal(t, web.String(), deploymentImage(t, objs), "render pinned the image")
	d, err := g.Check(ctx, objs)
	require.NoError(t, err)
	require.True(t, d.Allowed(), "%s", d)

	// The same overlay with an unsigned image is denied.
	d, err = g.Check(ctx, setImage(t, objs, unsigned.String()))
	require.NoError(t, err)
	assert.False(t, d.Allowed())
	assert.Len(t, reasonCodes(d)[sign.ReasonUnsigned], 1, "%s", d)
	assert.Contains(t, d.String(), "Deployment/"+ns+"/web: container web: image "+unsigned.String()+": ")
	t.Log(d)

	// A latest tag is denied (by the gate's pinning check and the policy's rule).
	d, err = g.Check(ctx, setImage(t, objs, host+"/shop/web:latest"))
	require.NoError(t, err)
	assert.Len(t, reasonCodes(d)[deploy.ReasonNotPinned], 1, "%s", d)
	assert.Contains(t, d.String(), `not pinned by digest (tag "latest")`)
	t.Log(d)

	// A privileged pod beside the set is denied by the manifest policy.
	priv, err := render.Parse("debug.yaml", []byte(`apiVersion: v1
kind: Pod
metadata: {name: debug, namespace: `+ns+`}
spec:
  containers:
  - name: shell
    image: `+web.String()+`
    securityContext: {privileged: true}
`))
	require.NoError(t, err)
	d, err = g.Check(ctx, append(append([]*unstructured.Unstructured{}, objs...), priv...))
	require.NoError(t, err)
	assert.False(t, d.Allowed())
	var rules []string
	for _, r := range d.Reasons {
		assert.Equal(t, deploy.ObjectRef{Kind: "Pod", Namespace: ns, Name: "debug"}, r.Object, "only the pod is denied: %s", r)
		rules = append(rules, r.Rule)
	}
	assert.Contains(t, rules, "pss/privileged")
	t.Log(d)

	// Apply what passed and wait for it.
	set := &apply.ApplySet{Name: "web", Namespace: ns}
	m, err := apply.New(c.RESTConfig(), apply.Options{ApplySet: set, Prune: true, Wait: time.Minute, PollInterval: 200 * time.Millisecond})
	require.NoError(t, err)
	cs, err := m.Apply(ctx, objs)
	require.NoError(t, err)
	assert.Equal(t, 3, cs.Count(deploy.Created), "%s", cs)
	dep, err := c.Clientset().AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.EqualValues(t, 1, dep.Status.AvailableReplicas)
	assert.Equal(t, web.String(), dep.Spec.Template.Spec.Containers[0].Image)

	// Change and re-apply.
	objs = overlay(t, host, ns, web, "2", 2, true)
	d, err = g.Check(ctx, objs)
	require.NoError(t, err)
	require.True(t, d.Allowed(), "%s", d)
	cs, err = m.Apply(ctx, objs)
	require.NoError(t, err)
	assert.Equal(t, 3, cs.Count(deploy.Configured), "the revision annotation changed on all three: %s", cs)
	dep, err = c.Clientset().AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.EqualValues(t, 2, dep.Status.AvailableReplicas)

	// Remove the ConfigMap: it is pruned, nothing else is.
	objs = overlay(t, host, ns, web, "2", 2, false)
	cs, err = m.Apply(ctx, objs)
	require.NoError(t, err)
	assert.Equal(t, []deploy.Change{{Object: deploy.ObjectRef{Kind: "ConfigMap", Namespace: ns, Name: "extra"}, Action: deploy.Pruned}},
		pruned(cs))
	assert.Equal(t, 2, cs.Count(deploy.Unchanged))
	_, err = c.Clientset().CoreV1().ConfigMaps(ns).Get(ctx, "extra", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "%v", err)

	// Third run: the plan shows no change.
	plan, err := m.Plan(ctx, overlay(t, host, ns, web, "2", 2, false))
	require.NoError(t, err)
	assert.False(t, plan.Changed(), "%s", plan)
	assert.Len(t, plan.Changes, 2)
}

func deploymentImage(t *testing.T, objs []*unstructured.Unstructured) string {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(deployment(t, objs).Object, "spec", "template", "spec", "containers")
	img, _ := cs[0].(map[string]any)["image"].(string)
	return img
}

func pruned(cs *deploy.ChangeSet) []deploy.Change {
	var out []deploy.Change
	for _, c := range cs.Changes {
		if c.Action == deploy.Pruned {
			out = append(out, c)
		}
	}
	return out
}
