// Package job is shipkit's main job as a value: it takes one Go service from source
// to a signed, verified, gated deployment, with every hand-off in memory.
//
// The stages run in order — build, push, sbom, scan, sign, verify, render, gate,
// deploy (a plan without a cluster) and, with a metrics server, rollout — and each
// keeps its result in the [Job], so a program can run them one at a time and show
// what each found (examples/pipeline does, with a live step list) or all at once
// ([Job.Run], as hack/bench does against the chain of CLIs).
//
// Every default is embedded: the example service's kustomize overlay and a small
// offline advisory set (OSV JSON) that the scan stage writes into a grype database at
// start, so the job needs nothing but Go and reaches nothing but 127.0.0.1.
package job

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/gate"
	"github.com/shipkit/shipkit/deploy/rollout"
	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/scan"
	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/sign"
)

// Config says what the job works on and where each stage points. [Defaults] returns
// the embedded defaults; zero fields that a stage needs are an error of [New].
type Config struct {
	// Source is the directory of the Go main package to build.
	Source string
	// SourceRepository and SourceRevision say where the source comes from. They are
	// recorded in the SLSA provenance, and the verify stage requires provenance from
	// SourceRepository.
	SourceRepository, SourceRevision string
	// Platforms to build, e.g. "linux/amd64".
	Platforms []string
	// Base is the base image reference; empty means build.Static (CA certificates and
	// tzdata on an empty root, written in process).
	Base string
	// Registry is the repository to push to, e.g. "registry.example.com/team/hello",
	// with the credentials of the Docker config; empty serves a registry in process
	// on 127.0.0.1.
	Registry string
	// Insecure allows plain HTTP to Registry and Base.
	Insecure bool
	// BinaryCache is a directory where the build keeps binaries to reuse when their
	// source has not changed (like ko's KOCACHE); empty builds every time.
	BinaryCache string

	// KeyFile is a cosign private key (cosign.key) decrypted with KeyPassword; empty
	// generates a throwaway key pair in memory.
	KeyFile     string
	KeyPassword []byte
	// TrustedKeys are public key files (cosign.pub) the verify and gate stages trust;
	// empty trusts the signing key.
	TrustedKeys []string

	// DB is a grype v6 database root (the directory holding 6/); empty writes the
	// embedded advisories into a temporary database.
	DB string
	// FailOn is the severity at or above which a finding denies the image at the gate.
	FailOn report.Severity

	// Overlay is a kustomize directory on disk to render; empty renders the embedded
	// overlay of the example service.
	Overlay string
	// Namespace, when set, replaces the embedded overlay's namespace; with Overlay
	// it is where the namespaced objects the overlay leaves without one are judged
	// and applied; with Chart it is the release's namespace (default: default),
	// which namespaced objects the chart leaves without one are applied to.
	Namespace string
	// Chart, instead of Overlay, is a Helm chart to render with deploy/render/helm: a
	// directory, a .tgz or an oci:// reference (resolved to its digest, read with the
	// docker keychain). The pushed image is pinned by repository, as in Overlay.
	Chart string
	// ChartValues are values files merged over the chart's values.yaml, in order.
	ChartValues []string
	// Rego are the user's Rego policy files or directories (every .rego file below
	// one, except *_test.rego), with conftest's conventions: deny, violation and
	// warn rules in package main, input = one rendered object. The gate judges the
	// objects with them beside its built-in rules (scan/policy/rego): a deny or
	// violation denies, naming the rule and the object; a warn is a warning.
	Rego []string
	// AdmissionPolicies are YAML files of ValidatingAdmissionPolicy and
	// ValidatingAdmissionPolicyBinding objects the gate judges the rendered objects
	// with, offline, as the API server would (scan/policy/vap): a Deny binding
	// denies, Warn and Audit bindings warn.
	AdmissionPolicies []string
	// Kubeconfig and Context name the cluster to deploy to; without a kubeconfig the
	// deploy stage prints what it would create in an empty cluster.
	Kubeconfig, Context string
	// DryRun plans against the cluster (a server-side dry run) instead of applying.
	DryRun bool
	// Wait bounds how long the deploy stage waits for the objects to become healthy.
	Wait time.Duration
	// Prometheus is the URL of a Prometheus server; with a kubeconfig, a release
	// after the first then goes out as a canary judged by its success rate. The
	// rendered objects (overlay or chart) must then allow a canary — exactly one
	// apps/v1 Deployment, whose selector has a track label, and a Service in its
	// namespace — or the gate stage fails, on the first release too: the gate
	// judges the canary Deployment before the deploy stage knows which release it is.
	Prometheus string
	// CanarySelector selects the canary's requests in Prometheus (PromQL label
	// matchers on http_requests_total), and AnalysisInterval is the time between
	// the three measurements of each analysis step.
	CanarySelector   string
	AnalysisInterval time.Duration

	// Observer receives the stages' events (default: discard).
	Observer observe.Observer
	// Logger receives the stages' logs (default: discard).
	Logger *slog.Logger
}

