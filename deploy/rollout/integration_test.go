package rollout_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shipkit/shipkit/deploy/rollout"
	"github.com/shipkit/shipkit/internal/testbed/prom"
	"github.com/shipkit/shipkit/mesh/replicas"
	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/observe/analysis"
	"github.com/shipkit/shipkit/observe/prometheus"
)

// plan is the canary of the integration tests: 10% → 50% → 100%, judged by the
// canary's success rate in Prometheus after each weight.
func (e *env) plan(analysisCount int) []rollout.Step {
	return []rollout.Step{
		rollout.SetWeight(10), rollout.Analysis(e.successRate(3)),
		rollout.SetWeight(50), rollout.Analysis(e.successRate(analysisCount)),
		rollout.SetWeight(100), rollout.Analysis(e.successRate(2)),
	}
}

func TestCanaryHealthyIsPromoted(t *testing.T) {
	e := newEnv(t)
	r := e.canary(t, e.plan(3))
	res, err := r.Run(t.Context())
	require.NoError(t, err)
	t.Log(res)
	require.Equal(t, rollout.Promoted, res.Phase, res.String())
	assert.Equal(t, []int{0, 10, 50, 100, 0}, e.router.weights())
	e.assertPromoted(t, r)
	assert.Equal(t, promotedOutcome(e.plan(3)), e.outcome(t), "the state TestCanaryProcessKilledAfterStep2 must end in")

	require.Len(t, res.Steps, 6)
	for i, want := range []int32{10, 10, 50, 50, 100, 100} {
		assert.Equal(t, want, res.Steps[i].Weight, "step %d", i+1)
	}
	for _, i := range []int{1, 3, 5} {
		a := res.Steps[i].Analysis
		require.NotNil(t, a)
		assert.Equal(t, analysis.Successful, a.Phase)
		for _, m := range a.Measurements {
			assert.InDelta(t, 1, m.Value, 0.001, "the canary serves no errors")
		}
	}
	reasons := eventReasons(t, e.client, e.ns, "web-canary")
	assert.Equal(t, 6, count(reasons, rollout.ReasonStepCompleted), reasons)
	assert.Equal(t, 1, count(reasons, rollout.ReasonPromoted), reasons)
}

