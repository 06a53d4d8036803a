// Package analysis judges a release by its metrics, the way Argo Rollouts' analysis
// runs do: each [Check] asks an [observe.Provider] a query every Interval, Count
// times, compares each answer with its success and failure conditions, and tolerates
// a number of failed and inconclusive measurements. [Run] runs the checks together and
// returns a [Result] holding every measurement, so a caller can print, plot or record
// the numbers behind the decision.
//
// Missing data is never success: a provider error, a query that times out, no data,
// NaN or ±Inf make a measurement Inconclusive. A run is Successful only when every
// check took its count of measurements within its limits.
package analysis

import (
	"errors"
	"fmt"
	"time"

	"github.com/shipkit/shipkit/observe"
)

// Phase is the state of a measurement, a check or a whole run.
type Phase string

// The phases. A measurement is Successful, Failed or Inconclusive; a check or a run
// is Running until it ends in one of those.
const (
	Running      Phase = "Running"
	Successful   Phase = "Successful"
	Failed       Phase = "Failed"
	Inconclusive Phase = "Inconclusive"
)

// DefaultTimeout bounds one query when a check sets neither Timeout nor Interval.
const DefaultTimeout = 30 * time.Second

// Check is one metric a release is judged by: a query asked Count times, Interval apart.
type Check struct {
	// Name identifies the check in measurements and messages; names are unique in a run.
	Name string
	// Provider answers Query.
	Provider observe.Provider
	// Query is written in the provider's query language (PromQL for Prometheus).
	Query string
	// Interval is the time between two measurements; it is required when Count > 1.
	Interval time.Duration
	// Count is the number of measurements to take; 0 means 1.
	Count int
	// InitialDelay is waited before the first measurement, e.g. for a canary to receive
	// traffic; the first measurement is taken at once when it is 0.
	InitialDelay time.Duration
	// Timeout bounds one query; a query that takes longer is Inconclusive. 0 means
	// Interval, at most [DefaultTimeout].
	Timeout time.Duration
	// Success is the condition a measurement must meet to be Successful. Required.
	Success Condition
	// Failure, when set, is the condition that makes a measurement Failed; a
	// measurement that meets neither condition is then Inconclusive. When Failure is
	// nil, a measurement that does not meet Success is Failed.
	Failure *Condition
	// FailureLimit is the number of Failed measurements tolerated: one more fails the
	// check (Argo's failureLimit). 0 fails the check on the first failed measurement.
	FailureLimit int
	// InconclusiveLimit is the number of Inconclusive measurements tolerated: one more
	// makes the check Inconclusive. A check that took its count without one Successful
	// measurement is Inconclusive whatever its limits.
	InconclusiveLimit int
}

// Measurement is one answer of a check's provider and how it was judged.
type Measurement struct {
	// Check is the name of the check that took the measurement.
	Check string
	// Time is when the answer arrived (or the query gave up).
	Time time.Time
	// Value is the provider's answer; NaN when the query failed.
	Value float64
	// Phase is Successful, Failed or Inconclusive.
	Phase Phase
	// Err says why the measurement is Inconclusive: the provider's error (wrapping
	// [observe.ErrNoData] when there was no data), [ErrNotFinite] or a timeout.
	Err error
}

// CheckResult says how one check of a run ended.
type CheckResult struct {
	// Name is the check's name.
	Name string
	// Phase is Successful, Failed or Inconclusive, or Running when the run stopped the
	// check before it ended (another check failed, or the context was cancelled).
	Phase Phase
	// Successful, Failed and Inconclusive count the check's measurements by phase.
	Successful, Failed, Inconclusive int
	// Message explains the phase in one line.
	Message string
}

// Result is the outcome of [Run].
type Result struct {
	// Phase is Successful when every check is; otherwise Failed when a check failed,
	// else Inconclusive. Never Successful on missing data.
	Phase Phase
	// Measurements holds every measurement of every check in the order they were
	// taken.
	Measurements []Measurement
	// Checks holds one result per check, in the order of the checks given to Run.
	Checks []CheckResult
	// Message explains the phase in one line, naming the check that decided it.
	Message string
}

// ErrInvalidCheck is wrapped by the errors of [Run] about checks it cannot run.
var ErrInvalidCheck = errors.New("invalid check")

// ErrNotFinite is wrapped by the Err of a measurement whose value is NaN or ±Inf,
// what Prometheus answers for a ratio of zero requests.
var ErrNotFinite = errors.New("value is not a finite number")

// count returns the number of measurements the check takes.
func (c *Check) count() int { return max(c.Count, 1) }

// timeout returns the bound of one query.
func (c *Check) timeout() time.Duration {
	switch {
	case c.Timeout > 0:
		return c.Timeout
	case c.Interval > 0:
		return min(c.Interval, DefaultTimeout)
	}
	return DefaultTimeout
}

// validate reports what makes the check impossible to run.
func (c *Check) validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("no name"))
	}
	if c.Provider == nil {
		errs = append(errs, errors.New("no provider"))
	}
	if c.Query == "" {
		errs = append(errs, errors.New("empty query"))
	}
	if c.Count < 0 {
		errs = append(errs, fmt.Errorf("count %d is negative", c.Count))
	}
	if c.Interval < 0 {
		errs = append(errs, fmt.Errorf("interval %v is negative", c.Interval))
	}
	if c.Interval <= 0 && c.Count > 1 {
		errs = append(errs, fmt.Errorf("count %d needs an interval greater than 0 between measurements", c.Count))
	}
	if c.InitialDelay < 0 {
		errs = append(errs, fmt.Errorf("initial delay %v is negative", c.InitialDelay))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %v is negative", c.Timeout))
	}
	if c.FailureLimit < 0 {
		errs = append(errs, fmt.Errorf("failure limit %d is negative", c.FailureLimit))
	}
	if c.InconclusiveLimit < 0 {
		errs = append(errs, fmt.Errorf("inconclusive limit %d is negative", c.InconclusiveLimit))
	}
	if c.Success == (Condition{}) {
		errs = append(errs, errors.New("no success condition"))
	} else if err := c.Success.validate(); err != nil {
		errs = append(errs, fmt.Errorf("success condition: %w", err))
	}
	if c.Failure != nil {
		if err := c.Failure.validate(); err != nil {
			errs = append(errs, fmt.Errorf("failure condition: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Validate reports, in one error wrapping [ErrInvalidCheck], every reason [Run] would
// refuse checks: no checks, names missing or used twice, and what each check lacks
// (provider, query, success condition) or has wrong (negative count, limit or
// duration, Count > 1 without an Interval, an unknown operator). It measures nothing,
// so a caller can check its configuration before any traffic moves.
func Validate(checks []Check) error {
	if len(checks) == 0 {
		return fmt.Errorf("analysis: no checks: %w", ErrInvalidCheck)
	}
	var errs []error
	seen := map[string]bool{}
	for i := range checks {
		c := &checks[i]
		name := c.Name
		if name == "" {
			name = fmt.Sprintf("#%d", i)
		}
		if err := c.validate(); err != nil {
			errs = append(errs, fmt.Errorf("analysis: check %q: %w: %w", name, ErrInvalidCheck, err))
		}
		if c.Name != "" && seen[c.Name] {
			errs = append(errs, fmt.Errorf("analysis: check %q: %w: name used twice", name, ErrInvalidCheck))
		}
		seen[c.Name] = true
	}
	return errors.Join(errs...)
}
