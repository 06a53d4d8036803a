// Command bench compares shipkit with the CLI tools people use today, on the same
// inputs and the same local registry, in one run: rounds alternate between the tools
// and the medians and ratios are printed. hack/bench/setup.sh installs the peers at
// pinned versions.
//
//	go run ./hack/bench build -rounds 5 -cold-rounds 2
//
// The build scenario builds examples/hello for linux/amd64 and linux/arm64 on the
// same base image and pushes it, with shipkit's build package in process and with
// `ko build`:
//   - cold: an empty Go build cache and an empty repository (a fresh CI runner);
//   - new cache: a warm Go build cache, each tool's own cache empty (shipkit's
//     binary cache, KOCACHE), a new repository; the in-process registry shares blobs
//     between repositories, so this measures the build side only;
//   - no change: the same source again to the same repository.
//
// Bytes pushed are counted by a proxy in front of the registry.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "build" {
		fmt.Fprintln(os.Stderr, "usage: bench build [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("build", flag.ExitOnError)
	cfg := buildConfig{}
	fs.IntVar(&cfg.rounds, "rounds", 5, "rounds of the warm scenarios")
	fs.IntVar(&cfg.coldRounds, "cold-rounds", 2, "rounds with an empty Go build cache (slow)")
	fs.StringVar(&cfg.ko, "ko", defaultTool("ko"), "path of the ko binary (hack/bench/setup.sh installs it)")
	fs.StringVar(&cfg.source, "source", "examples/hello", "Go main package directory to build")
	_ = fs.Parse(os.Args[2:])

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := runBuild(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