// Defaults returns the embedded defaults: examples/hello for linux/amd64 and
// linux/arm64 on build.Static, an in-process registry, a throwaway key, the embedded
// advisories, fail on critical findings, the embedded overlay and a plan without a
// cluster.
//
// The default threshold is critical because that is what the example service
// honestly passes: it links golang.org/x/text v0.3.7, whose GHSA-69ch-w2m2-3vjp
// (High) the scan reports and the gate lets through at this threshold. Set FailOn to
// report.High and the gate denies it.
func Defaults() Config {
	return Config{
		Source:           "examples/hello",
		SourceRepository: "https://github.com/shipkit/shipkit",
		Platforms:        []string{"linux/amd64", "linux/arm64"},
		FailOn:           report.Critical,
		Wait:             2 * time.Minute,
		CanarySelector:   `app="hello",track="canary"`,
		AnalysisInterval: 10 * time.Second,
	}
}

// Stage is one step of the job.
type Stage struct {
	// Name is the stage's name, e.g. "scan".
	Name string
	// Run runs the stage and returns a one-line summary of what it did.
	Run func(ctx context.Context) (string, error)
}

// Job runs the stages on one service and keeps what each produced. Make one with
// [New], run its [Job.Stages] in order (or [Job.Run]) and [Job.Close] it.
type Job struct {
	cfg     Config
	obs     observe.Observer
	log     *slog.Logger
	cleanup []func()

	// Repo is the repository the image is pushed to, set by the push stage.
	Repo name.Repository
	// Index is the built image index, one image per platform.
	Index v1.ImageIndex
	// Digest is the pushed index, by digest.
	Digest name.Digest
	// SBOMs are the SBOMs of the platform images, in the index's order.
	SBOMs []*scan.SBOM
	// Reports are the vulnerability reports of the platform images, in the same
	// order; Report merges them for the index.
	Reports []*scan.Report
	Report  *scan.Report
	// Attested lists the predicate types the sign stage attested, in order.
	Attested []string
	// Verified is what the verify stage checked.
	Verified *sign.Verified
	// Objects are the rendered objects, images pinned, placed by render in the
	// namespaces apply uses. The gate places them again, so objects a program adds
	// after render are judged (and applied) where apply puts them.
	Objects []*unstructured.Unstructured
	// Decision is the gate's.
	Decision *deploy.Decision
	// Changes is what the deploy stage did, or would do.
	Changes *deploy.ChangeSet
	// Rollout is what the rollout stage did, nil when it did not run a canary.
	Rollout *rollout.Result

	release  *release
	canary   *canaryPlan // the canary release the gate judged, with a rollout
	licenses *background[context.Context]
	keys     *background[*signing]
	signing  *signing
	scanner  *scanDB
	verdicts *sign.Cache
	// policies are the user's own, compiled by New; policyNames say which.
	policies    []gate.ObjectPolicy
	policyNames []string
	// restMapper is the cluster's discovery, made on first use (mapper).
	restMapper meta.RESTMapper
}

