package suppress_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/scan/suppress"
)

const target = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

func sample() *report.Report {
	return &report.Report{Target: target, Findings: []report.Finding{
		{ID: "GHSA-69ch-w2m2-3vjp", Aliases: []string{"CVE-2022-32149"}, Package: "golang.org/x/text", Version: "v0.3.6",
			Type: "go-module", PURL: "pkg:golang/golang.org/x/text@v0.3.6", FixState: "fixed", Severity: report.High},
		{ID: "CVE-2023-4911", Package: "libc6", Version: "2.36-9+deb12u2", Type: "deb",
			PURL: "pkg:deb/debian/libc6@2.36-9%2Bdeb12u2?arch=amd64", FixState: "fixed", Severity: report.High},
		{ID: "CVE-2024-0001", Package: "libc6", Version: "2.36-9+deb12u2", Type: "deb", FixState: "wont-fix", Severity: report.Low},
	}}
}

func remaining(r *report.Report) []string {
	out := []string{}
	for _, f := range r.Findings {
		out = append(out, f.ID)
	}
	return out
}

func TestParseRules(t *testing.T) {
	rules, err := suppress.ParseRules([]byte(`
ignore:
  - id: CVE-2023-4911
    reason: r1
    expires: 2026-03-31
  - fix-state: wont-fix
    reason: r2
  - package: golang.org/x/text
    version: v0.3.6
    type: go-module
    reason: r3
    expires: "2026-03-31T12:00:00+02:00"
`))
	require.NoError(t, err)
	require.Len(t, rules, 3)
	endOfDay := time.Date(2026, 3, 31, 23, 59, 59, 999999999, time.UTC)
	assert.True(t, rules[0].Expires.Equal(endOfDay), "a date expires at the end of the day: %s", rules[0].Expires)
	assert.True(t, rules[1].Expires.IsZero())
	assert.True(t, rules[2].Expires.Equal(time.Date(2026, 3, 31, 10, 0, 0, 0, time.UTC)))

	empty, err := suppress.ParseRules([]byte("ignore: []\n"))
	require.NoError(t, err)
	assert.Empty(t, empty)
}

