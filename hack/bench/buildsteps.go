package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/shipkit/shipkit/build"
	"github.com/shipkit/shipkit/build/publish"
	"github.com/shipkit/shipkit/observe"
)

// buildSteps times, with Go's build cache warm and no binary cache, the parts of
// shipkit's build + push one at a time (the go command alone, as shipkit runs it;
// the base's resolution; the whole Build; the push) and ko's whole run, rounds
// alternating, and prints the medians: where the time of the "new cache" row goes.
func buildSteps(ctx context.Context, cfg buildConfig, out io.Writer) error {
	bed, err := newBuildBed(ctx, cfg, "shipkit-bench-steps-")
	if err != nil {
		return err
	}
	defer bed.close()
	src, reg, base, tmp := bed.src, bed.reg, bed.base, bed.tmp
	platforms := []string{"linux/amd64", "linux/arm64"}
	env := func(p string) []string {
		goos, arch, _ := strings.Cut(p, "/")
		return append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+arch, "GOFLAGS=", "GOEXPERIMENT=",
			"GOAMD64=v1", "GOARM64=v8.0", "GOARM=7", "GO386=sse2")
	}
	gocmd := func(p string, args ...string) error {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir, cmd.Env = src, env(p)
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, b)
		}
		return nil
	}
	// goBuild links into a new directory each time, as shipkit (without its binary
	// cache) and ko do: go build relinks unless the target is there and up to date.
	goBuild := func(p string) error {
		out, err := os.MkdirTemp(tmp, "bin-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(out)
		return gocmd(p, "build", "-trimpath", "-o", filepath.Join(out, "app"), ".")
	}
	var mu sync.Mutex
	var stepTimes map[string]time.Time
	var stepDur map[string]time.Duration
	obs := observe.ObserverFunc(func(e observe.Event) {
		mu.Lock()
		defer mu.Unlock()
		switch e.Phase {
		case observe.Started:
			stepTimes[e.Step] = e.Time
		case observe.Finished:
			stepDur[e.Step] = e.Time.Sub(stepTimes[e.Step])
		}
	})
	n := 0
	var built v1.ImageIndex
	steps := []struct {
		name string
		run  func() error
	}{
		{"go list (shipkit's, first platform)", func() error {
			return gocmd(platforms[0], "list", "-f", "{{.Name}}\t{{.ImportPath}}", ".")
		}},
		{"base: resolve index + manifests", func() error {
			_, err := build.RemoteBase(base).Load(ctx)
			return err
		}},
		{"go build amd64 alone", func() error { return goBuild(platforms[0]) }},
		{"go build arm64 alone", func() error { return goBuild(platforms[1]) }},
		{"go build amd64 + arm64 at once", func() error {
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, p := range platforms {
				wg.Go(func() { errs[i] = goBuild(p) })
			}
			wg.Wait()
			return errors.Join(errs...)
		}},
		{"shipkit Build (no push)", func() error {
			n++
			b, err := build.NewGo(build.WithPlatforms(platforms...), build.WithBase(build.RemoteBase(base)), build.WithObserver(obs),
				build.WithBinaryCache(filepath.Join(tmp, fmt.Sprintf("bincache-%d", n))))
			if err != nil {
				return err
			}
			mu.Lock()
			stepTimes, stepDur = map[string]time.Time{}, map[string]time.Duration{}
			mu.Unlock()
			idx, err := b.Build(ctx, build.Source{Dir: src})
			if err != nil {
				return err
			}
			if _, err := idx.Digest(); err != nil {
				return err
			}
			built = idx
			return nil
		}},
		{"shipkit push (publish.Index)", func() error {
			n++
			r, err := name.NewRepository(fmt.Sprintf("%s/steps-%d/shipkit", reg.host, n))
			if err != nil {
				return err
			}
			_, err = publish.Index(ctx, built, r)
			return err
		}},
		{"ko build (build + push)", func() error {
			n++
			cmd := exec.CommandContext(ctx, cfg.ko, "build", "--bare", "--sbom=none", "--insecure-registry",
				"--platform="+strings.Join(platforms, ","), ".")
			cmd.Dir = src
			cmd.Env = append(os.Environ(), fmt.Sprintf("KO_DOCKER_REPO=%s/steps-%d/ko", reg.host, n), "KO_DEFAULTBASEIMAGE="+base,
				"KOCACHE="+filepath.Join(tmp, fmt.Sprintf("kocache-%d", n)))
			if b, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("ko build: %w\n%s", err, b)
			}
			return nil
		}},
	}
	res := map[string][]time.Duration{}
	for r := range cfg.rounds + 1 { // the first round warms up and is not counted
		order := make([]int, len(steps))
		for i := range order {
			order[i] = i
		}
		if r%2 == 1 { // ko first on odd rounds (the push keeps its Build before it)
			order = append([]int{len(steps) - 1}, order[:len(steps)-1]...)
		}
		for _, i := range order {
			s := steps[i]
			start := time.Now()
			if err := s.run(); err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			if r > 0 {
				res[s.name] = append(res[s.name], time.Since(start))
				if s.name == "shipkit Build (no push)" {
					mu.Lock()
					for step, d := range stepDur {
						res["  step "+step] = append(res["  step "+step], d)
					}
					mu.Unlock()
				}
			}
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(out, "\nmedians of %d rounds, load average %s\n", cfg.rounds, strings.Join(strings.Fields(string(load))[:3], " "))
	names := make([]string, 0, len(res))
	for k := range res {
		names = append(names, k)
	}
	sort.SliceStable(names, func(i, j int) bool { return stepIndex(steps, names[i]) < stepIndex(steps, names[j]) })
	for _, k := range names {
		fmt.Fprintf(out, "  %-44s %7.3fs\n", k, medianDuration(res[k]).Seconds())
	}
	return nil
}

func stepIndex[T any](steps []struct {
	name string
	run  T
}, name string) int {
	for i, s := range steps {
		if s.name == name {
			return i
		}
	}
	return 5 // the Build's own steps go after it
}
