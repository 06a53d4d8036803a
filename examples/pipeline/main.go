// Command pipeline is shipkit's main job: it runs the pipeline on the example
// service, with embedded defaults so that nothing but Go is needed.
//
//	go run ./examples/pipeline
//
// Today it builds examples/hello for linux/amd64 and linux/arm64 without a Docker
// daemon, pushes the index to a registry (by default one it serves in process on
// 127.0.0.1) and prints the digest with the image of each platform. Flags point it
// at real things: -registry pushes to a registry of yours with the credentials of
// your Docker config.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"
)

func main() {
	cfg := config{}
	flag.StringVar(&cfg.source, "source", "examples/hello", "directory of the Go main package to build")
	flag.StringVar(&cfg.registry, "registry", "", "repository to push to, e.g. registry.example.com/team/hello (default: an in-process registry)")
	flag.StringVar(&cfg.platforms, "platforms", "linux/amd64,linux/arm64", "comma-separated platforms to build")
	flag.StringVar(&cfg.base, "base", "", "base image reference (default: scratch)")
	flag.BoolVar(&cfg.insecure, "insecure", false, "allow plain HTTP to -registry and -base")
	flag.DurationVar(&cfg.timeout, "timeout", 10*time.Minute, "give up after this long")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "pipeline:", err)
		os.Exit(1)
	}
}

type config struct {
	source, registry, platforms, base string
	insecure                          bool
	timeout                           time.Duration
}

// step runs one named step, printing its name, outcome and duration.
func step(out io.Writer, name string, f func() (string, error)) error {
	start := time.Now()
	fmt.Fprintf(out, "==> %s\n", name)
	msg, err := f()
	if err != nil {
		fmt.Fprintf(out, "    FAILED after %s\n", time.Since(start).Round(time.Millisecond))
		return fmt.Errorf("%s: %w", name, err)
	}
	if msg != "" {
		fmt.Fprintf(out, "    %s\n", msg)
	}
	fmt.Fprintf(out, "    done in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}
