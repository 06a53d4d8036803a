package analysis_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/observe/analysis"
)

// fake answers queries with a function of the time since the test started (the
// synctest bubble's fake clock) and counts its calls.
type fake struct {
	start  time.Time
	answer func(since time.Duration) (float64, error)
	mu     sync.Mutex
	calls  []time.Duration
}

func newFake(answer func(since time.Duration) (float64, error)) *fake {
	return &fake{start: time.Now(), answer: answer}
}

func constant(v float64) *fake {
	return newFake(func(time.Duration) (float64, error) { return v, nil })
}

func (f *fake) Query(ctx context.Context, _ string) (float64, error) {
	since := time.Since(f.start)
	f.mu.Lock()
	f.calls = append(f.calls, since)
	f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return f.answer(since)
}

func (f *fake) Calls() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.calls...)
}

// phases returns the phases of ms.
func phases(ms []analysis.Measurement) []analysis.Phase {
	var ps []analysis.Phase
	for _, m := range ms {
		ps = append(ps, m.Phase)
	}
	return ps
}

func ptr[T any](v T) *T { return &v }

const (
	S = analysis.Successful
	F = analysis.Failed
	I = analysis.Inconclusive
)

func TestMeasurementPhase(t *testing.T) {
	errDown := errors.New("connection refused")
	tests := []struct {
		name    string
		value   float64
		err     error
		failure *analysis.Condition
		want    analysis.Phase
		wantErr error
	}{
		{name: "meets success", value: 0.995, want: S},
		{name: "on the threshold", value: 0.99, want: S},
		{name: "misses success, no failure condition", value: 0.98, want: F},
		{name: "meets failure", value: 0.5, failure: ptr(analysis.Below(0.9)), want: F},
		{name: "meets neither", value: 0.95, failure: ptr(analysis.Below(0.9)), want: I},
		{name: "failure wins over success", value: 0.995, failure: ptr(analysis.AtLeast(0.99)), want: F},
		{name: "NaN", value: math.NaN(), want: I, wantErr: analysis.ErrNotFinite},
		{name: "NaN with a failure condition", value: math.NaN(), failure: ptr(analysis.Below(0.9)), want: I, wantErr: analysis.ErrNotFinite},
		{name: "+Inf", value: math.Inf(1), want: I, wantErr: analysis.ErrNotFinite},
		{name: "-Inf", value: math.Inf(-1), failure: ptr(analysis.Below(0.9)), want: I, wantErr: analysis.ErrNotFinite},
		{name: "provider error", value: 1, err: errDown, want: I, wantErr: errDown},
		{name: "no data", err: fmt.Errorf("query x: %w", observe.ErrNoData), want: I, wantErr: observe.ErrNoData},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := observe.ProviderFunc(func(context.Context, string) (float64, error) { return tt.value, tt.err })
			res, err := analysis.Run(t.Context(), []analysis.Check{{
				Name: "c", Provider: p, Query: "q", Success: analysis.AtLeast(0.99), Failure: tt.failure,
			}})
			require.NoError(t, err)
			require.Len(t, res.Measurements, 1)
			m := res.Measurements[0]
			assert.Equal(t, tt.want, m.Phase)
			assert.Equal(t, tt.want, res.Phase, "one measurement decides the run")
			assert.Equal(t, "c", m.Check)
			if tt.wantErr != nil {
				assert.ErrorIs(t, m.Err, tt.wantErr)
			} else {
				assert.NoError(t, m.Err)
				assert.Equal(t, tt.value, m.Value) //nolint:testifylint // the value is passed through, not computed
			}
		})
	}
}

func TestRunSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := constant(0.999)
		start := time.Now()
		res, err := analysis.Run(t.Context(), []analysis.Check{{
			Name: "rate", Provider: p, Query: "q", Count: 4, Interval: 10 * time.Second,
			InitialDelay: 5 * time.Second, Success: analysis.AtLeast(0.99),
		}})
		require.NoError(t, err)
		assert.Equal(t, S, res.Phase)
		assert.Equal(t, 35*time.Second, time.Since(start), "returns right after the last measurement")
		assert.Equal(t, []time.Duration{5 * time.Second, 15 * time.Second, 25 * time.Second, 35 * time.Second}, p.Calls())
		assert.Equal(t, []analysis.Phase{S, S, S, S}, phases(res.Measurements))
		for i, m := range res.Measurements {
			assert.Equal(t, start.Add(5*time.Second+time.Duration(i)*10*time.Second), m.Time)
		}
		require.Len(t, res.Checks, 1)
		assert.Equal(t, analysis.CheckResult{Name: "rate", Phase: S, Successful: 4, Message: res.Checks[0].Message}, res.Checks[0])
	})
}

