package analysis_test

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/observe/analysis"
)

func TestConditionMet(t *testing.T) {
	tests := []struct {
		cond analysis.Condition
		v    float64
		want bool
	}{
		{analysis.AtLeast(0.99), 0.99, true},
		{analysis.AtLeast(0.99), 0.98, false},
		{analysis.AtMost(0.5), 0.5, true},
		{analysis.AtMost(0.5), 0.51, false},
		{analysis.Above(0.5), 0.5, false},
		{analysis.Above(0.5), 0.6, true},
		{analysis.Below(0.5), 0.5, false},
		{analysis.Below(0.5), 0.4, true},
		{analysis.AtMost(1), math.NaN(), false},
		{analysis.AtLeast(1), math.NaN(), false},
		{analysis.AtLeast(1), math.Inf(1), false},
		{analysis.AtMost(1), math.Inf(-1), false},
		{analysis.Below(1), math.Inf(-1), false},
		{analysis.Condition{}, 0, false},
		{analysis.Condition{Op: "==", Value: 1}, 1, false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.cond.Met(tt.v), "%s with %v", tt.cond, tt.v)
	}
}

func TestParseCondition(t *testing.T) {
	for _, c := range []analysis.Condition{analysis.AtLeast(0.99), analysis.AtMost(0.25), analysis.Above(-1), analysis.Below(1e-3)} {
		got, err := analysis.ParseCondition(c.String())
		require.NoError(t, err, c.String())
		assert.Equal(t, c, got)
	}
	got, err := analysis.ParseCondition("  <=0.5 ")
	require.NoError(t, err)
	assert.Equal(t, analysis.AtMost(0.5), got)
	assert.Equal(t, "result >= 0.99", analysis.AtLeast(0.99).String())

	for in, want := range map[string]string{
		"result = 1":      "want \"result OP NUMBER\"",
		"result >= ":      `threshold "" is not a number`,
		"result >= lots":  `threshold "lots" is not a number`,
		"result >= NaN":   "want a finite number",
		"result <= +Inf":  "want a finite number",
		"":                "want \"result OP NUMBER\"",
		"value >= 0.5":    "want \"result OP NUMBER\"",
		"result >= 0.5 x": `threshold "0.5 x"`,
	} {
		_, err := analysis.ParseCondition(in)
		assert.ErrorContains(t, err, want, "%q", in)
	}
}

func TestMatchLabels(t *testing.T) {
	assert.Equal(t, `app="web",version="v2"`, analysis.MatchLabels(map[string]string{"version": "v2", "app": "web"}))
	assert.Equal(t, `team="a\"b\\c"`, analysis.MatchLabels(map[string]string{"team": `a"b\c`}))
	assert.Empty(t, analysis.MatchLabels(nil))
}

func TestTemplates(t *testing.T) {
	rate := analysis.SuccessRate(nil, ` version="v2", `, 0.95, analysis.Window(90*time.Second),
		analysis.RequestsMetric("istio_requests_total"), analysis.CodeLabel("response_code"))
	assert.Equal(t, `1 - (sum(rate(istio_requests_total{version="v2",response_code=~"5.."}[90s])) or vector(0)) / sum(rate(istio_requests_total{version="v2"}[90s]))`, rate.Query)
	assert.Equal(t, 90*time.Second, rate.Interval)
	assert.Equal(t, analysis.AtLeast(0.95), rate.Success)

	lat := analysis.LatencyP99(nil, "", 1500*time.Millisecond, analysis.Window(1500*time.Millisecond), analysis.DurationMetric("rpc_seconds"))
	assert.Equal(t, `histogram_quantile(0.99, sum by (le) (rate(rpc_seconds_bucket{}[1500ms])))`, lat.Query)
	assert.Equal(t, analysis.AtMost(1.5), lat.Success)

	lat = analysis.LatencyP99(nil, `app="x"`, time.Second, analysis.Window(0), analysis.Window(2*time.Hour))
	assert.Contains(t, lat.Query, "[2h]")
	lat = analysis.LatencyP99(nil, `app="x"`, time.Second, analysis.Window(-time.Second))
	assert.Contains(t, lat.Query, "[1m]", "a window of 0 or less keeps the default")
}

func TestMeasurementJSON(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	ms := []analysis.Measurement{
		{Check: "rate", Time: at, Value: 0.97, Phase: analysis.Failed},
		{Check: "rate", Time: at, Value: math.NaN(), Phase: analysis.Inconclusive, Err: errors.New("no data")},
	}
	b, err := json.Marshal(ms)
	require.NoError(t, err)
	assert.JSONEq(t, `[
		{"check":"rate","time":"2026-05-01T12:00:00Z","value":0.97,"phase":"Failed"},
		{"check":"rate","time":"2026-05-01T12:00:00Z","value":null,"phase":"Inconclusive","error":"no data"}]`, string(b))

	var back []analysis.Measurement
	require.NoError(t, json.Unmarshal(b, &back))
	require.Len(t, back, 2)
	assert.Equal(t, ms[0], back[0])
	assert.True(t, math.IsNaN(back[1].Value))
	assert.EqualError(t, back[1].Err, "no data")
	assert.Error(t, json.Unmarshal([]byte(`{"value":"x"}`), &back[0]))
}
