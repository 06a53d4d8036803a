package report_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/scan/report"
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

// trivyResult is the Trivy JSON report inside the cosign-vuln fixture.
func trivyResult(t *testing.T) []byte {
	t.Helper()
	var p struct {
		Scanner struct {
			Result json.RawMessage `json:"result"`
		} `json:"scanner"`
	}
	require.NoError(t, json.Unmarshal(readFixture(t, "trivy-cosign-vuln.json"), &p))
	var b bytes.Buffer
	require.NoError(t, json.Compact(&b, p.Scanner.Result))
	return b.Bytes()
}

func ids(fs []report.Finding) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.ID + " " + f.Severity.String()
	}
	return out
}

func TestDecodeGrype(t *testing.T) {
	r, err := report.Decode(readFixture(t, "grype-alpine.json"))
	require.NoError(t, err)
	assert.Equal(t, report.FormatGrype, r.Format)
	assert.Equal(t, "sha256:7c0d1e2f3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5", r.Target)
	assert.Equal(t, []string{"CVE-2023-38545 Critical", "GHSA-4374-p667-p6c8 High", "GHSA-qppj-fm5r-hxr3 Medium"}, ids(r.Findings),
		"a vulnerability without a severity takes its related CVE's")
	curl := r.Findings[0]
	assert.Equal(t, "libcurl", curl.Package)
	assert.Equal(t, "8.2.1-r0", curl.Version)
	assert.Equal(t, "apk", curl.Type)
	assert.Equal(t, []string{"8.4.0-r0"}, curl.FixedIn)
	assert.Equal(t, report.FixStateFixed, curl.FixState)
	assert.Equal(t, []string{"/lib/apk/db/installed"}, curl.Locations)
	assert.Empty(t, curl.Aliases, "the related entry with the same id is not an alias")
	assert.Equal(t, []string{"CVE-2023-44487"}, r.Findings[1].Aliases)
	assert.Equal(t, 7.5, r.Findings[1].MaxCVSS())
	require.Len(t, r.Suppressed, 1)
	assert.Equal(t, "CVE-2023-5363", r.Suppressed[0].Finding.ID)
	require.NotNil(t, r.Tool)
	assert.Equal(t, "grype", r.Tool.Name)
	assert.Equal(t, "0.121.2", r.Tool.Version)
	assert.True(t, r.Tool.FinishedOn.Equal(time.Date(2025, 9, 1, 7, 14, 3, 118225000, time.UTC)), "%s", r.Tool.FinishedOn)

	err = r.FailOn(report.High)
	require.ErrorIs(t, err, report.ErrSeverity)
	assert.Contains(t, err.Error(), "CVE-2023-38545 (Critical, libcurl@8.2.1-r0)")
}

