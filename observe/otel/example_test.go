package otel_test

import (
	"context"
	"fmt"
	"strings"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/shipkit/shipkit/observe"
	shipotel "github.com/shipkit/shipkit/observe/otel"
)

// Trace a pipeline's stages under the caller's span: pass the Observer to every
// stage (build.WithObserver, cosign.WithObserver, …) and Close it when the run ends.
func Example() {
	rec := tracetest.NewSpanRecorder() // an exporter in a real program
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()

	ctx, run := tp.Tracer("ci").Start(context.Background(), "release")
	obs := shipotel.New(ctx, tp)
	// What the stages report (here by hand):
	obs.Observe(observe.Event{Stage: "build", Step: "go build linux/amd64", Phase: observe.Started})
	obs.Observe(observe.Event{Stage: "build", Step: "go build linux/amd64", Phase: observe.Finished})
	obs.Observe(observe.Event{Stage: "sign", Step: "verify registry.example.com/app@sha256:…", Phase: observe.Started})
	obs.Observe(observe.Event{Stage: "sign", Step: "verify registry.example.com/app@sha256:…", Phase: observe.Failed,
		Message: "denied: no signature"})
	obs.Close()
	run.End()

	for _, s := range rec.Ended() {
		fmt.Println(strings.TrimSpace(fmt.Sprintf("%s: %s %s", s.Name(), s.Status().Code, s.Status().Description)))
	}
	// Output:
	// go build linux/amd64: Ok
	// verify registry.example.com/app@sha256:…: Error denied: no signature
	// build: Ok
	// sign: Error verify registry.example.com/app@sha256:…: denied: no signature
	// release: Unset
}