func TestRunLimits(t *testing.T) {
	errDown := errors.New("down")
	tests := []struct {
		name              string
		answers           []any // float64 or error, one per measurement
		count             int
		failureLimit      int
		inconclusiveLimit int
		want              analysis.Phase
		wantPhases        []analysis.Phase
	}{
		{"all successful", []any{1.0, 1.0, 1.0}, 3, 0, 0, S, []analysis.Phase{S, S, S}},
		{"first failure fails at once", []any{1.0, 0.5, 1.0}, 3, 0, 0, F, []analysis.Phase{S, F}},
		{"failure within limit", []any{0.5, 1.0, 0.5}, 3, 2, 0, S, []analysis.Phase{F, S, F}},
		{"failures beyond limit", []any{0.5, 0.5, 1.0}, 3, 1, 0, F, []analysis.Phase{F, F}},
		{"inconclusive within limit", []any{errDown, 1.0, 1.0}, 3, 0, 1, S, []analysis.Phase{I, S, S}},
		{"inconclusive beyond limit", []any{errDown, 1.0, math.NaN()}, 3, 0, 1, I, []analysis.Phase{I, S, I}},
		{"tolerated failures without a success", []any{0.5, 0.5}, 2, 5, 5, I, []analysis.Phase{F, F}},
		{"backend down within generous limits is not a success", []any{errDown, errDown, errDown}, 3, 5, 5, I, []analysis.Phase{I, I, I}},
		{"backend down", []any{errDown}, 1, 0, 0, I, []analysis.Phase{I}},
		{"only no data", []any{observe.ErrNoData, observe.ErrNoData}, 2, 0, 1, I, []analysis.Phase{I, I}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newFake(func(since time.Duration) (float64, error) {
					switch a := tt.answers[int(since/time.Second)].(type) {
					case error:
						return 0, a
					case float64:
						return a, nil
					}
					return 0, fmt.Errorf("no answer for measurement at %v", since)
				})
				res, err := analysis.Run(t.Context(), []analysis.Check{{
					Name: "c", Provider: p, Query: "q", Count: tt.count, Interval: time.Second,
					FailureLimit: tt.failureLimit, InconclusiveLimit: tt.inconclusiveLimit,
					Success: analysis.AtLeast(0.99),
				}})
				require.NoError(t, err)
				assert.Equal(t, tt.want, res.Phase, res.Message)
				assert.Equal(t, tt.wantPhases, phases(res.Measurements))
			})
		})
	}
}

