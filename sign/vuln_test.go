package sign

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/scan/report"
)

// fixture reads a foreign report of scan/report's test data.
func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "scan", "report", "testdata", name))
	require.NoError(t, err)
	return b
}

// wrap puts a report into cosign's vuln predicate, as a pipeline does for grype's
// JSON (jq '{scanner: {uri: …, result: .}, metadata: …}'), dated finished.
func wrap(t *testing.T, result []byte, finished time.Time) []byte {
	t.Helper()
	var v cosignVuln
	v.Scanner.URI, v.Scanner.Version = "pkg:golang/github.com/anchore/grype@v0.121.2", "0.121.2"
	v.Scanner.Result = result
	v.Metadata.ScanStartedOn, v.Metadata.ScanFinishedOn = finished, finished
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// redate sets a cosign vuln predicate's metadata times.
func redate(t *testing.T, body []byte, finished time.Time) []byte {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(body, &m))
	m["metadata"] = map[string]any{"scanStartedOn": finished, "scanFinishedOn": finished}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

func vulnAtt(body []byte, signer string) Attestation {
	return Attestation{PredicateType: PredicateVuln, Predicate: body, Signer: signer}
}

func shipkitPredicate(t *testing.T, finished time.Time, findings ...report.Finding) []byte {
	t.Helper()
	p, err := VulnPredicate(&report.Report{Target: "app", Findings: findings, Tool: &report.Tool{Name: "grype", FinishedOn: finished}})
	require.NoError(t, err)
	return p.Body
}

func TestVulnPredicateRoundTrip(t *testing.T) {
	finished := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	subject := "sha256:" + strings.Repeat("ab", 32)
	in := &report.Report{
		Target: "reg/app@" + subject, Subject: subject, Platform: "linux/arm64",
		Findings: []report.Finding{{ID: "CVE-1", Package: "p", Version: "1", Severity: report.High}},
		Tool: &report.Tool{Name: "grype", Version: "v0.121.2", URI: "pkg:golang/github.com/anchore/grype@v0.121.2",
			DBURI: "grype-db", DBSchema: "v6.1.0", DBBuilt: finished.Add(-24 * time.Hour),
			StartedOn: finished.Add(-time.Minute), FinishedOn: finished},
	}
	p, err := VulnPredicate(in)
	require.NoError(t, err)
	assert.Equal(t, PredicateVuln, p.Type)
	assert.Equal(t, v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}, p.Subject)
	require.NoError(t, p.Validate())

	var raw map[string]any
	require.NoError(t, json.Unmarshal(p.Body, &raw))
	for _, k := range []string{"invocation", "scanner", "metadata"} {
		assert.Contains(t, raw, k, "cosign's vuln predicate fields")
	}
	sc := raw["scanner"].(map[string]any)
	assert.Equal(t, "pkg:golang/github.com/anchore/grype@v0.121.2", sc["uri"])
	assert.Equal(t, "v6.1.0 built 2026-03-01T10:00:00Z", sc["db"].(map[string]any)["version"])
	assert.Equal(t, "2026-03-02T10:00:00Z", raw["metadata"].(map[string]any)["scanFinishedOn"])

	out, err := DecodeVulnPredicate(p.Body)
	require.NoError(t, err)
	assert.Equal(t, report.FormatShipkit, out.Format)
	assert.Equal(t, in.Findings, out.Findings)
	assert.Equal(t, in.Subject, out.Subject)
	assert.Equal(t, in.Platform, out.Platform)
	assert.True(t, out.Tool.FinishedOn.Equal(finished))

	for _, bad := range []*report.Report{
		nil,
		{Target: "app"}, // no tool, no date
		{Target: "app", Tool: &report.Tool{Name: "grype"}},
		{Target: "app", Subject: "sha256:short", Tool: &report.Tool{FinishedOn: finished}},
	} {
		_, err := VulnPredicate(bad)
		assert.Error(t, err)
	}
}

