package policy_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	psapi "k8s.io/pod-security-admission/api"
	psa "k8s.io/pod-security-admission/policy"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/scan/policy"
)

// load reads the objects of a multi-document YAML file in testdata.
func load(t *testing.T, file string) []*unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	require.NoError(t, err)
	return decode(t, string(b))
}

func decode(t *testing.T, manifests string) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifests), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return objs
		}
		require.NoError(t, err)
		if m != nil {
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
}

// brief lists violations as "rule object path", the parts a user acts on.
func brief(vs []policy.Violation) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		out = append(out, v.Rule+" "+v.Object.Kind+" "+v.Object.Namespace+"/"+v.Object.Name+" "+v.Path)
	}
	return out
}

func TestCheckManifests(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		level policy.Level
		opts  []policy.Option
		want  []string
	}{
		{
			name: "hardened workload passes restricted", file: "restricted.yaml", level: policy.Restricted,
		},
		{
			name: "baseline violations", file: "baseline-violations.yaml", level: policy.Baseline,
			want: []string{
				"pss/hostNamespaces DaemonSet kube-system/agent spec.template.spec.hostNetwork",
				"pss/hostNamespaces DaemonSet kube-system/agent spec.template.spec.hostPID",
				"pss/hostPathVolumes DaemonSet kube-system/agent spec.template.spec.volumes[name=root].hostPath",
				"pss/sysctls DaemonSet kube-system/agent spec.template.spec.securityContext.sysctls",
				"pss/seccompProfile_baseline DaemonSet kube-system/agent spec.template.spec.securityContext.seccompProfile.type",
				"pss/privileged DaemonSet kube-system/agent spec.template.spec.containers[name=agent].securityContext.privileged",
				"pss/capabilities_baseline DaemonSet kube-system/agent spec.template.spec.containers[name=agent].securityContext.capabilities.add",
				"pss/hostPorts DaemonSet kube-system/agent spec.template.spec.containers[name=agent].ports",
				"pss/hostProbesAndHostLifecycle DaemonSet kube-system/agent spec.template.spec.containers[name=agent].livenessProbe.httpGet.host",
				"image-digest DaemonSet kube-system/agent spec.template.spec.containers[name=agent].image",
				"image-digest DaemonSet kube-system/agent spec.template.spec.containers[name=sidecar].image",
				"image-latest DaemonSet kube-system/agent spec.template.spec.containers[name=agent].image",
				"image-latest DaemonSet kube-system/agent spec.template.spec.containers[name=sidecar].image",
				"resources DaemonSet kube-system/agent spec.template.spec.containers[name=agent].resources",
				"read-only-root-fs DaemonSet kube-system/agent spec.template.spec.containers[name=agent].securityContext.readOnlyRootFilesystem",
				"allow-privilege-escalation DaemonSet kube-system/agent spec.template.spec.containers[name=agent].securityContext.allowPrivilegeEscalation",
				"automount-sa-token DaemonSet kube-system/agent spec.template.spec.automountServiceAccountToken",
			},
		},
		{
			name: "restricted violations", file: "restricted-violations.yaml", level: policy.Restricted,
			want: []string{
				"pss/allowPrivilegeEscalation Pod shop/implicit spec.containers[name=app].securityContext.allowPrivilegeEscalation",
				"pss/capabilities_restricted Pod shop/implicit spec.containers[name=app].securityContext.capabilities",
				"pss/runAsNonRoot Pod shop/implicit spec.containers[name=app].securityContext.runAsNonRoot",
				"pss/seccompProfile_restricted Pod shop/implicit spec.containers[name=app].securityContext.seccompProfile.type",
				"pss/capabilities_restricted CronJob shop/report spec.jobTemplate.spec.template.spec.containers[name=report].securityContext.capabilities",
				"pss/restrictedVolumes CronJob shop/report spec.jobTemplate.spec.template.spec.volumes[name=nfs]",
				"pss/runAsNonRoot CronJob shop/report spec.jobTemplate.spec.template.spec.securityContext.runAsNonRoot",
				"pss/runAsUser CronJob shop/report spec.jobTemplate.spec.template.spec.containers[name=report].securityContext.runAsUser",
				"secret-plaintext Secret shop/db data",
				"secret-plaintext Secret shop/db stringData",
			},
		},
		{
			name: "restricted violations pass baseline; hardening rules still apply", file: "restricted-violations.yaml", level: policy.Baseline,
			want: []string{
				"allow-privilege-escalation Pod shop/implicit spec.containers[name=app].securityContext.allowPrivilegeEscalation",
				"seccomp Pod shop/implicit spec.containers[name=app].securityContext.seccompProfile.type",
				"secret-plaintext Secret shop/db data",
				"secret-plaintext Secret shop/db stringData",
			},
		},
		{
			name: "privileged level checks hardening only", file: "baseline-violations.yaml", level: policy.Privileged,
			opts: []policy.Option{policy.Disable("image-digest", "a test"), policy.Disable("image-latest", "a test")},
			want: []string{
				"resources DaemonSet kube-system/agent spec.template.spec.containers[name=agent].resources",
				"read-only-root-fs DaemonSet kube-system/agent spec.template.spec.containers[name=agent].securityContext.readOnlyRootFilesystem",
				"allow-privilege-escalation DaemonSet kube-system/agent spec.template.spec.containers[name=agent].securityContext.allowPrivilegeEscalation",
				"seccomp DaemonSet kube-system/agent spec.template.spec.securityContext.seccompProfile.type",
				"host-namespaces DaemonSet kube-system/agent spec.template.spec.hostNetwork",
				"host-namespaces DaemonSet kube-system/agent spec.template.spec.hostPID",
				"automount-sa-token DaemonSet kube-system/agent spec.template.spec.automountServiceAccountToken",
			},
		},
		{
			name: "disabled rules report nothing", file: "restricted-violations.yaml", level: policy.Restricted,
			opts: []policy.Option{
				policy.Disable("pss/runAsNonRoot", "the image's USER is non-root"),
				policy.Disable("pss/capabilities_restricted", "a test"),
				policy.Disable("secret-plaintext", "test fixtures only"),
			},
			want: []string{
				"pss/allowPrivilegeEscalation Pod shop/implicit spec.containers[name=app].securityContext.allowPrivilegeEscalation",
				"pss/seccompProfile_restricted Pod shop/implicit spec.containers[name=app].securityContext.seccompProfile.type",
				"pss/restrictedVolumes CronJob shop/report spec.jobTemplate.spec.template.spec.volumes[name=nfs]",
				"pss/runAsUser CronJob shop/report spec.jobTemplate.spec.template.spec.containers[name=report].securityContext.runAsUser",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := policy.New(append([]policy.Option{policy.WithLevel(tt.level)}, tt.opts...)...)
			require.NoError(t, err)
			res, err := c.Check(t.Context(), load(t, tt.file))
			require.NoError(t, err)
			assert.ElementsMatch(t, tt.want, brief(res.Violations))
			assert.Equal(t, len(tt.want) == 0, res.Passed())
			assert.Equal(t, tt.level, res.Level)
			assert.Len(t, res.Disabled, len(tt.opts))
			for _, f := range res.Violations {
				assert.NotEmpty(t, f.Message, f.String())
				assert.NotEmpty(t, f.Fix, f.String())
			}
		})
	}
}

