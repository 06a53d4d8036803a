package testbed_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/internal/testbed"
)

// orphanEnv makes the test binary run as the helper of TestProcessDiesWithTestBinary.
const orphanEnv = "SHIPKIT_TESTBED_ORPHAN_HELPER"

// TestProcessDiesWithTestBinary runs the test binary as a helper that starts a child
// and exits without stopping it, as a test binary does when a test timeout panics. The
// kernel must kill the child.
func TestProcessDiesWithTestBinary(t *testing.T) {
	if os.Getenv(orphanEnv) != "" {
		p, err := testbed.StartProcess(t.Context(), testbed.ProcessConfig{Bin: "sleep", Args: []string{"60"}})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(p.PID())
		os.Exit(0) // no Stop, no cleanup
	}
	t.Parallel()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestProcessDiesWithTestBinary$")
	cmd.Env = append(os.Environ(), orphanEnv+"=1")
	out, err := cmd.Output()
	require.NoError(t, err, "helper: %s", out)
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	require.NoError(t, err, "helper: %s", out)
	assert.Eventually(t, func() bool { return !running(pid) }, 10*time.Second, 20*time.Millisecond,
		"child %d of the helper outlives it", pid)
}

// TestProcessSurvivesThreadExits checks that the child is not killed when threads of
// the test binary exit: the parent-death signal fires when the thread that started
// the child exits, and Go ends the thread of a goroutine that exits locked to it. A
// child started on a thread that goes back to the runtime's pool dies here.
func TestProcessSurvivesThreadExits(t *testing.T) {
	t.Parallel()
	p, err := testbed.StartProcess(t.Context(), testbed.ProcessConfig{Bin: "sleep", Args: []string{"60"}})
	require.NoError(t, err)
	defer p.Stop()
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			runtime.LockOSThread()            // and exit locked: the thread ends with the goroutine
			time.Sleep(20 * time.Millisecond) // each holds a thread: the runtime needs idle ones too
		})
	}
	wg.Wait()
	time.Sleep(100 * time.Millisecond)
	assert.NoError(t, p.Exited())
	assert.True(t, running(p.PID()))
}

// running reports whether process pid exists and is not a zombie.
func running(pid int) bool {
	f, err := os.Open(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	// pid (comm) state ...
	i := strings.LastIndexByte(line, ')')
	return i >= 0 && i+2 < len(line) && line[i+2] != 'Z' && line[i+2] != 'X'
}