// New checks cfg, compiles the user's own policies (a Rego file that does not
// compile is an error naming file:line) and returns a job ready to run.
func New(cfg Config) (*Job, error) {
	switch {
	case cfg.Source == "":
		return nil, errors.New("job: no source directory")
	case len(cfg.Platforms) == 0:
		return nil, errors.New("job: no platforms")
	case cfg.SourceRepository == "":
		return nil, errors.New("job: no source repository for the provenance")
	case cfg.Chart != "" && cfg.Overlay != "":
		return nil, errors.New("job: a chart or an overlay, not both")
	case len(cfg.ChartValues) > 0 && cfg.Chart == "":
		return nil, errors.New("job: values files are for a chart: no chart")
	case cfg.Prometheus != "" && (cfg.Kubeconfig == "" || cfg.DryRun):
		return nil, errors.New("job: a canary rollout (Prometheus) needs a cluster to apply to (a kubeconfig, no dry run)")
	case cfg.Prometheus != "" && (cfg.CanarySelector == "" || cfg.AnalysisInterval <= 0):
		return nil, errors.New("job: a canary rollout needs a canary selector and an analysis interval")
	}
	for what, paths := range map[string][]string{
		"source": {cfg.Source}, "key": {cfg.KeyFile}, "trusted key": cfg.TrustedKeys,
		"vulnerability database": {cfg.DB}, "overlay": {cfg.Overlay}, "kubeconfig": {cfg.Kubeconfig},
		"chart": {localChart(cfg.Chart)}, "values file": cfg.ChartValues,
		"rego policy": cfg.Rego, "admission policy": cfg.AdmissionPolicies,
	} {
		for _, p := range paths {
			if p == "" {
				continue
			}
			if _, err := os.Stat(p); err != nil {
				return nil, fmt.Errorf("job: %s: %w", what, err)
			}
		}
	}
	j := &Job{cfg: cfg, obs: observe.OrDiscard(cfg.Observer), log: observe.OrDiscardLogger(cfg.Logger)}
	// Compiling reads only local files: a policy that does not compile fails the
	// job before it builds anything.
	if err := j.loadPolicies(context.Background()); err != nil {
		return nil, err
	}
	return j, nil
}

// Stages returns the job's stages in the order they must run. The rollout stage is
// there only when the config asks for a canary.
func (j *Job) Stages() []Stage {
	st := []Stage{
		{"build", j.build},
		{"push", j.push},
		{"sbom", j.sbom},
		{"scan", j.scan},
		{"sign", j.sign},
		{"verify", j.verify},
		{"render", j.render},
		{"gate", j.gate},
		{"deploy", j.deploy},
	}
	if j.cfg.Prometheus != "" {
		st = append(st, Stage{"rollout", j.rollout})
	}
	return st
}

// Run runs every stage in order and stops at the first that fails or denies.
func (j *Job) Run(ctx context.Context) error {
	for _, s := range j.Stages() {
		if _, err := s.Run(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
	}
	return nil
}

// Close releases what the stages hold: the in-process registry, the vulnerability
// database and the temporary files. It waits for work the job started in the
// background (the license scanner) to end.
func (j *Job) Close() error {
	j.licenses.join()
	j.keys.join()
	for i := len(j.cleanup) - 1; i >= 0; i-- {
		j.cleanup[i]()
	}
	j.cleanup = nil
	return nil
}

// step reports a sub-step's start and end around f.
func (j *Job) step(stage, step string, f func() error) error {
	s := observe.StartStep(j.obs, stage, step, 0, "")
	err := f()
	s.End(err, "")
	return err
}

// cache returns the verdict cache the verify and gate stages share.
func (j *Job) cache() *sign.Cache {
	if j.verdicts == nil {
		j.verdicts = sign.NewCache()
	}
	return j.verdicts
}

func (j *Job) need(what string, ok bool) error {
	if !ok {
		return fmt.Errorf("no %s yet: run the stages in order", what)
	}
	return nil
}

// background is work started ahead of the stage that needs it, so that it overlaps
// the build, which spends much of its time waiting for the Go toolchain.
type background[T any] struct {
	done chan struct{}
	val  T
	err  error
}

func goBackground[T any](f func() (T, error)) *background[T] {
	b := &background[T]{done: make(chan struct{})}
	go func() {
		defer close(b.done)
		b.val, b.err = f()
	}()
	return b
}

// wait returns the work's result once it is done, or ctx's error.
func (b *background[T]) wait(ctx context.Context) (T, error) {
	select {
	case <-b.done:
		return b.val, b.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// join waits for the work to end, if it was started.
func (b *background[T]) join() {
	if b != nil {
		<-b.done
	}
}
