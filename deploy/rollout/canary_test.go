package rollout_test

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/shipkit/shipkit/deploy/rollout"
	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/observe/analysis"
)

// constant is a provider that always answers v.
func constant(v float64) observe.Provider {
	return observe.ProviderFunc(func(context.Context, string) (float64, error) { return v, nil })
}

// successRate is a check of the canary's success rate with two quick measurements.
func successRate(p observe.Provider) analysis.Check {
	return analysis.Check{Name: "success-rate", Provider: p, Query: `success{version="v2"}`,
		Count: 2, Interval: 5 * time.Millisecond, Success: analysis.AtLeast(0.95)}
}

// stateKey is the deployer's key of the tests' rollouts.
var stateKey = []byte("0123456789abcdef0123456789abcdef")

// fastOpts keep the fast tests fast.
func fastOpts(extra ...rollout.Option) []rollout.Option {
	return append([]rollout.Option{rollout.WithPollInterval(10 * time.Millisecond), rollout.WithReadyTimeout(2 * time.Second),
		rollout.WithStateKey(stateKey)}, extra...)
}

func newCanary(t *testing.T, c kubernetes.Interface, router *recordingRouter, steps []rollout.Step, opts ...rollout.Option) *rollout.CanaryRollout {
	t.Helper()
	r, err := rollout.NewCanaryWithClient(c, rollout.Canary{
		Name: "web", Namespace: ns,
		StableSelector: stableLabels, CanarySelector: canaryLabels,
		Router: router, Services: []string{"web"}, Steps: steps,
	}, fastOpts(opts...)...)
	require.NoError(t, err)
	return r
}

