package prometheus_test

import (
	"context"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/internal/testbed/prom"
	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/observe/analysis"
	"github.com/shipkit/shipkit/observe/prometheus"
)

var server = testbed.Lazy[*prom.Server]{Start: func() (*prom.Server, func(), error) {
	s, err := prom.Start(context.Background())
	if err != nil {
		return nil, nil, err
	}
	return s, s.Stop, nil
}}

func TestMain(m *testing.M) {
	code := m.Run()
	server.Stop()
	os.Exit(code)
}

// scraped starts Prometheus if needed and a test app it scrapes.
func scraped(t *testing.T) (*prometheus.Provider, *prom.App) {
	t.Helper()
	s := server.Get(t)
	app, err := prom.NewApp()
	require.NoError(t, err)
	t.Cleanup(app.Close)
	require.NoError(t, s.SetTargets(t.Context(), app.Addr))
	p, err := prometheus.New(s.URL, prometheus.WithTimeout(5*time.Second))
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("prometheus log:\n%s", s.Log())
		}
	})
	return p, app
}

// settles waits until the query's value is within delta of want.
func settles(t *testing.T, p observe.Provider, query string, want, delta float64) {
	t.Helper()
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		got, err := p.Query(t.Context(), query)
		require.NoError(c, err)
		assert.InDelta(c, want, got, delta, query)
	}, 30*time.Second, 250*time.Millisecond)
}

// The templates' queries follow one version's error rate and latency, and only that
// version's.
func TestTemplates(t *testing.T) {
	p, app := scraped(t)
	window := analysis.Window(5 * time.Second)
	// The app's own series: Prometheus may hold those of an earlier run's app.
	sel := func(v string) string {
		return analysis.MatchLabels(map[string]string{"instance": app.Addr, "version": v})
	}
	rate := func(v string) string { return analysis.SuccessRate(p, sel(v), 0.99, window).Query }
	p99 := func(v string) string { return analysis.LatencyP99(p, sel(v), time.Second, window).Query }

	app.SetTraffic("v1", prom.Traffic{RPS: 100, Latency: 20 * time.Millisecond})
	app.SetTraffic("v2", prom.Traffic{RPS: 100, Latency: 20 * time.Millisecond})
	settles(t, p, rate("v2"), 1, 0)
	// 20 ms lies in the default bucket (0.01, 0.025]: the 99th percentile is
	// interpolated at 99% of it.
	settles(t, p, p99("v2"), 0.01+0.99*0.015, 1e-3)

	app.SetTraffic("v2", prom.Traffic{RPS: 100, ErrorRate: 0.3, Latency: 800 * time.Millisecond})
	settles(t, p, rate("v2"), 0.7, 0.03)
	settles(t, p, p99("v2"), 0.5+0.99*0.5, 1e-3) // bucket (0.5, 1]
	settles(t, p, rate("v1"), 1, 0)
	settles(t, p, p99("v1"), 0.01+0.99*0.015, 1e-3)

	// A version that only fails has a success rate of 0, not "no data".
	app.SetTraffic("v3", prom.Traffic{RPS: 50, ErrorRate: 1, Latency: time.Millisecond})
	settles(t, p, rate("v3"), 0, 0)

	t.Run("checks", func(t *testing.T) {
		rate, p99 := analysis.SuccessRate(p, sel("v1"), 0.99, window), analysis.LatencyP99(p, sel("v1"), 100*time.Millisecond, window)
		res, err := analysis.Run(t.Context(), []analysis.Check{rate, p99})
		require.NoError(t, err)
		assert.Equal(t, analysis.Successful, res.Phase, res.Message)

		rate, p99 = analysis.SuccessRate(p, sel("v2"), 0.99, window), analysis.LatencyP99(p, sel("v2"), 100*time.Millisecond, window)
		res, err = analysis.Run(t.Context(), []analysis.Check{rate, p99})
		require.NoError(t, err)
		assert.Equal(t, analysis.Failed, res.Phase, res.Message)
		for _, m := range res.Measurements {
			assert.Equal(t, analysis.Failed, m.Phase, "%s: %v", m.Check, m.Value)
		}
	})
}

// Missing data, a Prometheus that is down, slow or not Prometheus, and queries that
// do not give one number are inconclusive, never successful.
func TestInconclusive(t *testing.T) {
	p, app := scraped(t)
	app.SetTraffic("idle", prom.Traffic{}) // its counters exist, at 0
	app.SetTraffic("busy", prom.Traffic{RPS: 50, Latency: time.Millisecond})
	settles(t, p, analysis.SuccessRate(p, `version="busy"`, 0.99, analysis.Window(5*time.Second)).Query, 1, 0)

	closed := httptest.NewServer(http.NotFoundHandler())
	down, err := prometheus.New(closed.URL)
	require.NoError(t, err)
	closed.Close()

	hang, err := net.Listen("tcp", "127.0.0.1:0") // accepts connections, never answers
	require.NoError(t, err)
	t.Cleanup(func() { _ = hang.Close() })
	slow, err := prometheus.New("http://"+hang.Addr().String(), prometheus.WithTimeout(500*time.Millisecond))
	require.NoError(t, err)

	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("<html>it works</html>"))
	}))
	t.Cleanup(html.Close)
	garbage, err := prometheus.New(html.URL)
	require.NoError(t, err)

	tests := []struct {
		name     string
		provider observe.Provider
		query    string
		want     string
	}{
		{"no such version", p, analysis.SuccessRate(p, `version="v9"`, 0.99).Query, "no data"},
		{"no traffic", p, analysis.SuccessRate(p, `version="idle"`, 0.99).Query, "not a finite number: NaN"},
		{"no latency observed", p, analysis.LatencyP99(p, `version="idle"`, time.Second).Query, "not a finite number: NaN"},
		{"several series", p, `http_requests_total{version="busy"}`, "2 series, want one"},
		{"bad PromQL", p, `sum(rate(http_requests_total[1m])`, "bad_data"},
		{"range vector", p, `http_requests_total{version="busy",code="200"}[10s]`, "range vector"},
		{"prometheus down", down, "up", "connection refused"},
		{"prometheus hangs", slow, "up", "timed out after 500ms"},
		{"not prometheus", garbage, "up", "bad_response"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := analysis.Run(t.Context(), []analysis.Check{{
				Name: "c", Provider: tt.provider, Query: tt.query, Success: analysis.AtLeast(0), // any number would do
			}})
			require.NoError(t, err)
			assert.Equal(t, analysis.Inconclusive, res.Phase)
			require.Len(t, res.Measurements, 1)
			assert.ErrorContains(t, res.Measurements[0].Err, tt.want)
		})
	}
	_, err = p.Query(t.Context(), analysis.SuccessRate(p, `version="v9"`, 0.99).Query)
	require.ErrorIs(t, err, observe.ErrNoData)
	v, err := p.Query(t.Context(), analysis.SuccessRate(p, `version="idle"`, 0.99).Query)
	require.NoError(t, err, "NaN is an answer; the analysis judges it")
	assert.True(t, math.IsNaN(v))
}
