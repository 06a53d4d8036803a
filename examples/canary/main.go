// Command canary runs a canary rollout end to end against a cluster and a Prometheus,
// printing the canary's weight and its success rate at every step.
//
//	head -c 32 /dev/urandom > ~/.config/shipkit/rollout.key  # once, kept with your credentials
//	go run ./examples/canary -kubeconfig ~/.kube/config -namespace shop \
//	    -stable web -canary web-canary -service web -state-key-file ~/.config/shipkit/rollout.key \
//	    -prometheus http://127.0.0.1:9090 -metrics 'app="web",version="v2"'
//
// With -image instead of -canary, the command makes the canary itself: a copy of the
// stable Deployment running the image in its first container, named
// "<stable>-canary" and labelled track=canary (rollout.CanaryDeployment), applied
// server-side (deploy/apply) before the rollout starts:
//
//	go run ./examples/canary ... -stable web -image registry.example/web:v2 -service web ...
//
// The stable and the canary Deployment sit behind one Service; traffic moves between
// them by replica counts (mesh/replicas, no mesh needed), 10% → 50% → 100% by default
// (-steps). After each weight the canary's success rate (the share of non-5xx
// requests in http_requests_total, selected by -metrics) is measured -count times,
// -interval apart, and must stay at or above -min-success; otherwise all traffic goes
// back to stable and the canary is scaled to zero. The rollout's state lives in the
// cluster, sealed with the key of -state-key-file (see rollout.WithStateKey): interrupt
// the command and run it again with the same key, and it resumes where it was.
//
// The exit code is 0 when the canary was promoted, 3 when it was rolled back (or
// paused on missing metrics with -pause-on-missing), and 1 on any other failure.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/shipkit/shipkit/deploy/rollout"
)

// Exit codes.
const (
	exitFailed     = 1
	exitNotPromote = 3
)

func main() {
	cfg, err := parseFlags(flag.NewFlagSet("canary", flag.ContinueOnError), os.Args[1:])
	if err != nil {
		os.Exit(2) // the flag package has printed the error and the usage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	err = run(ctx, cfg, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "canary:", err)
	}
	cancel()
	switch {
	case err == nil:
	case errors.Is(err, errNotPromoted):
		os.Exit(exitNotPromote)
	default:
		os.Exit(exitFailed)
	}
}

// config holds the command's flags.
type config struct {
	kubeconfig, context, namespace string
	name                           string
	stable, canary, service        string
	image                          string
	total                          int
	prometheus, metrics            string
	steps                          []int32
	minSuccess                     float64
	count                          int
	interval, window               time.Duration
	pauseOnMissing                 bool
	timeout                        time.Duration
	stateKeyFile                   string
}

func parseFlags(fs *flag.FlagSet, args []string) (config, error) {
	var c config
	var steps string
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&c.context, "context", "", "kubeconfig context (default: its current context)")
	fs.StringVar(&c.namespace, "namespace", "default", "namespace of the Deployments and the Service")
	fs.StringVar(&c.name, "name", "", "name of the rollout, for its state and lease (default: the stable Deployment's name)")
	fs.StringVar(&c.stable, "stable", "", "stable Deployment (required)")
	fs.StringVar(&c.canary, "canary", "", "canary Deployment (required without -image)")
	fs.StringVar(&c.image, "image", "", "new release's image: make the canary \"<stable>-canary\" from the stable Deployment with it (instead of -canary)")
	fs.StringVar(&c.service, "service", "", "Service in front of both Deployments (required)")
	fs.IntVar(&c.total, "total", 0, "replicas the two Deployments share (default: their sum at the start)")
	fs.StringVar(&c.prometheus, "prometheus", "", "Prometheus base URL (required)")
	fs.StringVar(&c.metrics, "metrics", "", `PromQL label matchers selecting the canary's requests, e.g. app="web",version="v2" (required)`)
	fs.StringVar(&steps, "steps", "10,50,100", "canary weights in percent, increasing, ending at 100")
	fs.Float64Var(&c.minSuccess, "min-success", 0.99, "lowest acceptable share of non-5xx requests")
	fs.IntVar(&c.count, "count", 3, "measurements after each weight")
	fs.DurationVar(&c.interval, "interval", 10*time.Second, "time between measurements")
	fs.DurationVar(&c.window, "window", time.Minute, "range the success rate is computed over")
	fs.BoolVar(&c.pauseOnMissing, "pause-on-missing", false, "pause (keep the weight) instead of rolling back when metrics are missing")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Minute, "give up after this long (the rollout resumes on the next run)")
	fs.StringVar(&c.stateKeyFile, "state-key-file", "", "file of at least 32 random bytes that authenticates the rollout's state in the cluster (required)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	var errs []error
	for _, s := range strings.Split(steps, ",") {
		w, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
		if err != nil {
			errs = append(errs, fmt.Errorf("-steps: %q is not a whole number of percent", s))
			continue
		}
		c.steps = append(c.steps, int32(w))
	}
	for _, f := range []struct{ name, value string }{
		{"stable", c.stable}, {"service", c.service}, {"prometheus", c.prometheus}, {"metrics", c.metrics},
		{"state-key-file", c.stateKeyFile},
	} {
		if f.value == "" {
			errs = append(errs, fmt.Errorf("-%s is required", f.name))
		}
	}
	switch {
	case c.image == "" && c.canary == "":
		errs = append(errs, errors.New("-canary is required (or -image, to make the canary)"))
	case c.image != "" && c.canary != "":
		errs = append(errs, errors.New("-canary and -image: give one (-image makes the canary <stable>-canary)"))
	case c.image != "":
		c.canary = c.stable + rollout.CanarySuffix
	}
	if c.name == "" {
		c.name = c.stable
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(fs.Output(), err)
		fs.Usage()
		return c, err
	}
	return c, nil
}
