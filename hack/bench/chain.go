package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/shipkit/shipkit/examples/pipeline/job"
	"github.com/shipkit/shipkit/internal/testbed/kube"
	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

// kustomizeVersion is the kustomize CLI hack/bench/setup/kustomize.sh installs, the
// one tool only the chain scenario runs; the others are the build, scan, sign and
// deploy scenarios' (koVersion, syftVersion, grypeVersion, cosignVersion,
// kubectlVersion).
const kustomizeVersion = "v5.8.2"

// chainPlatforms are the platforms both sides build, as the main job does.
var chainPlatforms = []string{"linux/amd64", "linux/arm64"}

type chainConfig struct {
	rounds                                      int
	cache                                       bool
	source                                      string
	ko, syft, grype, cosign, kustomize, kubectl string
}

// chainCmd runs the README's main job both ways on the same inputs, registry, key,
// vulnerability database and API server, rounds alternating which goes first:
// shipkit in process (examples/pipeline/job) against the chain of CLIs people run
// today — ko build, syft and grype per platform, cosign sign, attest (2 SBOMs, the
// vulnerability report, provenance), verify and verify-attestation, kustomize edit
// set image and build, kubectl apply --server-side --dry-run=server.
func chainCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("chain", flag.ContinueOnError)
	cfg := chainConfig{}
	fs.IntVar(&cfg.rounds, "rounds", 5, "measured rounds, after one warm-up round of each")
	fs.StringVar(&cfg.source, "source", "examples/hello", "Go main package directory to build")
	fs.BoolVar(&cfg.cache, "cache", false, "let each side keep its own build cache between rounds (shipkit's binary cache, ko's KOCACHE)")
	fs.StringVar(&cfg.ko, "ko", defaultTool("ko", koVersion), "path of ko (hack/bench/setup.sh ko)")
	fs.StringVar(&cfg.syft, "syft", defaultTool("syft", syftVersion), "path of syft (hack/bench/setup.sh syft)")
	fs.StringVar(&cfg.grype, "grype", defaultTool("grype", grypeVersion), "path of grype (hack/bench/setup.sh grype)")
	fs.StringVar(&cfg.cosign, "cosign", defaultTool("cosign", cosignVersion), "path of cosign (hack/testbed.sh installs it)")
	fs.StringVar(&cfg.kustomize, "kustomize", defaultTool("kustomize", kustomizeVersion), "path of kustomize (hack/bench/setup.sh kustomize)")
	fs.StringVar(&cfg.kubectl, "kubectl", defaultTool("kubectl", kubectlVersion), "path of kubectl (hack/bench/setup.sh kubectl)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.rounds < 1 {
		return fmt.Errorf("-rounds %d: want at least 1", cfg.rounds)
	}
	for tool, path := range map[string]string{"ko": cfg.ko, "syft": cfg.syft, "grype": cfg.grype,
		"cosign": cfg.cosign, "kustomize": cfg.kustomize, "kubectl": cfg.kubectl} {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("%s not found at %s (run hack/bench/setup.sh %s, or pass -%s): %w", tool, path, tool, tool, err)
		}
	}
	return runChain(ctx, cfg, out)
}

// chainBench holds what both sides share.
type chainBench struct {
	cfg        chainConfig
	src        string // absolute source directory
	host, base string // registry and base image
	dir        string // scratch: keys, database, manifests, provenance, outputs
	db         string
	key, pub   string
	password   []byte
	prov       string // SLSA provenance predicate file for the CLI chain
	overlay    string
	kubeconfig string
	kubeCtx    string
	env        []string
}