// The foreign reports people attest decode with their findings.
func TestDecodeForeignPredicates(t *testing.T) {
	grype := fixture(t, "grype-alpine.json")
	finished := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		body     []byte
		format   report.Format
		tool     string
		finished time.Time
		first    string
	}{
		{"trivy --format cosign-vuln", fixture(t, "trivy-cosign-vuln.json"), report.FormatTrivy, "trivy",
			time.Date(2025, 1, 8, 9, 21, 44, 512118000, time.UTC), "CVE-2021-36159 Critical"},
		{"grype JSON in cosign's vuln predicate", wrap(t, grype, finished), report.FormatGrype, "grype", finished, "CVE-2023-38545 Critical"},
		{"grype JSON as the predicate itself (cosign attest --type <vuln URI>)", grype, report.FormatGrype, "grype",
			time.Date(2025, 9, 1, 7, 14, 3, 118225000, time.UTC), "CVE-2023-38545 Critical"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := DecodeVulnPredicate(tt.body)
			require.NoError(t, err)
			assert.Equal(t, tt.format, r.Format)
			assert.Equal(t, tt.tool, r.Tool.Name)
			assert.True(t, r.Tool.FinishedOn.Equal(tt.finished), "%s", r.Tool.FinishedOn)
			require.NotEmpty(t, r.Findings)
			assert.Equal(t, tt.first, r.Findings[0].ID+" "+r.Findings[0].Severity.String())
		})
	}
}

