package prom

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// App is a tiny HTTP app on 127.0.0.1 that exposes /metrics the way a service under a
// rollout does. Its registry holds two metrics:
//
//	http_requests_total{version,code}           counter
//	http_request_duration_seconds{version}      histogram (default buckets)
//
// Tests drive them with [App.Record], [App.Succeed] and [App.Fail] instead of sending
// requests, so they know exactly what Prometheus must report, or simulate steady load
// per version with [App.SetTraffic].
type App struct {
	// Addr is "127.0.0.1:PORT", the target to scrape.
	Addr string

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	srv      *http.Server
	done     chan struct{}
	traffic  traffic
	closing  sync.Once
}

// NewApp starts an App on a random port of 127.0.0.1. Call Close to stop it.
func NewApp() (*App, error) {
	a := &App{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "HTTP requests served, by version of the app and status code.",
		}, []string{"version", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "Time taken to serve HTTP requests, by version of the app.",
			Buckets: prometheus.DefBuckets,
		}, []string{"version"}),
		done:    make(chan struct{}),
		traffic: traffic{stop: make(chan struct{}), stopped: make(chan struct{})},
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(a.requests); err != nil {
		return nil, fmt.Errorf("test app: register http_requests_total: %w", err)
	}
	if err := reg.Register(a.duration); err != nil {
		return nil, fmt.Errorf("test app: register http_request_duration_seconds: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("test app: listen on 127.0.0.1: %w", err)
	}
	a.Addr = l.Addr().String()
	a.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(a.done)
		_ = a.srv.Serve(l) // returns http.ErrServerClosed after Close; nothing else is expected
	}()
	return a, nil
}

// Record counts n requests to version answered with code, each taking latency.
func (a *App) Record(version string, code, n int, latency time.Duration) {
	c := a.requests.WithLabelValues(version, strconv.Itoa(code))
	h := a.duration.WithLabelValues(version)
	for range n {
		c.Inc()
		h.Observe(latency.Seconds())
	}
}

// Succeed records n requests to version answered with 200 OK, each taking latency.
func (a *App) Succeed(version string, n int, latency time.Duration) {
	a.Record(version, http.StatusOK, n, latency)
}

// Fail records n requests to version answered with 500 Internal Server Error, each
// taking latency.
func (a *App) Fail(version string, n int, latency time.Duration) {
	a.Record(version, http.StatusInternalServerError, n, latency)
}

// Close stops the app and its traffic. It is safe to call more than once.
func (a *App) Close() {
	a.closing.Do(func() {
		close(a.traffic.stop)
		a.traffic.mu.Lock()
		started := a.traffic.started
		a.traffic.started = true // a later SetTraffic starts no generator
		a.traffic.mu.Unlock()
		if started {
			<-a.traffic.stopped
		}
		_ = a.srv.Close() // its only error is the listener's
	})
	<-a.done
}
