package vap_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/internal/testbed/kube"
	"github.com/shipkit/shipkit/scan/policy/vap"
)

var cluster = testbed.Lazy[*kube.Cluster]{Start: kube.Start}

func TestMain(m *testing.M) {
	code := m.Run()
	cluster.Stop()
	os.Exit(code)
}

// recorder keeps the warnings of the API server's responses.
type recorder struct {
	mu    sync.Mutex
	texts []string
}

func (r *recorder) HandleWarningHeader(_ int, _ string, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.texts = append(r.texts, text)
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.texts
	r.texts = nil
	return out
}

func resourceOf(u *unstructured.Unstructured) schema.GroupVersionResource {
	switch u.GetKind() {
	case "ConfigMap":
		return schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	case "Deployment":
		return schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	case "Namespace":
		return schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	case "ValidatingAdmissionPolicy":
		return schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicies"}
	case "ValidatingAdmissionPolicyBinding":
		return schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicybindings"}
	}
	panic("no resource for " + u.GetKind())
}

// verdict is what admitting one object said: the denial (empty when allowed) and
// the warnings.
type verdict struct {
	denied   string
	warnings []string
}

// TestOfflineEqualsAPIServer applies the same policies and bindings to the test
// control plane and compares, object by object, the API server's verdict on a
// server-side dry-run create with the offline one.
func TestOfflineEqualsAPIServer(t *testing.T) {
	c := cluster.Get(t)
	ctx := t.Context()
	ns := c.NewNamespace(t)
	rec := &recorder{}
	cfg := c.RESTConfig()
	cfg.WarningHandler = rec
	client, err := dynamic.NewForConfig(cfg)
	require.NoError(t, err)

	nsObj, err := client.Resource(resourceOf(&unstructured.Unstructured{Object: map[string]any{"kind": "Namespace"}})).Get(ctx, ns, metav1.GetOptions{})
	require.NoError(t, err)
	labels := nsObj.GetLabels()
	labels["env"] = ns // only this namespace is selected: the policies are cluster-wide
	nsObj.SetLabels(labels)
	nsObj, err = client.Resource(resourceOf(nsObj)).Update(ctx, nsObj, metav1.UpdateOptions{})
	require.NoError(t, err)

	paramObjs := parse(t, params(ns, ns))
	limits := paramObjs[1]
	_, err = client.Resource(resourceOf(limits)).Namespace(ns).Create(ctx, limits, metav1.CreateOptions{})
	require.NoError(t, err)

	policyObjs := parse(t, policies(ns, ns))
	for _, p := range policyObjs {
		_, err := client.Resource(resourceOf(p)).Create(ctx, p, metav1.CreateOptions{})
		require.NoError(t, err)
		t.Cleanup(func() {
			_ = client.Resource(resourceOf(p)).Delete(context.Background(), p.GetName(), metav1.DeleteOptions{})
		})
	}

	objs := parse(t, objects(ns))
	admit := func(o *unstructured.Unstructured) verdict {
		rec.take()
		_, err := client.Resource(resourceOf(o)).Namespace(ns).Create(ctx, o.DeepCopy(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		v := verdict{warnings: rec.take()}
		if err != nil {
			v.denied = err.Error()
		}
		return v
	}
	// The API server's policy informers take a moment: wait until each binding acts.
	byName := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		byName[o.GetKind()+"/"+o.GetName()] = o
	}
	require.Eventually(t, func() bool {
		big, latest, unlabelled := admit(byName["Deployment/big"]), admit(byName["Deployment/latest"]), admit(byName["ConfigMap/unlabelled"])
		return strings.Contains(big.denied, "max-replicas") && strings.Contains(latest.denied, "no-latest") && len(unlabelled.warnings) > 0
	}, 60*time.Second, 250*time.Millisecond, "the API server never enforced the policies")

	ps, err := vap.New(policyObjs, vap.WithParams(nsObj, limits))
	require.NoError(t, err)
	res, err := ps.Eval(ctx, objs)
	require.NoError(t, err)
	offline := map[string]*verdict{}
	for _, o := range objs {
		offline[o.GetKind()+"/"+o.GetName()] = &verdict{}
	}
	for _, f := range res.Findings {
		v := offline[f.Object.Kind+"/"+f.Object.Name]
		switch f.Action {
		case vap.Deny:
			if v.denied == "" { // the API server returns the first denial
				v.denied = f.Message
			}
		case vap.Warn:
			v.warnings = append(v.warnings, f.Message)
		}
	}
	var denied, allowed, warned int
	for _, o := range objs {
		key := o.GetKind() + "/" + o.GetName()
		server := admit(o)
		slices.Sort(server.warnings)
		slices.Sort(offline[key].warnings)
		assert.Equal(t, server, *offline[key], "%s: the API server's verdict (want) and the offline one (got) differ", key)
		if server.denied != "" {
			denied++
		} else {
			allowed++
		}
		if len(server.warnings) > 0 {
			warned++
		}
		t.Logf("%s: denied=%q warnings=%q", key, server.denied, server.warnings)
	}
	assert.Equal(t, 2, denied, "big and latest are denied")
	assert.Equal(t, 4, allowed)
	assert.Equal(t, 2, warned, "unlabelled and latest get the team label warning")
}