// A breach ends the run within one interval, stops the other checks and keeps what
// they measured.
func TestRunStopsOnBreach(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		rate := newFake(func(since time.Duration) (float64, error) {
			if since < 25*time.Second {
				return 0.999, nil
			}
			return 0.8, nil // the canary starts failing at 25s
		})
		latency := constant(0.1)
		var seen []analysis.Measurement
		res, err := analysis.Run(t.Context(), []analysis.Check{
			{Name: "rate", Provider: rate, Query: "q1", Count: 100, Interval: 10 * time.Second, Success: analysis.AtLeast(0.99)},
			{Name: "latency", Provider: latency, Query: "q2", Count: 100, Interval: 7 * time.Second, Success: analysis.AtMost(0.5)},
		}, analysis.OnMeasurement(func(m analysis.Measurement) { seen = append(seen, m) }))
		require.NoError(t, err)
		assert.Equal(t, F, res.Phase)
		assert.Equal(t, 30*time.Second, time.Since(start), "the first measurement after the breach fails the run")
		assert.Contains(t, res.Message, `check "rate" Failed`)
		assert.Contains(t, res.Message, "0.8 Failed (success if result >= 0.99)")
		require.Len(t, res.Checks, 2)
		assert.Equal(t, F, res.Checks[0].Phase)
		assert.Equal(t, 3, res.Checks[0].Successful)
		assert.Equal(t, 1, res.Checks[0].Failed)
		assert.Equal(t, analysis.Running, res.Checks[1].Phase, "latency was stopped")
		assert.Equal(t, 5, res.Checks[1].Successful, "latency measured at 0, 7, 14, 21, 28s")

		var times []time.Duration
		for _, m := range res.Measurements {
			times = append(times, m.Time.Sub(start))
		}
		assert.Equal(t, []time.Duration{0, 0, 7 * time.Second, 10 * time.Second, 14 * time.Second, 20 * time.Second,
			21 * time.Second, 28 * time.Second, 30 * time.Second}, times, "every measurement kept, in order")
		assert.Equal(t, res.Measurements, seen, "OnMeasurement saw each measurement once")

		synctest.Wait()
		time.Sleep(time.Minute)
		assert.Len(t, latency.Calls(), 5, "no query after Run returned")
		assert.Len(t, seen, len(res.Measurements), "no callback after Run returned")
	})
}

func TestRunTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		stuck := observe.ProviderFunc(func(context.Context, string) (float64, error) {
			<-release // ignores its context
			return 1, nil
		})
		start := time.Now()
		res, err := analysis.Run(t.Context(), []analysis.Check{{
			Name: "stuck", Provider: stuck, Query: "q", Count: 2, Interval: 10 * time.Second, Timeout: 3 * time.Second,
			InconclusiveLimit: 1, Success: analysis.AtLeast(0.99),
		}})
		require.NoError(t, err)
		assert.Equal(t, I, res.Phase)
		assert.Equal(t, 13*time.Second, time.Since(start))
		require.Len(t, res.Measurements, 2)
		for _, m := range res.Measurements {
			assert.ErrorIs(t, m.Err, context.DeadlineExceeded)
			assert.ErrorContains(t, m.Err, "timed out after 3s")
			assert.True(t, math.IsNaN(m.Value), "a timed out query has no value")
		}
	})
}

func TestRunDefaultTimeoutIsInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow := observe.ProviderFunc(func(ctx context.Context, _ string) (float64, error) {
			<-ctx.Done()
			return 0, ctx.Err()
		})
		start := time.Now()
		res, err := analysis.Run(t.Context(), []analysis.Check{{
			Name: "slow", Provider: slow, Query: "q", Count: 2, Interval: 2 * time.Second, Success: analysis.AtLeast(1),
		}})
		require.NoError(t, err)
		assert.Equal(t, I, res.Phase)
		assert.Equal(t, 2*time.Second, time.Since(start))
	})
}

func TestRunCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(25*time.Second, cancel)
		res, err := analysis.Run(ctx, []analysis.Check{{
			Name: "rate", Provider: constant(1), Query: "q", Count: 10, Interval: 10 * time.Second, Success: analysis.AtLeast(0.99),
		}})
		require.ErrorIs(t, err, context.Canceled)
		require.NotNil(t, res)
		assert.Equal(t, I, res.Phase, "a cut-short run is never successful")
		assert.Equal(t, []analysis.Phase{S, S, S}, phases(res.Measurements))
		assert.Equal(t, analysis.Running, res.Checks[0].Phase)
	})
}

func TestRunObserver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var events []string
		obs := observe.ObserverFunc(func(e observe.Event) {
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, analysis.Stage, e.Stage)
			events = append(events, fmt.Sprintf("%s %s %d/%d", e.Step, e.Phase, e.Done, e.Total))
		})
		res, err := analysis.Run(t.Context(), []analysis.Check{{
			Name: "rate", Provider: constant(0.5), Query: "q", Count: 3, Interval: time.Second, FailureLimit: 1, Success: analysis.AtLeast(0.99),
		}}, analysis.WithObserver(obs))
		require.NoError(t, err)
		assert.Equal(t, F, res.Phase)
		assert.Equal(t, []string{"rate started 0/0", "rate progress 1/3", "rate progress 2/3", "rate failed 0/0"}, events)

		// nil means none, also after a real observer or logger: the last option wins.
		events = nil
		var logs strings.Builder
		log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		_, err = analysis.Run(t.Context(), []analysis.Check{{
			Name: "rate", Provider: constant(0.5), Query: "q", Count: 1, Success: analysis.AtLeast(0.99),
		}}, analysis.WithObserver(obs), analysis.WithObserver(nil), analysis.WithLogger(log), analysis.WithLogger(nil))
		require.NoError(t, err)
		assert.Empty(t, events)
		assert.Empty(t, logs.String())
	})
}

