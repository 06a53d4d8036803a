package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/shipkit/shipkit/deploy/rollout"
	"github.com/shipkit/shipkit/examples/pipeline/job"
	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/internal/testbed/kube"
	"github.com/shipkit/shipkit/internal/testbed/prom"
	"github.com/shipkit/shipkit/internal/testbed/registry"
	"github.com/shipkit/shipkit/observe"
)

// clusterLocal is the value of -cluster that starts a cluster on this machine.
const clusterLocal = "local"

// localAnalysisInterval is the time between the measurements of a canary analysis on
// the local cluster, unless -analysis-interval says otherwise: Prometheus scrapes
// every second there, so a short interval still sees new requests each time.
const localAnalysisInterval = 2 * time.Second

// localTimeout bounds the whole local run, unless -timeout says otherwise: three
// releases, the first build maybe with a cold Go cache.
const localTimeout = 20 * time.Minute

// localOptions are the flags of the local-cluster mode (-cluster local).
type localOptions struct {
	cluster      string
	keep         bool
	buildTestbed bool
	trace        string
	// kept is called while a kept cluster runs, with its kubeconfig; it returns when
	// the cluster may go. Nil waits for an interrupt (tests set it).
	kept func(ctx context.Context, kubeconfig string) error
}

// register adds the local-cluster flags to fs.
func (l *localOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&l.cluster, "cluster", "", `"local": start a Kubernetes control plane with kwok nodes and a Prometheus on 127.0.0.1 (built once by hack/testbed.sh) and release three versions to it for real: apply and wait, a canary promoted, a bad canary rolled back`)
	fs.BoolVar(&l.keep, "keep", false, "with -cluster local: keep the cluster running after the job, printing its kubeconfig, until interrupted")
	fs.BoolVar(&l.buildTestbed, "build-testbed", false, "with -cluster local: run hack/testbed.sh first when the control plane is not built (the first time about 15-20 min on 2 cores)")
	fs.StringVar(&l.trace, "trace", "", "with -cluster local: file to write the OpenTelemetry spans to, one JSON span a line (default: trace.json in a new temporary directory)")
}

// checkLocal checks the local-cluster flags once fs is parsed, and gives the local
// mode its own defaults for the flags the user did not set.
func checkLocal(fs *flag.FlagSet, o *options) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	l := &o.local
	if l.cluster == "" {
		for _, name := range []string{"keep", "build-testbed", "trace"} {
			if set[name] {
				return fmt.Errorf("-%s needs -cluster local", name)
			}
		}
		return nil
	}
	if l.cluster != clusterLocal {
		return fmt.Errorf("-cluster %q: the only cluster this job starts is %q", l.cluster, clusterLocal)
	}
	for _, name := range []string{"kubeconfig", "context", "prometheus", "dry-run", "canary-selector"} {
		if set[name] {
			return fmt.Errorf("-cluster local starts its own cluster and Prometheus: drop -%s", name)
		}
	}
	if set["overlay"] || set["chart"] {
		return errors.New("-cluster local ships the embedded overlay of examples/hello, whose Deployment, Service and labels it watches: drop -overlay and -chart")
	}
	if !set["analysis-interval"] {
		o.cfg.AnalysisInterval = localAnalysisInterval
	}
	if !set["timeout"] {
		o.timeout = localTimeout
	}
	return nil
}

// localRelease is one of the three versions the local mode ships.
type localRelease struct {
	name  string // v1, v2, v3
	about string
	// greeting, when set, changes the source: the English greeting, so the build
	// differs and the image gets a new digest.
	greeting string
	// errorRate is the share of the release's requests the metrics source answers
	// with 500.
	errorRate float64
}

// localReleases: the service as it is, a change that is promoted, and a bad change
// that is rolled back.
var localReleases = []localRelease{
	{name: "v1", about: "the service as it is, deployed as stable"},
	{name: "v2", about: "greeting changed (a new digest), released as a canary", greeting: "Hello again"},
	{name: "v3", about: "greeting changed again, half its requests fail: a canary to roll back", greeting: "Hello, broken", errorRate: 0.5},
}

// localRun is the state of a run on the local cluster.
type localRun struct {
	o       options
	out     io.Writer
	v       view
	trace   *tracing
	cluster *kube.Cluster
	prom    *prom.Server
	metrics *serviceMetrics
	client  kubernetes.Interface
	repo    string
	stops   []func() // teardown, in reverse order
	rows    []localRow
	summary []string // one line per release
	// breachToZero is the time from the bad release's failed measurement to its
	// canary's weight 0.
	breachToZero time.Duration
}