func TestNewCanaryRejectsBadPlans(t *testing.T) {
	ok := successRate(constant(1))
	noCondition := ok
	noCondition.Success = analysis.Condition{}
	tests := []struct {
		name  string
		edit  func(*rollout.Canary)
		wants []string
	}{
		{"no steps", func(c *rollout.Canary) { c.Steps = nil }, []string{"no steps"}},
		{"weight above 100", func(c *rollout.Canary) { c.Steps = []rollout.Step{rollout.SetWeight(150)} },
			[]string{"step 1 (setWeight 150): weight 150 is outside 0–100", "no promotion"}},
		{"negative weight", func(c *rollout.Canary) { c.Steps = []rollout.Step{rollout.SetWeight(-5), rollout.SetWeight(100)} },
			[]string{"weight -5 is outside 0–100"}},
		{"weights not increasing", func(c *rollout.Canary) {
			c.Steps = []rollout.Step{rollout.SetWeight(50), rollout.SetWeight(10), rollout.SetWeight(100)}
		}, []string{"step 2 (setWeight 10): weight 10 does not increase on the previous 50"}},
		{"same weight twice", func(c *rollout.Canary) {
			c.Steps = []rollout.Step{rollout.SetWeight(50), rollout.SetWeight(50), rollout.SetWeight(100)}
		}, []string{"weight 50 does not increase"}},
		{"no final promotion", func(c *rollout.Canary) {
			c.Steps = []rollout.Step{rollout.SetWeight(10), rollout.Pause(time.Second)}
		}, []string{"steps end with the canary at 10% and no promotion"}},
		{"pause without duration", func(c *rollout.Canary) { c.Steps = []rollout.Step{rollout.Pause(0), rollout.SetWeight(100)} },
			[]string{"step 1 (pause 0s): duration 0s must be positive"}},
		{"analysis without checks", func(c *rollout.Canary) { c.Steps = []rollout.Step{rollout.Analysis(), rollout.SetWeight(100)} },
			[]string{"step 1 (analysis ): no checks"}},
		{"invalid check", func(c *rollout.Canary) {
			c.Steps = []rollout.Step{rollout.SetWeight(10), rollout.Analysis(noCondition), rollout.SetWeight(100)}
		}, []string{"analysis success-rate", "no success condition"}},
		{"invalid background check", func(c *rollout.Canary) { c.Background = []analysis.Check{{Name: "x"}} },
			[]string{"background analysis", "no provider"}},
		{"header without name", func(c *rollout.Canary) {
			c.Steps = []rollout.Step{rollout.SetHeaderMatch("", "v"), rollout.SetWeight(100)}
		}, []string{"header name is empty"}},
		{"header value with a newline", func(c *rollout.Canary) {
			c.Steps = []rollout.Step{rollout.SetHeaderMatch("x-canary", "a\nb"), rollout.SetWeight(100)}
		}, []string{"header x-canary: value contains control character 0xa"}},
		{"no router", func(c *rollout.Canary) { c.Router = nil }, []string{"no router"}},
		{"no selectors", func(c *rollout.Canary) { c.StableSelector, c.CanarySelector = nil, nil },
			[]string{"no stable selector", "no canary selector"}},
		{"no name or namespace", func(c *rollout.Canary) { c.Name, c.Namespace = "", "" }, []string{"no name", "no namespace"}},
		{"bad name", func(c *rollout.Canary) { c.Name = "Web_1" }, []string{`name "Web_1"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := rollout.Canary{Name: "web", Namespace: ns, StableSelector: stableLabels, CanarySelector: canaryLabels,
				Router: &recordingRouter{}, Steps: []rollout.Step{rollout.SetWeight(10), rollout.Analysis(ok), rollout.SetWeight(100)}}
			tt.edit(&spec)
			_, err := rollout.NewCanaryWithClient(fake.NewClientset(), spec, rollout.WithStateKey(stateKey))
			require.Error(t, err)
			assert.ErrorIs(t, err, rollout.ErrInvalid)
			for _, w := range tt.wants {
				assert.ErrorContains(t, err, w)
			}
		})
	}
}

func TestNewCanaryAcceptsPauseUntilPromotedAsPromotion(t *testing.T) {
	_, err := rollout.NewCanaryWithClient(fake.NewClientset(), rollout.Canary{Name: "web", Namespace: ns,
		StableSelector: stableLabels, CanarySelector: canaryLabels, Router: &recordingRouter{},
		Steps: []rollout.Step{rollout.SetWeight(20), rollout.PauseUntilPromoted()}}, rollout.WithStateKey(stateKey))
	assert.NoError(t, err)
}

// Nothing moves, and nothing is written, when an object is missing or does not fit.
func TestRunChecksObjectsBeforeTrafficMoves(t *testing.T) {
	tests := []struct {
		name    string
		objects func() []runtime.Object
		router  *recordingRouter
		want    string
	}{
		{"no canary Deployment", func() []runtime.Object {
			return []runtime.Object{deployment("web", stableLabels, "web:v1", 2, true), service("web", nil)}
		}, &recordingRouter{}, "no canary Deployment in namespace shop has the labels app=web,track=canary"},
		{"two stable Deployments", func() []runtime.Object {
			return []runtime.Object{deployment("web", stableLabels, "web:v1", 2, true), deployment("web-2", stableLabels, "web:v1", 2, true),
				deployment("web-canary", canaryLabels, "web:v2", 1, true), service("web", nil)}
		}, &recordingRouter{}, "2 Deployments in namespace shop have the stable labels app=web,track=stable (web, web-2)"},
		{"no Service", func() []runtime.Object {
			return []runtime.Object{deployment("web", stableLabels, "web:v1", 2, true), deployment("web-canary", canaryLabels, "web:v2", 1, true)}
		}, &recordingRouter{}, "Service shop/web does not exist"},
		{"stable selects canary pods", func() []runtime.Object {
			stable := deployment("web", stableLabels, "web:v1", 2, true)
			stable.Spec.Selector.MatchLabels = map[string]string{"app": "web"}
			return []runtime.Object{stable, deployment("web-canary", canaryLabels, "web:v2", 1, true), service("web", nil)}
		}, &recordingRouter{}, "the selector of stable Deployment web selects the canary's pods"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := withResourceVersions(fake.NewClientset(tt.objects()...))
			r := newCanary(t, c, tt.router, []rollout.Step{rollout.SetWeight(50), rollout.SetWeight(100)})
			res, err := r.Run(t.Context())
			require.Error(t, err)
			assert.Nil(t, res)
			assert.ErrorIs(t, err, rollout.ErrInvalid)
			assert.ErrorContains(t, err, tt.want)
			assert.Empty(t, tt.router.Calls(), "traffic moved")
			cms, err := c.CoreV1().ConfigMaps(ns).List(t.Context(), metav1.ListOptions{})
			require.NoError(t, err)
			assert.Empty(t, cms.Items, "state written")
		})
	}
	t.Run("router check fails", func(t *testing.T) {
		router := &recordingRouter{checkErr: errors.New("CustomResourceDefinition httproutes.gateway.networking.k8s.io: not installed")}
		r := newCanary(t, fakeCluster(), router, []rollout.Step{rollout.SetWeight(50), rollout.SetWeight(100)})
		_, err := r.Run(t.Context())
		assert.ErrorIs(t, err, rollout.ErrInvalid)
		assert.ErrorContains(t, err, "router: CustomResourceDefinition httproutes.gateway.networking.k8s.io: not installed")
		assert.Empty(t, router.Calls())
	})
}

func TestRunHealthyCanaryIsPromoted(t *testing.T) {
	c := fakeCluster()
	router := &recordingRouter{}
	var mu sync.Mutex
	var events []observe.Event
	obs := observe.ObserverFunc(func(e observe.Event) {
		mu.Lock()
		defer mu.Unlock()
		if e.Stage == rollout.Stage {
			events = append(events, e)
		}
	})
	steps := []rollout.Step{rollout.SetWeight(10), rollout.Analysis(successRate(constant(0.999))),
		rollout.SetWeight(50), rollout.Pause(20 * time.Millisecond), rollout.SetWeight(100)}
	r := newCanary(t, c, router, steps, rollout.WithObserver(obs))

	res, err := r.Run(t.Context())
	require.NoError(t, err)
	assert.Equal(t, rollout.Promoted, res.Phase, res.String())
	assert.Equal(t, []string{"reset", "weight 10", "weight 50", "weight 100", "reset"}, router.Calls())
	assert.Equal(t, "web:v2", image(t, c, ns, "web"), "stable runs the canary's template")
	assert.Equal(t, int32(0), replicasOf(t, c, ns, "web-canary"), "canary drained")
	assert.Equal(t, int32(0), res.Weight)

	require.Len(t, res.Steps, 5)
	for i, want := range []int32{10, 10, 50, 50, 100} {
		assert.Equal(t, want, res.Steps[i].Weight, "step %d", i+1)
		assert.Equal(t, rollout.StepCompleted, res.Steps[i].Phase, "step %d", i+1)
	}
	require.NotNil(t, res.Steps[1].Analysis)
	assert.Equal(t, analysis.Successful, res.Steps[1].Analysis.Phase)
	assert.Len(t, res.Steps[1].Analysis.Measurements, 2)
	assert.GreaterOrEqual(t, res.Steps[3].Duration(), 20*time.Millisecond)

	st, err := r.Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, rollout.Promoted, st.Phase)
	assert.Equal(t, 5, st.Step)
	assert.Equal(t, res.Revision, st.Revision)
	assert.Len(t, st.Steps, 5)

	mu.Lock()
	var finished []string
	for _, e := range events {
		if e.Phase == observe.Finished {
			finished = append(finished, e.Step)
		}
	}
	mu.Unlock()
	assert.Equal(t, []string{"step 1/5 setWeight 10", "step 2/5 analysis success-rate", "step 3/5 setWeight 50",
		"step 4/5 pause 20ms", "step 5/5 setWeight 100", "promote"}, finished)

	evs, err := c.EventsV1().Events(ns).List(t.Context(), metav1.ListOptions{})
	require.NoError(t, err)
	reasons := map[string]int{}
	for _, e := range evs.Items {
		assert.Equal(t, "web-canary", e.Regarding.Name)
		assert.Equal(t, rollout.ReportingController, e.ReportingController)
		reasons[e.Reason]++
	}
	assert.Equal(t, 5, reasons[rollout.ReasonStepCompleted])
	assert.Equal(t, 1, reasons[rollout.ReasonPromoted])

	// Running the same revision again changes nothing.
	again, err := r.Run(t.Context())
	require.NoError(t, err)
	assert.Equal(t, rollout.Promoted, again.Phase)
	assert.Contains(t, again.Message, "already Promoted")
	assert.Len(t, router.Calls(), 5, "no traffic moved")
}

func TestRunFailedAnalysisAborts(t *testing.T) {
	c := fakeCluster()
	router := &recordingRouter{}
	steps := []rollout.Step{rollout.SetWeight(10), rollout.Analysis(successRate(constant(0.5))), rollout.SetWeight(100)}
	res, err := newCanary(t, c, router, steps).Run(t.Context())
	require.NoError(t, err, "an abort is a decision, not an error")
	assert.Equal(t, rollout.Aborted, res.Phase)
	assert.Contains(t, res.Message, "step 2 analysis failed")
	assert.Equal(t, []string{"reset", "weight 10", "reset"}, router.Calls())
	assert.Equal(t, int32(0), replicasOf(t, c, ns, "web-canary"))
	assert.Equal(t, "web:v1", image(t, c, ns, "web"), "stable untouched")
	require.Len(t, res.Steps, 2)
	assert.Equal(t, rollout.StepFailed, res.Steps[1].Phase)
	assert.Equal(t, analysis.Failed, res.Steps[1].Analysis.Phase)
	assert.Equal(t, 0.5, res.Steps[1].Analysis.Measurements[0].Value)
	assert.Equal(t, "abort", res.Decisions[len(res.Decisions)-1].Action)
}

// Missing data never promotes: the run aborts or pauses as the caller chose.
func TestRunInconclusiveNeverPromotes(t *testing.T) {
	providers := map[string]observe.Provider{
		"backend down": observe.ProviderFunc(func(context.Context, string) (float64, error) {
			return 0, errors.New("dial tcp 127.0.0.1:9: connection refused")
		}),
		"no data": observe.ProviderFunc(func(context.Context, string) (float64, error) {
			return 0, observe.ErrNoData
		}),
		"NaN": constant(math.NaN()),
		"timeout": observe.ProviderFunc(func(ctx context.Context, _ string) (float64, error) {
			<-ctx.Done()
			return 0, ctx.Err()
		}),
	}
	for name, p := range providers {
		t.Run(name+"/abort", func(t *testing.T) {
			c := fakeCluster()
			router := &recordingRouter{}
			check := successRate(p)
			check.Timeout = 20 * time.Millisecond
			res, err := newCanary(t, c, router, []rollout.Step{rollout.SetWeight(10), rollout.Analysis(check), rollout.SetWeight(100)}).Run(t.Context())
			require.NoError(t, err)
			assert.Equal(t, rollout.Aborted, res.Phase)
			assert.Equal(t, rollout.StepInconclusive, res.Steps[1].Phase)
			assert.Equal(t, []string{"reset", "weight 10", "reset"}, router.Calls())
		})
		t.Run(name+"/pause", func(t *testing.T) {
			c := fakeCluster()
			router := &recordingRouter{}
			check := successRate(p)
			check.Timeout = 20 * time.Millisecond
			r := newCanary(t, c, router, []rollout.Step{rollout.SetWeight(10), rollout.Analysis(check), rollout.SetWeight(100)},
				rollout.OnInconclusive(rollout.PauseOnInconclusive))
			res, err := r.Run(t.Context())
			require.NoError(t, err)
			assert.Equal(t, rollout.Paused, res.Phase)
			assert.Equal(t, int32(10), res.Weight, "the canary keeps its weight")
			assert.Equal(t, []string{"reset", "weight 10"}, router.Calls())
			st, err := r.Status(t.Context())
			require.NoError(t, err)
			assert.Equal(t, rollout.Paused, st.Phase)
			assert.Equal(t, 1, st.Step, "the analysis is repeated")

			// Still no data: still paused, never promoted.
			res, err = r.Run(t.Context())
			require.NoError(t, err)
			assert.Equal(t, rollout.Paused, res.Phase)
			assert.True(t, res.Resumed)
			assert.Equal(t, 1, res.ResumedAt)
			assert.Equal(t, 10, router.maxWeight())
			assert.Equal(t, "web:v1", image(t, c, ns, "web"))
		})
	}
}

func TestRunPausedRolloutResumesWhenDataReturns(t *testing.T) {
	c := fakeCluster()
	router := &recordingRouter{}
	var healthy atomic.Bool
	p := observe.ProviderFunc(func(context.Context, string) (float64, error) {
		if !healthy.Load() {
			return 0, observe.ErrNoData
		}
		return 1, nil
	})
	steps := []rollout.Step{rollout.SetWeight(10), rollout.Analysis(successRate(p)), rollout.SetWeight(100)}
	r := newCanary(t, c, router, steps, rollout.OnInconclusive(rollout.PauseOnInconclusive))
	res, err := r.Run(t.Context())
	require.NoError(t, err)
	require.Equal(t, rollout.Paused, res.Phase)

	healthy.Store(true)
	res, err = r.Run(t.Context())
	require.NoError(t, err)
	assert.Equal(t, rollout.Promoted, res.Phase, res.String())
	assert.Equal(t, 1, res.ResumedAt)
	assert.Equal(t, []string{"reset", "weight 10", "weight 10", "weight 100", "reset"}, router.Calls())
}

// A run cancelled after step 2 (a crash) leaves its step recorded; a new process
// resumes there, never setting more than the plan allows, and ends promoted.
func TestRunResumesAfterCrash(t *testing.T) {
	c := fakeCluster()
	router := &recordingRouter{}
	steps := []rollout.Step{rollout.SetWeight(10), rollout.Analysis(successRate(constant(1))),
		rollout.SetWeight(50), rollout.Analysis(successRate(constant(1))), rollout.SetWeight(100)}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	crash := observe.ObserverFunc(func(e observe.Event) {
		if e.Stage == rollout.Stage && e.Phase == observe.Finished && strings.HasPrefix(e.Step, "step 2/") {
			cancel()
		}
	})
	first := newCanary(t, c, router, steps, rollout.WithObserver(crash), rollout.WithIdentity("process-1"))
	res, err := first.Run(ctx)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, rollout.Progressing, res.Phase)
	st, err := first.Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 2, st.Step)
	assert.Equal(t, int32(10), st.Weight)

	second := newCanary(t, c, router, steps, rollout.WithIdentity("process-2"))
	res, err = second.Run(t.Context())
	require.NoError(t, err)
	assert.Equal(t, rollout.Promoted, res.Phase, res.String())
	assert.True(t, res.Resumed)
	assert.Equal(t, 2, res.ResumedAt)
	require.Len(t, res.Steps, 3)
	assert.Equal(t, 2, res.Steps[0].Index)
	assert.Equal(t, []string{"reset", "weight 10", "weight 10", "weight 50", "weight 100", "reset"}, router.Calls())
	assert.Equal(t, "web:v2", image(t, c, ns, "web"))
}

func TestRunRollbackOnResume(t *testing.T) {
	c := fakeCluster()
	router := &recordingRouter{}
	steps := []rollout.Step{rollout.SetWeight(10), rollout.PauseUntilPromoted(), rollout.SetWeight(100)}
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		waitForStep(t, newCanary(t, c, router, steps), 1)
		cancel()
	}()
	_, err := newCanary(t, c, router, steps).Run(ctx)
	require.ErrorIs(t, err, context.Canceled)

	res, err := newCanary(t, c, router, steps, rollout.OnResume(rollout.RollbackOnResume)).Run(t.Context())
	require.NoError(t, err)
	assert.Equal(t, rollout.Aborted, res.Phase)
	assert.Contains(t, res.Message, "OnResume(RollbackOnResume)")
	assert.Equal(t, []string{"reset", "weight 10", "reset"}, router.Calls())
	assert.Equal(t, int32(0), replicasOf(t, c, ns, "web-canary"))
}

// waitForStep waits until the rollout's recorded step is at least step.
func waitForStep(t *testing.T, r *rollout.CanaryRollout, step int) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		st, err := r.Status(context.Background())
		require.NoError(c, err)
		require.NotNil(c, st)
		assert.GreaterOrEqual(c, st.Step, step)
	}, 10*time.Second, 5*time.Millisecond)
}

func TestPromoteAndAbortRequests(t *testing.T) {
	steps := []rollout.Step{rollout.SetWeight(10), rollout.PauseUntilPromoted(), rollout.SetWeight(100)}
	t.Run("promote", func(t *testing.T) {
		c := fakeCluster()
		router := &recordingRouter{}
		other := newCanary(t, c, router, steps) // another process
		require.ErrorIs(t, other.Promote(t.Context()), rollout.ErrNotStarted)
		go func() {
			waitForStep(t, other, 1)
			assert.NoError(t, other.Promote(context.Background()))
		}()
		res, err := newCanary(t, c, router, steps).Run(t.Context())
		require.NoError(t, err)
		assert.Equal(t, rollout.Promoted, res.Phase)
		assert.Equal(t, "promoted", res.Steps[1].Message)
	})
	t.Run("abort", func(t *testing.T) {
		c := fakeCluster()
		router := &recordingRouter{}
		other := newCanary(t, c, router, steps)
		go func() {
			waitForStep(t, other, 1)
			assert.NoError(t, other.Abort(context.Background(), "users complain"))
		}()
		res, err := newCanary(t, c, router, steps).Run(t.Context())
		require.NoError(t, err)
		assert.Equal(t, rollout.Aborted, res.Phase)
		assert.Equal(t, "users complain", res.Message)
		assert.Equal(t, []string{"reset", "weight 10", "reset"}, router.Calls())

		// An aborted revision stays aborted until Retry.
		res, err = newCanary(t, c, router, steps).Run(t.Context())
		require.NoError(t, err)
		assert.Equal(t, rollout.Aborted, res.Phase)
		require.NoError(t, other.Retry(t.Context()))
		st, err := other.Status(t.Context())
		require.NoError(t, err)
		assert.Nil(t, st)
	})
}

func TestBackgroundAnalysisAbortsDuringPause(t *testing.T) {
	c := fakeCluster()
	router := &recordingRouter{}
	var queries atomic.Int32
	p := observe.ProviderFunc(func(context.Context, string) (float64, error) {
		// Fail a few measurements into the pause, not by the clock from the start: a
		// slow first step (the race detector, a busy machine) must not see the failure.
		if slices.Contains(router.Calls(), "weight 10") && queries.Add(1) > 3 {
			return 0.2, nil
		}
		return 1, nil
	})
	bg := successRate(p)
	bg.Name, bg.Count, bg.Interval = "background-success", 100, 10*time.Millisecond
	r, err := rollout.NewCanaryWithClient(c, rollout.Canary{Name: "web", Namespace: ns, StableSelector: stableLabels, CanarySelector: canaryLabels,
		Router: router, Steps: []rollout.Step{rollout.SetWeight(10), rollout.Pause(time.Minute), rollout.SetWeight(100)},
		Background: []analysis.Check{bg}}, fastOpts()...)
	require.NoError(t, err)
	start := time.Now()
	res, err := r.Run(t.Context())
	require.NoError(t, err)
	assert.Less(t, time.Since(start), 10*time.Second, "the pause was cut short")
	assert.Equal(t, rollout.Aborted, res.Phase)
	assert.Contains(t, res.Message, "background analysis Failed")
	assert.Equal(t, rollout.StepInterrupted, res.Steps[1].Phase)
	assert.NotEmpty(t, res.Background)
	assert.Equal(t, []string{"reset", "weight 10", "reset"}, router.Calls())
}

// TestBackgroundAnalysisJoined: a rollout that ends while a background analysis
// round is running waits for it. The round's measurements are in Result.Background
// (before, the result was filled before the round stopped, and they were dropped),
// and no event reaches the observer after Run returns.
func TestBackgroundAnalysisJoined(t *testing.T) {
	var (
		mu       sync.Mutex
		returned bool
		late     []observe.Event
		progress int
	)
	obs := observe.ObserverFunc(func(e observe.Event) {
		if e.Stage == analysis.Stage && e.Step == "background-success" && e.Phase == observe.Progress {
			time.Sleep(5 * time.Millisecond) // a slow observer widens the window of a late event
		}
		mu.Lock()
		defer mu.Unlock()
		if returned {
			late = append(late, e)
		}
		if e.Stage == analysis.Stage && e.Step == "background-success" && e.Phase == observe.Progress {
			progress++
		}
	})
	bg := successRate(constant(1))
	bg.Name, bg.Count, bg.Interval, bg.Timeout = "background-success", 100000, 2*time.Millisecond, time.Second // one round outlasts the run
	r, err := rollout.NewCanaryWithClient(fakeCluster(), rollout.Canary{Name: "web", Namespace: ns, StableSelector: stableLabels, CanarySelector: canaryLabels,
		Router: &recordingRouter{}, Steps: []rollout.Step{rollout.SetWeight(10), rollout.Pause(100 * time.Millisecond), rollout.SetWeight(100)},
		Background: []analysis.Check{bg}}, fastOpts(rollout.WithObserver(obs))...)
	require.NoError(t, err)
	res, err := r.Run(t.Context())
	mu.Lock()
	returned = true
	measured := progress
	mu.Unlock()
	require.NoError(t, err)
	assert.Equal(t, rollout.Promoted, res.Phase, res.Message)
	require.Positive(t, measured, "background measurements reported during the run")
	assert.GreaterOrEqual(t, len(res.Background), measured, "every reported background measurement is in the result")
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	assert.Empty(t, late, "events after Run returned")
}

func TestLease(t *testing.T) {
	steps := []rollout.Step{rollout.SetWeight(100)}
	lease := func(holder string, renewed time.Time) *coordinationv1.Lease {
		secs := int32(15)
		return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "web-rollout", Namespace: ns},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, RenewTime: &metav1.MicroTime{Time: renewed}}}
	}
	t.Run("held", func(t *testing.T) {
		c := fakeCluster()
		_, err := c.CoordinationV1().Leases(ns).Create(t.Context(), lease("other-process", time.Now()), metav1.CreateOptions{})
		require.NoError(t, err)
		router := &recordingRouter{}
		_, err = newCanary(t, c, router, steps).Run(t.Context())
		require.ErrorIs(t, err, rollout.ErrLocked)
		var locked *rollout.LockedError
		require.ErrorAs(t, err, &locked)
		assert.Equal(t, "other-process", locked.Holder)
		assert.Empty(t, router.Calls())
	})
	t.Run("expired", func(t *testing.T) {
		c := fakeCluster()
		_, err := c.CoordinationV1().Leases(ns).Create(t.Context(), lease("crashed-process", time.Now().Add(-time.Minute)), metav1.CreateOptions{})
		require.NoError(t, err)
		res, err := newCanary(t, c, &recordingRouter{}, steps, rollout.WithIdentity("me")).Run(t.Context())
		require.NoError(t, err)
		assert.Equal(t, rollout.Promoted, res.Phase)
		l, err := c.CoordinationV1().Leases(ns).Get(t.Context(), "web-rollout", metav1.GetOptions{})
		require.NoError(t, err)
		assert.Nil(t, l.Spec.HolderIdentity, "released after the run")
		assert.Equal(t, int32(1), *l.Spec.LeaseTransitions)
	})
}

// The API server going away while a step runs leaves the recorded state as it was
// before the step's write failed; the next run resumes from it.
func TestRunAPIServerGoneMidStep(t *testing.T) {
	c := fakeCluster()
	router := &recordingRouter{}
	steps := []rollout.Step{rollout.SetWeight(10), rollout.SetWeight(50), rollout.SetWeight(100)}
	var down atomic.Bool
	c.PrependReactor("*", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
		if down.Load() {
			return true, nil, errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")
		}
		return false, nil, nil
	})
	failing := &recordingRouter{failOn: "weight 50"}
	r := newCanary(t, c, failing, steps)
	// The router fails on 50 like a router whose API server is gone; then the API
	// server goes too, so not even an abort can be recorded.
	res, err := r.Run(t.Context())
	require.Error(t, err)
	assert.ErrorContains(t, err, "weight 50 failed")
	assert.Equal(t, rollout.StepInterrupted, res.Steps[len(res.Steps)-1].Phase)
	st, err := r.Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, rollout.Progressing, st.Phase)
	assert.Equal(t, 1, st.Step)
	assert.Equal(t, int32(50), st.Weight, "the intent was recorded before the router was called")

	down.Store(true)
	_, err = newCanary(t, c, router, steps).Run(t.Context())
	require.Error(t, err)
	assert.ErrorContains(t, err, "connection refused")
	down.Store(false)

	res, err = newCanary(t, c, router, steps).Run(t.Context())
	require.NoError(t, err)
	assert.Equal(t, rollout.Promoted, res.Phase)
	assert.Equal(t, 1, res.ResumedAt)
	assert.Equal(t, []string{"weight 50", "weight 50", "weight 100", "reset"}, router.Calls())
}
