package build

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGoLinuxArchsMatchToolchain: the architectures NewGo accepts are the ones the
// Go toolchain in use builds for linux; a Go release that adds one fails this test.
func TestGoLinuxArchsMatchToolchain(t *testing.T) {
	out, err := exec.CommandContext(t.Context(), "go", "tool", "dist", "list").Output()
	require.NoError(t, err)
	want := map[string]bool{}
	for _, l := range strings.Fields(string(out)) {
		if arch, ok := strings.CutPrefix(l, "linux/"); ok {
			want[arch] = true
		}
	}
	assert.Equal(t, want, goLinuxArchs)
}
