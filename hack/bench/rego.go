package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/shipkit/shipkit/internal/regobench"
	"github.com/shipkit/shipkit/scan/policy/rego"
)

type regoConfig struct {
	rounds, rules, objects int
	opa, conftest          string
}

// regoCmd compares judging objects with Rego: shipkit's scan/policy/rego in process
// (compiled once, objects evaluated concurrently) with `opa eval` of the same
// policy over the same objects in one process (built from this module's OPA:
// go build -o /tmp/opa github.com/open-policy-agent/opa), and, when -conftest
// names a binary, `conftest test` of the objects file. Issue 16's bound: 50 rules x
// 500 objects <= 1 s. Every round checks that the tools found the same number of
// messages.
func regoCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("rego", flag.ContinueOnError)
	cfg := regoConfig{}
	fs.IntVar(&cfg.rounds, "rounds", 5, "rounds, alternating the tools")
	fs.IntVar(&cfg.rules, "rules", 50, "Rego rules in the policy")
	fs.IntVar(&cfg.objects, "objects", 500, "Deployments judged")
	fs.StringVar(&cfg.opa, "opa", "/tmp/opa", "path of the opa binary (go build -o /tmp/opa github.com/open-policy-agent/opa)")
	fs.StringVar(&cfg.conftest, "conftest", "", "path of a conftest binary to compare with too (optional)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return runRego(ctx, cfg, out)
}