func runChain(ctx context.Context, cfg chainConfig, out io.Writer) error {
	b := &chainBench{cfg: cfg}
	var err error
	if b.src, err = filepath.Abs(cfg.source); err != nil {
		return err
	}
	reg, err := startRegistry(ctx)
	if err != nil {
		return fmt.Errorf("starting the registry: %w", err)
	}
	defer reg.close()
	b.host, b.base = reg.host, reg.host+"/base/static:1"
	if err := pushBase(b.base); err != nil {
		return fmt.Errorf("pushing the base image: %w", err)
	}
	if b.dir, err = os.MkdirTemp("", "shipkit-bench-chain-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.dir)
	fmt.Fprintln(out, "starting a test control plane (kube-apiserver, etcd, controller-manager, scheduler, kwok)")
	c, stop, err := kube.StartContext(ctx)
	if err != nil {
		return err
	}
	defer stop()
	b.kubeconfig, b.kubeCtx = c.Kubeconfig, c.Context
	if err := b.prepare(ctx); err != nil {
		return err
	}
	caches := "no tool keeps a cache of its own between rounds"
	if cfg.cache {
		caches = "each tool keeps its own cache between rounds (shipkit's binary cache, KOCACHE)"
	}
	fmt.Fprintf(out, "the main job on %s for %v, base %s, registry %s; %d rounds after a warm-up; %s\n",
		cfg.source, chainPlatforms, b.base, b.host, cfg.rounds, caches)

	sides := []struct {
		name string
		run  func(ctx context.Context, repo string) (chainSteps, error)
	}{{"shipkit", b.shipkit}, {"chain", b.chain}}
	results := map[string][]chainSteps{}
	for r := -1; r < cfg.rounds; r++ { // round -1 warms up both
		order := []int{0, 1}
		if r%2 != 0 {
			order = []int{1, 0}
		}
		for _, i := range order {
			s := sides[i]
			repo := fmt.Sprintf("%s/r%d-%s/hello", b.host, r+1, s.name)
			st, err := s.run(ctx, repo)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", r+1, s.name, err)
			}
			label := fmt.Sprintf("round %d", r+1)
			if r < 0 {
				label = "warm-up"
			} else {
				results[s.name] = append(results[s.name], st)
			}
			fmt.Fprintf(out, "  %-8s %-8s %7.2fs  %s\n", label, s.name, st.total().Seconds(), st)
		}
	}
	printChain(out, results)
	return nil
}

// prepare writes what both sides read: the key pair, the vulnerability database,
// the manifests, the provenance predicate, and the namespace both plan into.
func (b *chainBench) prepare(ctx context.Context) error {
	b.password = []byte("bench")
	pair, err := cosign.GenerateKeyPair(b.password)
	if err != nil {
		return err
	}
	if b.key, b.pub, err = pair.WriteFiles(b.dir); err != nil {
		return err
	}
	b.db = filepath.Join(b.dir, "db")
	if _, err := job.WriteAdvisoryDB(ctx, b.db); err != nil {
		return err
	}
	if b.overlay, err = job.WriteManifests(filepath.Join(b.dir, "manifests")); err != nil {
		return err
	}
	prov, err := sign.Provenance{
		BuilderID: "https://github.com/shipkit/shipkit/hack/bench", SourceRepository: "https://github.com/shipkit/shipkit",
		SourceRevision: "bench", Parameters: map[string]any{"platforms": chainPlatforms},
		StartedOn: time.Now(), FinishedOn: time.Now(),
	}.Predicate()
	if err != nil {
		return err
	}
	b.prov = filepath.Join(b.dir, "provenance.json")
	if err := os.WriteFile(b.prov, prov.Body, 0o600); err != nil {
		return err
	}
	b.env = append(os.Environ(),
		"COSIGN_PASSWORD="+string(b.password), "HOME="+b.dir,
		"TUF_ROOT="+filepath.Join(b.dir, "tuf"), "DOCKER_CONFIG="+filepath.Join(b.dir, "docker"),
		"KO_DEFAULTBASEIMAGE="+b.base,
		"SYFT_CHECK_FOR_APP_UPDATE=false", "SYFT_REGISTRY_INSECURE_USE_HTTP=true",
		"GRYPE_CHECK_FOR_APP_UPDATE=false", "GRYPE_DB_CACHE_DIR="+b.db, "GRYPE_DB_AUTO_UPDATE=false",
		"GRYPE_DB_VALIDATE_AGE=false")
	// Both sides plan into the same existing namespace: a server-side dry run of a
	// namespaced object in a namespace that does not exist fails.
	_, err = b.run(ctx, "", nil, b.cfg.kubectl, "--kubeconfig", b.kubeconfig, "create", "namespace", "hello")
	return err
}

