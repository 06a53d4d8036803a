// Package prom starts Prometheus for shipkit's integration tests, scraping targets on
// 127.0.0.1 every second, and provides [App], a tiny HTTP app with the request metrics a
// rollout analysis queries (success rate and latency per version).
//
// Share one Prometheus per test package with [testbed.Lazy] and point it at each test's
// app with [Server.SetTargets]:
//
//	var server = testbed.Lazy[*prom.Server]{Start: func() (*prom.Server, func(), error) {
//		s, err := prom.Start(context.Background())
//		if err != nil {
//			return nil, nil, err
//		}
//		return s, s.Stop, nil
//	}}
package prom

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/shipkit/shipkit/internal/testbed"
)

// startTimeout bounds how long Prometheus may take to become ready or to scrape its
// targets.
const startTimeout = 60 * time.Second

// Server is a running Prometheus (Debian's prometheus 2.42) that scrapes static targets
// every second and evaluates every second. It reaches nothing but its targets: no
// remote write, no alerting, no service discovery.
type Server struct {
	// URL is Prometheus's base URL, "http://127.0.0.1:PORT".
	URL string

	proc      *testbed.Process
	dir       string
	transport *http.Transport
	api       promv1.API
	mu        sync.Mutex // serializes SetTargets
	stopOnce  sync.Once
}

// Start starts prometheus as a child process on 127.0.0.1 with a random port, its
// configuration and storage in a new temporary directory, and returns once it is ready
// and has scraped each of targets ("127.0.0.1:PORT" or "localhost:PORT") once, whether
// the scrape succeeded or not. The process lives until Stop is called or ctx ends. A
// missing prometheus binary is reported with [testbed.ErrMissing].
func Start(ctx context.Context, targets ...string) (*Server, error) {
	if err := checkTargets(targets); err != nil {
		return nil, fmt.Errorf("prometheus: %w", err)
	}
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		return nil, testbed.Missingf("prometheus: binary (Debian package prometheus) not in PATH")
	}
	dir, err := os.MkdirTemp("", "shipkit-prometheus-")
	if err != nil {
		return nil, fmt.Errorf("prometheus: make temporary directory: %w", err)
	}
	s := &Server{dir: dir, transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}}
	err = testbed.RetryOnPortTaken(func() error { return s.start(ctx, bin, targets) })
	if err == nil {
		err = s.waitScraped(ctx, targets)
		if err != nil {
			s.Stop()
		}
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("prometheus: %w", err)
	}
	return s, nil
}

// start writes the configuration, starts Prometheus on a free port and waits until it is
// ready. It returns an error wrapping [testbed.ErrPortTaken] when the port was taken
// meanwhile.
func (s *Server) start(ctx context.Context, bin string, targets []string) error {
	cfg := filepath.Join(s.dir, "prometheus.yml")
	if err := writeConfig(cfg, targets); err != nil {
		return err
	}
	addr, err := testbed.FreeAddr()
	if err != nil {
		return err
	}
	url := "http://" + addr
	// The default, minimal environment keeps variables of the caller's (proxies) out.
	p, err := testbed.StartProcess(ctx, testbed.ProcessConfig{Bin: bin, Dir: s.dir, Args: []string{
		"--config.file=" + cfg,
		"--storage.tsdb.path=" + filepath.Join(s.dir, "data"),
		"--web.listen-address=" + addr,
		"--web.external-url=" + url + "/",
		"--web.enable-lifecycle", // POST /-/reload for SetTargets
		// Targets are handed to the scrapers at this interval (default 5s).
		"--scrape.discovery-reload-interval=100ms",
	}})
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	err = testbed.WaitFor(wctx, "prometheus to be ready", func(ctx context.Context) error {
		return s.call(ctx, http.MethodGet, url+"/-/ready")
	}, p)
	if err != nil {
		p.Stop()
		return err
	}
	client, err := api.NewClient(api.Config{Address: url, RoundTripper: s.transport})
	if err != nil {
		p.Stop()
		return fmt.Errorf("make API client: %w", err)
	}
	s.URL, s.proc, s.api = url, p, promv1.NewAPI(client)
	return nil
}

// SetTargets replaces the scraped targets and returns once Prometheus has reloaded its
// configuration and scraped each target once. Tests that share a Server and set
// targets must not run in parallel.
func (s *Server) SetTargets(ctx context.Context, targets ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := checkTargets(targets); err != nil {
		return fmt.Errorf("prometheus: %w", err)
	}
	if err := writeConfig(filepath.Join(s.dir, "prometheus.yml"), targets); err != nil {
		return fmt.Errorf("prometheus: %w", err)
	}
	if err := s.call(ctx, http.MethodPost, s.URL+"/-/reload"); err != nil {
		return s.proc.WithLog(fmt.Errorf("prometheus: reload configuration: %w", err))
	}
	if err := s.waitScraped(ctx, targets); err != nil {
		return fmt.Errorf("prometheus: %w", err)
	}
	return nil
}

// waitScraped waits until each target has been scraped at least once, at most
// startTimeout.
func (s *Server) waitScraped(ctx context.Context, targets []string) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	return testbed.WaitFor(ctx, "prometheus to scrape its targets", func(ctx context.Context) error {
		res, err := s.api.Targets(ctx)
		if err != nil {
			return fmt.Errorf("list targets: %w", err)
		}
		scraped := map[string]bool{}
		for _, t := range res.Active {
			scraped[string(t.Labels["instance"])] = !t.LastScrape.IsZero()
		}
		for _, t := range targets {
			if !scraped[t] {
				return fmt.Errorf("target %s not scraped yet", t)
			}
		}
		return nil
	}, s.proc)
}

// call sends a request without a body and expects 200 OK.
func (s *Server) call(ctx context.Context, method, url string) error {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: s.transport, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// API returns a client of Prometheus's HTTP API.
func (s *Server) API() promv1.API { return s.api }

// Log returns the tail of Prometheus's log.
func (s *Server) Log() string { return s.proc.Tail(100) }

// Stop kills Prometheus and removes its directory. It is safe to call more than once.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		s.proc.Stop()
		s.transport.CloseIdleConnections()
		_ = os.RemoveAll(s.dir)
	})
}

// checkTargets makes sure that Prometheus scrapes nothing beyond this machine.
func checkTargets(targets []string) error {
	for _, t := range targets {
		host, _, err := net.SplitHostPort(t)
		if err != nil {
			return fmt.Errorf("target %q: want HOST:PORT: %w", t, err)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("target %q: only loopback targets (127.0.0.1, localhost) are scraped", t)
		}
	}
	return nil
}

// writeConfig writes a configuration that scrapes targets every second.
func writeConfig(path string, targets []string) error {
	scrape := []any{}
	if len(targets) > 0 {
		scrape = append(scrape, map[string]any{
			"job_name":       "testbed",
			"static_configs": []any{map[string]any{"targets": targets}},
		})
	}
	// JSON is YAML; encoding/json quotes everything safely.
	cfg, err := json.MarshalIndent(map[string]any{
		"global": map[string]any{
			"scrape_interval":     "1s",
			"scrape_timeout":      "1s",
			"evaluation_interval": "1s",
		},
		"scrape_configs": scrape,
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode configuration: %w", err)
	}
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		return fmt.Errorf("write configuration: %w", err)
	}
	return nil
}
