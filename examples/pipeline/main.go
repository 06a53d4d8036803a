// Command pipeline is shipkit's main job: it takes the example service from source to
// a signed, verified, gated deployment, with embedded defaults so that nothing but Go
// is needed.
//
//	go run ./examples/pipeline
//
// It builds examples/hello for linux/amd64 and linux/arm64 without a Docker daemon,
// pushes the index to a registry it serves in process on 127.0.0.1, catalogs an SBOM
// per platform, scans them against a small offline advisory set it writes into a
// grype database at start, signs the index with a throwaway key and attests the
// SBOMs, the vulnerability report and SLSA provenance, verifies them against a
// policy, renders the service's kustomize overlay with the image pinned by digest,
// gates it (signatures, attestations, vulnerabilities, Pod Security) and prints what
// it would create in an empty cluster.
//
// Flags point each stage at real things: -registry, -key, -db, -kubeconfig (apply and
// wait; with -dry-run a server-side plan), -prometheus (releases after the first go
// out as a canary, judged by the canary's success rate and promoted or rolled back),
// -rego and -vap (the user's own Rego policies and ValidatingAdmissionPolicies, judged
// at the gate beside the built-in rules).
// -cluster local starts a Kubernetes control plane with kwok nodes and a Prometheus on
// 127.0.0.1 (hack/testbed.sh builds them once) and ships three releases to it: the
// first applied and waited for, a changed one promoted as a canary, a bad one rolled
// back; NetworkPolicies from the Service's labels, spans to a file (-trace), and the
// cluster torn down at the end (-keep keeps it until interrupted).
//
// The exit code is 0 when the job went through, 3 when the verify stage or the gate
// denied the image, and 1 on any other failure.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/examples/pipeline/job"
	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/sign"
)

// Exit codes.
const (
	exitFailed = 1
	exitDenied = 3
)

// options are the command's flags beyond the job's config.
type options struct {
	cfg     job.Config
	timeout time.Duration
	plain   bool
	local   localOptions
}

func main() {
	o, err := parseFlags(flag.NewFlagSet("pipeline", flag.ContinueOnError), os.Args[1:])
	if err != nil {
		os.Exit(2) // the flag package has printed the error and the usage
	}
	o.plain = o.plain || !term.IsTerminal(int(os.Stdout.Fd()))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	err = run(ctx, o, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pipeline:", err)
	}
	cancel()
	os.Exit(exitCode(err))
}

func exitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, sign.ErrDenied):
		return exitDenied
	}
	return exitFailed
}

func parseFlags(fs *flag.FlagSet, args []string) (options, error) {
	o := options{cfg: job.Defaults()}
	c := &o.cfg
	fs.StringVar(&c.Source, "source", c.Source, "directory of the Go main package to build (run from the repository root for the default)")
	fs.StringVar(&c.SourceRepository, "source-repo", c.SourceRepository, "repository URI of the source, recorded in the image and its provenance and required by the verify policy")
	fs.StringVar(&c.SourceRevision, "source-rev", "", "revision of the source, recorded in the image and its provenance (default: the commit checked out, read from .git)")
	fs.StringVar(&c.Registry, "registry", "", "repository to push to, e.g. registry.example.com/team/hello (default: a registry in process on 127.0.0.1)")
	platforms := fs.String("platforms", strings.Join(c.Platforms, ","), "comma-separated platforms to build")
	fs.StringVar(&c.Base, "base", "", "base image reference (default: build.Static, CA certificates and tzdata on an empty root)")
	fs.BoolVar(&c.Insecure, "insecure", false, "allow plain HTTP to -registry and -base")
	fs.StringVar(&c.BinaryCache, "binary-cache", "", "directory to keep built binaries in and reuse while their source is unchanged (like ko's KOCACHE)")
	fs.StringVar(&c.KeyFile, "key", "", "cosign private key file, its password in $COSIGN_PASSWORD (default: a throwaway key pair)")
	trust := fs.String("trust", "", "comma-separated public key files the verify stage and the gate trust (default: the signing key)")
	fs.StringVar(&c.DB, "db", "", "grype v6 database directory, holding 6/ (default: the embedded advisories, written at start)")
	failOn := fs.String("fail-on", strings.ToLower(c.FailOn.String()), "deny images with findings at or above this severity: negligible, low, medium (or moderate), high, critical")
	fs.StringVar(&c.Overlay, "overlay", "", "kustomize directory to render (default: the embedded overlay of examples/hello)")
	fs.StringVar(&c.Chart, "chart", "", "Helm chart to render instead of a kustomize overlay: a directory, a .tgz or oci://registry/repository/chart:version")
	values := fs.String("values", "", "with -chart: comma-separated values files, merged in order over the chart's values.yaml")
	regoFiles := fs.String("rego", "", "comma-separated Rego policy files or directories (conftest's conventions: deny, violation and warn rules in package main, input = one object), judged at the gate beside the built-in rules")
	vapFiles := fs.String("vap", "", "comma-separated YAML files of ValidatingAdmissionPolicy and ValidatingAdmissionPolicyBinding objects, judged at the gate offline as the API server would")
	fs.StringVar(&c.Namespace, "namespace", "", "namespace of the embedded overlay (default: hello), of the -overlay objects that name none, or of the -chart release (default: default)")
	fs.StringVar(&c.Kubeconfig, "kubeconfig", "", "kubeconfig of the cluster to deploy to (default: no cluster, print the plan)")
	fs.StringVar(&c.Context, "context", "", "kubeconfig context (default: its current context)")
	fs.BoolVar(&c.DryRun, "dry-run", false, "with -kubeconfig: plan with a server-side dry run instead of applying")
	fs.DurationVar(&c.Wait, "wait", c.Wait, "how long to wait for the applied objects to become healthy")
	fs.StringVar(&c.Prometheus, "prometheus", "", "Prometheus URL; with -kubeconfig, a release after the first goes out as a canary judged by its success rate. "+
		"The gate judges the canary on every release, so the overlay or chart needs exactly one apps/v1 Deployment whose selector has a track label, "+
		"and a Service in its namespace, or even the first release fails at the gate")
	fs.StringVar(&c.CanarySelector, "canary-selector", c.CanarySelector, "PromQL label matchers of the canary's http_requests_total")
	fs.DurationVar(&c.AnalysisInterval, "analysis-interval", c.AnalysisInterval, "time between the 3 measurements of a canary analysis step")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long")
	fs.BoolVar(&o.plain, "plain", false, "print plain lines even on a terminal")
	o.local.register(fs)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("unexpected arguments %q", fs.Args())
		fmt.Fprintln(fs.Output(), err)
		fs.Usage()
		return o, err
	}
	c.Platforms = splitList(*platforms)
	c.TrustedKeys = splitList(*trust)
	c.ChartValues = splitList(*values)
	c.Rego = splitList(*regoFiles)
	c.AdmissionPolicies = splitList(*vapFiles)
	sev, err := report.ParseThreshold(*failOn)
	if err != nil {
		fmt.Fprintln(fs.Output(), "-fail-on:", err)
		return o, err
	}
	c.FailOn = sev
	if err := checkLocal(fs, &o); err != nil {
		fmt.Fprintln(fs.Output(), err)
		return o, err
	}
	if c.KeyFile != "" {
		c.KeyPassword = []byte(os.Getenv("COSIGN_PASSWORD"))
	}
	return o, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// run runs the job's stages, showing each on out, and ends with the summary table.
