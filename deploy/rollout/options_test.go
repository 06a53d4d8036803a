package rollout_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/rollout"
)

// TestInvalidOptions: an option given a value it cannot use fails NewCanary and
// NewBlueGreen with deploy.ErrInvalidOption naming it (it was silently replaced by the
// default before), every one of them at once.
func TestInvalidOptions(t *testing.T) {
	canary := rollout.Canary{Name: "web", Namespace: ns, StableSelector: stableLabels, CanarySelector: canaryLabels,
		Router: &recordingRouter{}, Steps: []rollout.Step{rollout.SetWeight(100)}}
	blueGreen := rollout.BlueGreen{Name: "web-bg", Namespace: ns, ActiveService: "web-active", PreviewService: "web-preview",
		Selector: map[string]string{"app": "web", "color": "green"}}
	for _, tc := range []struct {
		opt  rollout.Option
		want string
	}{
		{rollout.WithPollInterval(0), "WithPollInterval(0s): must be positive"},
		{rollout.WithPollInterval(-time.Second), "WithPollInterval(-1s): must be positive"},
		{rollout.WithReadyTimeout(0), "WithReadyTimeout(0s): must be positive"},
		{rollout.WithLeaseDuration(-1), "WithLeaseDuration(-1ns): must be positive"},
		{rollout.WithIdentity(""), `WithIdentity(""): empty identity`},
		{rollout.OnInconclusive(7), "OnInconclusive(7): not an InconclusivePolicy"},
		{rollout.OnResume(-1), "OnResume(-1): not a ResumePolicy"},
		{rollout.WithStateKey([]byte("short")), "WithStateKey: key shorter than 32 bytes"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			_, err := rollout.NewCanaryWithClient(fake.NewClientset(), canary, rollout.WithStateKey(stateKey), tc.opt)
			require.ErrorIs(t, err, deploy.ErrInvalidOption)
			require.ErrorIs(t, err, rollout.ErrInvalid)
			assert.ErrorContains(t, err, tc.want)
			_, err = rollout.NewBlueGreenWithClient(fake.NewClientset(), blueGreen, rollout.WithStateKey(stateKey), tc.opt)
			require.ErrorIs(t, err, deploy.ErrInvalidOption)
			assert.ErrorContains(t, err, tc.want)
		})
	}

	// Every invalid option is named, with the plan's own errors.
	bad := canary
	bad.Steps = nil
	_, err := rollout.NewCanaryWithClient(fake.NewClientset(), bad, rollout.WithStateKey(stateKey),
		rollout.WithPollInterval(0), rollout.WithReadyTimeout(-time.Minute))
	require.ErrorIs(t, err, deploy.ErrInvalidOption)
	for _, want := range []string{"no steps", "WithPollInterval(0s)", "WithReadyTimeout(-1m0s)"} {
		assert.ErrorContains(t, err, want)
	}

	// Valid values, the nil observer and logger (discard) and the policies are taken.
	_, err = rollout.NewCanaryWithClient(fake.NewClientset(), canary, rollout.WithStateKey(stateKey),
		rollout.WithPollInterval(time.Millisecond), rollout.WithReadyTimeout(time.Second), rollout.WithLeaseDuration(time.Second),
		rollout.WithIdentity("ci-1"), rollout.OnInconclusive(rollout.PauseOnInconclusive), rollout.OnResume(rollout.RollbackOnResume),
		rollout.WithObserver(nil), rollout.WithLogger(nil), rollout.WithKubeEvents(false))
	require.NoError(t, err)
}

// TestNewNeedsAConfig: NewCanary and NewBlueGreen take the cluster's *rest.Config
// (contacting nothing), and a nil one or a nil client is an error, not a panic.
func TestNewNeedsAConfig(t *testing.T) {
	canary := rollout.Canary{Name: "web", Namespace: ns, StableSelector: stableLabels, CanarySelector: canaryLabels,
		Router: &recordingRouter{}, Steps: []rollout.Step{rollout.SetWeight(100)}}
	blueGreen := rollout.BlueGreen{Name: "web-bg", Namespace: ns, ActiveService: "web-active", PreviewService: "web-preview",
		Selector: map[string]string{"app": "web", "color": "green"}}
	cfg := &rest.Config{Host: "https://127.0.0.1:1"} // nothing listens: New must not call it

	c, err := rollout.NewCanary(cfg, canary, rollout.WithStateKey(stateKey))
	require.NoError(t, err)
	assert.NotNil(t, c)
	b, err := rollout.NewBlueGreen(cfg, blueGreen, rollout.WithStateKey(stateKey))
	require.NoError(t, err)
	assert.NotNil(t, b)

	_, err = rollout.NewCanary(nil, canary, rollout.WithStateKey(stateKey))
	assert.ErrorContains(t, err, "no *rest.Config")
	_, err = rollout.NewBlueGreen(nil, blueGreen, rollout.WithStateKey(stateKey))
	assert.ErrorContains(t, err, "no *rest.Config")
	_, err = rollout.NewCanaryWithClient(nil, canary, rollout.WithStateKey(stateKey))
	assert.ErrorContains(t, err, "no client")
	_, err = rollout.NewBlueGreenWithClient(nil, blueGreen, rollout.WithStateKey(stateKey))
	assert.ErrorContains(t, err, "no client")
}