// localRow is one row of the summary table: a stage and its result in each release.
type localRow struct {
	stage   string
	results map[string]result // by release name; "" for cluster-wide stages
}

// runLocal starts the local cluster and ships the three releases to it, each through
// every stage of the job, then tears everything down (with -keep, once the user is
// done with it).
func runLocal(ctx context.Context, o options, out io.Writer) error {
	r := &localRun{o: o, out: out}
	if o.plain {
		r.v = newPlain(out)
	} else {
		r.v = newLive(out)
	}
	start := time.Now()
	var err error
	r.trace, err = startTracing(ctx, o.local.trace, r.v)
	if err != nil {
		return err
	}
	err = r.run(ctx)
	if r.o.local.keep && r.cluster != nil && r.prom != nil {
		printLines(r.v, fmt.Sprintf("\nkept: the cluster runs until you interrupt this job (Ctrl-C)\n"+
			"    kubectl --kubeconfig %s get deploy,pods,networkpolicies -n %s\n"+
			"    Prometheus %s\n", r.cluster.Kubeconfig, r.namespace(), r.prom.URL))
		err = errors.Join(err, r.waitKept(ctx))
	}
	err = errors.Join(err, r.teardown())
	r.v.close()
	n, terr := r.trace.close()
	writeLocalSummary(out, r.rows, time.Since(start))
	for _, line := range r.summary {
		fmt.Fprintln(out, line)
	}
	fmt.Fprintf(out, "%d spans in %s\n", n, r.trace.path)
	return errors.Join(err, terr)
}

// run starts the cluster and ships the releases, then checks that stable runs v2.
func (r *localRun) run(ctx context.Context) error {
	if err := r.stage("", "cluster", r.startCluster(ctx)); err != nil {
		return err
	}
	images := make([]string, len(localReleases))
	for i, rel := range localReleases {
		section(r.v, fmt.Sprintf("release %s (%d/%d): %s", rel.name, i+1, len(localReleases), rel.about))
		img, err := r.ship(ctx, rel)
		if err != nil {
			return fmt.Errorf("release %s: %w", rel.name, err)
		}
		images[i] = img
	}
	stable, took, err := r.stableAvailable(ctx)
	if err != nil {
		return err
	}
	if stable != images[1] {
		return fmt.Errorf("after the rollback the stable Deployment runs %s, not %s (v2)", stable, images[1])
	}
	printLines(r.v, fmt.Sprintf("stable runs v2 (%s), Available again %s after the rollback\n",
		shortDigest(stable[strings.LastIndex(stable, "@")+1:]), took.Round(time.Millisecond)))
	return nil
}

