package kube

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// proc is a child process whose standard output and error go to a log file.
type proc struct {
	name string
	log  string // path of the log file
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited; nil for a process envtest runs
	err  error         // how it exited; read only after done is closed
}

// startProc starts bin with args, the environment of this process plus env, and its
// output in logPath.
func startProc(name, logPath string, env []string, bin string, args ...string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create log of %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	return p, nil
}

// exited returns an error when the process has ended.
func (p *proc) exited() error {
	select {
	case <-p.done:
		return p.failed(fmt.Errorf("exited early (%v)", p.err))
	default:
		return nil
	}
}

// stop ends the process: SIGTERM, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// failed wraps err with the name of the process and the tail of its log.
func (p *proc) failed(err error) error {
	return fmt.Errorf("%s: %w\n%s", p.name, err, logTail(p.log, tailLines))
}

// tailLines is how many lines of a component's log an error shows.
const tailLines = 25

// logTail returns the last n lines of the log file at path, headed by its path.
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("--- no log: %v", err)
	}
	defer f.Close()
	const window = 16 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > window {
		_, _ = f.Seek(-window, io.SeekEnd)
	}
	data, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return fmt.Sprintf("--- last lines of %s:\n%s", path, strings.Join(lines, "\n"))
}

// waitFor polls check until it returns nil. It gives up when ctx ends or one of procs
// exits, with the last error of check and the tails of the procs' logs.
func waitFor(ctx context.Context, what string, check func(context.Context) error, procs ...*proc) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, p := range procs {
			if err := p.exited(); err != nil {
				return fmt.Errorf("waiting for %s: %w", what, err)
			}
		}
		last := check(ctx)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			var tails bytes.Buffer
			for _, p := range procs {
				fmt.Fprintf(&tails, "\n%s", logTail(p.log, tailLines))
			}
			return fmt.Errorf("waiting for %s: %w (last: %w)%s", what, ctx.Err(), last, tails.String())
		case <-tick.C:
		}
	}
}

// healthy returns a check that an HTTPS endpoint of a component answers 200. The
// components serve self-signed certificates on 127.0.0.1, so the check trusts any.
func healthy(url string) func(context.Context) error {
	client := &http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // loopback health check
			DisableKeepAlives: true,
		},
	}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
		}
		return nil
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return "", errors.New("find a free port: not a TCP address")
	}
	return fmt.Sprint(addr.Port), nil
}
