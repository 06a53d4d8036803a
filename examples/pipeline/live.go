package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/shipkit/shipkit/observe"
)

// live draws the running stage and its sub-steps at the bottom of a terminal,
// redrawn ten times a second and whenever a sub-step starts (so a step shorter than
// a tick is still seen), and prints each finished stage above them for good.
type live struct {
	mu     sync.Mutex
	w      io.Writer
	stage  string
	since  time.Time
	steps  steps
	drawn  int // lines of the live area on screen
	frame  int
	done   chan struct{}
	closed sync.WaitGroup
}

var spinner = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

func newLive(w io.Writer) *live {
	l := &live{w: w, done: make(chan struct{})}
	l.closed.Add(1)
	go func() {
		defer l.closed.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-l.done:
				return
			case <-t.C:
				l.mu.Lock()
				l.frame++
				l.redraw()
				l.mu.Unlock()
			}
		}
	}()
	return l
}

func (l *live) Observe(e observe.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.steps.observe(e)
	if e.Phase == observe.Started && l.stage != "" {
		l.redraw()
	}
}

func (l *live) start(stage string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stage, l.since, l.steps = stage, time.Now(), steps{}
	l.redraw()
}

func (l *live) finish(stage, outcome, summary string, took time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.clear()
	mark := map[string]string{"ok": "\x1b[32m✓\x1b[0m", "denied": "\x1b[31m✗\x1b[0m", "failed": "\x1b[31m✗\x1b[0m"}[outcome]
	fmt.Fprintf(l.w, "%s %-7s %7s  %s\n", mark, stage, seconds(took), summary)
	l.stage = ""
}

func (l *live) detail(f func(io.Writer) error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.clear()
	_ = f(&indent{w: l.w, prefix: "    "})
}

func (l *live) close() {
	close(l.done)
	l.closed.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.clear()
}

// clear erases the live area.
func (l *live) clear() {
	if l.drawn > 0 {
		fmt.Fprintf(l.w, "\x1b[%dA\r\x1b[J", l.drawn)
		l.drawn = 0
	}
}

// redraw draws the live area again: the stage with its spinner and time, then its
// running sub-steps.
func (l *live) redraw() {
	l.clear()
	if l.stage == "" {
		return
	}
	now := time.Now()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-7s %7s\n", spinner[l.frame%len(spinner)], l.stage, seconds(now.Sub(l.since)))
	lines := l.steps.lines(now)
	for _, s := range lines {
		fmt.Fprintf(&b, "    %s\n", s)
	}
	_, _ = io.WriteString(l.w, b.String())
	l.drawn = 1 + len(lines)
}
