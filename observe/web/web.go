// Package web is an [observe.Provider] for metrics backends that answer an HTTP GET
// with JSON: Datadog, New Relic, CloudWatch behind a gateway, a service's own status
// endpoint. The URL is a template the query is written into; a small JSON path picks
// the number out of the answer.
package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/template"
	"time"
	"unicode"

	"github.com/shipkit/shipkit/internal/option"
	"github.com/shipkit/shipkit/observe"
)

// DefaultTimeout bounds a request when [WithTimeout] is not given.
const DefaultTimeout = 30 * time.Second

// maxBody bounds the answers read.
const maxBody = 10 << 20

// Provider GETs a URL made from its template and the query, and returns the number
// at its path in the JSON answer. It is safe for concurrent use.
type Provider struct {
	tmpl    *template.Template
	path    Path
	client  *http.Client
	header  http.Header
	timeout time.Duration
}

var _ observe.Provider = (*Provider)(nil)

// Option configures [New].
type Option func(*options)

type options struct {
	rt      http.RoundTripper
	timeout time.Duration
	header  http.Header
}

// WithRoundTripper sends the requests through rt; default [http.DefaultTransport].
func WithRoundTripper(rt http.RoundTripper) Option {
	return func(o *options) { o.rt = rt }
}

// WithTimeout bounds each request; default 30 s. [New] refuses zero or less with an
// error matching (errors.Is) the stages' one invalid-option sentinel, such as
// deploy.ErrInvalidOption.
func WithTimeout(d time.Duration) Option {
	return func(o *options) { o.timeout = d }
}

// WithHeader sets a header on every request, e.g. "DD-API-KEY". Header values are
// never included in errors.
func WithHeader(key, value string) Option {
	return func(o *options) { o.header.Set(key, value) }
}

// WithBearerToken authenticates every request with "Authorization: Bearer token".
func WithBearerToken(token string) Option {
	return WithHeader("Authorization", "Bearer "+token)
}

// Query is what the URL template is executed with.
type Query struct {
	// Query is the query given to [Provider.Query], as is: escape it with
	// {{urlquery .Query}} in a query parameter or {{pathescape .Query}} in a path.
	Query string
}

// New returns a provider that GETs urlTemplate, a text/template executed with a
// [Query], and picks the number at path (see [ParsePath]) from the JSON answer:
//
//	web.New("https://api.example.com/v1/query?q={{urlquery .Query}}", "$.series[0].value")
//
// The template's functions are text/template's own plus pathescape
// ([url.PathEscape]). New fails when the template or the path does not parse or the
// URL it makes is not http or https.
func New(urlTemplate, path string, opts ...Option) (*Provider, error) {
	o := options{rt: http.DefaultTransport, timeout: DefaultTimeout, header: http.Header{}}
	for _, opt := range opts {
		opt(&o)
	}
	tmpl, err := template.New("url").Option("missingkey=error").
		Funcs(template.FuncMap{"pathescape": url.PathEscape}).Parse(urlTemplate)
	if err != nil {
		return nil, fmt.Errorf("web: URL template: %w", err)
	}
	p, err := ParsePath(path)
	if err != nil {
		return nil, err
	}
	if o.timeout <= 0 {
		return nil, fmt.Errorf("web: %w", option.Errorf("WithTimeout(%v): want more than 0", o.timeout))
	}
	if o.rt == nil {
		o.rt = http.DefaultTransport
	}
	w := &Provider{tmpl: tmpl, path: p, header: o.header, timeout: o.timeout,
		client: &http.Client{Transport: o.rt}}
	if _, err := w.url("up"); err != nil { // a sample query shows a template that cannot work
		return nil, err
	}
	return w, nil
}

// url executes the template with query and checks the result.
func (p *Provider) url(query string) (*url.URL, error) {
	var b strings.Builder
	if err := p.tmpl.Execute(&b, Query{Query: query}); err != nil {
		return nil, fmt.Errorf("web: URL template: %w", err)
	}
	u, err := url.Parse(b.String())
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // without the URL, which may hold a key
		}
		return nil, fmt.Errorf("web: URL template made an invalid URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("web: URL template made %s: want an http or https URL with a host", where(u))
	}
	return u, nil
}

// Query GETs the URL for query and returns the number at the provider's path. Errors
// name the query and the URL without its query string and password, where keys
// may hide; an answer without the path wraps [observe.ErrNoData].
func (p *Provider) Query(ctx context.Context, query string) (float64, error) {
	u, err := p.url(query)
	if err != nil {
		return 0, fmt.Errorf("query %s: %w", query, err)
	}
	fail := func(err error) (float64, error) {
		return 0, fmt.Errorf("web GET %s: query %s: %w", where(u), query, err)
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fail(err)
	}
	for k, vs := range p.header {
		req.Header[k] = vs
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // its message holds the whole URL
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("timed out after %v: %w", p.timeout, err)
		}
		return fail(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return fail(fmt.Errorf("read the answer: %w", err))
	}
	if resp.StatusCode/100 != 2 {
		return fail(fmt.Errorf("%s: %s", resp.Status, snippet(body)))
	}
	if len(body) > maxBody {
		return fail(fmt.Errorf("the answer is larger than %d MiB", maxBody>>20))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return fail(fmt.Errorf("the answer is not JSON (%w): %s", err, snippet(body)))
	}
	v, err := p.path.Number(doc)
	if err != nil {
		return fail(err)
	}
	return v, nil
}

// where returns u without its query string, fragment and password.
func where(u *url.URL) string {
	c := *u
	c.RawQuery, c.Fragment, c.RawFragment = "", "", ""
	return c.Redacted()
}

// snippet returns the start of body on one line, for an error message.
func snippet(body []byte) string {
	s := strings.Join(strings.Fields(string(body[:min(len(body), 200)])), " ")
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return '?'
	}, s)
	if len(body) > 200 {
		s += "…"
	}
	return fmt.Sprintf("%q", s)
}
