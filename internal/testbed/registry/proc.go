package registry

// This file is duplicated in internal/testbed/prom (package prom): both parts run a child
// process the same way. It belongs in package testbed once a third part does.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// startTimeout bounds how long a child process may take to become ready.
const startTimeout = 60 * time.Second

// process is a child process whose output is kept in a bounded buffer.
type process struct {
	name   string
	cancel context.CancelFunc
	log    *tailBuffer
	done   chan struct{} // closed once the process has exited and err is set
	err    error
}

// startProcess starts bin with args in dir. The process is killed when ctx ends, when stop
// is called and, on Linux, when the test binary dies (say, after a test timeout panics).
// It runs with a minimal environment so that no variable of the caller's (REGISTRY_*,
// proxies) changes its configuration.
func startProcess(ctx context.Context, bin string, args []string, dir string) (*process, error) {
	ctx, cancel := context.WithCancel(ctx)
	p := &process{name: filepath.Base(bin), cancel: cancel, log: &tailBuffer{}, done: make(chan struct{})}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + dir}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = 5 * time.Second
	started := make(chan error, 1)
	go func() {
		// The parent-death signal fires when the thread that started the child exits, so
		// the child is started on a thread locked to this goroutine until Wait returns.
		// The goroutine ends locked, so the thread is never reused.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		cancel()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	return p, nil
}

// stop kills the process and waits until it has exited.
func (p *process) stop() {
	p.cancel()
	<-p.done
}

// withLog adds the tail of the process's log to err.
func (p *process) withLog(err error) error {
	return fmt.Errorf("%w\n--- %s log (tail) ---\n%s", err, p.name, p.log.tail(30))
}

// waitReady calls ready until it returns nil, the process exits, ctx ends or
// startTimeout passes. Errors carry the tail of the process's log.
func (p *process) waitReady(ctx context.Context, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return p.withLog(fmt.Errorf("%s exited before it was ready: %v", p.name, p.err))
		case <-ctx.Done():
			return p.withLog(fmt.Errorf("%s not ready: %w (last check: %v)", p.name, ctx.Err(), err))
		case <-tick.C:
		}
	}
}

// portTaken reports whether the process exited because its port was taken between
// freeAddr and its start, in which case the caller tries another port.
func (p *process) portTaken() bool {
	select {
	case <-p.done:
		return strings.Contains(p.log.String(), "address already in use")
	default:
		return false
	}
}

// freeAddr returns "127.0.0.1:PORT" with a port that was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port on 127.0.0.1: %w", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", fmt.Errorf("release port %s: %w", addr, err)
	}
	return addr, nil
}

// errRetry reports that a start attempt lost its port to another process.
var errRetry = errors.New("port taken, retry")

// maxLog bounds the log a tailBuffer keeps; it then drops the older half.
const maxLog = 64 << 10

// tailBuffer is an io.Writer that keeps the last bytes written to it.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

// Write implements io.Writer.
func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > maxLog {
		t.b = append([]byte(nil), t.b[len(t.b)-maxLog/2:]...)
	}
	return len(p), nil
}

// String returns everything kept.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// tail returns the last n lines.
func (t *tailBuffer) tail(n int) string {
	lines := strings.Split(strings.TrimRight(t.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