// stage runs one stage of the local mode, shown like the job's stages, and records
// its row under release (empty for the cluster-wide stages).
func (r *localRun) stage(release, name string, run func() (string, error)) error {
	r.v.start(name)
	r.trace.stageEvent(name, observe.Started, nil)
	t := time.Now()
	summary, err := run()
	res := result{stage: name, outcome: "ok", took: time.Since(t)}
	switch {
	case err != nil && exitCode(err) == exitDenied:
		res.outcome, summary = "denied", err.Error()
	case err != nil:
		res.outcome, summary = "failed", err.Error()
	}
	phase := observe.Finished
	if err != nil {
		phase = observe.Failed
	}
	r.trace.stageEvent(name, phase, err)
	r.v.finish(name, res.outcome, summary, res.took)
	r.record(release, res)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// record adds a stage's result to the summary table.
func (r *localRun) record(release string, res result) {
	for i := range r.rows {
		if r.rows[i].stage == res.stage {
			r.rows[i].results[release] = res
			return
		}
	}
	r.rows = append(r.rows, localRow{stage: res.stage, results: map[string]result{release: res}})
}

// startCluster starts the control plane and Prometheus, the metrics source it
// scrapes, and a registry for the releases (unless -registry names one).
func (r *localRun) startCluster(ctx context.Context) func() (string, error) {
	return func() (string, error) {
		ev := r.trace.observer()
		c, err := r.startControlPlane(ctx, ev)
		if err != nil {
			return "", err
		}
		r.cluster = c
		r.client = c.Clientset()
		m, err := newServiceMetrics(ctx, r.client, r.namespace(), "hello")
		if err != nil {
			return "", err
		}
		r.stops = append(r.stops, m.Close)
		r.metrics = m
		err = step(ev, "cluster", "prometheus", func() (string, error) {
			// Prometheus lives until the teardown, past the job's deadline when kept.
			s, err := prom.Start(context.WithoutCancel(ctx), m.Addr)
			if err != nil {
				return "", err
			}
			r.stops = append(r.stops, s.Stop)
			r.prom = s
			return s.URL + " scraping " + m.Addr, nil
		})
		if err != nil {
			return "", r.missing(err)
		}
		r.repo = r.o.cfg.Registry
		if r.repo == "" {
			host, stop, err := registry.NewInProcess()
			if err != nil {
				return "", err
			}
			r.stops = append(r.stops, stop)
			r.repo = host + "/shipkit/hello"
		}
		return fmt.Sprintf("Kubernetes %s at %s, %d kwok nodes; Prometheus %s", kube.KubernetesVersion,
			strings.TrimSuffix(c.RESTConfig().Host, "/"), len(c.Nodes), r.prom.URL), nil
	}
}

// startControlPlane starts kube-apiserver, etcd, the controller-manager, the
// scheduler and kwok's nodes, first running hack/testbed.sh when they are not built
// and -build-testbed asks for it.
func (r *localRun) startControlPlane(ctx context.Context, ev observe.Observer) (*kube.Cluster, error) {
	var c *kube.Cluster
	start := func() (string, error) {
		sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		cl, stop, err := kube.StartContext(sctx)
		if err != nil {
			return "", err
		}
		r.stops = append(r.stops, stop)
		c = cl
		return fmt.Sprintf("%d nodes", len(cl.Nodes)), nil
	}
	const what = "kube-apiserver, etcd, controller-manager, scheduler, kwok"
	err := step(ev, "cluster", what, start)
	if errors.Is(err, testbed.ErrMissing) && r.o.local.buildTestbed {
		if err = step(ev, "cluster", "hack/testbed.sh", func() (string, error) { return "", buildTestbed(ctx, ev) }); err == nil {
			err = step(ev, "cluster", what, start)
		}
	}
	return c, r.missing(err)
}

// missing explains how to get a part of the local cluster that is not installed.
func (r *localRun) missing(err error) error {
	if !errors.Is(err, testbed.ErrMissing) {
		return err
	}
	return fmt.Errorf("the local cluster is not installed: run ./hack/testbed.sh once (it installs Debian's prometheus "+
		"and builds Kubernetes %s, etcd %s and kwok %s from the Go module proxy into %s: about 15-20 min on 2 cores "+
		"the first time, nothing after), or add -build-testbed to have this job run it: %w",
		kube.KubernetesVersion, kube.EtcdVersion, kube.KwokVersion, filepath.Join(testbed.CacheDir(), "testbed"), err)
}

// buildTestbed runs hack/testbed.sh from the repository that holds the working
// directory, its log lines shown as the step's progress.
func buildTestbed(ctx context.Context, ev observe.Observer) error {
	script, err := findUp("hack/testbed.sh")
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Dir = filepath.Dir(filepath.Dir(script))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("hack/testbed.sh: %w", err)
	}
	var last string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		last = sc.Text()
		ev.Observe(observe.Event{Stage: "cluster", Step: "hack/testbed.sh", Phase: observe.Progress, Message: last, Time: time.Now()})
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("hack/testbed.sh: %w (last line: %s)", err, last)
	}
	return nil
}

// findUp finds path in the working directory or the nearest directory above it.
func findUp(path string) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		p := filepath.Join(d, filepath.FromSlash(path))
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("%s not found in %s or above: run the job from the shipkit repository", path, wd)
		}
	}
}

// ship runs every stage of the job for one release and returns its image.
func (r *localRun) ship(ctx context.Context, rel localRelease) (string, error) {
	cfg := r.o.cfg
	cfg.Registry = r.repo
	cfg.Kubeconfig, cfg.Context = r.cluster.Kubeconfig, r.cluster.Context
	cfg.Prometheus = r.prom.URL
	cfg.CanarySelector = fmt.Sprintf(`app="hello",track="canary",version=%q`, rel.name)
	if rel.greeting != "" {
		tmp, err := changedSource(cfg.Source, rel.greeting)
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(tmp)
		cfg.Source = filepath.Join(tmp, filepath.Base(cfg.Source))
	}
	defer r.trace.release(rel.name)()
	cfg.Observer = r.trace.observer()
	j, err := job.New(cfg)
	if err != nil {
		return "", err
	}
	defer j.Close()
	var watch *weightWatch
	defer func() { watch.stop() }()
	for _, s := range withNetpol(j) {
		run := func() (string, error) { return s.Run(ctx) }
		switch s.Name {
		case "push":
			run = func() (string, error) {
				sum, err := s.Run(ctx)
				if err == nil {
					r.metrics.addRelease(j.Digest.DigestStr(), rel.name, rel.errorRate)
				}
				return sum, err
			}
		case "rollout":
			if rel.errorRate > 0 {
				watch = watchCanaryWeight(ctx, r.client, r.namespace(), "hello"+rollout.CanarySuffix)
				run = func() (string, error) { return r.expectRollback(ctx, j, s, watch) }
			}
		}
		err := r.stage(rel.name, s.Name, run)
		if err != nil {
			return "", err
		}
		if rel.name == localReleases[0].name || (s.Name != "sbom" && s.Name != "scan") {
			r.v.detail(func(w io.Writer) error { return details(j, s.Name, w) })
		}
	}
	r.summary = append(r.summary, r.outcome(rel, j))
	return j.Digest.String(), nil
}

