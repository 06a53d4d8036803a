package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMainJobOnTerminal runs the command with its standard output on a
// pseudo-terminal, as a user at a terminal does: it draws the live step list (the
// running stage with a spinner and its sub-steps, redrawn in place) instead of plain
// lines, and leaves one line per stage, the details and the summary table on screen.
func TestMainJobOnTerminal(t *testing.T) {
	master, slave, err := openPTY()
	require.NoError(t, err)
	defer master.Close()
	exe, err := os.Executable()
	require.NoError(t, err)
	wd, err := filepath.Abs(".")
	require.NoError(t, err)
	cmd := exec.Command(exe, "-source", "../hello", "-platforms", "linux/amd64")
	cmd.Dir, cmd.Env = wd, append(os.Environ(), "PIPELINE_TEST_MAIN=1")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = slave, &stderr
	require.NoError(t, cmd.Start())
	require.NoError(t, slave.Close()) // the child holds it now: reads end when it exits

	var raw bytes.Buffer
	read := make(chan error, 1)
	go func() { _, err := io.Copy(&raw, master); read <- err }()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(8 * time.Minute):
		_ = cmd.Process.Kill()
		require.FailNow(t, "the job did not end")
	}
	require.NoError(t, err, "stderr:\n%s", stderr.String())
	err = <-read
	var errno syscall.Errno
	require.True(t, err == nil || errors.As(err, &errno) && errno == syscall.EIO, "reading the terminal: %v", err) // EIO: the other side closed

	out := raw.String()
	final := screen(out)
	t.Logf("final screen:\n%s", final)
	assert.NotContains(t, out, "==> ", "no plain lines on a terminal")
	assert.Regexp(t, `\x1b\[\d+A\r\x1b\[J`, out, "the live area is erased and redrawn in place")
	stages := []string{"build", "push", "sbom", "scan", "sign", "verify", "render", "gate", "deploy"}
	for _, stage := range stages {
		assert.Regexp(t, `[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] `+stage+` +\d+\.\d\ds\r?\n`, out, "stage %s was shown running", stage)
		assert.Regexp(t, `(?m)^✓ `+stage+` +\d+\.\d\ds  \S`, final, "stage %s's line on screen", stage)
		assert.Regexp(t, `(?m)^`+stage+` +ok +\d+\.\d\ds$`, final, "summary row of %s", stage)
	}
	assert.NotRegexp(t, `[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]`, final, "no running stage left on screen")
	// The sub-steps drawn under their stage while they ran are gone from the final
	// screen.
	subs := map[string]bool{}
	for _, m := range regexp.MustCompile(`\r?\n    (\S[^\r\n]*?)  \d+\.\d\ds`).FindAllStringSubmatch(out, -1) {
		subs[m[1]] = true
	}
	t.Logf("sub-steps drawn: %q", slices.Sorted(maps.Keys(subs)))
	assert.GreaterOrEqual(t, len(subs), 3, "sub-steps drawn under the running stages")
	for s := range subs {
		assert.NotRegexp(t, `(?m)^    `+regexp.QuoteMeta(s)+`  \d+\.\d\ds`, final, "a running sub-step is erased when it ends")
	}
	assert.Regexp(t, `(?m)^    golang\.org/x/text +v0\.3\.7 +0\.3\.8 +go-module +GHSA-69ch-w2m2-3vjp +High$`, final, "details indented under their stage")
	assert.Regexp(t, `(?m)^STAGE +RESULT +TIME\n(.*\n){9}total +\d+\.\d\ds\n\nimage 127\.0\.0\.1:\d+/shipkit/hello@sha256:[0-9a-f]{64}\n$`, final)
}

// openPTY opens a pseudo-terminal pair through /dev/ptmx, without cgo or a module
// for it.
func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	var unlock int32
	var n uint32
	if err := ioctl(master, syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("unlock pty: %w", err)
	}
	if err := ioctl(master, syscall.TIOCGPTN, unsafe.Pointer(&n)); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("pty number: %w", err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("open pty %d: %w", n, err)
	}
	return master, slave, nil
}

func ioctl(f *os.File, req uintptr, arg unsafe.Pointer) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno syscall.Errno
	if err := raw.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(arg))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}