func count(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

// A canary whose error rate rises is rolled back within one analysis interval of the
// breach: from the moment Prometheus reports the success rate below the threshold
// (seen by a poller every 50 ms) to the moment the API server holds weight 0.
func TestCanaryErrorRateRisesIsRolledBack(t *testing.T) {
	e := newEnv(t)
	r := e.canary(t, e.plan(60))
	changes := e.router.watchWeight(t)

	type outcome struct {
		res *rollout.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := r.Run(t.Context())
		done <- outcome{res, err}
	}()

	// Wait for the analysis at 50% to have measured a healthy canary for a while.
	for atStep4 := false; !atStep4; {
		select {
		case out := <-done:
			require.FailNow(t, "the rollout ended before step 4", "%v\n%v", out.err, out.res)
		case <-time.After(100 * time.Millisecond):
		}
		st, err := r.Status(t.Context())
		require.NoError(t, err)
		atStep4 = st != nil && st.Step == 3
	}
	time.Sleep(2500 * time.Millisecond)
	raised := time.Now()
	e.app.SetTraffic("v2", prom.Traffic{RPS: 100, ErrorRate: 0.5, Latency: 10 * time.Millisecond})

	var mu sync.Mutex
	var breach time.Time
	stopPoll := make(chan struct{})
	go func() {
		q := e.successRate(1).Query
		for {
			select {
			case <-stopPoll:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if v, err := e.metrics.Query(context.Background(), q); err == nil && v < threshold {
				mu.Lock()
				breach = time.Now()
				mu.Unlock()
				return
			}
		}
	}()

	var out outcome
	select {
	case out = <-done:
	case <-time.After(time.Minute):
		require.FailNow(t, "the rollout did not end")
	}
	close(stopPoll)
	require.NoError(t, out.err)
	t.Log(out.res)
	assert.Equal(t, rollout.Aborted, out.res.Phase)
	assert.Contains(t, out.res.Message, "step 4 analysis failed")

	var back time.Time
	for drained := false; !drained; {
		select {
		case c := <-changes:
			if c.Weight == 0 && c.At.After(raised) {
				back = c.At
			}
		default:
			drained = true
		}
	}
	mu.Lock()
	defer mu.Unlock()
	require.False(t, breach.IsZero(), "the poller saw no breach")
	require.False(t, back.IsZero(), "the API server never held weight 0 after the breach")
	latency := back.Sub(breach)
	t.Logf("ROLLBACK LATENCY breach → weight 0 in the API server: %v (interval %v; error rate raised → weight 0: %v; breach seen %v after the raise)",
		latency.Round(time.Millisecond), interval, back.Sub(raised).Round(time.Millisecond), breach.Sub(raised).Round(time.Millisecond))
	assert.LessOrEqual(t, latency, interval+time.Second, "rolled back within one analysis interval + 1 s of the breach")

	assert.Equal(t, 0, e.router.live(t))
	assert.Equal(t, []int{0, 10, 50, 0}, e.router.weights())
	waitFor(t, 30*time.Second, func(c *assert.CollectT) {
		d, err := e.client.AppsV1().Deployments(e.ns).Get(t.Context(), "web-canary", metav1.GetOptions{})
		require.NoError(c, err)
		assert.Equal(c, int32(0), *d.Spec.Replicas)
		assert.Equal(c, int32(0), d.Status.Replicas, "canary pods gone")
	})
	assert.Equal(t, "registry.example/web:v1", image(t, e.client, e.ns, "web"))
	reasons := eventReasons(t, e.client, e.ns, "web-canary")
	assert.Contains(t, reasons, rollout.ReasonStepFailed)
	assert.Contains(t, reasons, rollout.ReasonAborted)
}

// Cancelling the rollout after step 2 (the graceful path: the run releases its Lease)
// and starting it again with another identity ends in the same state as an
// uninterrupted rollout, and never sends the canary more than the plan allows. A real
// kill of the process is TestCanaryProcessKilledAfterStep2.
func TestCanaryKilledAfterStep2Resumes(t *testing.T) {
	e := newEnv(t)
	ctx, kill := context.WithCancel(t.Context())
	defer kill()
	crash := observe.ObserverFunc(func(ev observe.Event) {
		if ev.Stage == rollout.Stage && ev.Phase == observe.Finished && strings.HasPrefix(ev.Step, "step 2/") {
			kill()
		}
	})
	first := e.canary(t, e.plan(3), rollout.WithObserver(crash), rollout.WithIdentity("process-1"))
	res, err := first.Run(ctx)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, rollout.Progressing, res.Phase)
	st, err := first.Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 2, st.Step)
	assert.Equal(t, int32(10), st.Weight)
	assert.Equal(t, 10, e.router.live(t), "the canary keeps its share while no process runs the rollout")

	second := e.canary(t, e.plan(3), rollout.WithIdentity("process-2"))
	res, err = second.Run(t.Context())
	require.NoError(t, err)
	t.Log(res)
	assert.Equal(t, rollout.Promoted, res.Phase, res.String())
	assert.True(t, res.Resumed)
	assert.Equal(t, 2, res.ResumedAt)
	assert.Equal(t, []int{0, 10, 10, 50, 100, 0}, e.router.weights(), "resumed at the recorded 10%, then the plan")
	e.assertPromoted(t, second)
}

// A process that dies without releasing its Lease keeps others out until the Lease
// expires; then the next one resumes.
func TestCanaryCrashedHolderLeaseExpires(t *testing.T) {
	e := newEnv(t)
	steps := []rollout.Step{rollout.SetWeight(10), rollout.PauseUntilPromoted(), rollout.SetWeight(100)}
	ctx, kill := context.WithCancel(t.Context())
	first := e.canary(t, steps, rollout.WithIdentity("process-1"))
	go func() {
		waitFor(t, time.Minute, func(c *assert.CollectT) {
			st, err := first.Status(t.Context())
			require.NoError(c, err)
			require.NotNil(c, st)
			assert.Equal(c, 1, st.Step)
		})
		kill()
	}()
	_, err := first.Run(ctx)
	require.ErrorIs(t, err, context.Canceled)
	// What a crash leaves: the Lease still names process-1, renewed just now.
	l, err := e.client.CoordinationV1().Leases(e.ns).Get(t.Context(), "web-rollout", metav1.GetOptions{})
	require.NoError(t, err)
	holder, now := "process-1", metav1.NewMicroTime(time.Now())
	l.Spec.HolderIdentity, l.Spec.RenewTime = &holder, &now
	_, err = e.client.CoordinationV1().Leases(e.ns).Update(t.Context(), l, metav1.UpdateOptions{})
	require.NoError(t, err)

	second := e.canary(t, steps, rollout.WithIdentity("process-2"))
	_, err = second.Run(t.Context())
	var locked *rollout.LockedError
	require.ErrorAs(t, err, &locked)
	assert.Equal(t, "process-1", locked.Holder)

	time.Sleep(time.Until(locked.Until) + 100*time.Millisecond)
	go func() {
		waitFor(t, time.Minute, func(c *assert.CollectT) {
			st, err := second.Status(t.Context())
			require.NoError(c, err)
			assert.Equal(c, "process-2", st.Holder)
		})
		assert.NoError(t, second.Promote(t.Context()))
	}()
	res, err := second.Run(t.Context())
	require.NoError(t, err)
	assert.Equal(t, rollout.Promoted, res.Phase)
	assert.Equal(t, 1, res.ResumedAt)
	e.assertPromoted(t, second)
}

