package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"time"
)

// DefaultStopGrace is how long [Process.Stop] waits after SIGTERM before it kills the
// process, unless [ProcessConfig.StopGrace] says otherwise.
const DefaultStopGrace = 10 * time.Second

// ErrExited marks an error caused by a child process that has exited.
var ErrExited = errors.New("process exited")

// ProcessConfig describes a child process for [StartProcess].
type ProcessConfig struct {
	// Name names the process in errors and log headings; the default is the base name
	// of Bin.
	Name string
	// Bin is the path of the binary.
	Bin string
	// Args are the arguments, without the name of the binary.
	Args []string
	// Dir is the working directory; the default is the current one.
	Dir string
	// Env is the whole environment of the process. Nil gives it a minimal one: PATH,
	// and HOME and TMPDIR set to Dir when Dir is set, so that no variable of the
	// caller's (REGISTRY_*, proxies) changes a server's configuration. Pass
	// append(os.Environ(), ...) to hand the caller's environment on.
	Env []string
	// LogFile, when set, is a file that is created (or truncated) and receives the
	// process's standard output and error, besides the tail [Process.Tail] keeps.
	LogFile string
	// StopGrace is how long [Process.Stop] and the end of the context of
	// [StartProcess] wait after SIGTERM before they kill the process, and how long the
	// output is still read after the process has exited if a child of its own keeps
	// it open. The default is [DefaultStopGrace].
	StopGrace time.Duration
}

// Process is a child process whose output is kept, so that errors can show the tail
// of its log. Get one from [StartProcess], or from [ExternalProcess] for a process
// that something else runs.
type Process struct {
	name    string
	logFile string      // path of the log file, "" if none
	log     *tailBuffer // nil for an external process, whose log is only in logFile
	pid     int         // 0 if external
	cancel  context.CancelFunc
	done    chan struct{} // closed once the process has exited and err is set; nil if external
	err     error         // how the process exited
}

// StartProcess starts a child process and returns at once; use [WaitFor] to wait
// until it is ready. The process gets SIGTERM, and SIGKILL after the stop grace, when
// ctx ends or [Process.Stop] is called. On Linux the kernel also kills it when the
// test binary dies without stopping it (say, when a test timeout panics), so no server
// outlives its tests.
func StartProcess(ctx context.Context, cfg ProcessConfig) (*Process, error) {
	name := cfg.Name
	if name == "" {
		name = filepath.Base(cfg.Bin)
	}
	p := &Process{name: name, logFile: cfg.LogFile, log: &tailBuffer{}, done: make(chan struct{})}
	var out io.Writer = p.log
	var logFile *os.File
	if cfg.LogFile != "" {
		f, err := os.Create(cfg.LogFile)
		if err != nil {
			return nil, fmt.Errorf("start %s: create log: %w", name, err)
		}
		logFile, out = f, io.MultiWriter(f, p.log)
	}

	ctx, p.cancel = context.WithCancel(ctx)
	cmd := exec.CommandContext(ctx, cfg.Bin, cfg.Args...)
	cmd.Dir = cfg.Dir
	cmd.Env = cfg.Env
	if cmd.Env == nil {
		cmd.Env = minimalEnv(cfg.Dir)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	cmd.Cancel = func() error { return terminate(cmd.Process) }
	cmd.WaitDelay = cfg.StopGrace
	if cmd.WaitDelay <= 0 {
		cmd.WaitDelay = DefaultStopGrace
	}

	started := make(chan error, 1)
	go func() {
		// The kernel sends the parent-death signal when the thread that started the
		// child exits, not the process: start the child on a thread locked to this
		// goroutine until Wait returns. The goroutine ends locked, so the thread is
		// never reused.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p.pid = cmd.Process.Pid
		started <- nil
		p.err = cmd.Wait()
		if logFile != nil {
			_ = logFile.Close()
		}
		close(p.done)
	}()
	if err := <-started; err != nil {
		p.cancel()
		if logFile != nil {
			_ = logFile.Close()
		}
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return p, nil
}

// ExternalProcess returns a Process for a process that something else runs (say,
// envtest) and that writes its log to logFile. Its [Process.Tail] reads that file; it
// never reports an exit, and [Process.Stop] does nothing.
func ExternalProcess(name, logFile string) *Process {
	return &Process{name: name, logFile: logFile, cancel: func() {}}
}

// terminate asks a process to end: SIGTERM, or a kill where SIGTERM cannot be sent.
func terminate(p *os.Process) error {
	err := p.Signal(syscall.SIGTERM)
	if err == nil || errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return p.Kill()
}

// minimalEnv is the environment of a process whose [ProcessConfig.Env] is nil.
func minimalEnv(dir string) []string {
	env := []string{"PATH=" + os.Getenv("PATH")}
	if dir != "" {
		env = append(env, "HOME="+dir, "TMPDIR="+dir)
	}
	return env
}

// Name returns the name of the process.
func (p *Process) Name() string { return p.name }

// PID returns the process id, or 0 for an [ExternalProcess].
func (p *Process) PID() int { return p.pid }

// Done returns a channel that is closed once the process has exited. For an
// [ExternalProcess] it is nil: it never closes.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited returns nil while the process runs. Once it has exited, it returns an error
// that wraps [ErrExited] and how it exited (an *exec.ExitError, say), with the tail of
// its log. The error also wraps [ErrPortTaken] when the log says that its address was
// in use.
func (p *Process) Exited() error {
	select {
	case <-p.done:
	default:
		return nil
	}
	err := fmt.Errorf("%s: %w", p.name, ErrExited)
	if p.err != nil {
		err = fmt.Errorf("%s: %w: %w", p.name, ErrExited, p.err)
	}
	if portTaken(p.log.String()) {
		err = fmt.Errorf("%w: %w", ErrPortTaken, err)
	}
	return p.WithLog(err)
}

// Stop ends the process and waits until it has exited: SIGTERM, then SIGKILL after
// the stop grace. It is safe to call more than once, and does nothing for an
// [ExternalProcess].
func (p *Process) Stop() {
	p.cancel()
	if p.done != nil {
		<-p.done
	}
}

// Tail returns the last n lines of the process's log.
func (p *Process) Tail(n int) string {
	if p.log == nil {
		return fileTail(p.logFile, n)
	}
	return lastLines(p.log.String(), n)
}

// tailLines is how many lines of a log [Process.WithLog] adds to an error.
const tailLines = 30

// WithLog returns err with the last lines of the process's log appended.
func (p *Process) WithLog(err error) error {
	return fmt.Errorf("%w\n%s", err, p.logHeading(tailLines))
}

// logHeading returns the last n lines of the log under a heading that names the
// process and, if there is one, its log file.
func (p *Process) logHeading(n int) string {
	where := ""
	if p.logFile != "" {
		where = " in " + p.logFile
	}
	return fmt.Sprintf("--- last lines of the log of %s%s ---\n%s", p.name, where, p.Tail(n))
}