// outcome is the summary line of a release.
func (r *localRun) outcome(rel localRelease, j *job.Job) string {
	what := "deployed as stable"
	if j.Rollout != nil {
		what = fmt.Sprintf("canary %s: %s", j.Rollout.Phase, j.Rollout.Message)
	}
	return fmt.Sprintf("%s  %s  %s", rel.name, j.Digest, what)
}

// namespace is where the releases go.
func (r *localRun) namespace() string {
	if r.o.cfg.Namespace != "" {
		return r.o.cfg.Namespace
	}
	return "hello"
}

// teardown stops what the run started.
func (r *localRun) teardown() error {
	if len(r.stops) == 0 {
		return nil
	}
	return r.stage("", "teardown", func() (string, error) {
		for i := len(r.stops) - 1; i >= 0; i-- {
			r.stops[i]()
		}
		r.stops = nil
		return "control plane, Prometheus, metrics source and registry stopped, their files removed", nil
	})
}

// waitKept waits while a kept cluster runs: until interrupted, or until the test's
// hook returns.
func (r *localRun) waitKept(ctx context.Context) error {
	if r.o.local.kept != nil {
		return r.o.local.kept(ctx, r.cluster.Kubeconfig)
	}
	// The job's own deadline does not end a kept cluster; an interrupt does.
	wctx, stop := signal.NotifyContext(context.WithoutCancel(ctx), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-wctx.Done()
	return nil
}

// step reports a sub-step of a local stage around f, its summary as the message of
// its end.
func step(o observe.Observer, stage, name string, f func() (string, error)) error {
	o.Observe(observe.Event{Stage: stage, Step: name, Phase: observe.Started, Time: time.Now()})
	msg, err := f()
	if err != nil {
		o.Observe(observe.Event{Stage: stage, Step: name, Phase: observe.Failed, Err: err, Message: err.Error(), Time: time.Now()})
		return err
	}
	o.Observe(observe.Event{Stage: stage, Step: name, Phase: observe.Finished, Message: msg, Time: time.Now()})
	return nil
}

// section prints a heading between stages.
func section(v view, title string) {
	if _, ok := v.(*live); ok {
		title = "\x1b[1m" + title + "\x1b[0m"
	} else {
		title = "--- " + title
	}
	printLines(v, title+"\n")
}

// printLines prints text between stages, above the live area of a terminal.
func printLines(v view, text string) {
	switch v := v.(type) {
	case *live:
		v.mu.Lock()
		defer v.mu.Unlock()
		v.clear()
		_, _ = io.WriteString(v.w, text)
	case *plain:
		v.mu.Lock()
		defer v.mu.Unlock()
		_, _ = io.WriteString(v.w, text)
	}
}

// writeLocalSummary writes the table of stages with a column per release; the
// stages of the cluster itself have one result, in the first column.
func writeLocalSummary(w io.Writer, rows []localRow, total time.Duration) {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-9s", "STAGE")
	for _, rel := range localReleases {
		fmt.Fprintf(&b, " %-16s", strings.ToUpper(rel.name))
	}
	b.WriteString("\n")
	for _, row := range rows {
		fmt.Fprintf(&b, "%-9s", row.stage)
		if res, ok := row.results[""]; ok {
			fmt.Fprintf(&b, " %-7s %8s", res.outcome, seconds(res.took))
		}
		for _, rel := range localReleases {
			if res, ok := row.results[rel.name]; ok {
				fmt.Fprintf(&b, " %-7s %8s", res.outcome, seconds(res.took))
			} else if _, cluster := row.results[""]; !cluster {
				fmt.Fprintf(&b, " %-7s %8s", "-", "")
			}
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "%-9s %16s\n", "total", seconds(total))
	for _, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
	fmt.Fprintln(w)
}