// shipkit runs the job in process, stage by stage.
func (b *chainBench) shipkit(ctx context.Context, repo string) (chainSteps, error) {
	cfg := job.Defaults()
	cfg.Source, cfg.Base, cfg.Registry = b.src, b.base, repo
	cfg.Platforms = chainPlatforms
	cfg.KeyFile, cfg.KeyPassword, cfg.TrustedKeys = b.key, b.password, []string{b.pub}
	cfg.DB, cfg.FailOn = b.db, report.Critical
	cfg.Kubeconfig, cfg.Context, cfg.DryRun = b.kubeconfig, b.kubeCtx, true
	if b.cfg.cache {
		cfg.BinaryCache = filepath.Join(b.dir, "shipkit-cache")
	}
	var st chainSteps
	start := time.Now()
	j, err := job.New(cfg)
	if err != nil {
		return nil, err
	}
	defer j.Close()
	for _, s := range j.Stages() {
		t := time.Now()
		if _, err := s.Run(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", s.Name, err)
		}
		st = append(st, chainStep{s.Name, time.Since(t)})
	}
	if err := j.Close(); err != nil {
		return nil, err
	}
	// Setup and teardown outside the stages (New, Close) count in the total.
	return append(st, chainStep{"other", time.Since(start) - st.total()}), nil
}

// chain runs the CLIs one after another, as a CI script would.
func (b *chainBench) chain(ctx context.Context, repo string) (chainSteps, error) {
	var st chainSteps
	work, err := os.MkdirTemp(b.dir, "chain-")
	if err != nil {
		return nil, err
	}
	var ref string
	cos := func(args ...string) error { _, err := b.run(ctx, "", nil, b.cfg.cosign, args...); return err }
	for _, s := range []struct {
		name string
		run  func() error
	}{
		{"build", func() error {
			env := []string{"KO_DOCKER_REPO=" + repo}
			if b.cfg.cache {
				env = append(env, "KOCACHE="+filepath.Join(b.dir, "ko-cache"))
			}
			o, err := b.run(ctx, b.src, env, b.cfg.ko, "build", "--bare", "--sbom=none",
				"--insecure-registry", "--platform="+strings.Join(chainPlatforms, ","), ".")
			ref = strings.TrimSpace(o)
			return err
		}},
		{"sbom", func() error {
			for _, p := range chainPlatforms {
				if _, err := b.run(ctx, "", nil, b.cfg.syft, "scan", "registry:"+ref, "--platform", p, "-q",
					"-o", "spdx-json="+filepath.Join(work, "sbom-"+chainArch(p)+".json")); err != nil {
					return err
				}
			}
			return nil
		}},
		{"scan", func() error {
			for _, p := range chainPlatforms {
				if _, err := b.run(ctx, "", nil, b.cfg.grype, "sbom:"+filepath.Join(work, "sbom-"+chainArch(p)+".json"),
					"-q", "--fail-on", "critical", "-o", "json", "--file", filepath.Join(work, "vuln-"+chainArch(p)+".json")); err != nil {
					return err
				}
			}
			return nil
		}},
		{"sign", func() error {
			if err := cos("sign", "--key", b.key, "--tlog-upload=false", "--yes", "--recursive", ref); err != nil {
				return err
			}
			for _, a := range [][2]string{
				{"spdxjson", filepath.Join(work, "sbom-amd64.json")},
				{"spdxjson", filepath.Join(work, "sbom-arm64.json")},
				{"vuln", filepath.Join(work, "vuln-amd64.json")},
				{"slsaprovenance1", b.prov},
			} {
				if err := cos("attest", "--key", b.key, "--tlog-upload=false", "--yes", "--type", a[0], "--predicate", a[1], ref); err != nil {
					return err
				}
			}
			return nil
		}},
		{"verify", func() error {
			if err := cos("verify", "--key", b.pub, "--insecure-ignore-tlog", ref); err != nil {
				return err
			}
			for _, typ := range []string{"slsaprovenance1", "vuln", "spdxjson"} {
				if err := cos("verify-attestation", "--key", b.pub, "--insecure-ignore-tlog", "--type", typ, ref); err != nil {
					return err
				}
			}
			return nil
		}},
		{"render", func() error {
			root := filepath.Join(work, "release")
			if err := os.MkdirAll(root, 0o755); err != nil {
				return err
			}
			rel, err := filepath.Rel(root, b.overlay)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(root, "kustomization.yaml"), []byte("resources:\n- "+rel+"\n"), 0o644); err != nil {
				return err
			}
			if _, err := b.run(ctx, root, nil, b.cfg.kustomize, "edit", "set", "image", "hello="+ref); err != nil {
				return err
			}
			_, err = b.run(ctx, "", nil, b.cfg.kustomize, "build", root, "-o", filepath.Join(work, "release.yaml"))
			return err
		}},
		{"deploy", func() error {
			_, err := b.run(ctx, "", nil, b.cfg.kubectl, "--kubeconfig", b.kubeconfig, "--context", b.kubeCtx,
				"apply", "--server-side", "--field-manager", "chain", "--dry-run=server", "-f", filepath.Join(work, "release.yaml"))
			return err
		}},
	} {
		t := time.Now()
		if err := s.run(); err != nil {
			return nil, err
		}
		st = append(st, chainStep{s.name, time.Since(t)})
	}
	return st, nil
}

