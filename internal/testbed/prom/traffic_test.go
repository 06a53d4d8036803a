package prom_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/internal/testbed/prom"
)

// counts returns the app's request counters by version and code, and the sum of the
// latency histogram by version.
func counts(t *testing.T, app *prom.App) (map[string]float64, map[string]float64) {
	t.Helper()
	resp, err := http.Get("http://" + app.Addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	requests, latency := map[string]float64{}, map[string]float64{}
	for _, m := range families["http_requests_total"].GetMetric() {
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		requests[l["version"]+"/"+l["code"]] = m.GetCounter().GetValue()
	}
	for _, m := range families["http_request_duration_seconds"].GetMetric() {
		latency[m.GetLabel()[0].GetValue()] = m.GetHistogram().GetSampleSum()
	}
	return requests, latency
}

func TestTraffic(t *testing.T) {
	app, err := prom.NewApp()
	require.NoError(t, err)
	t.Cleanup(app.Close)

	start := time.Now()
	app.SetTraffic("v1", prom.Traffic{RPS: 200, ErrorRate: 0.25, Latency: 30 * time.Millisecond})
	app.SetTraffic("v2", prom.Traffic{RPS: 100, Latency: time.Second})
	requests, _ := counts(t, app)
	assert.Equal(t, map[string]float64{"v1/200": 0, "v1/500": 0, "v2/200": 0, "v2/500": 0}, requests,
		"the counters exist before the first request")

	time.Sleep(time.Second)
	app.SetTraffic("v1", prom.Traffic{})
	app.SetTraffic("v2", prom.Traffic{})
	elapsed := time.Since(start).Seconds()
	time.Sleep(300 * time.Millisecond) // a tick in flight has recorded
	requests, latency := counts(t, app)

	v1 := requests["v1/200"] + requests["v1/500"]
	assert.InDelta(t, 200*elapsed, v1, 200*0.3, "v1 requests")
	assert.InDelta(t, 0.25, requests["v1/500"]/v1, 0.02, "v1 error rate")
	assert.InDelta(t, 0.03*v1, latency["v1"], 1e-6, "v1 latency sum")
	v2 := requests["v2/200"]
	assert.InDelta(t, 100*elapsed, v2, 100*0.3, "v2 requests")
	assert.Zero(t, requests["v2/500"])
	assert.InDelta(t, v2, latency["v2"], 1e-6, "v2 latency sum")

	time.Sleep(300 * time.Millisecond)
	again, _ := counts(t, app)
	assert.Equal(t, requests, again, "a zero Traffic stops the load")

	app.Close()
	app.Close()
}
