// Package prometheus is an [observe.Provider] that asks a Prometheus server (or
// anything speaking its HTTP API: Thanos, Mimir, VictoriaMetrics) for the numbers a
// rollout analysis judges.
//
// A query must evaluate to exactly one number: a scalar or an instant vector of one
// sample. An empty vector is an error wrapping [observe.ErrNoData]; several series,
// a range vector or a string are errors naming the query. NaN and ±Inf are returned as
// Prometheus computed them, for the analysis to judge inconclusive.
package prometheus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/shipkit/shipkit/internal/option"
	"github.com/shipkit/shipkit/observe"
)

// DefaultTimeout bounds a query when [WithTimeout] is not given.
const DefaultTimeout = 30 * time.Second

// Provider queries one Prometheus server. It is safe for concurrent use.
type Provider struct {
	address string // redacted, for messages
	api     promv1.API
	timeout time.Duration
	logger  *slog.Logger
}

var _ observe.Provider = (*Provider)(nil)

// Option configures [New].
type Option func(*options)

type options struct {
	rt      http.RoundTripper
	timeout time.Duration
	header  http.Header
	logger  *slog.Logger
}

// WithRoundTripper sends the requests through rt (TLS settings, proxies, a
// caller's authentication); default [http.DefaultTransport].
func WithRoundTripper(rt http.RoundTripper) Option {
	return func(o *options) { o.rt = rt }
}

// WithTimeout bounds each query, on the client and on the server (Prometheus's
// timeout parameter); default 30 s. [New] refuses zero or less with an error
// matching (errors.Is) the stages' one invalid-option sentinel, such as
// deploy.ErrInvalidOption.
func WithTimeout(d time.Duration) Option {
	return func(o *options) { o.timeout = d }
}

// WithHeader sets a header on every request, e.g. an "X-Scope-OrgID" tenant.
// Header values are never logged nor included in errors.
func WithHeader(key, value string) Option {
	return func(o *options) { o.header.Set(key, value) }
}

// WithBearerToken authenticates every request with "Authorization: Bearer token".
func WithBearerToken(token string) Option {
	return WithHeader("Authorization", "Bearer "+token)
}

// WithBasicAuth authenticates every request with HTTP basic authentication.
func WithBasicAuth(user, password string) Option {
	return func(o *options) {
		r := http.Request{Header: http.Header{}}
		r.SetBasicAuth(user, password)
		o.header.Set("Authorization", r.Header.Get("Authorization"))
	}
}

// WithLogger logs the warnings Prometheus returns with an answer (at warn level)
// to l; default: discard.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// New returns a provider that queries the Prometheus server at address
// ("http://prometheus.monitoring:9090", or a path prefix such as
// "https://mimir.example.com/prometheus").
func New(address string, opts ...Option) (*Provider, error) {
	o := options{rt: http.DefaultTransport, timeout: DefaultTimeout, header: http.Header{}}
	for _, opt := range opts {
		opt(&o)
	}
	u, err := url.Parse(address)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // without the address, which may hold a password
		}
		return nil, fmt.Errorf("prometheus: address is not a URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("prometheus: address %q: want an http or https URL with a host", u.Redacted())
	}
	if o.timeout <= 0 {
		return nil, fmt.Errorf("prometheus: %w", option.Errorf("WithTimeout(%v): want more than 0", o.timeout))
	}
	if o.rt == nil {
		o.rt = http.DefaultTransport
	}
	o.logger = observe.OrDiscardLogger(o.logger)
	rt := o.rt
	if len(o.header) > 0 {
		rt = &headerRoundTripper{header: o.header, next: rt}
	}
	client, err := api.NewClient(api.Config{Address: address, RoundTripper: rt})
	if err != nil {
		return nil, fmt.Errorf("prometheus: client for %s: %w", u.Redacted(), err)
	}
	return &Provider{address: u.Redacted(), api: promv1.NewAPI(client), timeout: o.timeout, logger: o.logger}, nil
}

// Sample is the answer to a query.
type Sample struct {
	// Value is the query's only number.
	Value float64
	// Time is the evaluation time Prometheus reports with the sample.
	Time time.Time
	// Warnings are what Prometheus warned about while answering, e.g. a partial
	// response from a federated store.
	Warnings []string
}

// Query returns the value of query, evaluated now by the server; see [Provider.Eval].
func (p *Provider) Query(ctx context.Context, query string) (float64, error) {
	s, err := p.Eval(ctx, query)
	return s.Value, err
}

// Eval evaluates query at the server's current time and returns its only sample with
// the warnings Prometheus sent, which are also logged. It fails, naming the query,
// when Prometheus cannot be reached, answers with an error or something that is not
// its API's JSON, takes longer than the timeout, or when the result is not exactly one
// number; an empty result wraps [observe.ErrNoData].
func (p *Provider) Eval(ctx context.Context, query string) (Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	// The zero time lets the server evaluate at its own clock.
	v, warnings, _, err := p.api.Query(ctx, query, time.Time{}, promv1.WithTimeout(p.timeout))
	if len(warnings) > 0 {
		p.logger.Warn("prometheus warned", "address", p.address, "query", query, "warnings", []string(warnings))
	}
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("timed out after %v: %w", p.timeout, err)
		}
		return Sample{Warnings: warnings}, p.errorf(query, err)
	}
	s, err := one(v)
	s.Warnings = warnings
	if err != nil {
		return s, p.errorf(query, err)
	}
	return s, nil
}

// errorf names the server and the query in err.
func (p *Provider) errorf(query string, err error) error {
	return fmt.Errorf("prometheus %s: query %s: %w", p.address, query, err)
}

// one returns the only number of a query's result.
func one(v model.Value) (Sample, error) {
	switch v := v.(type) {
	case *model.Scalar:
		return Sample{Value: float64(v.Value), Time: v.Timestamp.Time()}, nil
	case model.Vector:
		switch len(v) {
		case 0:
			return Sample{}, fmt.Errorf("%w: the result is an empty vector (no series matched)", observe.ErrNoData)
		case 1:
			return Sample{Value: float64(v[0].Value), Time: v[0].Timestamp.Time()}, nil
		}
		return Sample{}, fmt.Errorf("the result has %d series, want one (aggregate them, e.g. with sum()): %s", len(v), seriesList(v))
	case model.Matrix:
		return Sample{}, fmt.Errorf("the result is a range vector of %d series, want a scalar or an instant vector of one sample", len(v))
	case nil:
		return Sample{}, errors.New("the result is empty")
	}
	return Sample{}, fmt.Errorf("the result is a %s, want a scalar or an instant vector of one sample", v.Type())
}

// seriesList names the first few series of v.
func seriesList(v model.Vector) string {
	const shown = 3
	var names []string
	for _, s := range v[:min(len(v), shown)] {
		names = append(names, s.Metric.String())
	}
	if len(v) > shown {
		names = append(names, fmt.Sprintf("and %d more", len(v)-shown))
	}
	return strings.Join(names, ", ")
}

// headerRoundTripper sets headers on each request.
type headerRoundTripper struct {
	header http.Header
	next   http.RoundTripper
}

// RoundTrip sends a copy of req with the headers set.
func (h *headerRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	for k, vs := range h.header {
		req.Header[k] = vs
	}
	return h.next.RoundTrip(req)
}
