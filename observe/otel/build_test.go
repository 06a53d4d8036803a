package otel_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"

	"github.com/shipkit/shipkit/build"
	"github.com/shipkit/shipkit/build/publish"
	"github.com/shipkit/shipkit/internal/testbed/registry"
	shipotel "github.com/shipkit/shipkit/observe/otel"
)

// TestBuildTrace builds build/testdata/app for two platforms and pushes it to an
// in-process registry with the Observer on both, under a caller's span, then builds
// a package that does not compile: the trace has a build stage span with a span per
// platform build and one for the push (with progress events), and the failed
// build's span carries the compiler's error.
func TestBuildTrace(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	require.NoError(t, os.CopyFS(src, os.DirFS(filepath.Join("..", "..", "build", "testdata", "app"))))
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	t.Cleanup(stop)
	repo, err := name.NewRepository(host + "/team/app")
	require.NoError(t, err)

	tp, rec := newTracing(t)
	ctx, root := tp.Tracer("test").Start(ctx, "release")
	obs := shipotel.New(ctx, tp)
	b, err := build.NewGo(build.WithPlatforms("linux/amd64", "linux/arm64"), build.WithObserver(obs))
	require.NoError(t, err)
	idx, err := b.Build(ctx, build.Source{Dir: src, Path: "."})
	require.NoError(t, err)
	d, err := publish.Index(ctx, idx, repo, publish.WithObserver(obs))
	require.NoError(t, err)
	_, err = b.Build(ctx, build.Source{Dir: src, Path: "./broken"})
	require.Error(t, err)
	obs.Close()
	root.End()

	spans := rec.Ended()
	paths := tree(spans)
	for _, want := range []string{
		"release [Unset]",
		"release > build [Error]",
		"release > build > go build linux/amd64 [Ok]",
		"release > build > go build linux/arm64 [Ok]",
		"release > build > push " + repo.String() + " [Ok]",
	} {
		assert.Contains(t, paths, want)
	}
	var failed []string
	for _, s := range spans {
		if s.Status().Code == codes.Error && strings.HasPrefix(s.Name(), "go build ") {
			failed = append(failed, s.Name())
			assert.NotEmpty(t, s.Status().Description, "the compiler's error")
			require.NotEmpty(t, s.Events())
			assert.Equal(t, "exception", s.Events()[0].Name)
		}
	}
	assert.NotEmpty(t, failed, "the broken package's build span failed: %v", paths)
	for _, p := range paths {
		assert.True(t, strings.HasPrefix(p, "release"), "every span is under the caller's: %s", p)
	}

	push := find(t, spans, "push "+repo.String())
	assert.NotEmpty(t, push.Events(), "push progress became span events")
	assert.Contains(t, push.Attributes(), shipotel.AttrMessage.String(d.String()))
	stage := find(t, spans, "build")
	assert.False(t, stage.EndTime().Before(push.EndTime()), "the stage span covers its steps")
	assert.False(t, stage.StartTime().After(push.StartTime()))
}
