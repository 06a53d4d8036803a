// Package otel turns the events shipkit's stages report into OpenTelemetry spans:
// an [observe.Observer] for callers who trace their pipelines.
//
// Each stage (build, scan, sign, deploy, rollout) becomes a span, and each of its
// steps a child span: a step's Started event starts its span, Finished ends it with
// status Ok, Failed records the error and ends it with status Error, and Progress
// adds a span event. The stage spans are children of the span in the context given
// to [New], so a pipeline's stages appear under the caller's own span.
//
// The stages know nothing of OpenTelemetry: only programs that import this package
// link it.
package otel

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/shipkit/shipkit/observe"
)

// ScopeName is the instrumentation scope of the tracer the Observer asks for.
const ScopeName = "github.com/shipkit/shipkit/observe/otel"

// Attribute keys the Observer sets.
const (
	// AttrStage is the stage of a stage or step span ("build", "sign", …).
	AttrStage = attribute.Key("shipkit.stage")
	// AttrStep is the step of a step span ("go build linux/arm64").
	AttrStep = attribute.Key("shipkit.step")
	// AttrMessage is the message of the event that ended a step.
	AttrMessage = attribute.Key("shipkit.message")
	// AttrDone and AttrTotal are the counts of a progress span event.
	AttrDone  = attribute.Key("shipkit.progress.done")
	AttrTotal = attribute.Key("shipkit.progress.total")
)

// Observer is an [observe.Observer] that records stage events as spans. Use one
// Observer for one run of a pipeline and [Observer.Close] it when the run ends:
// Close ends what is still open. It is safe for concurrent use.
type Observer struct {
	tracer trace.Tracer
	parent trace.SpanContext
	attrs  []attribute.KeyValue
	now    func() time.Time

	mu     sync.Mutex
	stages map[string]*stageSpan
	steps  map[stepKey][]trace.Span // open spans of a step, oldest first
	closed bool
}

type stepKey struct{ stage, step string }

// stageSpan is the open span of a stage.
type stageSpan struct {
	span trace.Span
	ctx  context.Context // carries span, to start the step spans under it
	// last is the time of the stage's latest event: the stage span ends then.
	last time.Time
	// failed names the first step that failed, with its error; failures counts them.
	failed   string
	failures int
	// err is the stage's own failure (a Failed event without a step).
	err error
}

// Option configures an [Observer].
type Option func(*Observer)

// WithAttributes adds attributes to every span, for example the pipeline's run id.
func WithAttributes(attrs ...attribute.KeyValue) Option {
	return func(o *Observer) { o.attrs = append(o.attrs, attrs...) }
}

