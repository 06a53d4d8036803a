package observe

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// The stages of shipkit, as they name themselves in [Event.Stage].
const (
	StageBuild   = "build"
	StageScan    = "scan"
	StageSign    = "sign"
	StageDeploy  = "deploy"
	StageRollout = "rollout"
)

// OrDiscard returns o, or [Discard] when o is nil: what a stage reports to when the
// caller passes no observer.
func OrDiscard(o Observer) Observer {
	if o == nil {
		return Discard{}
	}
	return o
}

// OrDiscardLogger returns l, or a logger that drops every record when l is nil: what
// a stage logs to when the caller passes no logger.
func OrDiscardLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// Step reports one step of a stage to an observer: [Started] once, any number of
// [Progress] events, then [Finished] or [Failed] once. Events after the end are
// dropped, and a step that ends before it started is reported started first, so an
// observer always sees Started before the end. A Step is safe for concurrent use:
// goroutines working on parts of one step (objects, layers, platforms) report their
// progress to it at the same time.
//
// The zero Step and a nil *Step report nothing.
type Step struct {
	obs   Observer
	stage string

	mu      sync.Mutex // orders the events and guards name, total and the phase flags
	total   int64
	name    string
	started bool
	ended   bool
	done    atomic.Int64
}

// NewStep returns a step of stage named name that reports to o (nil: nowhere) and
// has not started yet; total is the number of units it will count through
// [Step.Progress], 0 when unknown. Start it with [Step.Start], or let the first
// event start it.
func NewStep(o Observer, stage, name string, total int64) *Step {
	return &Step{obs: OrDiscard(o), stage: stage, name: name, total: total}
}

// StartStep returns a step that has started with the message msg; see [NewStep].
func StartStep(o Observer, stage, name string, total int64, msg string) *Step {
	s := NewStep(o, stage, name, total)
	s.Start("", msg)
	return s
}

// Start reports the step started with msg. name, when not empty, renames the step
// first, for a step that learns what it works on (a platform, a digest) only once
// under way. A second Start does nothing.
func (s *Step) Start(name, msg string) {
	if s == nil || s.obs == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if name != "" && !s.started {
		s.name = name
	}
	s.startLocked(msg)
}

func (s *Step) startLocked(msg string) {
	if s.started {
		return
	}
	s.started = true
	s.emitLocked(Event{Phase: Started, Message: msg})
}

// Progress reports that one more unit of the step is done, with msg.
func (s *Step) Progress(msg string) {
	s.progress(msg, func() int64 { return s.done.Add(1) })
}

// ProgressTo reports progress the work measures itself, as absolute counts: done
// units of total (0: unknown), e.g. the bytes of a push as go-containerregistry's
// v1.Update reports them. Later events carry these counts, and [Step.Progress]
// counts on from done.
func (s *Step) ProgressTo(done, total int64, msg string) {
	s.progress(msg, func() int64 {
		s.total = total
		s.done.Store(done)
		return done
	})
}

// progress reports a Progress event whose Done count is what count, called with the
// lock held, returns.
func (s *Step) progress(msg string, count func() int64) {
	s.live(func() { s.emitLocked(Event{Phase: Progress, Done: count(), Message: msg}) })
}

// live runs f with the lock held, on a step that reports somewhere and has not
// ended, after reporting it started if it had not.
func (s *Step) live(f func()) {
	if s == nil || s.obs == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	s.startLocked("")
	f()
}

// Done returns how many units [Step.Progress] has counted.
func (s *Step) Done() int64 {
	if s == nil {
		return 0
	}
	return s.done.Load()
}

// Finish reports the step finished with msg.
func (s *Step) Finish(msg string) { s.End(nil, msg) }

// Fail reports the step failed with err and returns err, so a caller can write
// return s.Fail(err).
func (s *Step) Fail(err error) error {
	s.End(err, "")
	return err
}

// End reports the step's end: Failed with err when err is not nil (its message is
// err's), else Finished with msg. Only the first end is reported.
func (s *Step) End(err error, msg string) {
	s.live(func() {
		s.ended = true
		e := Event{Phase: Finished, Done: s.done.Load(), Message: msg}
		if err != nil {
			e.Phase, e.Err, e.Message = Failed, err, err.Error()
		}
		s.emitLocked(e)
	})
}

func (s *Step) emitLocked(e Event) {
	e.Stage, e.Step, e.Total, e.Time = s.stage, s.name, s.total, time.Now()
	s.obs.Observe(e)
}
