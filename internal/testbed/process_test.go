package testbed_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/internal/testbed"
)

// start starts sh -c script and stops it when the test ends.
func start(t *testing.T, ctx context.Context, cfg testbed.ProcessConfig, script string) *testbed.Process {
	t.Helper()
	sh, err := exec.LookPath("sh")
	require.NoError(t, err)
	cfg.Bin, cfg.Args = sh, []string{"-c", script}
	p, err := testbed.StartProcess(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(p.Stop)
	return p
}

// exitsWithin fails the test unless p exits within d.
func exitsWithin(t *testing.T, p *testbed.Process, d time.Duration) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-p.Done():
		return
	default:
	}
	select {
	case <-p.Done():
	case <-timer.C:
		t.Fatalf("%s still runs after %s", p.Name(), d)
	}
}

// never is a check that never passes.
func never(context.Context) error { return errors.New("not ready yet") }

func TestWaitFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		script  string
		timeout time.Duration
		check   func(context.Context) error
		wantIs  []error
		want    []string // substrings of the error
	}{{
		name:    "ready",
		script:  "echo started; exec sleep 60",
		timeout: 10 * time.Second,
		check:   func(context.Context) error { return nil },
	}, {
		name:    "exited before ready",
		script:  "echo starting; echo 'fatal: bad flag' >&2; exit 3",
		timeout: 10 * time.Second,
		check:   never,
		wantIs:  []error{testbed.ErrExited},
		want:    []string{"waiting for server", "exit status 3", "log of sh", "starting\nfatal: bad flag"},
	}, {
		name:    "port taken",
		script:  "echo 'listen tcp 127.0.0.1:5000: bind: address already in use'; exit 1",
		timeout: 10 * time.Second,
		check:   never,
		wantIs:  []error{testbed.ErrExited, testbed.ErrPortTaken},
	}, {
		name:    "timeout",
		script:  "for i in $(seq 1 40); do echo line $i; done; exec sleep 60",
		timeout: time.Second,
		check:   never,
		wantIs:  []error{context.DeadlineExceeded},
		// The last check's error and 30 lines of the tail.
		want: []string{"last check: not ready yet", "\nline 11\n", "line 40"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := start(t, t.Context(), testbed.ProcessConfig{}, tt.script)
			ctx, cancel := context.WithTimeout(t.Context(), tt.timeout)
			defer cancel()
			err := testbed.WaitFor(ctx, "server", tt.check, p)
			if tt.wantIs == nil && tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, target := range tt.wantIs {
				assert.ErrorIs(t, err, target)
			}
			for _, s := range tt.want {
				assert.Contains(t, err.Error(), s)
			}
			assert.NotContains(t, err.Error(), "line 10\n")
		})
	}
}

func TestWaitForPollsUntilReady(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := start(t, t.Context(), testbed.ProcessConfig{Dir: dir}, "sleep 0.3; echo > ready; exec sleep 60")
	err := testbed.WaitFor(t.Context(), "the ready file", func(context.Context) error {
		_, err := os.Stat(filepath.Join(dir, "ready"))
		return err
	}, p)
	require.NoError(t, err)
	assert.NoError(t, p.Exited())
}

func TestProcessStop(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		script string
		grace  time.Duration
	}{
		{name: "SIGTERM", script: "exec sleep 60", grace: time.Minute},
		{name: "SIGKILL after grace", script: "trap '' TERM; echo trapped; while :; do sleep 0.05; done", grace: 200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := start(t, t.Context(), testbed.ProcessConfig{StopGrace: tt.grace}, tt.script)
			// Let the shell set up its trap before it is signalled.
			require.Eventually(t, func() bool { return p.Tail(1) == "trapped" || tt.grace == time.Minute },
				5*time.Second, 10*time.Millisecond)
			t0 := time.Now()
			p.Stop()
			assert.Less(t, time.Since(t0), tt.grace+5*time.Second)
			exitsWithin(t, p, 0)
			assert.ErrorIs(t, p.Exited(), testbed.ErrExited)
			p.Stop() // a second Stop returns at once
		})
	}
}

func TestProcessContextCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	p := start(t, ctx, testbed.ProcessConfig{}, "exec sleep 60")
	assert.NoError(t, p.Exited())
	cancel()
	exitsWithin(t, p, 10*time.Second)
	assert.ErrorContains(t, p.Exited(), "signal: terminated")
}

