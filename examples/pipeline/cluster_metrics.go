package main

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// serviceRPS is the load on the example service in the local cluster, in requests
// per second, shared by its ready pods.
const serviceRPS = 100

// metricsTick is how often the metrics source counts the requests of the last tick.
const metricsTick = 100 * time.Millisecond

// serviceMetrics plays the example service's request metrics on the local cluster,
// where kwok's pods run no containers. It watches the service's pods, and every tick
// counts the requests a Service would have balanced over the ready ones, serviceRPS
// in all, in
//
//	http_requests_total{app, track, version, code}
//
// with the pod's app and track labels, the release its image was built for (or its
// short digest) as version, and code 500 for the share of requests its release fails
// (addRelease). It serves them on /metrics of 127.0.0.1 for Prometheus.
type serviceMetrics struct {
	// Addr is "127.0.0.1:PORT", the target to scrape.
	Addr string

	app      string
	requests *prometheus.CounterVec
	pods     corelisters.PodNamespaceLister
	selector labels.Selector
	srv      *http.Server
	stop     chan struct{}
	done     sync.WaitGroup
	closing  sync.Once

	mu       sync.Mutex
	releases map[string]metricsRelease // by image digest
	due      map[types.UID]*podDue
}

// metricsRelease is what the metrics source knows of a release.
type metricsRelease struct {
	version   string
	errorRate float64
}

// podDue holds the fractions of a pod's requests not counted yet.
type podDue struct{ ok, failed float64 }

// newServiceMetrics starts the metrics source of the pods labelled app=app in
// namespace.
func newServiceMetrics(ctx context.Context, client kubernetes.Interface, namespace, app string) (*serviceMetrics, error) {
	m := &serviceMetrics{
		app: app,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "HTTP requests the example service served, by app, track, version and status code.",
		}, []string{"app", "track", "version", "code"}),
		selector: labels.SelectorFromSet(labels.Set{"app": app}),
		stop:     make(chan struct{}),
		releases: map[string]metricsRelease{},
		due:      map[types.UID]*podDue{},
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(m.requests); err != nil {
		return nil, fmt.Errorf("metrics source: %w", err)
	}
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = m.selector.String() }))
	m.pods = factory.Core().V1().Pods().Lister().Pods(namespace)
	factory.Start(m.stop)
	for typ, ok := range factory.WaitForCacheSync(m.stop) {
		if !ok {
			close(m.stop)
			factory.Shutdown()
			return nil, fmt.Errorf("metrics source: no %v from the API server", typ)
		}
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		close(m.stop)
		factory.Shutdown()
		return nil, fmt.Errorf("metrics source: %w", err)
	}
	m.Addr = l.Addr().String()
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	m.done.Add(3)
	go func() {
		defer m.done.Done()
		_ = m.srv.Serve(l) // http.ErrServerClosed once closed
	}()
	go func() {
		defer m.done.Done()
		<-m.stop
		factory.Shutdown()
	}()
	go func() {
		defer m.done.Done()
		m.generate()
	}()
	return m, nil
}

// addRelease names the release of an image digest and the share of its requests
// that fail. Its counters start at 0 on both tracks, as an instrumented service
// initializes its label values, so a rate over them moves with its first request.
func (m *serviceMetrics) addRelease(digest, version string, errorRate float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.releases[digest] = metricsRelease{version: version, errorRate: math.Min(math.Max(errorRate, 0), 1)}
	for _, track := range []string{"stable", "canary"} {
		for _, code := range []string{"200", "500"} {
			m.requests.WithLabelValues(m.app, track, version, code).Add(0)
		}
	}
}

// generate counts the requests of every tick until the source is closed.
func (m *serviceMetrics) generate() {
	t := time.NewTicker(metricsTick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-m.stop:
			return
		case now := <-t.C:
			m.count(now.Sub(last).Seconds())
			last = now
		}
	}
}

// count counts the requests of the last seconds, balanced over the ready pods.
func (m *serviceMetrics) count(seconds float64) {
	pods, err := m.pods.List(m.selector)
	if err != nil {
		return // the lister reads its cache, which does not fail
	}
	var ready []*corev1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp == nil && podReady(p) {
			ready = append(ready, p)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[types.UID]bool{}
	for _, p := range ready {
		rel := m.release(p)
		d := m.due[p.UID]
		if d == nil {
			d = &podDue{}
			m.due[p.UID] = d
		}
		seen[p.UID] = true
		n := serviceRPS * seconds / float64(len(ready))
		d.failed += n * rel.errorRate
		d.ok += n * (1 - rel.errorRate)
		ok, failed := math.Floor(d.ok), math.Floor(d.failed)
		d.ok -= ok
		d.failed -= failed
		track := p.Labels["track"]
		m.requests.WithLabelValues(m.app, track, rel.version, "200").Add(ok)
		m.requests.WithLabelValues(m.app, track, rel.version, "500").Add(failed)
	}
	for uid := range m.due {
		if !seen[uid] {
			delete(m.due, uid)
		}
	}
}

// release returns the release of a pod's image, or its short digest as the version
// of an image no release was added for.
func (m *serviceMetrics) release(p *corev1.Pod) metricsRelease {
	if len(p.Spec.Containers) == 0 {
		return metricsRelease{version: "unknown"}
	}
	img := p.Spec.Containers[0].Image
	digest := img[strings.LastIndex(img, "@")+1:]
	if rel, ok := m.releases[digest]; ok {
		return rel
	}
	return metricsRelease{version: strings.TrimPrefix(shortDigest(digest), "sha256:")}
}

// podReady reports whether a pod is Ready, so a Service sends it requests.
func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Close stops the source. It is safe to call more than once.
func (m *serviceMetrics) Close() {
	m.closing.Do(func() {
		close(m.stop)
		_ = m.srv.Close()
		m.done.Wait()
	})
}
