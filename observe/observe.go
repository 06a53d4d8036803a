// Package observe carries what the stages of shipkit report while they run, and
// the metrics a progressive rollout is judged by.
//
// Every stage reports its progress as [Event] values to an [Observer] the caller
// passes in, so a CLI can draw progress bars and a Terraform provider can stay quiet.
// A rollout asks a metrics [Provider] (Prometheus, or any backend) for the numbers
// its analysis compares with success and failure conditions.
package observe

import (
	"context"
	"errors"
	"time"
)

// Event is one thing a stage reports: a step starting or ending, or progress within it.
type Event struct {
	// Stage is the pipeline stage reporting: "build", "scan", "sign", "deploy", "rollout".
	Stage string
	// Step names the work within the stage, e.g. "go build linux/arm64" or "push".
	Step string
	// Phase says where the step is.
	Phase Phase
	// Message is a short human-readable line; it never holds secrets.
	Message string
	// Done and Total count progress in the step's own unit (bytes, objects); Total is
	// 0 when unknown.
	Done, Total int64
	// Err is set when Phase is Failed.
	Err error
	// Time is when the event happened.
	Time time.Time
}

// Phase says where a step is.
type Phase int

// The phases of a step.
const (
	Started Phase = iota
	Progress
	Finished
	Failed
)

// String returns the phase's name.
func (p Phase) String() string {
	switch p {
	case Started:
		return "started"
	case Progress:
		return "progress"
	case Finished:
		return "finished"
	case Failed:
		return "failed"
	}
	return "unknown"
}

// Observer receives the events of the stages. Implementations must be safe for
// concurrent use: stages report from several goroutines (one per platform, say).
type Observer interface {
	Observe(Event)
}

// ObserverFunc adapts a function to an [Observer].
type ObserverFunc func(Event)

// Observe calls f(e).
func (f ObserverFunc) Observe(e Event) { f(e) }

// Discard is an [Observer] that drops every event. It is what a stage uses when the
// caller passes none.
type Discard struct{}

// Observe drops e.
func (Discard) Observe(Event) {}

// Provider answers a metrics query with one number, the way a rollout analysis
// compares it with its conditions. The query language is the provider's own
// (PromQL for Prometheus).
//
// A query that matches nothing returns an error wrapping [ErrNoData]; a query that
// matches more than one number is an error too. Query may return NaN or ±Inf as the
// backend computed them (0/0 when a workload served no request); an analysis treats
// those, like every error, as inconclusive, never as success.
type Provider interface {
	Query(ctx context.Context, query string) (float64, error)
}

// ErrNoData is wrapped by the errors of a [Provider] whose query matched no data
// (an empty Prometheus vector, a JSON path that leads to null).
var ErrNoData = errors.New("no data")

// ProviderFunc adapts a function to a [Provider].
type ProviderFunc func(ctx context.Context, query string) (float64, error)

// Query calls f(ctx, query).
func (f ProviderFunc) Query(ctx context.Context, query string) (float64, error) { return f(ctx, query) }
