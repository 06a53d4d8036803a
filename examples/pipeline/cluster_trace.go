package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/shipkit/shipkit/observe"
	shipotel "github.com/shipkit/shipkit/observe/otel"
)

// tracerName is the instrumentation scope of the local mode's own spans (the run and
// its releases); the stages' spans are observe/otel's.
const tracerName = "github.com/shipkit/shipkit/examples/pipeline"

// tracing records the local run as OpenTelemetry spans (observe/otel) and writes
// them to a file: a span for the run, one per release under it, and under each the
// spans observe/otel makes of the stages' events.
type tracing struct {
	// path is the file the spans are written to.
	path string

	file *spanFile
	tp   *sdktrace.TracerProvider
	ctx  context.Context // carries the run's span
	run  trace.Span
	view observe.Observer
	top  *shipotel.Observer // the stages of the cluster itself

	mu  sync.Mutex
	cur *shipotel.Observer // the stages of the current release, else top
}

// startTracing starts the run's span. Spans go to path, or to trace.json in a new
// temporary directory when path is empty. view receives every event too.
func startTracing(ctx context.Context, path string, view observe.Observer) (*tracing, error) {
	if path == "" {
		dir, err := os.MkdirTemp("", "shipkit-pipeline-")
		if err != nil {
			return nil, fmt.Errorf("trace: %w", err)
		}
		path = filepath.Join(dir, "trace.json")
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	file := &spanFile{f: f, enc: json.NewEncoder(f)}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(file),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "shipkit-pipeline"))),
	)
	// The spans outlive a cancelled run: they say how it ended.
	rctx, run := tp.Tracer(tracerName).Start(context.WithoutCancel(ctx), "pipeline -cluster local")
	t := &tracing{path: path, file: file, tp: tp, ctx: rctx, run: run, view: view, top: shipotel.New(rctx, tp)}
	t.cur = t.top
	return t, nil
}

// observer returns the observer of the stages: the view, and the spans of the
// current release.
func (t *tracing) observer() observe.Observer {
	return observe.ObserverFunc(func(e observe.Event) {
		t.view.Observe(e)
		t.current().Observe(e)
	})
}

func (t *tracing) current() *shipotel.Observer {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cur
}

// release starts the span of a release; the stages' spans go under it until the
// returned function ends it.
func (t *tracing) release(name string) (end func()) {
	ctx, span := t.tp.Tracer(tracerName).Start(t.ctx, "release "+name, trace.WithAttributes(attribute.String("shipkit.release", name)))
	o := shipotel.New(ctx, t.tp)
	t.mu.Lock()
	t.cur = o
	t.mu.Unlock()
	return func() {
		o.Close()
		span.End()
		t.mu.Lock()
		t.cur = t.top
		t.mu.Unlock()
	}
}

// stageEvent starts or ends the span of a stage.
func (t *tracing) stageEvent(stage string, phase observe.Phase, err error) {
	e := observe.Event{Stage: stage, Phase: phase, Err: err, Time: time.Now()}
	if err != nil {
		e.Message = err.Error()
	}
	t.current().Observe(e)
}

// close ends the run's span, writes what is left and closes the file. It returns the
// number of spans written.
func (t *tracing) close() (int, error) {
	t.top.Close()
	t.run.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := t.tp.Shutdown(ctx) // flushes the batch, then shuts the file down
	return t.file.written(), err
}

// spanFile is an OpenTelemetry span exporter that writes each span as a line of
// JSON, in the shape of the SDK's stdout exporter (stdouttrace).
type spanFile struct {
	mu  sync.Mutex
	f   *os.File
	enc *json.Encoder
	n   int
}

// ExportSpans writes spans, one a line.
func (s *spanFile) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return errors.New("trace file closed")
	}
	for _, stub := range tracetest.SpanStubsFromReadOnlySpans(spans) {
		if err := s.enc.Encode(stub); err != nil {
			return fmt.Errorf("trace file: %w", err)
		}
		s.n++
	}
	return nil
}

// Shutdown closes the file.
func (s *spanFile) Shutdown(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

func (s *spanFile) written() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}
