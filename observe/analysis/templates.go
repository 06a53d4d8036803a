package analysis

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shipkit/shipkit/observe"
)

// The defaults of the templates: the metric names of the conventional HTTP
// instrumentation (client_golang's promhttp, most exporters and meshes' adapters).
const (
	DefaultRequestsMetric = "http_requests_total"
	DefaultDurationMetric = "http_request_duration_seconds"
	DefaultCodeLabel      = "code"
	DefaultWindow         = time.Minute
)

// TemplateOption adjusts the query of [SuccessRate] or [LatencyP99].
type TemplateOption func(*template)

type template struct {
	requests, duration, code string
	window                   time.Duration
}

// RequestsMetric names the counter of requests by status code; default
// "http_requests_total".
func RequestsMetric(name string) TemplateOption {
	return func(t *template) { t.requests = name }
}

// DurationMetric names the histogram of request durations in seconds, without its
// "_bucket" suffix; default "http_request_duration_seconds".
func DurationMetric(name string) TemplateOption {
	return func(t *template) { t.duration = name }
}

// CodeLabel names the label holding the HTTP status code; default "code".
func CodeLabel(name string) TemplateOption {
	return func(t *template) { t.code = name }
}

// Window sets the range the rates are computed over; default one minute. A shorter
// window reports a breach sooner and is noisier; it must hold at least two scrapes.
// A window of 0 or less keeps the default.
// The checks' Interval is set to the window.
func Window(d time.Duration) TemplateOption {
	return func(t *template) { t.window = d }
}

func newTemplate(opts []TemplateOption) template {
	t := template{requests: DefaultRequestsMetric, duration: DefaultDurationMetric, code: DefaultCodeLabel, window: DefaultWindow}
	for _, o := range opts {
		o(&t)
	}
	if t.window <= 0 {
		t.window = DefaultWindow
	}
	return t
}

// rangeSelector returns `metric{selector,extra}[window]`.
func (t template) rangeSelector(metric, selector, extra string) string {
	matchers := strings.Trim(strings.TrimSpace(selector), ",")
	if extra != "" {
		if matchers != "" {
			matchers += ","
		}
		matchers += extra
	}
	return fmt.Sprintf("%s{%s}[%s]", metric, matchers, promDuration(t.window))
}

// SuccessRate returns a check named "success-rate" of the share of the requests
// selected by selector (PromQL label matchers, e.g. `app="web",version="v2"`; see
// [MatchLabels]) that were not answered with a 5xx code, over the template's window:
//
//	1 - (sum(rate(http_requests_total{SELECTOR,code=~"5.."}[1m])) or vector(0))
//	  / sum(rate(http_requests_total{SELECTOR}[1m]))
//
// It succeeds when the share is at least minimum (0.99 for 99%). No request in the
// window is 0/0, NaN, and thus inconclusive; a workload that only fails is 0. The
// check takes one measurement with Interval set to the window: set Count, Interval and
// the limits on the returned Check.
func SuccessRate(p observe.Provider, selector string, minimum float64, opts ...TemplateOption) Check {
	t := newTemplate(opts)
	all := t.rangeSelector(t.requests, selector, "")
	errs := t.rangeSelector(t.requests, selector, t.code+`=~"5.."`)
	return Check{
		Name:     "success-rate",
		Provider: p,
		Query:    fmt.Sprintf("1 - (sum(rate(%s)) or vector(0)) / sum(rate(%s))", errs, all),
		Interval: t.window,
		Success:  AtLeast(minimum),
	}
}

// LatencyP99 returns a check named "latency-p99" of the 99th percentile of the
// durations of the requests selected by selector (see [SuccessRate]) over the
// template's window, from the histogram's buckets:
//
//	histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{SELECTOR}[1m])))
//
// It succeeds when the percentile is at most maximum. No request in the window is
// NaN, and thus inconclusive. Set Count, Interval and the limits on the returned Check.
func LatencyP99(p observe.Provider, selector string, maximum time.Duration, opts ...TemplateOption) Check {
	t := newTemplate(opts)
	return Check{
		Name:     "latency-p99",
		Provider: p,
		Query:    fmt.Sprintf("histogram_quantile(0.99, sum by (le) (rate(%s)))", t.rangeSelector(t.duration+"_bucket", selector, "")),
		Interval: t.window,
		Success:  AtMost(maximum.Seconds()),
	}
}

// MatchLabels returns PromQL matchers selecting exactly the given label values, sorted
// by name and quoted: {"version": "v2", "app": "web"} gives `app="web",version="v2"`.
func MatchLabels(labels map[string]string) string {
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(labels)) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + strconv.Quote(labels[k]))
	}
	return b.String()
}

// promDuration writes d as a PromQL duration: "1m", "90s", "1500ms".
func promDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}