// TestForeignReportsAreNotClean is the attack of issue 13 item 2 on the judgement
// alone: honestly signed reports in the formats people attest, with Criticals, and
// documents that say nothing, must all deny at High.
func TestForeignReportsAreNotClean(t *testing.T) {
	now := time.Now()
	grype := fixture(t, "grype-alpine.json")
	tests := []struct {
		name string
		body []byte
		code ReasonCode
		msg  string
	}{
		{"trivy cosign-vuln with a Critical", redate(t, fixture(t, "trivy-cosign-vuln.json"), now), ReasonVulnerable,
			"(trivy report, scan of " + now.UTC().Format(time.RFC3339) + "): 2 finding(s) at or above High: CVE-2021-36159 (Critical, apk-tools@2.10.6-r0)"},
		{"grype with a Critical", wrap(t, grype, now), ReasonVulnerable, "CVE-2023-38545 (Critical, libcurl@8.2.1-r0)"},
		{"{}", wrap(t, []byte(`{}`), now), ReasonUnreadableReport, "scanner.result: vulnerability report cannot be read: the document is an empty object"},
		{"null result", wrap(t, []byte(`null`), now), ReasonUnreadableReport, "scanner.result is null"},
		{"garbage result", wrap(t, []byte(`"garbage"`), now), ReasonUnreadableReport, "not a JSON object"},
		{"predicate {}", []byte(`{}`), ReasonUnreadableReport, "cannot be read, nor its scan time"},
		{"predicate null", []byte(`null`), ReasonUnreadableReport, "the predicate is not a JSON object"},
		// cosign attest --type vuln --predicate grype.json keeps only cosign's fields.
		{"cosign attest --type vuln of a bare grype report",
			[]byte(`{"invocation":{"parameters":null,"uri":"","event_id":"","builder.id":""},"scanner":{"uri":"","version":"","db":{"uri":"","version":""},"result":null},"metadata":{"scanStartedOn":"0001-01-01T00:00:00Z","scanFinishedOn":"0001-01-01T00:00:00Z"}}`),
			ReasonUnreadableReport, "scanner.result is null"},
		{"grype without descriptor", wrap(t, []byte(`{"matches":[]}`), now), ReasonUnreadableReport, `grype report: no "descriptor"`},
		{"trivy without Results", wrap(t, []byte(`{"SchemaVersion":2,"ArtifactName":"app"}`), now), ReasonUnreadableReport, `trivy report: no "Results"`},
		{"shipkit without target", wrap(t, []byte(`{"findings":[]}`), now), ReasonUnreadableReport, `shipkit report: no "target"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := VulnRule{FailOn: report.High}.Check([]Attestation{vulnAtt(tt.body, "ci")})
			require.Len(t, got, 1, "%v", got)
			assert.Equal(t, tt.code, got[0].Code)
			assert.Contains(t, got[0].Message, tt.msg)
			assert.Contains(t, got[0].Message, "signed by ci")
		})
	}
}

func TestVulnRuleNewest(t *testing.T) {
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	rule := VulnRule{FailOn: report.High, Now: clock}
	critical := report.Finding{ID: "CVE-9", Package: "openssl", Version: "3", Severity: report.Critical}
	old := vulnAtt(shipkitPredicate(t, now.Add(-2*time.Hour), critical), "ci")
	clean := vulnAtt(shipkitPredicate(t, now.Add(-time.Hour)), "ci")
	codes := func(rs []Reason) []ReasonCode {
		var out []ReasonCode
		for _, r := range rs {
			out = append(out, r.Code)
		}
		return out
	}

	assert.Empty(t, rule.Check([]Attestation{old, clean}), "the newer clean report decides")
	assert.Equal(t, []ReasonCode{ReasonVulnerable}, codes(rule.Check([]Attestation{clean, vulnAtt(shipkitPredicate(t, now, critical), "ci")})))

	// A newer report whose findings cannot be read denies, it does not let the
	// older one decide.
	newerForeign := vulnAtt(wrap(t, []byte(`{"vulns":[]}`), now), "ci")
	got := rule.Check([]Attestation{clean, newerForeign})
	assert.Equal(t, []ReasonCode{ReasonUnreadableReport}, codes(got))
	assert.Contains(t, got[0].Message, "newest vulnerability report signed by ci (scan of 2026-03-02T10:00:00Z) cannot be read")
	// An older unreadable one does not decide.
	olderForeign := vulnAtt(wrap(t, []byte(`{"vulns":[]}`), now.Add(-3*time.Hour)), "ci")
	assert.Empty(t, rule.Check([]Attestation{olderForeign, clean}))
	// One without a date may be the newest: it denies whatever the others say.
	undated := vulnAtt([]byte(`{"target":"app","findings":[]}`), "ci")
	got = rule.Check([]Attestation{clean, undated})
	assert.Equal(t, []ReasonCode{ReasonUnreadableReport}, codes(got))
	assert.Contains(t, got[0].Message, "has no scan time (metadata.scanFinishedOn), so it may be the newest")

	// Reports of the same newest time are all judged.
	twin := vulnAtt(shipkitPredicate(t, now.Add(-time.Hour), critical), "other")
	assert.Equal(t, []ReasonCode{ReasonVulnerable}, codes(rule.Check([]Attestation{clean, twin})))

	assert.Equal(t, []ReasonCode{ReasonNoReport}, codes(rule.Check(nil)))
	assert.Equal(t, []ReasonCode{ReasonNoReport}, codes(rule.Check([]Attestation{{PredicateType: PredicateSPDX, Predicate: []byte(`{}`)}})))
}

func TestVulnRuleAge(t *testing.T) {
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	at := func(d time.Duration) []Attestation {
		return []Attestation{vulnAtt(shipkitPredicate(t, now.Add(d)), "ci")}
	}
	tests := []struct {
		name string
		rule VulnRule
		atts []Attestation
		want string // "" passes
	}{
		{"six days, default bound", VulnRule{FailOn: report.High, Now: clock}, at(-6 * 24 * time.Hour), ""},
		{"eight days, default bound", VulnRule{FailOn: report.High, Now: clock}, at(-8 * 24 * time.Hour),
			"is from 2026-02-22T10:00:00Z, 192h0m0s ago, older than the maximum report age 168h0m0s"},
		{"two hours, one-hour bound", VulnRule{FailOn: report.High, MaxReportAge: time.Hour, Now: clock}, at(-2 * time.Hour), "older than the maximum report age 1h0m0s"},
		{"a year, no bound", VulnRule{FailOn: report.High, MaxReportAge: NoMaxReportAge, Now: clock}, at(-365 * 24 * time.Hour), ""},
		{"a minute ahead (clock skew)", VulnRule{FailOn: report.High, Now: clock}, at(time.Minute), ""},
		{"an hour ahead", VulnRule{FailOn: report.High, Now: clock}, at(time.Hour), "is dated 2026-03-02T11:00:00Z, 1h0m0s in the future"},
		{"an hour ahead, no bound", VulnRule{FailOn: report.High, MaxReportAge: NoMaxReportAge, Now: clock}, at(time.Hour), "in the future"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.rule.Check(tt.atts)
			if tt.want == "" {
				assert.Empty(t, got)
				return
			}
			require.Len(t, got, 1)
			assert.Equal(t, ReasonStaleReport, got[0].Code)
			assert.Contains(t, got[0].Message, tt.want)
		})
	}
	assert.Equal(t, "no vulnerability at or above High in the newest report, at most 168h0m0s old", VulnRule{FailOn: report.High}.String())
	assert.Equal(t, "no vulnerability at or above Critical in the newest report, of any age",
		VulnRule{FailOn: report.Critical, MaxReportAge: NoMaxReportAge}.String())
}

func TestJudgePerPlatform(t *testing.T) {
	now := time.Now()
	critical := report.Finding{ID: "CVE-9", Package: "openssl", Version: "3", Severity: report.Critical}
	prov := Attestation{PredicateType: PredicateSLSAProvenance, Predicate: []byte(`{}`), Signer: "ci"}
	clean := vulnAtt(shipkitPredicate(t, now), "ci")
	vulnerable := vulnAtt(shipkitPredicate(t, now, critical), "ci")
	p := &Policy{RequiredPredicates: []string{PredicateSLSAProvenance}, Conditions: []Condition{VulnRule{FailOn: report.High}}}
	amd := &v1.Platform{OS: "linux", Architecture: "amd64"}
	arm := &v1.Platform{OS: "linux", Architecture: "arm64"}
	messages := func(rs []Reason) []string {
		var out []string
		for _, r := range rs {
			out = append(out, string(r.Code)+" "+r.Message[:strings.Index(r.Message, ":")])
		}
		return out
	}

	// An image: its own attestations.
	assert.Empty(t, p.Judge(&Verified{Attestations: []Attestation{prov, clean}}))
	assert.Equal(t, []string{"missing-attestation no attestation of predicate type https"},
		messages(p.Judge(&Verified{Attestations: []Attestation{clean}})))

	// An index: each platform on its own reports and the index's provenance. One
	// vulnerable platform denies the index, named.
	v := &Verified{Attestations: []Attestation{prov}, Platforms: []PlatformVerified{
		{Platform: amd, Attestations: []Attestation{clean}},
		{Platform: arm, Attestations: []Attestation{vulnerable}},
	}}
	got := p.Judge(v)
	require.Len(t, got, 1)
	assert.Equal(t, ReasonVulnerable, got[0].Code)
	assert.True(t, strings.HasPrefix(got[0].Message, "linux/arm64: vulnerability report signed by ci"), got[0].Message)

	// A platform without a report of its own is judged on the index's report.
	v = &Verified{Attestations: []Attestation{prov, clean}, Platforms: []PlatformVerified{
		{Platform: amd, Attestations: []Attestation{}},
		{Platform: arm, Attestations: []Attestation{clean}},
	}}
	assert.Empty(t, p.Judge(v))

	// Without a report anywhere, every platform says so; a platform without a
	// platform in the index is named by its digest.
	v = &Verified{Attestations: []Attestation{prov}, Platforms: []PlatformVerified{
		{Platform: amd},
		{Digest: mustDigest(t, "reg/app@sha256:"+strings.Repeat("c", 64))},
	}}
	assert.Equal(t, []string{"no-vulnerability-report linux/amd64", "no-vulnerability-report sha256"}, messages(p.Judge(v)))
	assert.Equal(t, []Reason{{Code: ReasonMissingAttestation, Message: "nothing was verified"}}, p.Judge(nil))
}

// A denial of twenty reasons reads one reason a line.
func TestDeniedErrorReadable(t *testing.T) {
	d := mustDigest(t, "reg/app@sha256:"+strings.Repeat("0", 64))
	e := &DeniedError{Digest: d}
	for i := range 20 {
		e.Reasons = append(e.Reasons, Reason{Code: ReasonVulnerable, Message: fmt.Sprintf("reason %d", i+1)})
	}
	lines := strings.Split(e.Error(), "\n")
	require.Len(t, lines, 21)
	assert.Equal(t, d.String()+" denied by policy: 20 reasons:", lines[0])
	assert.Equal(t, "  reason 20", lines[20])
	assert.Equal(t, d.String()+" denied by policy: no signature",
		(&DeniedError{Digest: d, Reasons: []Reason{{Code: ReasonUnsigned, Message: "no signature"}}}).Error())
}

func mustDigest(t *testing.T, s string) name.Digest {
	t.Helper()
	d, err := name.NewDigest(s)
	require.NoError(t, err)
	return d
}
