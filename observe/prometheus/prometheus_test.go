package prometheus_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/mesh"
	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/observe/prometheus"
)

// api serves Prometheus's query endpoint with a fixed status and body, and records the
// requests it got.
type api struct {
	status int
	body   string
	delay  time.Duration

	mu       sync.Mutex
	requests []*http.Request
	queries  []string
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	a.mu.Lock()
	a.requests = append(a.requests, r)
	a.queries = append(a.queries, r.Form.Get("query"))
	a.mu.Unlock()
	if a.delay > 0 {
		select {
		case <-time.After(a.delay):
		case <-r.Context().Done():
			return
		}
	}
	if r.URL.Path != "/api/v1/query" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	_, _ = w.Write([]byte(a.body))
}

func serve(t *testing.T, a *api) string {
	t.Helper()
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return srv.URL
}

func vector(samples ...string) string {
	return `{"status":"success","data":{"resultType":"vector","result":[` + strings.Join(samples, ",") + `]}}`
}

func TestQueryResults(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		want    float64
		wantErr []string
		noData  bool
	}{
		{name: "one sample", body: vector(`{"metric":{"version":"v2"},"value":[1700000000,"0.995"]}`), want: 0.995},
		{name: "scalar", body: `{"status":"success","data":{"resultType":"scalar","result":[1700000000,"42"]}}`, want: 42},
		{name: "NaN passes through", body: vector(`{"metric":{},"value":[1700000000,"NaN"]}`), want: math.NaN()},
		{name: "+Inf passes through", body: vector(`{"metric":{},"value":[1700000000,"+Inf"]}`), want: math.Inf(1)},
		{name: "empty vector", body: vector(), noData: true, wantErr: []string{"no data", "empty vector"}},
		{name: "several series", body: vector(
			`{"metric":{"code":"200"},"value":[1,"1"]}`, `{"metric":{"code":"404"},"value":[1,"1"]}`,
			`{"metric":{"code":"500"},"value":[1,"1"]}`, `{"metric":{"code":"503"},"value":[1,"1"]}`),
			wantErr: []string{"4 series, want one", `{code="200"}, {code="404"}, {code="500"}, and 1 more`}},
		{name: "matrix", body: `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"]]}]}}`,
			wantErr: []string{"range vector of 1 series"}},
		{name: "string", body: `{"status":"success","data":{"resultType":"string","result":[1,"x"]}}`,
			wantErr: []string{`unexpected value type "string"`}},
		{name: "query error", status: http.StatusBadRequest,
			body:    `{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected <EOF>"}`,
			wantErr: []string{"bad_data: 1:5: parse error"}},
		{name: "garbage", body: `<html>proxy error</html>`, wantErr: []string{"bad_response"}},
		{name: "server error page", status: http.StatusBadGateway, body: `<html>bad gateway</html>`,
			wantErr: []string{"server_error", "502"}},
		{name: "unauthorized", status: http.StatusUnauthorized, body: `unauthorized`, wantErr: []string{"401"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &api{status: http.StatusOK, body: tt.body}
			if tt.status != 0 {
				a.status = tt.status
			}
			p, err := prometheus.New(serve(t, a))
			require.NoError(t, err)
			got, err := p.Query(t.Context(), `sum(up)`)
			if tt.wantErr == nil {
				require.NoError(t, err)
				if math.IsNaN(tt.want) {
					assert.True(t, math.IsNaN(got), "got %v", got)
				} else {
					assert.Equal(t, tt.want, got) //nolint:testifylint // parsed, not computed
				}
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), "query sum(up)", "the error names the query")
			for _, want := range tt.wantErr {
				assert.Contains(t, err.Error(), want)
			}
			assert.Equal(t, tt.noData, errors.Is(err, observe.ErrNoData))
		})
	}
}

