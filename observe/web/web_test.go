package web_test

import (
	"errors"
	"fmt"
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
	"github.com/shipkit/shipkit/observe/analysis"
	"github.com/shipkit/shipkit/observe/web"
)

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// backend answers GET /v1/query?q=NAME with the JSON body registered for NAME.
type backend struct {
	answers map[string]string
	status  int
	delay   time.Duration

	mu      sync.Mutex
	headers []http.Header
	urls    []string
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	b.headers = append(b.headers, r.Header.Clone())
	b.urls = append(b.urls, r.URL.String())
	b.mu.Unlock()
	if b.delay > 0 {
		select {
		case <-time.After(b.delay):
		case <-r.Context().Done():
			return
		}
	}
	if b.status != 0 {
		w.WriteHeader(b.status)
		_, _ = w.Write([]byte("<html>\n  <body>upstream\tbroken</body>\n</html>"))
		return
	}
	body, ok := b.answers[r.URL.Query().Get("q")]
	if !ok {
		http.Error(w, "unknown query", http.StatusNotFound)
		return
	}
	_, _ = w.Write([]byte(body))
}

func start(t *testing.T, b *backend) string {
	t.Helper()
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestQuery(t *testing.T) {
	b := &backend{answers: map[string]string{
		`rate(version="v2")`: `{"series": [{"points": [[1700000000, 0.993]]}]}`,
		"empty":              `{"series": []}`,
		"nan":                `{"series": [{"points": [[1700000000, "NaN"]]}]}`,
		"garbage":            `<html>hello</html>`,
		"bool":               `{"series": [{"points": [[1700000000, true]]}]}`,
	}}
	u := start(t, b)
	p, err := web.New(u+"/v1/query?q={{urlquery .Query}}&api_key=k3y-s3cret", "$.series[0].points[0][1]",
		web.WithHeader("DD-APPLICATION-KEY", "app-s3cret"))
	require.NoError(t, err)

	v, err := p.Query(t.Context(), `rate(version="v2")`)
	require.NoError(t, err)
	assert.InDelta(t, 0.993, v, 0)
	assert.Equal(t, "/v1/query?q=rate%28version%3D%22v2%22%29&api_key=k3y-s3cret", b.urls[0], "the query is escaped")
	assert.Equal(t, "app-s3cret", b.headers[0].Get("DD-APPLICATION-KEY"))
	assert.Equal(t, "application/json", b.headers[0].Get("Accept"))

	tests := []struct {
		query  string
		want   []string
		noData bool
	}{
		{"empty", []string{"$.series has 0 elements, no index 0"}, true},
		{"garbage", []string{"not JSON", `"<html>hello</html>"`}, false},
		{"bool", []string{"is a boolean, not a number"}, false},
		{"unknown", []string{"404 Not Found", `"unknown query"`}, false},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			_, err := p.Query(t.Context(), tt.query)
			require.Error(t, err)
			for _, want := range tt.want {
				assert.ErrorContains(t, err, want)
			}
			assert.ErrorContains(t, err, "web GET "+u+"/v1/query: query "+tt.query)
			assert.NotContains(t, err.Error(), "s3cret", "no keys from the URL or the headers")
			assert.Equal(t, tt.noData, errors.Is(err, observe.ErrNoData))
		})
	}

	// Through the analysis: NaN and no data are inconclusive.
	for _, q := range []string{"nan", "empty", "garbage"} {
		res, err := analysis.Run(t.Context(), []analysis.Check{{Name: "c", Provider: p, Query: q, Success: analysis.AtLeast(0)}})
		require.NoError(t, err)
		assert.Equal(t, analysis.Inconclusive, res.Phase, q)
	}
}

func TestQueryInPath(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.EscapedPath()
		_, _ = fmt.Fprint(w, `{"value": 7}`)
	}))
	t.Cleanup(srv.Close)
	p, err := web.New(srv.URL+"/metrics/{{pathescape .Query}}/value", "value")
	require.NoError(t, err)
	v, err := p.Query(t.Context(), "checkout/error rate")
	require.NoError(t, err)
	assert.InDelta(t, 7.0, v, 0)
	assert.Equal(t, "/metrics/checkout%2Ferror%20rate/value", got)
}

func TestFailures(t *testing.T) {
	t.Run("server error", func(t *testing.T) {
		p, err := web.New(start(t, &backend{status: http.StatusBadGateway})+"/q?q={{urlquery .Query}}", "v", web.WithBearerToken("t0ken-s3cret"))
		require.NoError(t, err)
		_, err = p.Query(t.Context(), "x")
		assert.ErrorContains(t, err, `502 Bad Gateway: "<html> <body>upstream broken</body> </html>"`)
		assert.NotContains(t, err.Error(), "s3cret")
	})
	t.Run("timeout", func(t *testing.T) {
		b := &backend{delay: 5 * time.Second, answers: map[string]string{"x": `{"v": 1}`}}
		p, err := web.New(start(t, b)+"/q?q={{urlquery .Query}}", "v", web.WithTimeout(200*time.Millisecond))
		require.NoError(t, err)
		begin := time.Now()
		_, err = p.Query(t.Context(), "x")
		assert.Less(t, time.Since(begin), 2*time.Second)
		assert.ErrorContains(t, err, "timed out after 200ms")
	})
	t.Run("down", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		p, err := web.New(srv.URL+"/q?key=s3cret&q={{urlquery .Query}}", "v")
		require.NoError(t, err)
		_, err = p.Query(t.Context(), "x")
		assert.ErrorContains(t, err, "connection refused")
		assert.NotContains(t, err.Error(), "s3cret")
	})
	t.Run("too large", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(`{"v": "` + strings.Repeat("x", 11<<20) + `"}`))
		}))
		t.Cleanup(srv.Close)
		p, err := web.New(srv.URL, "v")
		require.NoError(t, err)
		_, err = p.Query(t.Context(), "x")
		assert.ErrorContains(t, err, "larger than 10 MiB")
	})
}

func TestNewInvalid(t *testing.T) {
	tests := []struct {
		tmpl, path string
		opts       []web.Option
		want       string
	}{
		{"http://m/q?q={{urlquery .Query}", "v", nil, "URL template"},
		{"http://m/q?q={{.Nope}}", "v", nil, "can't evaluate field Nope"},
		{"m/q?q={{urlquery .Query}}", "v", nil, "want an http or https URL"},
		{"ftp://m/{{pathescape .Query}}", "v", nil, "want an http or https URL"},
		{"http://u:s3cret@m/%zz", "v", nil, `invalid URL escape "%zz"`},
		{"http://m/q", "$.a[", nil, "unclosed ["},
		{"http://m/q", "v", []web.Option{web.WithTimeout(-time.Second)}, "invalid option: WithTimeout(-1s)"},
	}
	for _, tt := range tests {
		_, err := web.New(tt.tmpl, tt.path, tt.opts...)
		assert.ErrorContains(t, err, tt.want, tt.tmpl)
		if err != nil {
			assert.NotContains(t, err.Error(), "s3cret")
		}
	}
	_, err := web.New("http://m/q", "v", web.WithTimeout(0))
	assert.ErrorIs(t, err, mesh.ErrInvalidOption, "the stages' one invalid-option sentinel")
}