func TestProcessEnv(t *testing.T) {
	t.Setenv("REGISTRY_HTTP_ADDR", "0.0.0.0:5000")
	dir := t.TempDir()
	tests := []struct {
		name    string
		env     []string
		want    []string
		notWant []string
	}{{
		name:    "minimal",
		want:    []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + dir},
		notWant: []string{"REGISTRY_HTTP_ADDR"},
	}, {
		name: "given",
		env:  append(os.Environ(), "KWOK_WORKDIR="+dir),
		want: []string{"REGISTRY_HTTP_ADDR=0.0.0.0:5000", "KWOK_WORKDIR=" + dir},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := start(t, t.Context(), testbed.ProcessConfig{Dir: dir, Env: tt.env}, "env; pwd")
			exitsWithin(t, p, 10*time.Second)
			out := p.Tail(1000)
			lines := strings.Split(out, "\n")
			assert.Equal(t, dir, lines[len(lines)-1], "working directory")
			for _, s := range tt.want {
				assert.Contains(t, lines, s)
			}
			for _, s := range tt.notWant {
				assert.NotContains(t, out, s)
			}
		})
	}
}

func TestProcessLogFile(t *testing.T) {
	t.Parallel()
	logFile := filepath.Join(t.TempDir(), "server.log")
	p := start(t, t.Context(), testbed.ProcessConfig{Name: "server", LogFile: logFile}, "echo one; echo two >&2")
	exitsWithin(t, p, 10*time.Second)
	data, err := os.ReadFile(logFile)
	require.NoError(t, err)
	assert.Equal(t, "one\ntwo\n", string(data))
	assert.Equal(t, "two", p.Tail(1))
	assert.ErrorContains(t, p.WithLog(errors.New("boom")), "boom\n--- last lines of the log of server in "+logFile+" ---\none\ntwo")
}

func TestStartProcessFails(t *testing.T) {
	t.Parallel()
	_, err := testbed.StartProcess(t.Context(), testbed.ProcessConfig{Bin: filepath.Join(t.TempDir(), "missing")})
	require.ErrorIs(t, err, os.ErrNotExist)
	assert.ErrorContains(t, err, "start missing")

	_, err = testbed.StartProcess(t.Context(), testbed.ProcessConfig{Bin: "true", LogFile: filepath.Join(t.TempDir(), "no", "dir.log")})
	require.ErrorIs(t, err, os.ErrNotExist)
	assert.ErrorContains(t, err, "create log")
}

func TestExternalProcess(t *testing.T) {
	t.Parallel()
	logFile := filepath.Join(t.TempDir(), "etcd.log")
	var log strings.Builder
	for i := range 100 {
		fmt.Fprintf(&log, "line %d\n", i)
	}
	require.NoError(t, os.WriteFile(logFile, []byte(log.String()), 0o600))
	p := testbed.ExternalProcess("etcd", logFile)
	assert.Equal(t, "line 98\nline 99", p.Tail(2))
	assert.NoError(t, p.Exited())
	assert.Nil(t, p.Done())
	p.Stop()

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err := testbed.WaitFor(ctx, "etcd", never, p)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "--- last lines of the log of etcd in "+logFile+" ---\nline 70\n")

	missing := testbed.ExternalProcess("etcd", filepath.Join(t.TempDir(), "missing.log"))
	assert.Contains(t, missing.Tail(5), "no log")
}

func TestFreeAddr(t *testing.T) {
	t.Parallel()
	addr, err := testbed.FreeAddr()
	require.NoError(t, err)
	l, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	require.NoError(t, l.Close())

	port, err := testbed.FreePort()
	require.NoError(t, err)
	l, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	require.NoError(t, err)
	require.NoError(t, l.Close())
}

func TestRetryOnPortTaken(t *testing.T) {
	t.Parallel()
	other := errors.New("other")
	tests := []struct {
		name      string
		errs      []error // returned by the attempts in turn
		wantCalls int
		wantErr   error
	}{
		{name: "first attempt", errs: []error{nil}, wantCalls: 1},
		{name: "second attempt", errs: []error{testbed.ErrPortTaken, nil}, wantCalls: 2},
		{name: "other error", errs: []error{other}, wantCalls: 1, wantErr: other},
		{name: "gives up", errs: []error{testbed.ErrPortTaken, testbed.ErrPortTaken, testbed.ErrPortTaken}, wantCalls: 3, wantErr: testbed.ErrPortTaken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := testbed.RetryOnPortTaken(func() error {
				calls++
				return tt.errs[calls-1]
			})
			assert.Equal(t, tt.wantCalls, calls)
			assert.ErrorIs(t, err, tt.wantErr)
			if tt.wantErr == nil {
				assert.NoError(t, err)
			}
		})
	}
}

func ExampleStartProcess() {
	ctx := context.Background()
	p, err := testbed.StartProcess(ctx, testbed.ProcessConfig{
		Name: "server",
		Bin:  "/bin/sh",
		Args: []string{"-c", "echo listening; echo oops >&2; exit 1"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Stop()
	err = testbed.WaitFor(ctx, "the server", func(context.Context) error { return errors.New("no answer") }, p)
	fmt.Println(err)
	// Output:
	// waiting for the server: server: process exited: exit status 1
	// --- last lines of the log of server ---
	// listening
	// oops
}
