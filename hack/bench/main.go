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
	"io"
	"os"
	"os/signal"
	"sort"
)

// command is one benchmark scenario: it parses its own flags from args and prints
// its medians and ratios to out.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, out io.Writer) error
}

func commands() map[string]command {
	return map[string]command{
		"build":      {"shipkit build vs ko build", buildCmd},
		"scan":       {"shipkit scan vs the syft and grype CLIs", scanCmd},
		"sign":       {"shipkit sign vs the cosign CLI", signCmd},
		"deploy":     {"shipkit deploy vs kubectl apply --server-side", deployCmd},
		"chain":      {"the whole job in process vs the chain of CLIs", chainCmd},
		"rego":       {"shipkit's Rego policies vs opa eval (and conftest test)", regoCmd},
		"fleet":      {"fleet re-scan from attestations vs grype per image; inventory of clusters", fleetCmd},
		"layercache": {"sbom.WithLayerCache vs no cache (and syft scan oci-dir:), N images on one base", layerCacheCmd},
	}
}

func main() {
	cmds := commands()
	if len(os.Args) < 2 || cmds[os.Args[1]].run == nil {
		fmt.Fprintln(os.Stderr, "usage: bench <scenario> [flags]\n\nscenarios:")
		names := make([]string, 0, len(cmds))
		for name := range cmds {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			fmt.Fprintf(os.Stderr, "  %-7s %s\n", name, cmds[name].summary)
		}
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := cmds[os.Args[1]].run(ctx, os.Args[2:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func buildCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	cfg := buildConfig{}
	fs.IntVar(&cfg.rounds, "rounds", 5, "rounds of the warm scenarios")
	fs.IntVar(&cfg.coldRounds, "cold-rounds", 2, "rounds with an empty Go build cache (slow)")
	fs.StringVar(&cfg.ko, "ko", defaultTool("ko", koVersion), "path of the ko binary (hack/bench/setup.sh installs it)")
	fs.StringVar(&cfg.source, "source", "examples/hello", "Go main package directory to build")
	steps := fs.Bool("steps", false, "time the parts of shipkit's build + push (warm Go cache) one by one, and ko's whole run, instead")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *steps {
		return buildSteps(ctx, cfg, out)
	}
	return runBuild(ctx, cfg, out)
}