// TestAgreesWithEvaluator checks that the rules failing on each pod are exactly the
// checks the API server's evaluator forbids, at each level.
func TestAgreesWithEvaluator(t *testing.T) {
	eval, err := psa.NewEvaluator(psa.DefaultChecks(), nil)
	require.NoError(t, err)
	for _, file := range []string{"restricted.yaml", "baseline-violations.yaml", "restricted-violations.yaml"} {
		for _, level := range []policy.Level{policy.Baseline, policy.Restricted} {
			t.Run(file+"/"+string(level), func(t *testing.T) {
				objs := load(t, file)
				c, err := policy.New(policy.WithLevel(level))
				require.NoError(t, err)
				for _, u := range objs {
					meta, spec := podOf(t, u)
					if spec == nil {
						continue
					}
					res, err := c.Check(t.Context(), []*unstructured.Unstructured{u})
					require.NoError(t, err)
					rules := map[string]bool{}
					for _, f := range res.Violations {
						if strings.HasPrefix(f.Rule, "pss/") {
							rules[f.Rule] = true
						}
					}
					lv := psapi.LevelVersion{Level: psapi.Level(level), Version: psapi.LatestVersion()}
					agg := psa.AggregateCheckResults(eval.EvaluatePod(lv, meta, spec))
					assert.Equal(t, agg.Allowed, len(rules) == 0, "%s: evaluator says %v", u.GetName(), agg.ForbiddenReasons)
					assert.Len(t, rules, len(agg.ForbiddenReasons), "%s: evaluator forbids %v, we report %v", u.GetName(), agg.ForbiddenReasons, rules)
				}
			})
		}
	}
}

