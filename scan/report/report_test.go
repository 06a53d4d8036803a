package report_test

import (
	"encoding/json"
	"errors"
	"fmt"
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
