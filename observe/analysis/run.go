package analysis

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/shipkit/shipkit/observe"
)

// Stage is the stage name of the events [Run] reports to its observer.
const Stage = "analysis"

// Option configures [Run].
type Option func(*config)

type config struct {
	onMeasurement func(Measurement)
	observer      observe.Observer
	logger        *slog.Logger
}

// OnMeasurement calls f with each measurement as soon as it is judged, from the checks'
// goroutines but never two at a time and never after Run returned. f must not block
// for long: the checks wait for it.
func OnMeasurement(f func(Measurement)) Option {
	return func(c *config) { c.onMeasurement = f }
}

// WithObserver reports the run's progress to o: a Started event when a check starts,
// a Progress event per measurement and a Finished or Failed event when it ends, all
// with Stage "analysis" and the check's name as Step. The default (and nil) is none.
func WithObserver(o observe.Observer) Option { return func(c *config) { c.observer = o } }

// WithLogger logs each measurement at debug level and inconclusive ones at warn level
// to l. The default (and nil) is nowhere.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// Run runs the checks concurrently and returns when they are all done, or as soon as
// one check has Failed or is Inconclusive (the run can then no longer be Successful);
// the other checks are then stopped. A check whose failure limit is 0 thus fails the
// run within one Interval of the breach (plus the query's time).
//
// Run returns an error wrapping [ErrInvalidCheck] and no result when a check is
// invalid (no name, provider, query or success condition, a negative count or limit,
// Count > 1 without an Interval). When ctx ends, it returns the result so far (never
// Successful: its phase is Inconclusive unless a check had failed) and an error
// wrapping ctx's cause. Run does not wait for a provider that ignores its context.
//
// Tests drive Run's timers with testing/synctest.
func Run(ctx context.Context, checks []Check, opts ...Option) (*Result, error) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	cfg.observer, cfg.logger = observe.OrDiscard(cfg.observer), observe.OrDiscardLogger(cfg.logger)
	if err := Validate(checks); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	rec := &recorder{cfg: &cfg}
	done := make(chan CheckResult, len(checks)) // buffered: a check never blocks on a returned Run
	index := make(map[string]int, len(checks))
	for i := range checks {
		c := checks[i]
		index[c.Name] = i
		go func() { done <- runCheck(runCtx, &c, rec) }()
	}

	res := &Result{Phase: Running, Checks: make([]CheckResult, len(checks))}
	for i := range checks {
		res.Checks[i] = CheckResult{Name: checks[i].Name, Phase: Running}
	}
	var err error
	pending, stop := len(checks), false
	for pending > 0 && !stop {
		select {
		case cr := <-done:
			res.Checks[index[cr.Name]] = cr
			pending--
			stop = cr.Phase != Successful
		case <-ctx.Done():
			err = fmt.Errorf("analysis: %w", context.Cause(ctx))
			stop = true
		}
	}
	// Stop the other checks: they record nothing more and return at once (a query in
	// flight is abandoned), with the counts of what they measured.
	res.Measurements = rec.close()
	cancel()
	for ; pending > 0; pending-- {
		cr := <-done
		res.Checks[index[cr.Name]] = cr
	}
	res.Phase, res.Message = summarize(res.Checks, err)
	return res, err
}

// summarize returns the phase of a run from the results of its checks: Failed if one
// failed, else Inconclusive if one is, else Successful if all are (and the run was not
// cut short by ctErr).
func summarize(checks []CheckResult, ctxErr error) (Phase, string) {
	for _, p := range []Phase{Failed, Inconclusive} {
		for _, c := range checks {
			if c.Phase == p {
				return p, fmt.Sprintf("check %q %s: %s", c.Name, p, c.Message)
			}
		}
	}
	if ctxErr != nil {
		return Inconclusive, fmt.Sprintf("stopped before every check ended: %v", ctxErr)
	}
	n := 0
	for _, c := range checks {
		n += c.Successful + c.Failed + c.Inconclusive
	}
	return Successful, fmt.Sprintf("%d checks %s after %d measurements", len(checks), Successful, n)
}

// recorder keeps the measurements of a run and hands each to the callbacks, one at a
// time, until the run returns.
type recorder struct {
	cfg    *config
	mu     sync.Mutex
	ms     []Measurement
	closed bool
}

// add records m and reports whether the run still accepts measurements.
func (r *recorder) add(m Measurement) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.ms = append(r.ms, m)
	if r.cfg.onMeasurement != nil {
		r.cfg.onMeasurement(m)
	}
	return true
}

// event reports e to the observer unless the run has returned.
func (r *recorder) event(e observe.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		e.Stage = Stage
		r.cfg.observer.Observe(e)
	}
}

// close stops recording and returns the measurements.
func (r *recorder) close() []Measurement {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return r.ms
}