// podOf reads the pod of a Pod, Deployment, DaemonSet or CronJob for the evaluator.
func podOf(t *testing.T, u *unstructured.Unstructured) (*metav1.ObjectMeta, *corev1.PodSpec) {
	t.Helper()
	var path []string
	switch u.GetKind() {
	case "Pod":
		var pod corev1.Pod
		require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &pod))
		return &pod.ObjectMeta, &pod.Spec
	case "Deployment", "DaemonSet":
		path = []string{"spec", "template"}
	case "CronJob":
		path = []string{"spec", "jobTemplate", "spec", "template"}
	default:
		return nil, nil
	}
	m, found, err := unstructured.NestedMap(u.Object, path...)
	require.NoError(t, err)
	require.True(t, found)
	var tmpl corev1.PodTemplateSpec
	require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(m, &tmpl))
	return &tmpl.ObjectMeta, &tmpl.Spec
}

// TestWorkloadKinds puts one privileged pod template in every kind that carries one
// and checks each reports it at the kind's own path.
func TestWorkloadKinds(t *testing.T) {
	podSpec := `{"containers":[{"name":"c","image":"x","securityContext":{"privileged":true}}]}`
	tmpl := `{"metadata":{"labels":{"a":"b"}},"spec":` + podSpec + `}`
	tests := []struct{ apiVersion, kind, body, path string }{
		{"v1", "Pod", `"spec":` + podSpec, "spec"},
		{"v1", "ReplicationController", `"spec":{"template":` + tmpl + `}`, "spec.template.spec"},
		{"v1", "PodTemplate", `"template":` + tmpl, "template.spec"},
		{"apps/v1", "Deployment", `"spec":{"template":` + tmpl + `}`, "spec.template.spec"},
		{"apps/v1", "StatefulSet", `"spec":{"template":` + tmpl + `}`, "spec.template.spec"},
		{"apps/v1", "DaemonSet", `"spec":{"template":` + tmpl + `}`, "spec.template.spec"},
		{"apps/v1", "ReplicaSet", `"spec":{"template":` + tmpl + `}`, "spec.template.spec"},
		{"batch/v1", "Job", `"spec":{"template":` + tmpl + `}`, "spec.template.spec"},
		{"batch/v1", "CronJob", `"spec":{"jobTemplate":{"spec":{"template":` + tmpl + `}}}`, "spec.jobTemplate.spec.template.spec"},
		{"argoproj.io/v1alpha1", "Rollout", `"spec":{"template":` + tmpl + `}`, "spec.template.spec"},
		{"serving.knative.dev/v1", "Service", `"spec":{"template":` + tmpl + `}`, "spec.template.spec"},
		{"serving.knative.dev/v1", "Revision", `"spec":` + podSpec, "spec"},
		{"example.com/v1", "AnyWorkload", `"spec":{"template":` + tmpl + `}`, "spec.template.spec"},
	}
	c, err := policy.New(policy.WithLevel(policy.Baseline))
	require.NoError(t, err)
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			objs := decode(t, `{"apiVersion":"`+tt.apiVersion+`","kind":"`+tt.kind+`","metadata":{"name":"w","namespace":"ns"},`+tt.body+`}`)
			res, err := c.Check(t.Context(), objs)
			require.NoError(t, err)
			require.NotEmpty(t, res.Violations)
			f := res.Violations[0]
			assert.Equal(t, "pss/privileged", f.Rule)
			gv, err := schema.ParseGroupVersion(tt.apiVersion)
			require.NoError(t, err)
			assert.Equal(t, deploy.ObjectRef{Group: gv.Group, Kind: tt.kind, Namespace: "ns", Name: "w"}, f.Object)
			assert.Equal(t, tt.path+".containers[name=c].securityContext.privileged", f.Path)
			assert.Contains(t, f.Message, `"c"`)
		})
	}
}