// A second process cannot run a rollout that one runs; a process whose Lease is taken
// stops without moving traffic again.
func TestCanaryLease(t *testing.T) {
	e := newEnv(t)
	steps := []rollout.Step{rollout.SetWeight(10), rollout.PauseUntilPromoted(), rollout.SetWeight(100)}
	first := e.canary(t, steps, rollout.WithIdentity("process-1"))
	done := make(chan error, 1)
	go func() {
		_, err := first.Run(t.Context())
		done <- err
	}()
	waitFor(t, time.Minute, func(c *assert.CollectT) {
		st, err := first.Status(t.Context())
		require.NoError(c, err)
		require.NotNil(c, st)
		assert.Equal(c, 1, st.Step)
	})

	second := e.canary(t, steps, rollout.WithIdentity("process-2"))
	_, err := second.Run(t.Context())
	require.ErrorIs(t, err, rollout.ErrLocked)
	var locked *rollout.LockedError
	require.ErrorAs(t, err, &locked)
	assert.Equal(t, "process-1", locked.Holder)
	assert.Equal(t, []int{0, 10}, e.router.weights(), "the refused run moved nothing")

	// Another process takes the Lease (as if process-1 had stalled past its expiry).
	l, err := e.client.CoordinationV1().Leases(e.ns).Get(t.Context(), "web-rollout", metav1.GetOptions{})
	require.NoError(t, err)
	intruder, now := "intruder", metav1.NewMicroTime(time.Now())
	l.Spec.HolderIdentity, l.Spec.RenewTime = &intruder, &now
	_, err = e.client.CoordinationV1().Leases(e.ns).Update(t.Context(), l, metav1.UpdateOptions{})
	require.NoError(t, err)
	taken := time.Now()
	require.NoError(t, first.Promote(t.Context())) // would move traffic to 100% if process-1 went on

	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		require.FailNow(t, "process-1 did not stop")
	}
	require.ErrorIs(t, err, rollout.ErrLeaseLost)
	t.Logf("process-1 stopped %v after losing its lease", time.Since(taken).Round(time.Millisecond))
	assert.Equal(t, []int{0, 10}, e.router.weights(), "no traffic moved after the lease was lost")
	assert.Equal(t, 10, e.router.live(t))
}

func waitFor(t *testing.T, d time.Duration, f func(c *assert.CollectT)) {
	t.Helper()
	require.EventuallyWithT(t, f, d, 50*time.Millisecond)
}

