package rego_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/internal/regobench"
	"github.com/shipkit/shipkit/scan/policy/rego"
)

// BenchmarkEval50x500 is issue 16's bound: 50 rules on 500 objects in at most a
// second, compile excluded (a policy is compiled once).
func BenchmarkEval50x500(b *testing.B) {
	p, err := rego.Compile(b.Context(), []rego.Module{{Name: "bench.rego", Source: regobench.Policy(50)}})
	require.NoError(b, err)
	objs := regobench.Objects(500)
	var findings int
	for b.Loop() {
		res, err := p.Eval(b.Context(), objs)
		if err != nil {
			b.Fatal(err)
		}
		findings = len(res.Findings)
	}
	b.ReportMetric(float64(findings), "findings")
}

func TestBenchPolicyFinds(t *testing.T) {
	p, err := rego.Compile(t.Context(), []rego.Module{{Name: "bench.rego", Source: regobench.Policy(50)}})
	require.NoError(t, err)
	res, err := p.Eval(t.Context(), regobench.Objects(500))
	require.NoError(t, err)
	levels := map[rego.Level]int{}
	for _, f := range res.Findings {
		levels[f.Level]++
	}
	require.Positive(t, levels[rego.Deny], "the benchmark's rules deny some objects")
	require.Positive(t, levels[rego.Warn], "and warn about some")
	t.Logf("%d findings: %v", len(res.Findings), levels)
}