func TestRunInvalid(t *testing.T) {
	p := constant(1)
	ok := analysis.Check{Name: "ok", Provider: p, Query: "q", Success: analysis.AtLeast(1)}
	with := func(f func(c *analysis.Check)) []analysis.Check {
		c := ok
		f(&c)
		return []analysis.Check{c}
	}
	tests := []struct {
		name   string
		checks []analysis.Check
		want   string
	}{
		{"no checks", nil, "no checks"},
		{"no name", with(func(c *analysis.Check) { c.Name = "" }), `check "#0": invalid check: no name`},
		{"no provider", with(func(c *analysis.Check) { c.Provider = nil }), `check "ok": invalid check: no provider`},
		{"empty query", with(func(c *analysis.Check) { c.Query = "" }), "empty query"},
		{"negative count", with(func(c *analysis.Check) { c.Count = -1 }), "count -1 is negative"},
		{"count without interval", with(func(c *analysis.Check) { c.Count = 3 }), "count 3 needs an interval greater than 0"},
		{"negative interval", with(func(c *analysis.Check) { c.Interval = -time.Second }), "interval -1s is negative"},
		{"negative delay", with(func(c *analysis.Check) { c.InitialDelay = -time.Second }), "initial delay -1s is negative"},
		{"negative timeout", with(func(c *analysis.Check) { c.Timeout = -time.Second }), "timeout -1s is negative"},
		{"negative failure limit", with(func(c *analysis.Check) { c.FailureLimit = -1 }), "failure limit -1 is negative"},
		{"negative inconclusive limit", with(func(c *analysis.Check) { c.InconclusiveLimit = -2 }), "inconclusive limit -2 is negative"},
		{"no success condition", with(func(c *analysis.Check) { c.Success = analysis.Condition{} }), "no success condition"},
		{"bad operator", with(func(c *analysis.Check) { c.Success.Op = "=>" }), `success condition: operator "=>"`},
		{"NaN threshold", with(func(c *analysis.Check) { c.Success = analysis.AtLeast(math.NaN()) }), "success condition: threshold NaN"},
		{"bad failure condition", with(func(c *analysis.Check) { c.Failure = &analysis.Condition{Value: 1} }), "failure condition: no operator"},
		{"same name twice", append(with(func(*analysis.Check) {}), ok), `check "ok": invalid check: name used twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.ErrorIs(t, analysis.Validate(tt.checks), analysis.ErrInvalidCheck)
			assert.ErrorContains(t, analysis.Validate(tt.checks), tt.want)
			res, err := analysis.Run(t.Context(), tt.checks)
			require.ErrorIs(t, err, analysis.ErrInvalidCheck)
			assert.ErrorContains(t, err, tt.want)
			assert.Nil(t, res)
			assert.Empty(t, p.Calls(), "nothing measured")
		})
	}
}

func TestValidate(t *testing.T) {
	assert.NoError(t, analysis.Validate([]analysis.Check{
		{Name: "a", Provider: constant(1), Query: "q", Success: analysis.AtLeast(1)},
		analysis.SuccessRate(constant(1), `version="v2"`, 0.99),
		analysis.LatencyP99(constant(1), `version="v2"`, time.Second),
	}))
}

func TestRunReportsEveryProblem(t *testing.T) {
	_, err := analysis.Run(t.Context(), []analysis.Check{{Name: "a", Count: 2}})
	require.ErrorIs(t, err, analysis.ErrInvalidCheck)
	for _, want := range []string{"no provider", "empty query", "count 2 needs an interval", "no success condition"} {
		assert.ErrorContains(t, err, want)
	}
}