func TestDecodeTrivy(t *testing.T) {
	r, err := report.Decode(trivyResult(t))
	require.NoError(t, err)
	assert.Equal(t, report.FormatTrivy, r.Format)
	assert.Equal(t, "alpine:3.10", r.Target)
	assert.Equal(t, []string{"CVE-2021-36159 Critical", "CVE-2021-3711 High"}, ids(r.Findings))
	apk := r.Findings[0]
	assert.Equal(t, "apk-tools", apk.Package)
	assert.Equal(t, "2.10.6-r0", apk.Version)
	assert.Equal(t, "alpine", apk.Type)
	assert.Equal(t, []string{"2.10.7-r0"}, apk.FixedIn)
	assert.Equal(t, report.FixStateFixed, apk.FixState)
	assert.Contains(t, apk.PURL, "pkg:apk/alpine/apk-tools@2.10.6-r0")
	ssl := r.Findings[1]
	assert.Equal(t, []string{"ALPINE-13661"}, ssl.Aliases)
	assert.Equal(t, []report.CVSS{
		{Version: "3.1", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", Score: 9.8},
		{Version: "3.1", Vector: "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H", Score: 8.1},
	}, ssl.CVSS, "by source name: nvd, redhat")
	assert.Equal(t, "trivy", r.Tool.Name)
	assert.True(t, r.Tool.FinishedOn.Equal(time.Date(2025, 1, 8, 9, 21, 44, 512118000, time.UTC)))
	assert.ErrorContains(t, r.FailOn(report.High), "CVE-2021-36159 (Critical, apk-tools@2.10.6-r0)")
}

func TestDecodeShipkitRoundTrip(t *testing.T) {
	in := sampleReport()
	in.Subject, in.Platform = "sha256:"+strings.Repeat("a", 64), "linux/arm64"
	in.Suppressed = []report.Suppression{{Finding: in.Findings[0], By: "ignore rule 1", Reason: "r"}}
	var buf bytes.Buffer
	require.NoError(t, in.WriteJSON(&buf))
	out, err := report.Decode(buf.Bytes())
	require.NoError(t, err)
	assert.Equal(t, report.FormatShipkit, out.Format)
	out.Format = ""
	assert.Equal(t, in.Findings, out.Findings)
	assert.Equal(t, in.Suppressed, out.Suppressed)
	assert.Equal(t, in.Subject, out.Subject)
	assert.Equal(t, in.Platform, out.Platform)
	assert.True(t, in.Tool.DBBuilt.Equal(out.Tool.DBBuilt))

	// A report without findings, as shipkit wrote it before (findings: null).
	out, err = report.Decode([]byte(`{"target":"app","findings":null}`))
	require.NoError(t, err)
	assert.Empty(t, out.Findings)
	assert.NotNil(t, out.Findings)
}

// Every document Decode cannot read with certainty is an error, never a report
// without findings; the message never repeats the document's values.
func TestDecodeUnreadable(t *testing.T) {
	grype := string(readFixture(t, "grype-alpine.json"))
	trivy := string(trivyResult(t))
	const secret = "XYZZY-not-echoed"
	tests := []struct {
		name, doc, want string
	}{
		{"null", `null`, "the document is null"},
		{"empty object", `{}`, "the document is an empty object"},
		{"array", `[]`, "not a JSON object"},
		{"garbage", `garbage ` + secret, "not a JSON object: invalid JSON at byte 1"},
		{"empty", ``, "not a JSON object"},
		{"unknown shape", `{"vulns":[{"id":"` + secret + `"}]}`, "not a shipkit, grype or Trivy report"},
		{"cosign wrapper is not a report", string(readFixture(t, "trivy-cosign-vuln.json")), "not a shipkit, grype or Trivy report"},
		{"keys of two formats", `{"matches":[],"descriptor":{"name":"grype"},"findings":[],"target":"x"}`, "has keys of several formats (shipkit, grype)"},
		{"shipkit without target", `{"findings":[]}`, `shipkit report: no "target"`},
		{"shipkit without findings", `{"target":"app"}`, `shipkit report: no "findings"`},
		{"shipkit empty target", `{"target":"","findings":[]}`, "shipkit report: empty target"},
		{"shipkit finding without severity", `{"target":"app","findings":[{"id":"CVE-1","package":"p"}]}`, "finding 1 has no id or no severity"},
		{"shipkit finding without id", `{"target":"app","findings":[{"package":"p","severity":"High"}]}`, "finding 1 has no id or no severity"},
		{"shipkit unknown severity", `{"target":"app","findings":[{"id":"CVE-1","severity":"` + secret + `"}]}`, "a severity is not one of"},
		{"shipkit findings not a list", `{"target":"app","findings":{"id":"` + secret + `"}}`, "field findings is a JSON object"},
		{"grype without descriptor", `{"matches":[]}`, `grype report: no "descriptor"`},
		{"grype without matches", `{"descriptor":{"name":"grype"}}`, `grype report: no "matches"`},
		{"grype matches null", `{"matches":null,"descriptor":{"name":"grype"}}`, `grype report: "matches" is null`},
		{"grype descriptor without name", `{"matches":[],"descriptor":{}}`, "descriptor names no scanner"},
		{"grype unknown severity", strings.Replace(grype, `"severity": "Critical"`, `"severity": "`+secret+`"`, 1), "match 1: severity is not one of"},
		{"grype match without id", strings.Replace(grype, `"id": "CVE-2023-38545"`, `"id": ""`, 1), "match 1: no vulnerability id"},
		{"grype bad timestamp", strings.Replace(grype, `"timestamp": "2025-09-01T09:14:03.118225+02:00"`, `"timestamp": "`+secret+`"`, 1), "descriptor.timestamp is not an RFC 3339 time"},
		{"trivy without Results", `{"SchemaVersion":2,"ArtifactName":"alpine:3.10"}`, `trivy report: no "Results" (Trivy found nothing`},
		{"trivy without SchemaVersion", `{"ArtifactName":"alpine:3.10","Results":[]}`, `trivy report: no "SchemaVersion"`},
		{"trivy schema 1", `{"SchemaVersion":1,"ArtifactName":"a","Results":[]}`, "SchemaVersion 1, want 2"},
		{"trivy unknown severity", strings.Replace(trivy, `"Severity":"CRITICAL"`, `"Severity":"`+secret+`"`, 1), "result 1, vulnerability 1: Severity is not one of"},
		{"trivy vulnerability without package", strings.Replace(trivy, `"PkgName":"apk-tools"`, `"PkgName":""`, 1), "result 1, vulnerability 1: no VulnerabilityID or no PkgName"},
		{"truncated", grype[:len(grype)/2], "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := report.Decode([]byte(tt.doc))
			require.Error(t, err)
			assert.Nil(t, r)
			assert.ErrorIs(t, err, report.ErrUnreadable)
			var de *report.DecodeError
			require.ErrorAs(t, err, &de)
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), secret)
		})
	}
}

// Decode tells what it read; a gate judges the report like any other.
func ExampleDecode() {
	r, err := report.Decode([]byte(`{"matches":[{"vulnerability":{"id":"CVE-2023-38545","severity":"Critical"},
		"artifact":{"name":"libcurl","version":"8.2.1-r0","type":"apk"}}],
		"descriptor":{"name":"grype","version":"0.121.2"}}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r.Format, r.FailOn(report.High))
	_, err = report.Decode([]byte(`{}`))
	fmt.Println(err)
	// Output:
	// grype 1 finding(s) at or above High: CVE-2023-38545 (Critical, libcurl@8.2.1-r0)
	// vulnerability report cannot be read: the document is an empty object
}
