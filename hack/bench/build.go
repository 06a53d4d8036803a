package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/shipkit/shipkit/build"
	"github.com/shipkit/shipkit/build/publish"
)

type buildConfig struct {
	rounds, coldRounds int
	ko, source         string
}

// builder is one way of building and pushing the source.
type builder struct {
	name string
	run  func(ctx context.Context, repo, gocache, cache string) error
}

type sample struct {
	d      time.Duration
	pushed int64
}

func runBuild(ctx context.Context, cfg buildConfig, out io.Writer) error {
	if _, err := os.Stat(cfg.ko); err != nil {
		return fmt.Errorf("ko not found at %s (run hack/bench/setup.sh or pass -ko): %w", cfg.ko, err)
	}
	bed, err := newBuildBed(ctx, cfg, "shipkit-bench-")
	if err != nil {
		return err
	}
	defer bed.close()
	src, reg, base, tmp := bed.src, bed.reg, bed.base, bed.tmp
	platforms := []string{"linux/amd64", "linux/arm64"}

	builders := []builder{
		{"shipkit", func(ctx context.Context, repo, gocache, cache string) error {
			b, err := build.NewGo(build.WithPlatforms(platforms...), build.WithBase(build.RemoteBase(base)),
				build.WithBinaryCache(cache), build.WithGoEnv("GOCACHE="+gocache))
			if err != nil {
				return err
			}
			idx, err := b.Build(ctx, build.Source{Dir: src})
			if err != nil {
				return err
			}
			r, err := name.NewRepository(reg.host + "/" + repo)
			if err != nil {
				return err
			}
			_, err = publish.Index(ctx, idx, r)
			return err
		}},
		{"ko", func(ctx context.Context, repo, gocache, cache string) error {
			cmd := exec.CommandContext(ctx, cfg.ko, "build", "--bare", "--sbom=none", "--insecure-registry",
				"--platform="+platforms[0]+","+platforms[1], ".")
			cmd.Dir = src
			cmd.Env = append(os.Environ(), "KO_DOCKER_REPO="+reg.host+"/"+repo, "KO_DEFAULTBASEIMAGE="+base,
				"GOCACHE="+gocache, "KOCACHE="+cache)
			if b, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("ko build: %w\n%s", err, b)
			}
			return nil
		}},
	}
	goCache, err := exec.CommandContext(ctx, "go", "env", "GOCACHE").Output()
	if err != nil {
		return fmt.Errorf("go env GOCACHE: %w", err)
	}
	warmCache := string(goCache[:len(goCache)-1])

	measure := func(b builder, repo, gocache, cache string) (sample, error) {
		before := reg.pushed.Load()
		start := time.Now()
		if err := b.run(ctx, repo, gocache, cache); err != nil {
			return sample{}, fmt.Errorf("%s: %w", b.name, err)
		}
		return sample{d: time.Since(start), pushed: reg.pushed.Load() - before}, nil
	}
	results := map[string]map[string][]sample{}
	record := func(scenario, tool string, s sample) {
		if results[scenario] == nil {
			results[scenario] = map[string][]sample{}
		}
		results[scenario][tool] = append(results[scenario][tool], s)
		fmt.Fprintf(out, "  %-10s %-8s %8.2fs %10d bytes pushed\n", scenario, tool, s.d.Seconds(), s.pushed)
	}
	// order alternates which tool goes first, so neither always runs on a warmer machine.
	order := func(r int) []builder {
		if r%2 == 1 {
			return []builder{builders[1], builders[0]}
		}
		return builders
	}

	fmt.Fprintf(out, "building %s for %v on %s, pushing to %s\n", cfg.source, platforms, base, reg.host)
	for r := 0; r < cfg.coldRounds; r++ {
		for _, b := range order(r) {
			dir := filepath.Join(tmp, fmt.Sprintf("cold-%d-%s", r, b.name))
			s, err := measure(b, fmt.Sprintf("cold-%d/%s", r, b.name), filepath.Join(dir, "gocache"), filepath.Join(dir, "cache"))
			if err != nil {
				return err
			}
			record("cold", b.name, s)
		}
	}
	for _, b := range builders { // warm Go's cache and each tool's repository
		if _, err := measure(b, "warm/"+b.name, warmCache, filepath.Join(tmp, "warm-"+b.name)); err != nil {
			return err
		}
	}
	for r := 0; r < cfg.rounds; r++ {
		for _, b := range order(r) {
			s, err := measure(b, fmt.Sprintf("new-%d/%s", r, b.name), warmCache, filepath.Join(tmp, fmt.Sprintf("new-%d-%s", r, b.name)))
			if err != nil {
				return err
			}
			record("new cache", b.name, s)
		}
		for _, b := range order(r) {
			s, err := measure(b, "warm/"+b.name, warmCache, filepath.Join(tmp, "warm-"+b.name))
			if err != nil {
				return err
			}
			record("no change", b.name, s)
		}
	}
	printSummary(out, results)
	return nil
}

func printSummary(out io.Writer, results map[string]map[string][]sample) {
	fmt.Fprintf(out, "\n%-12s %12s %12s %8s %16s %16s\n", "scenario", "shipkit", "ko", "ratio", "shipkit pushed", "ko pushed")
	for _, sc := range []string{"cold", "new cache", "no change"} {
		r := results[sc]
		if r == nil {
			continue
		}
		s, k := median(r["shipkit"]), median(r["ko"])
		fmt.Fprintf(out, "%-12s %11.2fs %11.2fs %7.2fx %16d %16d\n", sc, s.d.Seconds(), k.d.Seconds(),
			s.d.Seconds()/k.d.Seconds(), s.pushed, k.pushed)
	}
	if c, w := median(results["cold"]["shipkit"]), median(results["no change"]["shipkit"]); c.d > 0 && w.d > 0 {
		fmt.Fprintf(out, "\nshipkit no-change rebuild / cold build: %.3f\n", w.d.Seconds()/c.d.Seconds())
	}
}

// median returns the sample of median duration (and its bytes).
func median(s []sample) sample {
	if len(s) == 0 {
		return sample{}
	}
	c := slices.Clone(s)
	slices.SortFunc(c, func(a, b sample) int { return int(a.d - b.d) })
	return c[len(c)/2]
}

// pushBase pushes a two-platform base image of about 4 MiB per platform to ref.
func pushBase(ref string) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(1<<20, 4)
		if err != nil {
			return err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return err
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", arch
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			return err
		}
		img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	return remote.WriteIndex(tag, idx)
}

// buildBed is what both build scenarios start from: the source directory, a
// registry on 127.0.0.1 with the base image pushed as base, and a temporary
// directory; close removes them.
type buildBed struct {
	src, base, tmp string
	reg            *countingRegistry
}

func newBuildBed(ctx context.Context, cfg buildConfig, tmpPrefix string) (*buildBed, error) {
	src, err := filepath.Abs(cfg.source)
	if err != nil {
		return nil, err
	}
	reg, err := startRegistry(ctx)
	if err != nil {
		return nil, fmt.Errorf("starting the registry: %w", err)
	}
	base := reg.host + "/base/static:1"
	if err := pushBase(base); err != nil {
		reg.close()
		return nil, fmt.Errorf("pushing the base image: %w", err)
	}
	tmp, err := os.MkdirTemp("", tmpPrefix)
	if err != nil {
		reg.close()
		return nil, err
	}
	return &buildBed{src: src, base: base, tmp: tmp, reg: reg}, nil
}

func (b *buildBed) close() {
	_ = os.RemoveAll(b.tmp)
	b.reg.close()
}
