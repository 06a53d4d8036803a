package otel_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/shipkit/shipkit/observe"
	shipotel "github.com/shipkit/shipkit/observe/otel"
)

// newTracing returns a tracer provider that records ended spans.
func newTracing(t *testing.T) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, rec
}

// tree renders the ended spans as "parent > child" paths with their status, so
// that tests compare the shape of a trace.
func tree(spans []sdktrace.ReadOnlySpan) []string {
	byID := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID().String()] = s
	}
	var out []string
	for _, s := range spans {
		path := s.Name()
		for p := s.Parent(); p.IsValid(); {
			parent, ok := byID[p.SpanID().String()]
			if !ok {
				path = "(" + p.SpanID().String() + ") > " + path
				break
			}
			path = parent.Name() + " > " + path
			p = parent.Parent()
		}
		out = append(out, path+" ["+s.Status().Code.String()+"]")
	}
	return out
}

func find(t *testing.T, spans []sdktrace.ReadOnlySpan, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	for _, s := range spans {
		if s.Name() == name {
			return s
		}
	}
	require.Failf(t, "no span", "no span named %q", name)
	return nil
}

func TestSpans(t *testing.T) {
	tp, rec := newTracing(t)
	ctx, root := tp.Tracer("test").Start(context.Background(), "pipeline")
	obs := shipotel.New(ctx, tp, shipotel.WithAttributes(attribute.String("run", "42")))
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	for _, e := range []observe.Event{
		{Stage: "build", Step: "go build linux/amd64", Phase: observe.Started, Time: at(0)},
		{Stage: "build", Step: "go build linux/arm64", Phase: observe.Started, Time: at(0)},
		{Stage: "build", Step: "go build linux/amd64", Phase: observe.Finished, Time: at(3)},
		{Stage: "build", Step: "go build linux/arm64", Phase: observe.Failed, Err: errors.New("exit status 1"), Time: at(4)},
		{Stage: "build", Step: "push r/app", Phase: observe.Started, Time: at(5)},
		{Stage: "build", Step: "push r/app", Phase: observe.Progress, Done: 10, Total: 20, Time: at(6)},
		{Stage: "build", Step: "push r/app", Phase: observe.Progress, Done: 20, Total: 20, Time: at(7)},
		{Stage: "build", Step: "push r/app", Phase: observe.Finished, Message: "r/app@sha256:abc", Time: at(8)},
		{Stage: "sign", Step: "verify r/app@sha256:abc", Phase: observe.Started, Time: at(9)},
		{Stage: "sign", Step: "verify r/app@sha256:abc", Phase: observe.Finished, Time: at(10)},
	} {
		obs.Observe(e)
	}
	assert.Len(t, rec.Ended(), 4, "steps end as they finish; stages at Close")
	obs.Close()
	root.End()

	spans := rec.Ended()
	assert.ElementsMatch(t, []string{
		"pipeline [Unset]",
		"pipeline > build [Error]",
		"pipeline > build > go build linux/amd64 [Ok]",
		"pipeline > build > go build linux/arm64 [Error]",
		"pipeline > build > push r/app [Ok]",
		"pipeline > sign [Ok]",
		"pipeline > sign > verify r/app@sha256:abc [Ok]",
	}, tree(spans))

	build := find(t, spans, "build")
	assert.Equal(t, at(0), build.StartTime())
	assert.Equal(t, at(8), build.EndTime(), "a stage ends with its last event")
	assert.Equal(t, "go build linux/arm64: exit status 1", build.Status().Description)
	assert.Contains(t, build.Attributes(), attribute.String("run", "42"))
	assert.Contains(t, build.Attributes(), shipotel.AttrStage.String("build"))

	arm := find(t, spans, "go build linux/arm64")
	assert.Equal(t, "exit status 1", arm.Status().Description)
	require.Len(t, arm.Events(), 1)
	assert.Equal(t, "exception", arm.Events()[0].Name)
	assert.Equal(t, at(4), arm.EndTime())
	assert.Contains(t, arm.Attributes(), shipotel.AttrStep.String("go build linux/arm64"))

	push := find(t, spans, "push r/app")
	require.Len(t, push.Events(), 2)
	assert.Equal(t, "progress", push.Events()[1].Name)
	assert.Equal(t, at(7), push.Events()[1].Time)
	assert.Contains(t, push.Events()[1].Attributes, shipotel.AttrDone.Int64(20))
	assert.Contains(t, push.Attributes(), shipotel.AttrMessage.String("r/app@sha256:abc"))
	assert.Equal(t, root.SpanContext().TraceID(), push.SpanContext().TraceID())
}