// An API server that goes away in the middle of a step stops the run (its Lease can no
// longer be renewed) and leaves the recorded state as it was; the next run resumes the
// step, waiting only for what is left of its pause.
func TestCanaryAPIServerGoneMidStep(t *testing.T) {
	e := newEnv(t)
	cfg, proxy := proxied(t, e.cluster.RESTConfig())
	router, err := replicas.New(cfg, replicas.Workload{Namespace: e.ns, Service: "web", Stable: "web", Canary: "web-canary"},
		replicas.WithTotal(total))
	require.NoError(t, err)
	const pause = 8 * time.Second
	spec := rollout.Canary{Name: "web", Namespace: e.ns, StableSelector: stableLabels, CanarySelector: canaryLabels,
		Router: router, Steps: []rollout.Step{rollout.SetWeight(10), rollout.Pause(pause), rollout.SetWeight(50), rollout.SetWeight(100)}}
	opts := []rollout.Option{rollout.WithPollInterval(100 * time.Millisecond), rollout.WithLeaseDuration(2 * time.Second), rollout.WithStateKey(stateKey)}
	first, err := rollout.NewCanary(cfg, spec, append(opts, rollout.WithIdentity("process-1"))...)
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() {
		_, err := first.Run(t.Context())
		done <- err
	}()
	var cutAt time.Time
	waitFor(t, time.Minute, func(c *assert.CollectT) {
		st, err := first.Status(t.Context())
		require.NoError(c, err)
		require.NotNil(c, st)
		require.Equal(c, 1, st.Step)
		require.False(c, st.StepStarted.IsZero())
		proxy.Cut()
		cutAt = time.Now()
	})
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		require.FailNow(t, "the run went on without its API server")
	}
	require.ErrorIs(t, err, rollout.ErrLeaseLost)
	t.Logf("the run stopped %v after its API server went away: %v", time.Since(cutAt).Round(time.Millisecond), err)

	// The API server is back (this client talks to it directly).
	st, err := rollout.ReadStatus(t.Context(), e.client, e.ns, "web")
	require.NoError(t, err)
	assert.Equal(t, rollout.Progressing, st.Phase)
	assert.Equal(t, 1, st.Step)
	assert.Equal(t, int32(10), st.Weight)
	assert.Equal(t, 10, e.router.live(t))

	spec.Router = e.router
	second, err := rollout.NewCanaryWithClient(e.client, spec, append(opts, rollout.WithIdentity("process-2"))...)
	require.NoError(t, err)
	resumed := time.Now()
	res, err := second.Run(t.Context())
	require.NoError(t, err)
	t.Log(res)
	assert.Equal(t, rollout.Promoted, res.Phase)
	assert.Equal(t, 1, res.ResumedAt)
	require.NotEmpty(t, res.Steps)
	assert.Less(t, res.Steps[0].Duration(), pause-time.Second, "the pause went on where it was, not from the start")
	assert.Less(t, time.Since(resumed), pause+30*time.Second)
	assert.Equal(t, []int{10, 50, 100, 0}, e.router.weights())
	e.assertPromoted(t, second)
}

// A metrics backend that is down, or a query with no data, never promotes: the canary
// goes back to stable, or keeps its weight when the caller chose to pause.
func TestCanaryMissingMetricsNeverPromote(t *testing.T) {
	e := newEnv(t)
	down, err := prometheus.New("http://127.0.0.1:1", prometheus.WithTimeout(500*time.Millisecond)) // nothing listens there
	require.NoError(t, err)
	noData := e.successRate(2)
	noData.Query = strings.ReplaceAll(noData.Query, `version="v2"`, `version="v9"`) // a version that serves nothing
	backendDown := e.successRate(2)
	backendDown.Provider = down
	for _, tt := range []struct {
		name   string
		check  analysis.Check
		policy rollout.InconclusivePolicy
		want   rollout.Phase
	}{
		{"backend down, abort", backendDown, rollout.AbortOnInconclusive, rollout.Aborted},
		{"no data, pause", noData, rollout.PauseOnInconclusive, rollout.Paused},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := e.client.CoreV1().ConfigMaps(e.ns).Delete(t.Context(), "web-rollout", metav1.DeleteOptions{}) // a fresh state
			require.True(t, err == nil || apierrors.IsNotFound(err), "%v", err)
			r := e.canary(t, []rollout.Step{rollout.SetWeight(10), rollout.Analysis(tt.check), rollout.SetWeight(100)}, rollout.OnInconclusive(tt.policy))
			res, err := r.Run(t.Context())
			require.NoError(t, err)
			t.Log(res)
			assert.Equal(t, tt.want, res.Phase)
			assert.Equal(t, rollout.StepInconclusive, res.Steps[1].Phase)
			for _, m := range res.Steps[1].Analysis.Measurements {
				assert.Equal(t, analysis.Inconclusive, m.Phase)
				assert.Error(t, m.Err)
			}
			assert.Equal(t, "registry.example/web:v1", image(t, e.client, e.ns, "web"), "never promoted")
			want := 0
			if tt.want == rollout.Paused {
				want = 10
			}
			assert.Equal(t, want, e.router.live(t))
		})
	}
}
