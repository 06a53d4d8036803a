package report_test

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/scan/report"
)

func sampleReport() *report.Report {
	return &report.Report{
		Target: "sha256:abc",
		Findings: []report.Finding{
			{ID: "CVE-low", Package: "zlib", Version: "1", Type: "deb", Severity: report.Low, FixState: report.FixStateWontFix},
			{ID: "GHSA-med", Package: "a\tb", Version: "2", Type: "npm", Severity: report.Medium, FixedIn: []string{"3"}},
			{ID: "CVE-crit", Package: "openssl", Version: "3", Type: "deb", Severity: report.Critical,
				CVSS: []report.CVSS{{Version: "3.1", Vector: "CVSS:3.1/AV:N", Score: 9.8}}, Locations: []string{"/var/lib/dpkg/status"}},
		},
		Tool: &report.Tool{Name: "grype", Version: "v0.121.2", DBSchema: "v6.1.10",
			DBBuilt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
}

func TestWriteTable(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, sampleReport().WriteTable(&buf))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 4)
	assert.Regexp(t, `^NAME\s+INSTALLED\s+FIXED IN\s+TYPE\s+VULNERABILITY\s+SEVERITY$`, lines[0])
	assert.Regexp(t, `^openssl\s+3\s+deb\s+CVE-crit\s+Critical$`, lines[1])
	assert.Regexp(t, `^a b\s+2\s+3\s+npm\s+GHSA-med\s+Medium$`, lines[2], "tabs in cells are replaced")
	assert.Contains(t, lines[3], "(won't fix)")

	buf.Reset()
	require.NoError(t, (&report.Report{}).WriteTable(&buf))
	assert.Equal(t, "No vulnerabilities found\n", buf.String())
}

func TestWriteSARIF(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, sampleReport().WriteSARIF(&buf))
	var log map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &log))
	assert.Equal(t, "2.1.0", log["version"])
	run := log["runs"].([]any)[0].(map[string]any)
	rules := run["tool"].(map[string]any)["driver"].(map[string]any)["rules"].([]any)
	results := run["results"].([]any)
	require.Len(t, rules, 3)
	require.Len(t, results, 3)
	levels := []string{}
	for i, r := range results {
		res := r.(map[string]any)
		levels = append(levels, res["level"].(string))
		assert.Equal(t, float64(i), res["ruleIndex"])
	}
	assert.Equal(t, []string{"error", "warning", "note"}, levels)
	props := rules[0].(map[string]any)["properties"].(map[string]any)
	assert.Equal(t, "9.8", props["security-severity"])
	assert.Equal(t, "5.5", rules[1].(map[string]any)["properties"].(map[string]any)["security-severity"])
	loc := results[0].(map[string]any)["locations"].([]any)[0].(map[string]any)["physicalLocation"].(map[string]any)
	assert.Equal(t, "var/lib/dpkg/status", loc["artifactLocation"].(map[string]any)["uri"])
	loc = results[1].(map[string]any)["locations"].([]any)[0].(map[string]any)["physicalLocation"].(map[string]any)
	assert.Equal(t, "sha256:abc", loc["artifactLocation"].(map[string]any)["uri"])
}

func TestWriteJSONRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	in := sampleReport()
	in.Suppressed = []report.Suppression{{Finding: in.Findings[0], By: "ignore rule 1", Reason: "r"}}
	require.NoError(t, in.WriteJSON(&buf))
	var out report.Report
	require.NoError(t, json.Unmarshal(buf.Bytes(), &out))
	assert.Equal(t, in.Findings, out.Findings)
	assert.Equal(t, in.Suppressed, out.Suppressed)
	assert.True(t, in.Tool.DBBuilt.Equal(out.Tool.DBBuilt))
}

// The plain table a CI log shows, most severe first.
func ExampleReport_WriteTable() {
	r := &report.Report{Target: "sha256:abc", Findings: []report.Finding{
		{ID: "GHSA-ppp9-7jff-5vj2", Package: "golang.org/x/text", Version: "v0.3.6", Type: "go-module", FixedIn: []string{"0.3.7"}, Severity: report.High},
		{ID: "CVE-2023-4911", Package: "libc6", Version: "2.36-9+deb12u2", Type: "deb", FixedIn: []string{"2.36-9+deb12u3"}, Severity: report.High},
	}}
	_ = r.WriteTable(os.Stdout)
	// Output:
	// NAME               INSTALLED       FIXED IN        TYPE       VULNERABILITY        SEVERITY
	// golang.org/x/text  v0.3.6          0.3.7           go-module  GHSA-ppp9-7jff-5vj2  High
	// libc6              2.36-9+deb12u2  2.36-9+deb12u3  deb        CVE-2023-4911        High
}