// runCheck takes the check's measurements until it ends or ctx is cancelled.
func runCheck(ctx context.Context, c *Check, rec *recorder) CheckResult {
	res := CheckResult{Name: c.Name, Phase: Running}
	rec.event(observe.Event{Step: c.Name, Phase: observe.Started, Time: time.Now(),
		Message: fmt.Sprintf("%d measurements of %s, success if %s", c.count(), c.Query, c.Success)})
	stopped := func() CheckResult {
		res.Message = fmt.Sprintf("stopped after %d of %d measurements", res.Successful+res.Failed+res.Inconclusive, c.count())
		return res
	}
	if !sleep(ctx, c.InitialDelay) {
		return stopped()
	}
	next := time.Now()
	for i := range c.count() {
		if i > 0 {
			// Keep to the schedule; after a query slower than the interval, measure at once.
			if next = next.Add(c.Interval); next.Before(time.Now()) {
				next = time.Now()
			}
			if !sleep(ctx, time.Until(next)) {
				return stopped()
			}
		}
		m := measure(ctx, c)
		if ctx.Err() != nil || !rec.add(m) {
			return stopped() // the run ended meanwhile: the query was cut short, not answered
		}
		rec.cfg.log(m)
		rec.event(observe.Event{Step: c.Name, Phase: observe.Progress, Time: m.Time,
			Done: int64(i + 1), Total: int64(c.count()), Message: describe(c, m)})
		switch m.Phase {
		case Successful:
			res.Successful++
		case Failed:
			res.Failed++
		case Inconclusive:
			res.Inconclusive++
		}
		if res.Failed > c.FailureLimit {
			res.Phase = Failed
			res.Message = fmt.Sprintf("%d failed measurements exceed the failure limit %d; last %s", res.Failed, c.FailureLimit, describe(c, m))
			break
		}
		if res.Inconclusive > c.InconclusiveLimit {
			res.Phase = Inconclusive
			res.Message = fmt.Sprintf("%d inconclusive measurements exceed the inconclusive limit %d; last %s", res.Inconclusive, c.InconclusiveLimit, describe(c, m))
			break
		}
	}
	if res.Phase == Running && res.Successful == 0 {
		// Limits that tolerate every measurement do not make missing data a success.
		res.Phase = Inconclusive
		res.Message = fmt.Sprintf("no successful measurement in %d (%d failed, %d inconclusive)", c.count(), res.Failed, res.Inconclusive)
	}
	if res.Phase == Running {
		res.Phase = Successful
		res.Message = fmt.Sprintf("%d of %d measurements successful (%d failed, %d inconclusive, within limits %d and %d)",
			res.Successful, c.count(), res.Failed, res.Inconclusive, c.FailureLimit, c.InconclusiveLimit)
	}
	e := observe.Event{Step: c.Name, Phase: observe.Finished, Time: time.Now(), Message: res.Message}
	if res.Phase != Successful {
		e.Phase, e.Err = observe.Failed, fmt.Errorf("check %q %s: %s", c.Name, res.Phase, res.Message)
	}
	rec.event(e)
	return res
}

// measure asks the provider once, within the check's timeout, and judges the answer.
// A provider that ignores its context is abandoned at the timeout.
func measure(ctx context.Context, c *Check) Measurement {
	type answer struct {
		v   float64
		err error
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	ch := make(chan answer, 1)
	go func() {
		v, err := c.Provider.Query(ctx, c.Query)
		ch <- answer{v, err}
	}()
	var a answer
	select {
	case a = <-ch:
	case <-ctx.Done():
		a.err = ctx.Err()
	}
	m := Measurement{Check: c.Name, Time: time.Now(), Value: a.v}
	switch {
	case a.err != nil && ctx.Err() == context.DeadlineExceeded:
		m.Value, m.Phase = math.NaN(), Inconclusive
		m.Err = fmt.Errorf("query timed out after %v: %w", c.timeout(), a.err)
	case a.err != nil:
		m.Value, m.Phase, m.Err = math.NaN(), Inconclusive, a.err
	case math.IsNaN(a.v) || math.IsInf(a.v, 0):
		m.Phase, m.Err = Inconclusive, fmt.Errorf("%w: %v", ErrNotFinite, a.v)
	case c.Failure != nil && c.Failure.Met(a.v):
		m.Phase = Failed
	case c.Success.Met(a.v):
		m.Phase = Successful
	case c.Failure != nil:
		m.Phase = Inconclusive // neither condition met
	default:
		m.Phase = Failed
	}
	return m
}

// describe returns "0.97 Failed (want result >= 0.99)" or "Inconclusive: no data".
func describe(c *Check, m Measurement) string {
	if m.Err != nil {
		return fmt.Sprintf("%s: %v", m.Phase, m.Err)
	}
	s := strconv.FormatFloat(m.Value, 'g', 6, 64) + " " + string(m.Phase) + " (success if " + c.Success.String()
	if c.Failure != nil {
		s += ", failure if " + c.Failure.String()
	}
	return s + ")"
}

// log writes m to the logger.
func (cfg *config) log(m Measurement) {
	if m.Phase == Inconclusive {
		cfg.logger.Warn("inconclusive measurement", "check", m.Check, "value", m.Value, "error", m.Err)
		return
	}
	cfg.logger.Debug("measurement", "check", m.Check, "value", m.Value, "phase", string(m.Phase))
}

// sleep waits for d or until ctx ends, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
