package testbed

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
)

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

// fileTail returns the last n lines of the file at path.
func fileTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	const window = 16 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > window {
		_, _ = f.Seek(-window, io.SeekEnd)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	return lastLines(string(data), n)
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
