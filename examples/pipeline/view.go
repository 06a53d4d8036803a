package main

import (
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/shipkit/shipkit/observe"
)

// view shows the job as it runs: it receives the stages' events (it is their
// observer) and is told when each stage starts and ends.
type view interface {
	observe.Observer
	start(stage string)
	finish(stage, outcome, summary string, took time.Duration)
	// detail writes what a finished stage found, indented under it.
	detail(f func(io.Writer) error)
	close()
}

// result is one row of the summary table.
type result struct {
	stage, outcome string
	took           time.Duration
}

// writeSummary writes the table of stages, outcomes and times.
func writeSummary(w io.Writer, results []result, total time.Duration) {
	fmt.Fprintf(w, "\n%-8s %-8s %8s\n", "STAGE", "RESULT", "TIME")
	for _, r := range results {
		took := "-"
		if r.outcome != "skipped" {
			took = seconds(r.took)
		}
		fmt.Fprintf(w, "%-8s %-8s %8s\n", r.stage, r.outcome, took)
	}
	fmt.Fprintf(w, "%-8s %-8s %8s\n", "total", "", seconds(total))
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

// steps tracks the sub-steps of the running stage from its events.
type steps struct {
	running map[string]*running
}

type running struct {
	since time.Time
	msg   string
}

func (s *steps) observe(e observe.Event) (finished string, took time.Duration) {
	if s.running == nil {
		s.running = map[string]*running{}
	}
	key := shortDigests(e.Step)
	if key == "" {
		key = e.Stage
	}
	switch e.Phase {
	case observe.Started:
		s.running[key] = &running{since: time.Now(), msg: e.Message}
	case observe.Progress:
		r := s.running[key]
		if r == nil {
			r = &running{since: time.Now()}
			s.running[key] = r
		}
		r.msg = progress(e)
	case observe.Finished, observe.Failed:
		if r := s.running[key]; r != nil {
			took = time.Since(r.since)
		}
		delete(s.running, key)
		return key, took
	}
	return "", 0
}

var digestRE = regexp.MustCompile(`sha256:[0-9a-f]{64}`)

// shortDigests abbreviates the digests in a step's name to their first 12 hex digits.
func shortDigests(s string) string {
	return digestRE.ReplaceAllStringFunc(s, func(d string) string { return d[:len("sha256:")+12] })
}

// progress renders an event's progress: its counts in bytes for a push, else its
// message.
func progress(e observe.Event) string {
	if e.Total > 0 && strings.HasPrefix(e.Step, "push") {
		return fmt.Sprintf("%s / %s", size(e.Done), size(e.Total))
	}
	if e.Total > 0 {
		return fmt.Sprintf("%d/%d %s", e.Done, e.Total, e.Message)
	}
	return e.Message
}

func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// lines returns the running sub-steps, oldest first.
func (s *steps) lines(now time.Time) []string {
	keys := make([]string, 0, len(s.running))
	for k := range s.running {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool { return s.running[keys[a]].since.Before(s.running[keys[b]].since) })
	out := make([]string, len(keys))
	for i, k := range keys {
		r := s.running[k]
		out[i] = fmt.Sprintf("%s  %s", k, seconds(now.Sub(r.since)))
		if r.msg != "" {
			out[i] += "  " + r.msg
		}
	}
	return out
}

// plain prints one line per stage start and end and per finished sub-step, for logs
// and pipes.
type plain struct {
	mu    sync.Mutex
	w     io.Writer
	steps steps
}

func newPlain(w io.Writer) *plain { return &plain{w: w} }

func (p *plain) Observe(e observe.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	step, took := p.steps.observe(e)
	switch {
	case step == "":
	case e.Phase == observe.Failed:
		fmt.Fprintf(p.w, "    %s failed after %s\n", step, seconds(took))
	default:
		fmt.Fprintf(p.w, "    %s (%s)\n", step, seconds(took))
	}
}

func (p *plain) start(stage string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "==> %s\n", stage)
}

func (p *plain) finish(stage, outcome, summary string, took time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.steps = steps{}
	fmt.Fprintf(p.w, "    %s in %s: %s\n", outcome, seconds(took), summary)
}

func (p *plain) detail(f func(io.Writer) error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = f(&indent{w: p.w, prefix: "    "})
}

func (p *plain) close() {}

// indent prefixes every line written through it.
type indent struct {
	w      io.Writer
	prefix string
	mid    bool // inside a line
}

func (in *indent) Write(b []byte) (int, error) {
	var sb strings.Builder
	for _, c := range string(b) {
		if !in.mid {
			sb.WriteString(in.prefix)
			in.mid = true
		}
		sb.WriteRune(c)
		if c == '\n' {
			in.mid = false
		}
	}
	if _, err := io.WriteString(in.w, sb.String()); err != nil {
		return 0, err
	}
	return len(b), nil
}
