package otel_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOnlyCallersLinkIt checks that no package of the module but this one (and
// programs under examples/, which are callers) depends on this package: the stages
// report through observe.Observer and know nothing of OpenTelemetry. And this
// package needs only the OpenTelemetry API, not the SDK (the caller picks that).
func TestOnlyCallersLinkIt(t *testing.T) {
	const self = "github.com/shipkit/shipkit/observe/otel"
	cmd := exec.CommandContext(t.Context(), "go", "list", "-f", `{{.ImportPath}} {{join .Deps " "}}`, "./...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Greater(t, len(lines), 10)
	for _, line := range lines {
		pkg, deps, _ := strings.Cut(line, " ")
		for _, dep := range strings.Fields(deps) {
			if pkg == self {
				assert.False(t, strings.HasPrefix(dep, "go.opentelemetry.io/otel/sdk"), "%s links the OpenTelemetry SDK (%s)", pkg, dep)
			} else if !strings.HasPrefix(pkg, "github.com/shipkit/shipkit/examples/") {
				assert.NotEqual(t, self, dep, "%s imports %s", pkg, self)
			}
		}
	}
}
