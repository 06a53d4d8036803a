package main

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/observe"
)

// TestLiveView drives the terminal view as the job does and reads what it drew the
// way a terminal would: running stages and sub-steps appear and are updated in place,
// then give way to one line per finished stage, its details and the summary table.
func TestLiveView(t *testing.T) {
	var out syncBuffer
	v := newLive(&out)
	term := func() string { return screen(out.String()) }

	v.start("build")
	assert.Regexp(t, `^[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] build +\d+\.\d\ds\n$`, term(), "the running stage at once")
	v.Observe(observe.Event{Stage: "build", Step: "compile linux/amd64", Phase: observe.Started})
	v.Observe(observe.Event{Stage: "build", Step: "compile linux/arm64", Phase: observe.Started, Message: "go build"})
	waitScreen(t, &out, func(s string) bool { return strings.Contains(s, "compile linux/arm64") })
	assert.Regexp(t, `^[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] build +\d+\.\d\ds\n`+
		`    compile linux/amd64  \d+\.\d\ds\n`+
		`    compile linux/arm64  \d+\.\d\ds  go build\n$`, term(), "sub-steps under the stage, oldest first")

	v.Observe(observe.Event{Stage: "build", Step: "compile linux/amd64", Phase: observe.Finished})
	waitScreen(t, &out, func(s string) bool { return !strings.Contains(s, "linux/amd64") })
	assert.Regexp(t, `^[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] build +\d+\.\d\ds\n    compile linux/arm64  \d+\.\d\ds  go build\n$`, term(),
		"a finished sub-step leaves the live area")
	v.finish("build", "ok", "2 platforms", 1500*time.Millisecond)
	assert.Equal(t, "✓ build     1.50s  2 platforms\n", term(), "the stage's line replaces its live area")

	digest := "sha256:" + strings.Repeat("ab", 32)
	v.start("push")
	for _, done := range []int64{512, 3 << 20} {
		v.Observe(observe.Event{Stage: "push", Step: "push " + digest, Phase: observe.Progress, Done: done, Total: 3 << 20})
		want := map[int64]string{512: "512 B / 3.0 MiB", 3 << 20: "3.0 MiB / 3.0 MiB"}[done]
		waitScreen(t, &out, func(s string) bool { return strings.Contains(s, want) })
		assert.Regexp(t, `^✓ build     1\.50s  2 platforms\n[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] push +\d+\.\d\ds\n`+
			`    push sha256:abababababab  \d+\.\d\ds  `+regexp.QuoteMeta(want)+`\n$`, term(),
			"progress updated in place, the digest shortened")
	}
	v.finish("push", "ok", "pushed", 2*time.Second)
	v.detail(func(w io.Writer) error { _, err := io.WriteString(w, "TYPE  COUNT\ngo-module  7\n"); return err })
	v.start("gate")
	v.finish("gate", "denied", "1 reason(s)", 10*time.Millisecond)
	v.close()
	frames := out.String() // no redraw after close
	time.Sleep(250 * time.Millisecond)
	assert.Equal(t, frames, out.String(), "nothing is drawn after close")
	writeSummary(&out, []result{{"build", "ok", 1500 * time.Millisecond}, {"push", "ok", 2 * time.Second},
		{"gate", "denied", 10 * time.Millisecond}, {"deploy", "skipped", 0}}, 4*time.Second)

	assert.Equal(t, `✓ build     1.50s  2 platforms
✓ push      2.00s  pushed
    TYPE  COUNT
    go-module  7
✗ gate      0.01s  1 reason(s)

STAGE    RESULT       TIME
build    ok          1.50s
push     ok          2.00s
gate     denied      0.01s
deploy   skipped         -
total                4.00s
`, term())
	raw := out.String()
	assert.Contains(t, raw, "\x1b[32m✓\x1b[0m build", "a green mark on a terminal")
	assert.Contains(t, raw, "\x1b[31m✗\x1b[0m gate", "a red mark for a denial")
	assert.GreaterOrEqual(t, strings.Count(raw, "\r\x1b[J"), 5, "the live area was erased and redrawn")
}

// waitScreen waits until the screen drawn into out satisfies ok; the live view
// redraws ten times a second.
func waitScreen(t *testing.T, out *syncBuffer, ok func(string) bool) {
	t.Helper()
	require.Eventually(t, func() bool { return ok(screen(out.String())) }, 10*time.Second, 20*time.Millisecond,
		"screen never got there:\n%s", screen(out.String()))
}

// screen returns what a terminal shows after the output: it applies carriage return,
// newline, cursor up (ESC [ n A) and erase below (ESC [ J), and drops colours (ESC [
// ... m). Any other escape sequence is an error, shown in the result.
func screen(out string) string {
	var lines [][]rune
	row, col := 0, 0
	put := func(r rune) {
		for len(lines) <= row {
			lines = append(lines, nil)
		}
		for len(lines[row]) < col {
			lines[row] = append(lines[row], ' ')
		}
		if col < len(lines[row]) {
			lines[row][col] = r
		} else {
			lines[row] = append(lines[row], r)
		}
		col++
	}
	csi := regexp.MustCompile(`^\x1b\[([0-9;]*)([A-Za-z])`)
	for i := 0; i < len(out); {
		if m := csi.FindStringSubmatch(out[i:]); m != nil {
			i += len(m[0])
			switch m[2] {
			case "A":
				n, _ := strconv.Atoi(m[1])
				row = max(row-max(n, 1), 0)
			case "J":
				if row < len(lines) {
					lines[row] = lines[row][:min(col, len(lines[row]))]
					lines = lines[:row+1]
				}
			case "m":
			default:
				return fmt.Sprintf("unexpected escape sequence %q", m[0])
			}
			continue
		}
		r, size := []rune(out[i:])[0], len(string([]rune(out[i:])[0]))
		i += size
		switch r {
		case '\r':
			col = 0
		case '\n':
			row, col = row+1, 0
			for len(lines) <= row {
				lines = append(lines, nil)
			}
		default:
			put(r)
		}
	}
	var b strings.Builder
	for i, l := range lines {
		b.WriteString(string(l))
		if i < len(lines)-1 {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func TestScreen(t *testing.T) {
	for in, want := range map[string]string{
		"a\nb\n": "a\nb\n",
		"a\nspin 1\n  step\n\x1b[2A\r\x1b[Jdone\n": "a\ndone\n",
		"abc\rX\n":             "Xbc\n",
		"\x1b[31m✗\x1b[0m x\n": "✗ x\n",
		"a\x1b[2Kb":            `unexpected escape sequence "\x1b[2K"`,
	} {
		assert.Equal(t, want, screen(in), "%q", in)
	}
}

// syncBuffer is a bytes.Buffer that the live view's ticker and the test may use at
// once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