// New returns an Observer that starts spans with tp's tracer (nil: a tracer that
// records nothing; pass otel.GetTracerProvider() for the global one). The span in
// ctx, if any, is the parent of the stage spans; ctx is not kept, so its end does
// not end the spans.
func New(ctx context.Context, tp trace.TracerProvider, opts ...Option) *Observer {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	o := &Observer{
		tracer: tp.Tracer(ScopeName),
		parent: trace.SpanContextFromContext(ctx),
		now:    time.Now,
		stages: map[string]*stageSpan{},
		steps:  map[stepKey][]trace.Span{},
	}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

// Observe records e. An event whose Step is empty is about its stage itself:
// Started starts the stage span, Finished and Failed end it. A step event starts
// its stage's span first if needed. Steps of the same stage and name that overlap
// are matched first started, first ended. Events after Close are dropped.
func (o *Observer) Observe(e observe.Event) {
	t := e.Time
	if t.IsZero() {
		t = o.now()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed || (e.Stage == "" && e.Step == "") {
		return
	}
	if e.Step == "" {
		o.observeStage(e, t)
		return
	}
	st := o.stage(e.Stage, t)
	key := stepKey{e.Stage, e.Step}
	switch e.Phase {
	case observe.Started:
		o.steps[key] = append(o.steps[key], o.startStep(st, e, t))
	case observe.Progress:
		span := o.openStep(st, key, e, t)
		attrs := []attribute.KeyValue{AttrDone.Int64(e.Done), AttrTotal.Int64(e.Total)}
		if e.Message != "" {
			attrs = append(attrs, AttrMessage.String(e.Message))
		}
		span.AddEvent("progress", trace.WithTimestamp(t), trace.WithAttributes(attrs...))
	case observe.Finished, observe.Failed:
		span := o.openStep(st, key, e, t)
		o.steps[key] = o.steps[key][1:]
		if len(o.steps[key]) == 0 {
			delete(o.steps, key)
		}
		if e.Message != "" {
			span.SetAttributes(AttrMessage.String(e.Message))
		}
		if e.Phase == observe.Failed {
			err := eventError(e)
			span.RecordError(err, trace.WithTimestamp(t))
			span.SetStatus(codes.Error, err.Error())
			if st != nil {
				st.failures++
				if st.failed == "" {
					st.failed = e.Step + ": " + err.Error()
				}
			}
		} else {
			span.SetStatus(codes.Ok, "")
		}
		span.End(trace.WithTimestamp(t))
	}
}

// observeStage handles an event about a stage itself.
func (o *Observer) observeStage(e observe.Event, t time.Time) {
	st := o.stage(e.Stage, t)
	switch e.Phase {
	case observe.Progress:
		st.span.AddEvent("progress", trace.WithTimestamp(t), trace.WithAttributes(AttrDone.Int64(e.Done), AttrTotal.Int64(e.Total)))
	case observe.Finished, observe.Failed:
		if e.Message != "" {
			st.span.SetAttributes(AttrMessage.String(e.Message))
		}
		if e.Phase == observe.Failed {
			st.err = eventError(e)
			st.span.RecordError(st.err, trace.WithTimestamp(t))
		}
		o.endStage(e.Stage, st, t)
	}
}

// stage returns the open span of stage, started at t if there is none; nil for an
// event without a stage (its steps are children of the parent).
func (o *Observer) stage(stage string, t time.Time) *stageSpan {
	if stage == "" {
		return nil
	}
	if st, ok := o.stages[stage]; ok {
		if t.After(st.last) {
			st.last = t
		}
		return st
	}
	ctx := trace.ContextWithSpanContext(context.Background(), o.parent)
	ctx, span := o.tracer.Start(ctx, stage, trace.WithTimestamp(t), trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(append([]attribute.KeyValue{AttrStage.String(stage)}, o.attrs...)...))
	st := &stageSpan{span: span, ctx: ctx, last: t}
	o.stages[stage] = st
	return st
}

func (o *Observer) startStep(st *stageSpan, e observe.Event, t time.Time) trace.Span {
	ctx := trace.ContextWithSpanContext(context.Background(), o.parent)
	if st != nil {
		ctx = st.ctx
	}
	attrs := append([]attribute.KeyValue{AttrStage.String(e.Stage), AttrStep.String(e.Step)}, o.attrs...)
	_, span := o.tracer.Start(ctx, e.Step, trace.WithTimestamp(t), trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...))
	return span
}

// openStep returns the oldest open span of key, starting one at t for a step whose
// Started event was not seen.
func (o *Observer) openStep(st *stageSpan, key stepKey, e observe.Event, t time.Time) trace.Span {
	if spans := o.steps[key]; len(spans) > 0 {
		return spans[0]
	}
	span := o.startStep(st, e, t)
	o.steps[key] = []trace.Span{span}
	return span
}

// endStage ends a stage's span at t, and its steps still open (they did not
// finish: status Error).
func (o *Observer) endStage(stage string, st *stageSpan, t time.Time) {
	for _, key := range o.openSteps() {
		if key.stage != stage {
			continue
		}
		for _, span := range o.steps[key] {
			span.SetStatus(codes.Error, "step did not finish")
			span.End(trace.WithTimestamp(t))
			st.failures++
			if st.failed == "" {
				st.failed = key.step + ": did not finish"
			}
		}
		delete(o.steps, key)
	}
	switch {
	case st.err != nil:
		st.span.SetStatus(codes.Error, st.err.Error())
	case st.failures == 1:
		st.span.SetStatus(codes.Error, st.failed)
	case st.failures > 1:
		st.span.SetStatus(codes.Error, fmt.Sprintf("%d steps failed, first %s", st.failures, st.failed))
	default:
		st.span.SetStatus(codes.Ok, "")
	}
	st.span.End(trace.WithTimestamp(t))
	delete(o.stages, stage)
}

// Close ends every span still open and drops the events that come after. A step
// that started and never finished ends now with status Error ("step did not
// finish"), and so does its stage; a stage whose steps all ended ends at the time
// of its last event. Close does not flush the tracer provider: call its own
// Shutdown or ForceFlush for that.
func (o *Observer) Close() {
	now := o.now()
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return
	}
	o.closed = true
	// Steps without a stage.
	for _, key := range o.openSteps() {
		if key.stage != "" && o.stages[key.stage] != nil {
			continue
		}
		for _, span := range o.steps[key] {
			span.SetStatus(codes.Error, "step did not finish")
			span.End(trace.WithTimestamp(now))
		}
		delete(o.steps, key)
	}
	for _, stage := range slices.Sorted(maps.Keys(o.stages)) {
		st := o.stages[stage]
		end := st.last
		for key := range o.steps {
			if key.stage == stage {
				end = now
			}
		}
		o.endStage(stage, st, end)
	}
}

// openSteps returns the keys of the open steps, sorted, so that spans end in the
// same order every time.
func (o *Observer) openSteps() []stepKey {
	return slices.SortedFunc(maps.Keys(o.steps), func(a, b stepKey) int {
		if c := strings.Compare(a.stage, b.stage); c != 0 {
			return c
		}
		return strings.Compare(a.step, b.step)
	})
}

func eventError(e observe.Event) error {
	if e.Err != nil {
		return e.Err
	}
	if e.Message != "" {
		return errors.New(e.Message)
	}
	return errors.New("failed")
}
