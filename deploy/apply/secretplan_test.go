package apply_test

import (
	"encoding/base64"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/apply"
	"github.com/shipkit/shipkit/deploy/render"
)

// TestPlanHidesSecretValues: a plan of a Secret whose data and stringData change,
// one key of which another manager changed too (drift), names every key that changes
// and shows none of the values, plain or base64, in the ChangeSet's text, its diffs
// or its drift.
func TestPlanHidesSecretValues(t *testing.T) {
	t.Parallel()
	c := cluster.Get(t)
	ns := c.NewNamespace(t)
	ctx := t.Context()
	m, err := apply.New(c.RESTConfig(), apply.Options{Namespace: ns})
	require.NoError(t, err)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	secret := func(password, api, token, extra string) []byte {
		y := fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {name: db}\ndata: {password: %s, api: %s}\nstringData: {token: %q", b64(password), b64(api), token)
		if extra != "" {
			y += fmt.Sprintf(", added: %q", extra)
		}
		return []byte(y + "}\n")
	}
	objs, err := render.Parse("secret.yaml", secret("old-password-1", "orig-api-key", "old-token-1", ""))
	require.NoError(t, err)
	_, err = m.Apply(ctx, objs)
	require.NoError(t, err)
	// Someone else changes one key (drift).
	_, err = c.Clientset().CoreV1().Secrets(ns).Apply(ctx, corev1ac.Secret("db", ns).WithData(map[string][]byte{"api": []byte("drifted-api-key")}),
		metav1.ApplyOptions{FieldManager: "kubectl-edit", Force: true})
	require.NoError(t, err)

	objs, err = render.Parse("secret.yaml", secret("new-password-2", "orig-api-key", "new-token-2", "added-value-3"))
	require.NoError(t, err)
	plan, err := m.Plan(ctx, objs)
	require.NoError(t, err)
	ch := change(t, plan, "Secret", "db")
	assert.Equal(t, deploy.Configured, ch.Action)
	shown := plan.String() + fmt.Sprintf("%v %+v %#v", plan.Changes, ch.Diff, ch.Drift)
	for _, d := range ch.Diff {
		shown += d.String()
	}
	t.Log(plan)
	for _, key := range []string{"data.password", "data.token", "data.added", "data.api"} {
		assert.Contains(t, plan.String(), "  "+key+": ", "the plan names the key that changes")
	}
	assert.NotEmpty(t, ch.Drift, "the key another manager changed is drift")
	for _, v := range []string{"old-password-1", "new-password-2", "orig-api-key", "drifted-api-key", "old-token-1", "new-token-2", "added-value-3"} {
		assert.NotContains(t, shown, v, "plain value")
		assert.NotContains(t, shown, b64(v), "base64 value")
		assert.NotContains(t, shown, b64(v)[:12], "base64 value, however it is cut")
	}
	for _, d := range ch.Diff {
		for _, v := range []any{d.Before, d.After} {
			assert.True(t, v == nil || v == deploy.Redacted, "%s holds %T, not deploy.Redacted", d.Path, v)
		}
	}
}