func runRego(ctx context.Context, cfg regoConfig, out io.Writer) error {
	if _, err := os.Stat(cfg.opa); err != nil {
		return fmt.Errorf("opa not found at %s (go build -o /tmp/opa github.com/open-policy-agent/opa, or pass -opa): %w", cfg.opa, err)
	}
	dir, err := os.MkdirTemp("", "shipkit-bench-rego-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	policy := regobench.Policy(cfg.rules)
	objs := regobench.Objects(cfg.objects)
	policyPath := filepath.Join(dir, "policy.rego")
	if err := os.WriteFile(policyPath, []byte(policy), 0o600); err != nil {
		return err
	}
	docs := make([]any, len(objs))
	for i, o := range objs {
		docs[i] = o.Object
	}
	input, err := json.Marshal(docs)
	if err != nil {
		return err
	}
	inputPath := filepath.Join(dir, "objects.json")
	if err := os.WriteFile(inputPath, input, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(out, "rego: %d rules x %d Deployments (%d KB of JSON), %d rounds\n", cfg.rules, cfg.objects, len(input)/1024, cfg.rounds)

	var whole, evalOnly, opaTimes, conftestTimes, shipCPU, opaCPU []time.Duration
	for round := range cfg.rounds {
		cpu0 := selfCPU()
		start := time.Now()
		p, err := rego.Compile(ctx, []rego.Module{{Name: "policy.rego", Source: policy}})
		if err != nil {
			return err
		}
		compiled := time.Now()
		res, err := p.Eval(ctx, objs)
		if err != nil {
			return err
		}
		whole = append(whole, time.Since(start))
		evalOnly = append(evalOnly, time.Since(compiled))
		shipCPU = append(shipCPU, selfCPU()-cpu0)
		want := len(res.Findings)

		d, cpu, n, err := opaEval(ctx, cfg.opa, policyPath, inputPath)
		if err != nil {
			return err
		}
		if n != want {
			return fmt.Errorf("round %d: opa eval found %d messages, shipkit %d", round+1, n, want)
		}
		opaTimes = append(opaTimes, d)
		opaCPU = append(opaCPU, cpu)
		if cfg.conftest != "" {
			d, n, err := conftestTest(ctx, cfg.conftest, policyPath, inputPath)
			if err != nil {
				return err
			}
			if n != want {
				return fmt.Errorf("round %d: conftest found %d messages, shipkit %d", round+1, n, want)
			}
			conftestTimes = append(conftestTimes, d)
		}
		fmt.Fprintf(out, "  round %d: %d messages; shipkit %s (eval %s, CPU %s), opa eval %s (CPU %s)\n", round+1, want,
			whole[round].Round(time.Millisecond), evalOnly[round].Round(time.Millisecond), shipCPU[round].Round(time.Millisecond),
			opaTimes[round].Round(time.Millisecond), cpu.Round(time.Millisecond))
	}
	ship, opa := medianDuration(whole), medianDuration(opaTimes)
	fmt.Fprintf(out, "median: shipkit compile + eval %s (eval only %s), opa eval %s: %.2fx\n",
		ship.Round(time.Millisecond), medianDuration(evalOnly).Round(time.Millisecond), opa.Round(time.Millisecond), float64(ship)/float64(opa))
	sc, oc := medianDuration(shipCPU), medianDuration(opaCPU)
	fmt.Fprintf(out, "median CPU (user + system): shipkit %s, opa eval %s: %.2fx\n", sc.Round(time.Millisecond), oc.Round(time.Millisecond), float64(sc)/float64(oc))
	if len(conftestTimes) > 0 {
		c := medianDuration(conftestTimes)
		fmt.Fprintf(out, "median: conftest test %s: shipkit %.2fx\n", c.Round(time.Millisecond), float64(ship)/float64(c))
	}
	if ship > time.Second {
		fmt.Fprintf(out, "over issue 16's bound of 1 s\n")
	}
	return nil
}

// opaEval runs the policy over every object of the input array in one opa process,
// each object as input, as conftest does, and counts the messages of the deny,
// violation and warn rules.
func opaEval(ctx context.Context, opa, policy, input string) (wall, cpu time.Duration, n int, err error) {
	query := `[doc | some obj in input; doc := data.main with input as obj]`
	cmd := exec.CommandContext(ctx, opa, "eval", "--format", "json", "-d", policy, "-i", input, query)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, 0, 0, fmt.Errorf("opa eval: %w: %s", err, stderr.String())
	}
	wall = time.Since(start)
	cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	var res struct {
		Result []struct {
			Expressions []struct {
				Value []map[string]any `json:"value"`
			} `json:"expressions"`
		} `json:"result"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return 0, 0, 0, fmt.Errorf("opa eval output: %w", err)
	}
	if len(res.Result) != 1 || len(res.Result[0].Expressions) != 1 {
		return 0, 0, 0, errors.New("opa eval: not one result")
	}
	judging := regexp.MustCompile(`^(deny|violation|warn)(_[A-Za-z0-9_]+)?$`)
	for _, doc := range res.Result[0].Expressions[0].Value {
		for rule, v := range doc {
			if list, ok := v.([]any); ok && judging.MatchString(rule) {
				n += len(list)
			}
		}
	}
	return wall, cpu, n, nil
}

// selfCPU returns the user and system CPU time this process has used: under load
// it says more than the wall time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// conftestTest runs conftest test on the objects as a YAML stream (conftest judges
// each document of a stream as one input; a JSON array would be one input) and
// counts its failures and warnings.
func conftestTest(ctx context.Context, conftest, policy, input string) (time.Duration, int, error) {
	raw, err := os.ReadFile(input)
	if err != nil {
		return 0, 0, err
	}
	var docs []json.RawMessage
	if err := json.Unmarshal(raw, &docs); err != nil {
		return 0, 0, err
	}
	var b strings.Builder
	for _, d := range docs {
		b.WriteString("---\n")
		b.Write(d) // JSON is YAML
		b.WriteString("\n")
	}
	stream := strings.TrimSuffix(input, ".json") + ".yaml"
	if err := os.WriteFile(stream, []byte(b.String()), 0o600); err != nil {
		return 0, 0, err
	}
	cmd := exec.CommandContext(ctx, conftest, "test", "--no-color", "-o", "json", "-p", policy, stream)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	d := time.Since(start)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) { // conftest exits 1 on failures
		return 0, 0, fmt.Errorf("conftest: %w: %s", err, stderr.String())
	}
	var res []struct {
		Failures []any `json:"failures"`
		Warnings []any `json:"warnings"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return 0, 0, fmt.Errorf("conftest output: %w: %s", err, stderr.String())
	}
	n := 0
	for _, r := range res {
		n += len(r.Failures) + len(r.Warnings)
	}
	return d, n, nil
}