func TestEvalWarnings(t *testing.T) {
	a := &api{status: http.StatusOK, body: `{"status":"success","warnings":["partial response: store eu-1 down"],
		"data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"0.5"]}]}}`}
	var log bytes.Buffer
	p, err := prometheus.New(serve(t, a), prometheus.WithLogger(slog.New(slog.NewTextHandler(&log, nil))))
	require.NoError(t, err)
	s, err := p.Eval(t.Context(), "q")
	require.NoError(t, err)
	assert.Equal(t, prometheus.Sample{Value: 0.5, Time: time.Unix(1700000000, 0), Warnings: []string{"partial response: store eu-1 down"}}, s)
	assert.Contains(t, log.String(), "partial response: store eu-1 down")
	assert.Contains(t, log.String(), "query=q")
}

func TestAuthHeaders(t *testing.T) {
	tests := []struct {
		name string
		opt  prometheus.Option
		want http.Header
	}{
		{"bearer", prometheus.WithBearerToken("s3cret-token"), http.Header{"Authorization": {"Bearer s3cret-token"}}},
		{"basic", prometheus.WithBasicAuth("alice", "s3cret-pass"), http.Header{"Authorization": {"Basic YWxpY2U6czNjcmV0LXBhc3M="}}},
		{"tenant", prometheus.WithHeader("X-Scope-OrgID", "team-a"), http.Header{"X-Scope-Orgid": {"team-a"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &api{status: http.StatusUnauthorized, body: `{"status":"error","errorType":"unauthorized","error":"denied"}`}
			var log bytes.Buffer
			p, err := prometheus.New(serve(t, a), tt.opt, prometheus.WithLogger(slog.New(slog.NewTextHandler(&log, nil))))
			require.NoError(t, err)
			_, err = p.Query(t.Context(), "up")
			require.Error(t, err)
			require.Len(t, a.requests, 1)
			for k, v := range tt.want {
				assert.Equal(t, v, a.requests[0].Header.Values(k))
			}
			assert.NotContains(t, err.Error(), "s3cret")
			assert.NotContains(t, log.String(), "s3cret")
		})
	}
}

func TestTimeout(t *testing.T) {
	a := &api{status: http.StatusOK, body: vector(`{"metric":{},"value":[1,"1"]}`), delay: 5 * time.Second}
	p, err := prometheus.New(serve(t, a), prometheus.WithTimeout(200*time.Millisecond))
	require.NoError(t, err)
	start := time.Now()
	_, err = p.Query(t.Context(), "slow_query")
	assert.Less(t, time.Since(start), 2*time.Second)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, "timed out after 200ms")
	assert.ErrorContains(t, err, "query slow_query")
	require.NotEmpty(t, a.requests)
	assert.Equal(t, "200ms", a.requests[0].Form.Get("timeout"), "the server is told the timeout too")
}

func TestDown(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close()
	p, err := prometheus.New(addr)
	require.NoError(t, err)
	_, err = p.Query(t.Context(), "up")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "connection refused")
	assert.Contains(t, err.Error(), "prometheus "+addr)
}

func TestNewInvalid(t *testing.T) {
	tests := []struct {
		address string
		opts    []prometheus.Option
		want    string
	}{
		{"", nil, "want an http or https URL"},
		{"prometheus:9090", nil, "want an http or https URL"},
		{"ftp://prometheus:9090", nil, "want an http or https URL"},
		{"http://", nil, "want an http or https URL"},
		{"http://a b", nil, "invalid character"},
		{"http://alice:s3cret@prom/%zz", nil, `address is not a URL: invalid URL escape "%zz"`},
		{"http://prom", []prometheus.Option{prometheus.WithTimeout(0)}, "invalid option: WithTimeout(0s)"},
	}
	for _, tt := range tests {
		_, err := prometheus.New(tt.address, tt.opts...)
		require.Error(t, err, tt.address)
		assert.ErrorContains(t, err, tt.want, tt.address)
		assert.NotContains(t, err.Error(), "s3cret")
	}
	_, err := prometheus.New("http://prom", prometheus.WithTimeout(-time.Second))
	assert.ErrorIs(t, err, mesh.ErrInvalidOption, "the stages' one invalid-option sentinel")
}
