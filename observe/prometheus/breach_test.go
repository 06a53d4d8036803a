package prometheus_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/internal/testbed/prom"
	"github.com/shipkit/shipkit/observe/analysis"
)

// How fast a canary whose error rate rises fails its analysis: from the app starting
// to fail half its requests to Run returning Failed. Prometheus scrapes every second.
// The analysis's own share, from the success rate crossing the threshold in
// Prometheus (seen by a poller every 100 ms) to Run returning, stays within one
// interval plus the query; the rest is the metrics pipeline: the scrape and the
// window the rate is computed over.
func TestBreachDetection(t *testing.T) {
	const threshold = 0.95
	tests := []struct {
		interval, window time.Duration
	}{
		{time.Second, 10 * time.Second},
		{2 * time.Second, 10 * time.Second},
		{time.Second, 20 * time.Second},
	}
	p, app := scraped(t)
	// Versions of their own: a shared Prometheus still holds the series of earlier runs.
	name := func(i int) string { return fmt.Sprintf("canary-%d-%s", i, app.Addr) }
	// Healthy traffic for the longest window first, so that each rate is computed
	// over a full window of it.
	var warm time.Duration
	for i, tt := range tests {
		app.SetTraffic(name(i), prom.Traffic{RPS: 200, Latency: 10 * time.Millisecond})
		warm = max(warm, tt.window)
	}
	time.Sleep(warm)
	for i, tt := range tests {
		t.Run(fmt.Sprintf("interval %v window %v", tt.interval, tt.window), func(t *testing.T) {
			version := name(i)
			check := analysis.SuccessRate(p, `version="`+version+`"`, threshold, analysis.Window(tt.window))
			check.Interval, check.Count, check.InconclusiveLimit = tt.interval, 1000, 3
			settles(t, p, check.Query, 1, 0)

			var mu sync.Mutex
			var crossed time.Time // when Prometheus first answered below the threshold
			measured := make(chan analysis.Measurement, 1000)
			done := make(chan struct{})
			var res *analysis.Result
			var runErr error
			go func() {
				defer close(done)
				res, runErr = analysis.Run(t.Context(), []analysis.Check{check},
					analysis.OnMeasurement(func(m analysis.Measurement) { measured <- m }))
			}()
			for range 2 { // healthy measurements first
				select {
				case m := <-measured:
					require.Equal(t, analysis.Successful, m.Phase, "%v %v", m.Value, m.Err)
				case <-done:
					require.FailNow(t, "the analysis ended before the breach", "%+v", res)
				}
			}

			// Breach at a random moment between two measurements, not right after one.
			time.Sleep(rand.N(tt.interval))
			breach := time.Now()
			app.SetTraffic(version, prom.Traffic{RPS: 200, ErrorRate: 0.5, Latency: 10 * time.Millisecond})
			go func() {
				for {
					select {
					case <-done:
						return
					case <-time.After(100 * time.Millisecond):
					}
					if v, err := p.Query(t.Context(), check.Query); err == nil && v < threshold {
						mu.Lock()
						crossed = time.Now()
						mu.Unlock()
						return
					}
				}
			}()

			select {
			case <-done:
			case <-time.After(tt.window + time.Minute):
				require.FailNow(t, "no breach detected")
			}
			failed := time.Now()
			require.NoError(t, runErr)
			assert.Equal(t, analysis.Failed, res.Phase, res.Message)
			mu.Lock()
			defer mu.Unlock()
			if crossed.IsZero() {
				// The analysis saw the breach before the poller's next query (it asks
				// every 100 ms and stops when the analysis ends): Prometheus crossed the
				// threshold no later than the failing measurement.
				t.Logf("the analysis failed before the poller saw the crossing")
				crossed = failed
			}
			last := res.Measurements[len(res.Measurements)-1]
			t.Logf("breach → Failed: %v (success rate below %v in Prometheus after %v; Run returned %v later; failing value %.3f)",
				failed.Sub(breach).Round(10*time.Millisecond), threshold, crossed.Sub(breach).Round(10*time.Millisecond),
				failed.Sub(crossed).Round(10*time.Millisecond), last.Value)
			assert.Less(t, failed.Sub(crossed), tt.interval+time.Second, "the analysis reports a breach within one interval")
			// The pipeline: a scrape (1 s), the rate's window must be a tenth errors to
			// cross 0.95 at a 50% error rate, one interval, and slack for a busy machine.
			assert.Less(t, failed.Sub(breach), time.Second+tt.window/10+tt.interval+2*time.Second)
		})
	}
}