func TestCheckMalformed(t *testing.T) {
	tests := []struct{ name, manifest, wantErr string }{
		{"containers not a list", `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"shop"},"spec":{"template":{"spec":{"containers":"web"}}}}`,
			"Deployment/shop/web: reading the pod spec at spec.template.spec"},
		{"no template", `{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"once"},"spec":{}}`,
			"Job.batch/once: spec.template: no pod template"},
		{"template not an object", `{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"db"},"spec":{"template":[1]}}`,
			"StatefulSet/db: spec.template: the pod template is a []interface {}, not an object"},
		{"pod spec wrong type", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"hostNetwork":"yes"}}`,
			"Pod/p: reading the pod spec at spec"},
		{"secret data not a map", `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"data":"c2VjcmV0"}`,
			"Secret/s: data is a string, not a map"},
	}
	c, err := policy.New()
	require.NoError(t, err)
	good := load(t, "restricted-violations.yaml")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := append(decode(t, tt.manifest), good...)
			res, err := c.Check(t.Context(), objs)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.NotContains(t, err.Error(), "c2VjcmV0", "the error must not print Secret data")
			require.NotNil(t, res)
			assert.NotEmpty(t, res.Violations, "the readable objects are still checked")
		})
	}
}

func TestCheckCancelled(t *testing.T) {
	c, err := policy.New()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = c.Check(ctx, load(t, "restricted-violations.yaml"))
	assert.ErrorIs(t, err, context.Canceled)
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name    string
		opts    []policy.Option
		wantErr string
	}{
		{"empty reason", []policy.Option{policy.Disable("resources", " ")}, `disabling rule "resources": a reason is required`},
		{"unknown rule", []policy.Option{policy.Disable("pss/nope", "why not")}, `disabling rule "pss/nope": no such rule`},
		{"unknown level", []policy.Option{policy.WithLevel("strict")}, `unknown Pod Security level "strict"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := policy.New(tt.opts...)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestRules(t *testing.T) {
	rules := policy.Rules()
	ids := map[string]bool{}
	for _, r := range rules {
		assert.False(t, ids[r.ID], "duplicate rule %s", r.ID)
		ids[r.ID] = true
		assert.NotEmpty(t, r.Description, r.ID)
		assert.NotContains(t, r.Description, "Pod Security check "+strings.TrimPrefix(r.ID, "pss/"), "%s has no description of its own", r.ID)
		_, err := policy.New(policy.Disable(r.ID, "listed by Rules"))
		assert.NoError(t, err, r.ID)
	}
	for _, ch := range psa.DefaultChecks() {
		assert.True(t, ids["pss/"+string(ch.ID)], "Pod Security check %s has no rule", ch.ID)
	}
	for _, id := range []string{"pss/privileged", "image-digest", "image-latest", "image-unrecognised", "resources", "read-only-root-fs",
		"allow-privilege-escalation", "seccomp", "host-namespaces", "automount-sa-token", "secret-plaintext"} {
		assert.True(t, ids[id], id)
	}
}

func TestAutomountFromServiceAccount(t *testing.T) {
	pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"a"},"spec":{"serviceAccountName":"sa","containers":[{"name":"c","image":"x"}]}}`
	tests := []struct {
		name, sa string
		want     bool
	}{
		{"no service account among the objects", "", true},
		{"service account turns it off", `{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"sa","namespace":"a"},"automountServiceAccountToken":false}`, false},
		{"service account in another namespace", `{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"sa","namespace":"b"},"automountServiceAccountToken":false}`, true},
		{"service account leaves it on", `{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"sa","namespace":"a"}}`, true},
	}
	c, err := policy.New(policy.WithLevel(policy.Privileged))
	require.NoError(t, err)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := c.Check(t.Context(), decode(t, pod+tt.sa))
			require.NoError(t, err)
			got := slices.ContainsFunc(res.Violations, func(f policy.Violation) bool { return f.Rule == "automount-sa-token" })
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestImageRules(t *testing.T) {
	tests := []struct {
		image                  string
		wantDigest, wantLatest bool
	}{
		{"nginx", true, true},
		{"nginx:latest", true, true},
		{"localhost:5000/nginx", true, true},
		{"localhost:5000/nginx:1.27", true, false},
		{"nginx:latest@sha256:0000000000000000000000000000000000000000000000000000000000000000", false, false},
		{"ghcr.io/a/b@sha256:0000000000000000000000000000000000000000000000000000000000000000", false, false},
	}
	c, err := policy.New(policy.WithLevel(policy.Privileged))
	require.NoError(t, err)
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			res, err := c.Check(t.Context(), decode(t, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"`+tt.image+`"}]}}`))
			require.NoError(t, err)
			has := func(rule string) bool {
				return slices.ContainsFunc(res.Violations, func(f policy.Violation) bool { return f.Rule == rule })
			}
			assert.Equal(t, tt.wantDigest, has("image-digest"))
			assert.Equal(t, tt.wantLatest, has("image-latest"))
		})
	}
}

func TestSecretFindingHidesValues(t *testing.T) {
	c, err := policy.New()
	require.NoError(t, err)
	res, err := c.Check(t.Context(), load(t, "restricted-violations.yaml"))
	require.NoError(t, err)
	var buf bytes.Buffer
	for _, f := range res.Violations {
		buf.WriteString(f.String() + "\n")
	}
	assert.Contains(t, buf.String(), "password")
	assert.NotContains(t, buf.String(), "c2VjcmV0")
	assert.NotContains(t, buf.String(), "admin")
}

func TestViolationString(t *testing.T) {
	v := policy.Violation{Rule: "pss/privileged", Object: deploy.ObjectRef{Group: "apps", Kind: "Deployment", Namespace: "shop", Name: "web"},
		Path: "spec.template.spec.containers[name=web].securityContext.privileged", Message: "privileged", Fix: "set it to false"}
	assert.Equal(t, "[pss/privileged] Deployment/shop/web: spec.template.spec.containers[name=web].securityContext.privileged: privileged (fix: set it to false)", v.String())
}