// run runs a tool in dir with the bench's environment and env added, and returns
// its stdout.
func (b *chainBench) run(ctx context.Context, dir string, env []string, tool string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Dir, cmd.Env = dir, append(slices.Clip(b.env), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s", filepath.Base(tool), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

func chainArch(platform string) string { return platform[strings.LastIndex(platform, "/")+1:] }

// chainStep is the time one stage took.
type chainStep struct {
	name string
	d    time.Duration
}

type chainSteps []chainStep

func (s chainSteps) total() time.Duration {
	var t time.Duration
	for _, x := range s {
		t += x.d
	}
	return t
}

// get returns the time of the named stage, 0 when the side has none.
func (s chainSteps) get(name string) time.Duration {
	for _, x := range s {
		if x.name == name {
			return x.d
		}
	}
	return 0
}

func (s chainSteps) String() string {
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = fmt.Sprintf("%s %.2f", x.name, x.d.Seconds())
	}
	return strings.Join(parts, ", ")
}

// chainRows pairs the job's stages with the chain's commands, for the table.
var chainRows = []struct{ shipkit, chain []string }{
	{[]string{"build", "push"}, []string{"build"}},
	{[]string{"sbom"}, []string{"sbom"}},
	{[]string{"scan"}, []string{"scan"}},
	{[]string{"sign"}, []string{"sign"}},
	{[]string{"verify"}, []string{"verify"}},
	{[]string{"render"}, []string{"render"}},
	{[]string{"gate"}, nil},
	{[]string{"deploy"}, []string{"deploy"}},
	{[]string{"other"}, nil},
}

var chainLabels = []string{
	"build + push (ko build)",
	"SBOM x2 (syft)",
	"scan x2 (grype)",
	"sign + 4 attest (cosign)",
	"verify (cosign verify, verify-attestation x3)",
	"render (kustomize edit, build)",
	"gate (no CLI counterpart)",
	"plan (kubectl apply --dry-run=server)",
	"setup, teardown",
}

// printChain prints the median of each stage and of the total, and the ratios.
func printChain(out io.Writer, results map[string][]chainSteps) {
	med := func(side string, names []string) time.Duration {
		var ds []time.Duration
		for _, st := range results[side] {
			var d time.Duration
			for _, n := range names {
				d += st.get(n)
			}
			ds = append(ds, d)
		}
		return medianOf(ds)
	}
	fmt.Fprintf(out, "\n%-46s %10s %10s %8s\n", "stage (median of rounds)", "shipkit", "CLI chain", "ratio")
	for i, row := range chainRows {
		s, c := med("shipkit", row.shipkit), med("chain", row.chain)
		ratio := "-"
		if c > 0 {
			ratio = fmt.Sprintf("%.2fx", s.Seconds()/c.Seconds())
		}
		chain := "-"
		if row.chain != nil {
			chain = fmt.Sprintf("%.2fs", c.Seconds())
		}
		fmt.Fprintf(out, "%-46s %9.2fs %10s %8s\n", chainLabels[i], s.Seconds(), chain, ratio)
	}
	totals := func(side string) time.Duration {
		var ds []time.Duration
		for _, st := range results[side] {
			ds = append(ds, st.total())
		}
		return medianOf(ds)
	}
	s, c := totals("shipkit"), totals("chain")
	fmt.Fprintf(out, "%-46s %9.2fs %9.2fs %7.2fx   (goal <= 0.33x)\n", "whole job", s.Seconds(), c.Seconds(), s.Seconds()/c.Seconds())
}

// medianOf returns the median duration (the upper one of an even count).
func medianOf(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	c := slices.Clone(ds)
	slices.Sort(c)
	return c[len(c)/2]
}
