package prom

import (
	"math"
	"net/http"
	"sync"
	"time"
)

// trafficTick is how often the app records the requests of its traffic.
const trafficTick = 100 * time.Millisecond

// Traffic is the load [App.SetTraffic] simulates for one version of the app.
type Traffic struct {
	// RPS is the number of requests per second.
	RPS float64
	// ErrorRate is the share of requests answered with 500, from 0 to 1.
	ErrorRate float64
	// Latency is how long each request takes.
	Latency time.Duration
}

// versionLoad is the traffic of one version and the fractions of requests not yet
// recorded.
type versionLoad struct {
	Traffic
	due, errDue float64
}

// traffic simulates steady load on an App.
type traffic struct {
	mu       sync.Mutex
	versions map[string]*versionLoad
	started  bool
	stop     chan struct{}
	stopped  chan struct{}
}

// SetTraffic makes the app serve version a steady load from now on, recorded every
// 100 ms: requests counted with code 200 or 500 in the proportion t.ErrorRate, each
// observed in the latency histogram as t.Latency. It replaces the version's previous
// traffic at once; a zero Traffic stops it. Like instrumented services that initialize
// their label values, the app exports the version's 200 and 500 counters (at 0) from
// the first call, so a rate over them moves as soon as errors begin.
func (a *App) SetTraffic(version string, t Traffic) {
	t.ErrorRate = math.Min(math.Max(t.ErrorRate, 0), 1)
	a.requests.WithLabelValues(version, "200").Add(0)
	a.requests.WithLabelValues(version, "500").Add(0)
	a.traffic.mu.Lock()
	defer a.traffic.mu.Unlock()
	if a.traffic.versions == nil {
		a.traffic.versions = map[string]*versionLoad{}
	}
	if l := a.traffic.versions[version]; l != nil {
		l.Traffic = t
	} else {
		a.traffic.versions[version] = &versionLoad{Traffic: t}
	}
	if !a.traffic.started {
		a.traffic.started = true
		go a.generate()
	}
}

// generate records the traffic's requests every tick until the app is closed.
func (a *App) generate() {
	defer close(a.traffic.stopped)
	tick := time.NewTicker(trafficTick)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-a.traffic.stop:
			return
		case now := <-tick.C:
			a.traffic.mu.Lock()
			for version, l := range a.traffic.versions {
				l.due += l.RPS * now.Sub(last).Seconds()
				n := math.Floor(l.due)
				l.due -= n
				l.errDue += n * l.ErrorRate
				e := math.Floor(l.errDue)
				l.errDue -= e
				a.Record(version, http.StatusOK, int(n-e), l.Latency)
				a.Record(version, http.StatusInternalServerError, int(e), l.Latency)
			}
			a.traffic.mu.Unlock()
			last = now
		}
	}
}
