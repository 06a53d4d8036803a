package prom_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/internal/testbed/prom"
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

// query returns the value of q's only sample.
func query(ctx context.Context, api promv1.API, q string) (float64, error) {
	v, _, _, err := api.Query(ctx, q, time.Now())
	if err != nil {
		return 0, fmt.Errorf("query %s: %w", q, err)
	}
	vec, ok := v.(model.Vector)
	if !ok || len(vec) != 1 {
		return 0, fmt.Errorf("query %s: want one sample, got %v", q, v)
	}
	return float64(vec[0].Value), nil
}

// eventually polls q until it returns want (within delta) or 30s pass.
func eventually(t *testing.T, api promv1.API, q string, want, delta float64) {
	t.Helper()
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		got, err := query(t.Context(), api, q)
		require.NoError(c, err)
		assert.InDelta(c, want, got, delta, q)
	}, 30*time.Second, 200*time.Millisecond)
}

func TestScrapeApp(t *testing.T) {
	s := server.Get(t)
	app, err := prom.NewApp()
	require.NoError(t, err)
	t.Cleanup(app.Close)
	require.NoError(t, s.SetTargets(t.Context(), app.Addr))

	app.Succeed("v1", 90, 20*time.Millisecond)
	app.Fail("v1", 10, 20*time.Millisecond)
	app.Succeed("v2", 50, 300*time.Millisecond)
	app.Record("v2", 503, 5, 2*time.Second)

	tests := []struct {
		name  string
		query string
		want  float64
		delta float64
	}{
		{"v1 requests", `sum(http_requests_total{version="v1"})`, 100, 0},
		{"v1 successes", `sum(http_requests_total{version="v1",code!~"5.."})`, 90, 0},
		{"v2 successes", `http_requests_total{version="v2",code="200"}`, 50, 0},
		{"v2 unavailable", `http_requests_total{version="v2",code="503"}`, 5, 0},
		{"v2 latency count", `http_request_duration_seconds_count{version="v2"}`, 55, 0},
		{"v2 latency sum", `http_request_duration_seconds_sum{version="v2"}`, 50*0.3 + 5*2, 1e-9},
		// 55 observations: 50 in (0.25, 0.5], 5 in (1, 2.5]. Rank 0.99*55 = 54.45 lies in
		// (1, 2.5] at (54.45-50)/5 of its width: 1 + 1.5*0.89 = 2.335.
		{"v2 p99 latency", `histogram_quantile(0.99, sum by (le) (http_request_duration_seconds_bucket{version="v2"}))`, 2.335, 1e-9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eventually(t, s.API(), tt.query, tt.want, tt.delta)
		})
	}
	if t.Failed() {
		t.Logf("prometheus log:\n%s", s.Log())
	}
}

func TestStartWithTargets(t *testing.T) {
	app, err := prom.NewApp()
	require.NoError(t, err)
	t.Cleanup(app.Close)
	app.Succeed("v1", 3, time.Millisecond)

	s, err := prom.Start(t.Context(), app.Addr)
	testbed.Check(t, err)
	t.Cleanup(s.Stop)

	eventually(t, s.API(), `http_requests_total{version="v1",code="200"}`, 3, 0)
	eventually(t, s.API(), `up{instance="`+app.Addr+`"}`, 1, 0)
}

func TestRejectsRemoteTargets(t *testing.T) {
	for _, target := range []string{"example.com:80", "10.0.0.1:9090", "http://127.0.0.1:80", "127.0.0.1"} {
		_, err := prom.Start(t.Context(), target)
		assert.ErrorContains(t, err, target)
	}
}