func TestParseRulesErrors(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"not yaml", "ignore: [", "parse ignore rules"},
		{"unknown field", "ignore:\n  - id: X\n    reason: r\n    severity: high\n", "unknown field"},
		{"matches everything", "ignore:\n  - reason: r\n", "matches everything"},
		{"no reason", "ignore:\n  - id: CVE-1\n", "no reason"},
		{"bad fix state", "ignore:\n  - fix-state: later\n    reason: r\n", `unknown fix-state "later"`},
		{"bad expiry", "ignore:\n  - id: X\n    reason: r\n    expires: next week\n", "neither a date"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := suppress.ParseRules([]byte(tt.doc))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestRules(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	past := suppress.Date{Time: now.Add(-time.Hour)}
	future := suppress.Date{Time: now.Add(time.Hour)}
	tests := []struct {
		name string
		rule suppress.Rule
		want []string
	}{
		{"by id", suppress.Rule{ID: "CVE-2023-4911", Reason: "r"}, []string{"GHSA-69ch-w2m2-3vjp", "CVE-2024-0001"}},
		{"by alias", suppress.Rule{ID: "cve-2022-32149", Reason: "r"}, []string{"CVE-2023-4911", "CVE-2024-0001"}},
		{"by package", suppress.Rule{Package: "libc6", Reason: "r"}, []string{"GHSA-69ch-w2m2-3vjp"}},
		{"by fix state", suppress.Rule{FixState: "wont-fix", Reason: "r"}, []string{"GHSA-69ch-w2m2-3vjp", "CVE-2023-4911"}},
		{"package and other version", suppress.Rule{Package: "libc6", Version: "2.36-9+deb12u3", Reason: "r"},
			[]string{"GHSA-69ch-w2m2-3vjp", "CVE-2023-4911", "CVE-2024-0001"}},
		{"package and type", suppress.Rule{Package: "libc6", Type: "rpm", Reason: "r"},
			[]string{"GHSA-69ch-w2m2-3vjp", "CVE-2023-4911", "CVE-2024-0001"}},
		{"expired", suppress.Rule{ID: "CVE-2023-4911", Reason: "r", Expires: past},
			[]string{"GHSA-69ch-w2m2-3vjp", "CVE-2023-4911", "CVE-2024-0001"}},
		{"not yet expired", suppress.Rule{ID: "CVE-2023-4911", Reason: "r", Expires: future},
			[]string{"GHSA-69ch-w2m2-3vjp", "CVE-2024-0001"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := suppress.Apply(sample(), now, suppress.Rules{tt.rule})
			assert.Equal(t, tt.want, remaining(got))
			assert.Len(t, got.Suppressed, 3-len(tt.want))
		})
	}
}

func vexDoc(statements string) []byte {
	return []byte(`{"@context":"https://openvex.dev/ns/v0.2.0","@id":"https://example.com/vex/1","statements":[` + statements + `]}`)
}

func TestOpenVEX(t *testing.T) {
	tests := []struct {
		name       string
		statements string
		want       []string
	}{
		{"image by bare digest", `{"vulnerability":{"name":"CVE-2023-4911"},"products":[{"@id":"` + target + `"}],"status":"not_affected","justification":"component_not_present"}`,
			[]string{"GHSA-69ch-w2m2-3vjp", "CVE-2024-0001"}},
		{"image by oci purl with escaped colon, subcomponent", `{"vulnerability":{"name":"CVE-2023-4911"},"products":[{"@id":"pkg:oci/app@sha256%3A1111111111111111111111111111111111111111111111111111111111111111?arch=amd64","subcomponents":[{"@id":"pkg:deb/debian/libc6@2.36-9+deb12u2"}]}],"status":"fixed"}`,
			[]string{"GHSA-69ch-w2m2-3vjp", "CVE-2024-0001"}},
		{"other subcomponent", `{"vulnerability":{"name":"CVE-2023-4911"},"products":[{"@id":"` + target + `","subcomponents":[{"@id":"pkg:deb/debian/libc-bin"}]}],"status":"not_affected"}`,
			[]string{"GHSA-69ch-w2m2-3vjp", "CVE-2023-4911", "CVE-2024-0001"}},
		{"other image", `{"vulnerability":{"name":"CVE-2023-4911"},"products":[{"@id":"sha256:2222222222222222222222222222222222222222222222222222222222222222"}],"status":"not_affected"}`,
			[]string{"GHSA-69ch-w2m2-3vjp", "CVE-2023-4911", "CVE-2024-0001"}},
		{"package as product, by alias, unversioned purl", `{"vulnerability":{"name":"CVE-2022-32149"},"products":[{"@id":"pkg:golang/golang.org/x/text"}],"status":"not_affected"}`,
			[]string{"CVE-2023-4911", "CVE-2024-0001"}},
		{"statement alias names the finding", `{"vulnerability":{"name":"GO-2022-1059","aliases":["GHSA-69ch-w2m2-3vjp"]},"products":[{"@id":"pkg:golang/golang.org/x/text@0.3.6"}],"status":"not_affected"}`,
			[]string{"CVE-2023-4911", "CVE-2024-0001"}},
		{"affected does not suppress", `{"vulnerability":{"name":"CVE-2023-4911"},"products":[{"@id":"` + target + `"}],"status":"affected"}`,
			[]string{"GHSA-69ch-w2m2-3vjp", "CVE-2023-4911", "CVE-2024-0001"}},
		{"latest statement wins", `{"vulnerability":{"name":"CVE-2023-4911"},"products":[{"@id":"` + target + `"}],"status":"not_affected","timestamp":"2026-02-01T00:00:00Z"},` +
			`{"vulnerability":{"name":"CVE-2023-4911"},"products":[{"@id":"` + target + `"}],"status":"under_investigation","timestamp":"2026-01-01T00:00:00Z"}`,
			[]string{"GHSA-69ch-w2m2-3vjp", "CVE-2024-0001"}},
		{"v0.0.x string vulnerability", `{"vulnerability":"CVE-2023-4911","products":[{"@id":"` + target + `"}],"status":"not_affected"}`,
			[]string{"GHSA-69ch-w2m2-3vjp", "CVE-2024-0001"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := suppress.ParseOpenVEX(vexDoc(tt.statements))
			require.NoError(t, err)
			got := suppress.Apply(sample(), time.Now(), v)
			assert.Equal(t, tt.want, remaining(got))
			for _, s := range got.Suppressed {
				assert.Equal(t, "vex https://example.com/vex/1", s.By)
			}
		})
	}
}

func TestParseOpenVEXErrors(t *testing.T) {
	const ok = `{"vulnerability":{"name":"CVE-1"},"products":[{"@id":"x"}],"status":"fixed"}`
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{"not json", `{`, "parse OpenVEX"},
		{"not openvex", `{"@context":"https://cyclonedx.org","statements":[` + ok + `]}`, "not an OpenVEX context"},
		{"no statements", string(vexDoc("")), "no statements"},
		{"no vulnerability", string(vexDoc(`{"products":[{"@id":"x"}],"status":"fixed"}`)), "no vulnerability name"},
		{"no products", string(vexDoc(`{"vulnerability":{"name":"CVE-1"},"status":"fixed"}`)), "no products"},
		{"empty product", string(vexDoc(`{"vulnerability":{"name":"CVE-1"},"products":[{}],"status":"fixed"}`)), "product without @id"},
		{"bad status", string(vexDoc(`{"vulnerability":{"name":"CVE-1"},"products":[{"@id":"x"}],"status":"meh"}`)), `unknown status "meh"`},
		{"trailing data", string(vexDoc(ok)) + `{}`, "data after the document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := suppress.ParseOpenVEX([]byte(tt.doc))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestApplyNil(t *testing.T) {
	assert.Nil(t, suppress.Apply(nil, time.Now()))
	r := suppress.Apply(sample(), time.Now(), nil, (*suppress.VEX)(nil))
	assert.Len(t, r.Findings, 3)
}

func FuzzParseRules(f *testing.F) {
	f.Add([]byte("ignore:\n  - id: CVE-2023-4911\n    reason: r\n    expires: 2026-03-31\n"))
	f.Add([]byte("ignore:\n  - fix-state: wont-fix\n    reason: r\n"))
	f.Add([]byte(`{"ignore":[{"package":"libc6","reason":"r","expires":"2026-01-01T00:00:00Z"}]}`))
	f.Add([]byte("ignore: [&a {id: x, reason: *a}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rules, err := suppress.ParseRules(data)
		if err != nil {
			return
		}
		for _, r := range rules {
			require.NoError(t, r.Validate())
		}
		out := suppress.Apply(sample(), time.Now(), rules)
		require.Equal(t, 3, len(out.Findings)+len(out.Suppressed))
	})
}

func FuzzParseOpenVEX(f *testing.F) {
	f.Add(vexDoc(`{"vulnerability":{"name":"CVE-2023-4911"},"products":[{"@id":"` + target + `"}],"status":"not_affected"}`))
	f.Add(vexDoc(`{"vulnerability":"CVE-2022-32149","products":[{"@id":"pkg:golang/golang.org/x/text@v0.3.6","subcomponents":[{"@id":"pkg:x/%zz"}]}],"status":"fixed"}`))
	f.Add([]byte(`{"@context":"https://openvex.dev/ns","statements":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := suppress.ParseOpenVEX(data)
		if err != nil {
			return
		}
		require.NotEmpty(t, v.Statements)
		out := suppress.Apply(sample(), time.Now(), v)
		require.Equal(t, 3, len(out.Findings)+len(out.Suppressed))
	})
}
