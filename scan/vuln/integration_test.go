package vuln_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/scan/internal/testimage"
	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/scan/sbom"
	"github.com/shipkit/shipkit/scan/suppress"
	"github.com/shipkit/shipkit/scan/vuln"
	"github.com/shipkit/shipkit/sign"
)

// An image built in memory (Debian 12 with libc6 2.36-9+deb12u2, a Go binary linked
// against golang.org/x/text v0.3.6, a jar) goes through the whole stage: SBOM, scan
// against a database written locally, VEX and ignore rules, gate and writers.
func TestImageToReport(t *testing.T) {
	ctx := context.Background()
	img := testimage.Debian(t, "amd64")
	digest, err := img.Digest()
	require.NoError(t, err)

	sb, err := sbom.New().Catalog(ctx, img)
	require.NoError(t, err)
	sc := open(t, writeDB(t).RootDir, vuln.WithMaxAge(24*time.Hour))
	r, err := sc.Scan(ctx, sb)
	require.NoError(t, err)

	assert.Equal(t, []string{"CVE-2023-4911", "GHSA-69ch-w2m2-3vjp", "GHSA-ppp9-7jff-5vj2"}, ids(r))
	assert.Equal(t, digest.String(), r.Target)
	for _, f := range r.Findings {
		if f.Type == "go-module" {
			assert.Equal(t, []string{testimage.GoBinaryPath}, f.Locations)
			assert.Equal(t, "v0.3.6", f.Version)
		}
	}
	require.ErrorIs(t, r.FailOn(report.High), report.ErrSeverity)

	// A VEX statement from the image's supplier: the binary never calls the
	// vulnerable code of GHSA-ppp9 (named by its CVE alias).
	vexDoc := fmt.Sprintf(`{
	  "@context": "https://openvex.dev/ns/v0.2.0",
	  "@id": "https://example.com/vex/hello-1",
	  "author": "Example Security",
	  "timestamp": "2026-01-01T00:00:00Z",
	  "version": 1,
	  "statements": [{
	    "vulnerability": {"name": "CVE-2021-38561"},
	    "products": [{"@id": "pkg:oci/hello@%s?repository_url=registry.example.com/hello",
	                  "subcomponents": [{"@id": "pkg:golang/golang.org/x/text@v0.3.6"}]}],
	    "status": "not_affected",
	    "justification": "vulnerable_code_not_in_execute_path"
	  }]
	}`, strings.Replace(digest.String(), ":", "%3A", 1))
	vex, err := suppress.ParseOpenVEX([]byte(vexDoc))
	require.NoError(t, err)

	rules, err := suppress.ParseRules([]byte(`
ignore:
  - id: CVE-2023-4911
    package: libc6
    reason: ld.so is not setuid in this image
    expires: 2026-01-31
  - id: GHSA-69ch-w2m2-3vjp
    reason: accepted until the x/text upgrade lands
    expires: 2099-12-31T00:00:00Z
`))
	require.NoError(t, err)

	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC) // the libc6 rule has expired
	filtered := suppress.Apply(r, now, vex, rules)
	assert.Equal(t, []string{"CVE-2023-4911"}, ids(filtered), "VEX and the live rule suppress, the expired rule does not")
	require.Len(t, filtered.Suppressed, 2)
	by := map[string]report.Suppression{}
	for _, s := range filtered.Suppressed {
		by[s.Finding.ID] = s
	}
	assert.Equal(t, "vex https://example.com/vex/hello-1", by["GHSA-ppp9-7jff-5vj2"].By)
	assert.Equal(t, "not_affected: vulnerable_code_not_in_execute_path", by["GHSA-ppp9-7jff-5vj2"].Reason)
	assert.Equal(t, "ignore rule 2", by["GHSA-69ch-w2m2-3vjp"].By)
	assert.Len(t, r.Findings, 3, "Apply does not modify its input")

	var sev *report.SeverityError
	require.True(t, errors.As(filtered.FailOn(report.High), &sev))
	assert.Equal(t, "CVE-2023-4911", sev.Findings[0].ID)
	before := now.AddDate(0, -5, 0) // while the libc6 rule still held
	assert.NoError(t, suppress.Apply(r, before, vex, rules).FailOn(report.High),
		"VEX applies whatever the fail-on threshold (grype#1639)")

	t.Run("writers", func(t *testing.T) {
		var table bytes.Buffer
		require.NoError(t, filtered.WriteTable(&table))
		assert.Contains(t, table.String(), "libc6")
		assert.Contains(t, table.String(), "2.36-9+deb12u3")
		assert.Contains(t, table.String(), "(2 suppressed by VEX or ignore rules)")

		var sarif bytes.Buffer
		require.NoError(t, r.WriteSARIF(&sarif))
		var log struct {
			Version string `json:"version"`
			Runs    []struct {
				Results []struct {
					RuleID    string `json:"ruleId"`
					Level     string `json:"level"`
					Locations []struct {
						PhysicalLocation struct {
							ArtifactLocation struct {
								URI string `json:"uri"`
							} `json:"artifactLocation"`
						} `json:"physicalLocation"`
					} `json:"locations"`
				} `json:"results"`
			} `json:"runs"`
		}
		require.NoError(t, json.Unmarshal(sarif.Bytes(), &log))
		assert.Equal(t, "2.1.0", log.Version)
		require.Len(t, log.Runs, 1)
		require.Len(t, log.Runs[0].Results, 3)
		uris := map[string]string{}
		for _, res := range log.Runs[0].Results {
			assert.Equal(t, "error", res.Level)
			uris[res.RuleID] = res.Locations[0].PhysicalLocation.ArtifactLocation.URI
		}
		assert.Equal(t, "usr/local/bin/hello", uris["GHSA-69ch-w2m2-3vjp-golang.org/x/text"])
		assert.Equal(t, "var/lib/dpkg/status", uris["CVE-2023-4911-libc6"])

		// The attestation of the report is about the image that was scanned, and a
		// gate reads back what was scanned, by what.
		pred, err := sign.VulnPredicate(filtered)
		require.NoError(t, err)
		assert.Equal(t, digest, pred.Subject)
		back, err := sign.DecodeVulnPredicate(pred.Body)
		require.NoError(t, err)
		assert.Equal(t, report.FormatShipkit, back.Format)
		assert.True(t, strings.HasPrefix(back.Tool.URI, "pkg:golang/github.com/anchore/grype@"), back.Tool.URI)
		assert.Equal(t, ids(filtered), ids(back))
		assert.Contains(t, back.Tool.DBSchema, "v6.")
		assert.Equal(t, "linux/amd64", back.Platform)
	})
}