func run(ctx context.Context, o options, out io.Writer) error {
	if o.cfg.SourceRevision == "" {
		o.cfg.SourceRevision = gitRevision(o.cfg.Source)
	}
	if o.local.cluster != "" {
		return runLocal(ctx, o, out)
	}
	var v view
	if o.plain {
		v = newPlain(out)
	} else {
		v = newLive(out)
	}
	o.cfg.Observer = v
	j, err := job.New(o.cfg)
	if err != nil {
		return err
	}
	defer j.Close()
	stages := j.Stages()
	results := make([]result, 0, len(stages))
	start := time.Now()
	var failed error
	for _, s := range stages {
		if failed != nil {
			results = append(results, result{stage: s.Name, outcome: "skipped"})
			continue
		}
		v.start(s.Name)
		t := time.Now()
		summary, err := s.Run(ctx)
		r := result{stage: s.Name, outcome: "ok", took: time.Since(t)}
		denied, isDenied := deniedReasons(err)
		switch {
		case isDenied:
			r.outcome, summary = "denied", fmt.Sprintf("%d reason(s)", len(denied))
			failed = fmt.Errorf("%s: %w", s.Name, err)
		case err != nil:
			r.outcome, summary = "failed", err.Error()
			failed = fmt.Errorf("%s: %w", s.Name, err)
		}
		v.finish(s.Name, r.outcome, summary, r.took)
		switch {
		case isDenied:
			v.detail(func(w io.Writer) error {
				for _, reason := range denied {
					fmt.Fprintln(w, "denied:", reason)
				}
				if s.Name == "gate" {
					return j.WriteWarnings(w)
				}
				return nil
			})
		case err == nil:
			v.detail(func(w io.Writer) error { return details(j, s.Name, w) })
		}
		results = append(results, r)
	}
	v.close()
	writeSummary(out, results, time.Since(start))
	if failed == nil {
		fmt.Fprintf(out, "\nimage %s\n", j.Digest)
	}
	return failed
}

// details writes what a stage found, for the stages that have more than a line.
func details(j *job.Job, stage string, w io.Writer) error {
	switch stage {
	case "sbom":
		return j.WriteSBOMSummary(w)
	case "scan":
		return j.WriteFindings(w)
	case "gate":
		return j.WriteWarnings(w)
	case "deploy":
		return j.WriteChanges(w)
	}
	return nil
}

// deniedReasons returns, when err is a denial by the signature policy (the verify
// stage, a *sign.DeniedError) or by the gate (a *deploy.DecisionError), its reasons
// as lines to print.
func deniedReasons(err error) ([]string, bool) {
	var policy *sign.DeniedError
	if errors.As(err, &policy) {
		lines := make([]string, len(policy.Reasons))
		for i, r := range policy.Reasons {
			lines[i] = fmt.Sprintf("%s: %s", r.Code, r.Message)
		}
		return lines, true
	}
	var gate *deploy.DecisionError
	if errors.As(err, &gate) {
		lines := make([]string, len(gate.Reasons))
		for i, r := range gate.Reasons {
			lines[i] = r.String()
		}
		return lines, true
	}
	return nil, false
}
