package report_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/scan/report"
)

// sarifSchema compiles the official SARIF 2.1.0 schema in testdata/schema (see its
// README) with format assertions on (uri, uri-reference, date-time).
func sarifSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	const id = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
	f, err := os.Open(filepath.Join("testdata", "schema", "sarif-schema-2.1.0.json"))
	require.NoError(t, err)
	doc, err := jsonschema.UnmarshalJSON(f)
	require.NoError(t, f.Close())
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	require.NoError(t, c.AddResource(id, doc))
	s, err := c.Compile(id)
	require.NoError(t, err)
	return s
}

func TestWriteSARIFValidatesAgainstSchema(t *testing.T) {
	schema := sarifSchema(t)
	full := sampleReport()
	full.Findings = append(full.Findings,
		report.Finding{ID: "GHSA-xxxx", Aliases: []string{"CVE-2024-1"}, Package: "golang.org/x/text", Version: "v0.3.6",
			Type: "go-module", Severity: report.High, FixedIn: []string{"0.3.7", "0.3.8"},
			DataSource: "https://github.com/advisories/GHSA-xxxx", URLs: []string{"https://example.com/a b"},
			Description: "line one\nline \"two\" <b>", Locations: []string{"/usr/local/bin/my app", "/other"}},
		report.Finding{ID: "CVE-unknown", Package: "p", Version: "1", Type: "apk", Severity: report.Unknown,
			Locations: []string{"/lib/apk/db/installed"}},
	)
	tests := []struct {
		name string
		r    *report.Report
	}{
		{"findings", full},
		{"no findings", &report.Report{Target: "sha256:abc"}},
		{"no scanner, no target", &report.Report{Findings: []report.Finding{{ID: "CVE-1", Package: "x"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			require.NoError(t, tt.r.WriteSARIF(&buf))
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(buf.Bytes()))
			require.NoError(t, err)
			assert.NoError(t, schema.Validate(doc), "%s", buf.String())
		})
	}

	// The check can fail, down to the results: a log without its version, or with
	// a level SARIF does not define, is refused.
	var buf bytes.Buffer
	require.NoError(t, full.WriteSARIF(&buf))
	require.Contains(t, buf.String(), `"level": "error"`)
	for _, b := range []string{`{"runs": []}`, strings.Replace(buf.String(), `"level": "error"`, `"level": "fatal"`, 1)} {
		bad, err := jsonschema.UnmarshalJSON(strings.NewReader(b))
		require.NoError(t, err)
		require.Error(t, schema.Validate(bad))
	}
}