func TestCloseEndsUnfinishedSteps(t *testing.T) {
	tp, rec := newTracing(t)
	obs := shipotel.New(context.Background(), tp)
	obs.Observe(observe.Event{Stage: "deploy", Step: "apply", Phase: observe.Started})
	obs.Observe(observe.Event{Stage: "deploy", Step: "wait", Phase: observe.Started})
	obs.Observe(observe.Event{Stage: "deploy", Step: "apply", Phase: observe.Finished})
	obs.Observe(observe.Event{Step: "no stage", Phase: observe.Started})
	obs.Close()
	obs.Observe(observe.Event{Stage: "deploy", Step: "late", Phase: observe.Started}) // dropped
	obs.Close()                                                                       // idempotent

	spans := rec.Ended()
	assert.ElementsMatch(t, []string{
		"deploy [Error]",
		"deploy > apply [Ok]",
		"deploy > wait [Error]",
		"no stage [Error]",
	}, tree(spans))
	assert.Equal(t, "wait: did not finish", find(t, spans, "deploy").Status().Description)
	assert.Equal(t, "step did not finish", find(t, spans, "wait").Status().Description)
}

func TestStageEventsAndUnmatchedSteps(t *testing.T) {
	tp, rec := newTracing(t)
	obs := shipotel.New(context.Background(), tp)
	obs.Observe(observe.Event{Stage: "rollout", Phase: observe.Started})
	obs.Observe(observe.Event{Stage: "rollout", Step: "set weight 10", Phase: observe.Finished}) // never started
	obs.Observe(observe.Event{Stage: "rollout", Step: "analysis", Phase: observe.Progress, Done: 1, Total: 3})
	obs.Observe(observe.Event{Stage: "rollout", Phase: observe.Failed, Message: "analysis failed: error rate 7%"})
	obs.Observe(observe.Event{Stage: "rollout", Step: "abort", Phase: observe.Started}) // a new stage span
	obs.Observe(observe.Event{Stage: "rollout", Step: "abort", Phase: observe.Finished})
	obs.Close()

	assert.ElementsMatch(t, []string{
		"rollout [Error]",
		"rollout [Ok]",
		"rollout > abort [Ok]",
		"rollout > analysis [Error]",
		"rollout > set weight 10 [Ok]",
	}, tree(rec.Ended()))
	for _, s := range rec.Ended() {
		if s.Name() == "rollout" && s.Status().Code == codes.Error {
			assert.Equal(t, "analysis failed: error rate 7%", s.Status().Description)
		}
	}
}

// TestOverlappingSameSteps checks that steps of the same name are matched first
// started, first ended, and that concurrent observers do not race (go test -race).
func TestOverlappingSameSteps(t *testing.T) {
	tp, rec := newTracing(t)
	obs := shipotel.New(context.Background(), tp)
	t0 := time.Now()
	obs.Observe(observe.Event{Stage: "sign", Step: "attest", Phase: observe.Started, Time: t0})
	obs.Observe(observe.Event{Stage: "sign", Step: "attest", Phase: observe.Started, Time: t0.Add(time.Second)})
	obs.Observe(observe.Event{Stage: "sign", Step: "attest", Phase: observe.Finished, Time: t0.Add(2 * time.Second)})
	obs.Observe(observe.Event{Stage: "sign", Step: "attest", Phase: observe.Failed, Err: errors.New("boom"), Time: t0.Add(3 * time.Second)})

	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			step := fmt.Sprintf("verify %d", i)
			obs.Observe(observe.Event{Stage: "sign", Step: step, Phase: observe.Started})
			obs.Observe(observe.Event{Stage: "sign", Step: step, Phase: observe.Progress, Done: 1})
			obs.Observe(observe.Event{Stage: "sign", Step: step, Phase: observe.Finished})
		}()
	}
	wg.Wait()
	obs.Close()

	var attests []sdktrace.ReadOnlySpan
	verifies := 0
	for _, s := range rec.Ended() {
		switch {
		case s.Name() == "attest":
			attests = append(attests, s)
		case strings.HasPrefix(s.Name(), "verify "):
			verifies++
			assert.Equal(t, codes.Ok, s.Status().Code)
		}
	}
	assert.Equal(t, 50, verifies)
	require.Len(t, attests, 2)
	assert.Equal(t, t0, attests[0].StartTime())
	assert.Equal(t, codes.Ok, attests[0].Status().Code, "the first started is the first ended")
	assert.Equal(t, codes.Error, attests[1].Status().Code)
}

func TestNilTracerProvider(t *testing.T) {
	obs := shipotel.New(context.Background(), nil)
	obs.Observe(observe.Event{Stage: "build", Step: "x", Phase: observe.Started})
	obs.Observe(observe.Event{Stage: "build", Step: "x", Phase: observe.Finished})
	obs.Close()
}
