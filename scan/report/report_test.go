package report_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/scan/report"
)

func TestFailOn(t *testing.T) {
	r := &report.Report{Findings: []report.Finding{
		{ID: "GHSA-low", Package: "a", Version: "1", Severity: report.Low},
		{ID: "GHSA-high", Package: "b", Version: "2", Severity: report.High},
		{ID: "GHSA-crit", Package: "c", Version: "3", Severity: report.Critical},
	}}
	tests := []struct {
		threshold report.Severity
		want      []string
	}{
		{report.Critical, []string{"GHSA-crit"}},
		{report.High, []string{"GHSA-crit", "GHSA-high"}},
		{report.Negligible, []string{"GHSA-crit", "GHSA-high", "GHSA-low"}},
	}
	for _, tt := range tests {
		t.Run(tt.threshold.String(), func(t *testing.T) {
			err := r.FailOn(tt.threshold)
			require.Error(t, err)
			assert.ErrorIs(t, err, report.ErrSeverity)
			var se *report.SeverityError
			require.True(t, errors.As(err, &se))
			var got []string
			for _, f := range se.Findings {
				got = append(got, f.ID)
			}
			assert.Equal(t, tt.want, got)
			assert.Contains(t, err.Error(), tt.want[0])
		})
	}
	assert.NoError(t, (&report.Report{}).FailOn(report.Low))
	assert.Equal(t, report.Critical, r.Max())
}

func TestSeverityText(t *testing.T) {
	for s := report.Unknown; s <= report.Critical; s++ {
		b, err := json.Marshal(s)
		require.NoError(t, err)
		var back report.Severity
		require.NoError(t, json.Unmarshal(b, &back))
		assert.Equal(t, s, back)
	}
	s, err := report.ParseSeverity(" critical ")
	require.NoError(t, err)
	assert.Equal(t, report.Critical, s)
	_, err = report.ParseSeverity("severe")
	assert.ErrorContains(t, err, `"severe"`)
	assert.ErrorIs(t, err, report.ErrUnknownSeverity)
	var ne *report.SeverityNameError
	require.ErrorAs(t, err, &ne)
	assert.Equal(t, "severe", ne.Name)

	// GitHub's and OSV's "moderate" is Medium, as scan/vulndb reads it.
	s, err = report.ParseSeverity("Moderate")
	require.NoError(t, err)
	assert.Equal(t, report.Medium, s)

	_, err = report.ParseSeverity(strings.Repeat("x", 1000))
	assert.Less(t, len(err.Error()), 200, "a long word is cut in the message")
}

func TestParseThreshold(t *testing.T) {
	for _, name := range []string{"negligible", "low", "medium", "moderate", "high", "critical"} {
		s, err := report.ParseThreshold(name)
		require.NoError(t, err, name)
		assert.True(t, s.IsThreshold())
	}
	for _, name := range []string{"unknown", "", "severe"} {
		_, err := report.ParseThreshold(name)
		require.ErrorIs(t, err, report.ErrUnknownSeverity, name)
		var ne *report.SeverityNameError
		require.ErrorAs(t, err, &ne)
		assert.True(t, ne.Threshold)
		assert.ErrorContains(t, err, "is not a severity threshold")
	}
	s, err := report.ParseSeverity("unknown")
	require.NoError(t, err, "Unknown is a finding's severity, just not a threshold")
	assert.False(t, s.IsThreshold())
}

func TestSeverityErrorIsBounded(t *testing.T) {
	r := &report.Report{}
	for i := range 25 {
		r.Findings = append(r.Findings, report.Finding{ID: fmt.Sprintf("CVE-%d", i), Package: "p", Version: "1", Severity: report.High})
	}
	msg := r.FailOn(report.High).Error()
	assert.Contains(t, msg, "25 finding(s) at or above High")
	assert.Contains(t, msg, "CVE-9 (High, p@1), and 15 more")
	assert.NotContains(t, msg, "CVE-10")
}

func ExampleReport_FailOn() {
	r := &report.Report{Findings: []report.Finding{
		{ID: "GHSA-69ch-w2m2-3vjp", Package: "golang.org/x/text", Version: "v0.3.6", Severity: report.High},
	}}
	fmt.Println(r.FailOn(report.Critical))
	fmt.Println(r.FailOn(report.High))
	// Output:
	// <nil>
	// 1 finding(s) at or above High: GHSA-69ch-w2m2-3vjp (High, golang.org/x/text@v0.3.6)
}
