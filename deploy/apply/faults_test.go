package apply_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/rest"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/apply"
	"github.com/shipkit/shipkit/deploy/render"
	"github.com/shipkit/shipkit/internal/testbed/kube"
)

// faultProxy is a reverse proxy on 127.0.0.1 in front of the test bed's API server.
// It counts every request by method and path, and a rule chosen by the test may
// answer a request itself (an error status) or make the proxy go away: the request's
// connection is dropped without an answer, every later request on a kept-alive
// connection too, and new connections are refused until up is called.
type faultProxy struct {
	t        *testing.T
	addr     string
	srv      *http.Server
	upstream http.Handler

	mu     sync.Mutex
	ln     net.Listener // nil while down
	rule   func(key string, n int) fault
	counts map[string]int
}

// fault is what the proxy does with one request.
type fault struct {
	status     int    // answer with this status instead of forwarding
	reason     string // with a metav1.Status body of this reason; plain text when empty
	retryAfter string // Retry-After header
	goAway     bool   // drop the connection and stop listening
}

// pass forwards the request.
var pass = fault{}

// newFaultProxy starts a proxy to c's API server. It authenticates upstream as the
// cluster's administrator, so a client of the proxy needs no credentials.
func newFaultProxy(t *testing.T, c *kube.Cluster) *faultProxy {
	t.Helper()
	cfg := c.RESTConfig()
	target, err := url.Parse(cfg.Host)
	require.NoError(t, err)
	rt, err := rest.TransportFor(cfg)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &faultProxy{t: t, addr: ln.Addr().String(), ln: ln, counts: map[string]int{}}
	p.upstream = &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(target) },
		Transport: rt,
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ErrorLog: log.New(io.Discard, "", 0), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	t.Cleanup(func() { _ = p.srv.Close() })
	return p
}

// config returns a REST config for a client of the proxy.
func (p *faultProxy) config() *rest.Config { return &rest.Config{Host: "http://" + p.addr} }

// setRule makes rule decide, from "METHOD path" and how many such requests came so
// far (this one included), what to do with each request; nil forwards all.
func (p *faultProxy) setRule(rule func(key string, n int) fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rule = rule
}

// count returns how many requests "METHOD path" the proxy received.
func (p *faultProxy) count(key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[key]
}

// locked runs fn with the proxy's lock held, for state its rules share with the test.
func (p *faultProxy) locked(fn func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fn()
}

// up listens again on the same address after the proxy went away.
func (p *faultProxy) up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		return
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Errorf("proxy: listen again on %s: %v", p.addr, err)
		return
	}
	p.ln = ln
	go func() { _ = p.srv.Serve(ln) }()
}

func (p *faultProxy) serve(w http.ResponseWriter, r *http.Request) {
	key := r.Method + " " + r.URL.Path
	p.mu.Lock()
	p.counts[key]++
	f := pass
	if p.ln == nil {
		f = fault{goAway: true}
	} else if p.rule != nil {
		f = p.rule(key, p.counts[key])
	}
	if f.goAway && p.ln != nil {
		_ = p.ln.Close() // new connections are refused from now on
		p.ln = nil
	}
	p.mu.Unlock()
	switch {
	case f.goAway:
		_, _ = io.Copy(io.Discard, r.Body)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			p.t.Errorf("proxy: hijack: %v", err)
			return
		}
		_ = conn.Close()
	case f.status != 0:
		if f.retryAfter != "" {
			w.Header().Set("Retry-After", f.retryAfter)
		}
		if f.reason == "" { // as a load balancer in front of the API server answers
			http.Error(w, http.StatusText(f.status), f.status)
			return
		}
		body, _ := json.Marshal(metav1.Status{
			TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
			Status:   metav1.StatusFailure, Code: int32(f.status), Reason: metav1.StatusReason(f.reason),
			Message: "injected by the test's proxy",
		})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.status)
		_, _ = w.Write(body)
	default:
		p.upstream.ServeHTTP(w, r)
	}
}

// configMaps renders n ConfigMaps cm-0..cm-(n-1) with data {v: version}, plus any
// extra names.
func configMaps(t *testing.T, n int, version string, extra ...string) []*unstructured.Unstructured {
	t.Helper()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%d}\ndata: {v: %q}\n", i, version)
	}
	for _, name := range extra {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s}\ndata: {v: %q}\n", name, version)
	}
	objs, err := render.Parse("cms.yaml", []byte(b.String()))
	require.NoError(t, err)
	return objs
}

// liveData returns the data "v" of every ConfigMap in ns, read straight from the API
// server (not through the proxy), by name.
func liveData(t *testing.T, c *kube.Cluster, ns string) map[string]string {
	t.Helper()
	list, err := c.Clientset().CoreV1().ConfigMaps(ns).List(t.Context(), metav1.ListOptions{})
	require.NoError(t, err)
	out := map[string]string{}
	for _, cm := range list.Items {
		out[cm.Name] = cm.Data["v"]
	}
	return out
}

// objectErrors returns every *apply.ObjectError in err's tree.
func objectErrors(err error) []*apply.ObjectError {
	var out []*apply.ObjectError
	var walk func(error)
	walk = func(err error) {
		if oe, ok := err.(*apply.ObjectError); ok { //nolint:errorlint // walking the tree by hand
			out = append(out, oe)
			return
		}
		switch u := err.(type) { //nolint:errorlint // walking the tree by hand
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

func cmPath(ns, name string) string { return "/api/v1/namespaces/" + ns + "/configmaps/" + name }

// TestApplyRetriesTransientFaults puts the proxy in front of the API server and
// answers the first apply (PATCH) of some ConfigMaps with 429 (with and without
// Retry-After), 500, 503 and 504, and the first read of another with 503: each is
// retried once and the apply succeeds with every object as desired. Then the proxy
// goes away at an apply and comes back 400 ms later: the refused and dropped
// requests are retried and the apply succeeds too.
func TestApplyRetriesTransientFaults(t *testing.T) {
	t.Parallel()
	c := cluster.Get(t)

	t.Run("error statuses", func(t *testing.T) {
		ns := c.NewNamespace(t)
		p := newFaultProxy(t, c)
		first := map[string]fault{
			"PATCH " + cmPath(ns, "cm-0"): {status: http.StatusTooManyRequests, reason: string(metav1.StatusReasonTooManyRequests), retryAfter: "1"},
			"PATCH " + cmPath(ns, "cm-1"): {status: http.StatusTooManyRequests, reason: string(metav1.StatusReasonTooManyRequests)},
			"PATCH " + cmPath(ns, "cm-2"): {status: http.StatusInternalServerError, reason: string(metav1.StatusReasonInternalError)},
			"PATCH " + cmPath(ns, "cm-3"): {status: http.StatusServiceUnavailable},
			"PATCH " + cmPath(ns, "cm-4"): {status: http.StatusGatewayTimeout},
			"GET " + cmPath(ns, "cm-5"):   {status: http.StatusServiceUnavailable, reason: string(metav1.StatusReasonServiceUnavailable)},
		}
		p.setRule(func(key string, n int) fault {
			if f, ok := first[key]; ok && n == 1 {
				return f
			}
			return pass
		})
		m, err := apply.New(p.config(), apply.Options{Namespace: ns})
		require.NoError(t, err)
		start := time.Now()
		cs, err := m.Apply(t.Context(), configMaps(t, 6, "1"))
		require.NoError(t, err)
		t.Logf("apply with %d injected faults: %s", len(first), time.Since(start).Round(time.Millisecond))
		assert.Equal(t, 6, cs.Count(deploy.Created), "%v", cs)
		for key := range first {
			assert.Equal(t, 2, p.count(key), "%s: answered with an error once, then retried once", key)
		}
		assert.Equal(t, 1, p.count("PATCH "+cmPath(ns, "cm-5")))
		assert.Equal(t, map[string]string{"cm-0": "1", "cm-1": "1", "cm-2": "1", "cm-3": "1", "cm-4": "1", "cm-5": "1", "kube-root-ca.crt": ""},
			liveData(t, c, ns))
	})

	t.Run("server restarts", func(t *testing.T) {
		ns := c.NewNamespace(t)
		p := newFaultProxy(t, c)
		patches := 0
		p.setRule(func(key string, _ int) fault {
			if !strings.HasPrefix(key, "PATCH ") {
				return pass
			}
			if patches++; patches == 2 {
				time.AfterFunc(400*time.Millisecond, p.up)
				return fault{goAway: true}
			}
			return pass
		})
		m, err := apply.New(p.config(), apply.Options{Namespace: ns})
		require.NoError(t, err)
		cs, err := m.Apply(t.Context(), configMaps(t, 6, "1"))
		require.NoError(t, err)
		assert.Equal(t, 6, cs.Count(deploy.Created), "%v", cs)
		p.locked(func() { assert.Greater(t, patches, 6, "a PATCH was dropped and sent again") })
		assert.Equal(t, map[string]string{"cm-0": "1", "cm-1": "1", "cm-2": "1", "cm-3": "1", "cm-4": "1", "cm-5": "1", "kube-root-ca.crt": ""},
			liveData(t, c, ns))
	})
}

// TestApplyServerGoesAway: a set (cm-0..cm-5 and old, in an ApplySet with prune) is
// applied; then a new revision (new data, without old) is applied while the proxy
// lets two applies through and goes away at the third. The apply fails with an error
// that names every object it did not apply and wraps the connection error; the two
// applied objects are the ones the ChangeSet reports, nothing is pruned and a
// ConfigMap outside the set is untouched. With the proxy back, a rerun converges:
// every object has the new data, old is pruned, and a plan shows no change.
func TestApplyServerGoesAway(t *testing.T) {
	t.Parallel()
	c := cluster.Get(t)
	ns := c.NewNamespace(t)
	ctx := t.Context()
	other, err := c.Clientset().CoreV1().ConfigMaps(ns).Apply(ctx, cmApply("other", ns), metav1.ApplyOptions{FieldManager: "someone-else"})
	require.NoError(t, err)

	p := newFaultProxy(t, c)
	m, err := apply.New(p.config(), apply.Options{Namespace: ns, ApplySet: &apply.ApplySet{Name: "set", Namespace: ns}, Prune: true})
	require.NoError(t, err)
	_, err = m.Apply(ctx, configMaps(t, 6, "1", "old"))
	require.NoError(t, err)

	const through = 2
	members := 0
	p.setRule(func(key string, _ int) fault {
		if !strings.HasPrefix(key, "PATCH "+cmPath(ns, "cm-")) {
			return pass
		}
		if members++; members > through {
			return fault{goAway: true}
		}
		return pass
	})
	start := time.Now()
	cs, err := m.Apply(ctx, configMaps(t, 6, "2"))
	require.Error(t, err)
	t.Logf("failed after %s: %v", time.Since(start).Round(time.Millisecond), err)

	// The error names each object not applied, and wraps why.
	live := liveData(t, c, ns)
	var failed, notApplied []string
	for _, oe := range objectErrors(err) {
		failed = append(failed, oe.Object.Name)
		assert.Contains(t, err.Error(), "ConfigMap/"+ns+"/"+oe.Object.Name)
		assert.True(t, utilnet.IsConnectionRefused(oe.Err) || utilnet.IsProbableEOF(oe.Err) || utilnet.IsConnectionReset(oe.Err),
			"%s: the connection error is wrapped: %#v", oe.Object, oe.Err)
	}
	var applied []string
	for _, ch := range cs.Changes {
		assert.Equal(t, deploy.Configured, ch.Action, "%s", ch.Object)
		applied = append(applied, ch.Object.Name)
	}
	for i := range 6 {
		name := fmt.Sprintf("cm-%d", i)
		switch live[name] {
		case "1":
			notApplied = append(notApplied, name)
		case "2":
			assert.Contains(t, applied, name, "applied on the server and reported in the ChangeSet")
		default:
			t.Errorf("%s: unexpected data %q", name, live[name])
		}
	}
	sort.Strings(failed)
	assert.Len(t, applied, through, "%v", cs)
	assert.Equal(t, notApplied, failed, "the error names exactly the objects not applied")
	assert.Equal(t, "1", live["old"], "nothing is pruned after a failed apply")
	assert.Len(t, live, 6+4, "cm-*, old, other, the ApplySet's parent and kube-root-ca.crt: %v", live)
	now, err := c.Clientset().CoreV1().ConfigMaps(ns).Get(ctx, "other", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, other.ResourceVersion, now.ResourceVersion, "an object outside the set is untouched")

	// The proxy comes back: a rerun converges.
	p.setRule(nil)
	p.up()
	cs, err = m.Apply(ctx, configMaps(t, 6, "2"))
	require.NoError(t, err)
	assert.Equal(t, through, cs.Count(deploy.Unchanged), "%v", cs)
	assert.Equal(t, 6-through, cs.Count(deploy.Configured), "%v", cs)
	assert.Equal(t, deploy.Pruned, change(t, cs, "ConfigMap", "old").Action)
	assert.Equal(t, map[string]string{"cm-0": "2", "cm-1": "2", "cm-2": "2", "cm-3": "2", "cm-4": "2", "cm-5": "2",
		"other": "", "set": "", "kube-root-ca.crt": ""}, liveData(t, c, ns))
	now, err = c.Clientset().CoreV1().ConfigMaps(ns).Get(ctx, "other", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, other.ResourceVersion, now.ResourceVersion, "an object outside the set is untouched")
	plan, err := m.Plan(ctx, configMaps(t, 6, "2"))
	require.NoError(t, err)
	assert.False(t, plan.Changed(), "%v", plan)
}

// TestApplyDoesNotRetryClientErrors answers the apply of cm-1 with 403, 409 or 422:
// the error names cm-1 and wraps the API error, the request is sent once, cm-1 is
// not created and the rest of the set is applied.
func TestApplyDoesNotRetryClientErrors(t *testing.T) {
	t.Parallel()
	c := cluster.Get(t)
	for _, tc := range []struct {
		code   int
		reason metav1.StatusReason
		is     func(error) bool
	}{
		{http.StatusForbidden, metav1.StatusReasonForbidden, apierrors.IsForbidden},
		{http.StatusConflict, metav1.StatusReasonConflict, apierrors.IsConflict},
		{http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, apierrors.IsInvalid},
	} {
		t.Run(string(tc.reason), func(t *testing.T) {
			ns := c.NewNamespace(t)
			p := newFaultProxy(t, c)
			key := "PATCH " + cmPath(ns, "cm-1")
			p.setRule(func(k string, _ int) fault {
				if k == key {
					return fault{status: tc.code, reason: string(tc.reason)}
				}
				return pass
			})
			m, err := apply.New(p.config(), apply.Options{Namespace: ns})
			require.NoError(t, err)
			cs, err := m.Apply(t.Context(), configMaps(t, 3, "1"))
			var oe *apply.ObjectError
			require.ErrorAs(t, err, &oe)
			assert.Equal(t, deploy.ObjectRef{Kind: "ConfigMap", Namespace: ns, Name: "cm-1"}, oe.Object)
			assert.True(t, tc.is(err), "the API error is wrapped: %v", err)
			assert.Contains(t, err.Error(), "ConfigMap/"+ns+"/cm-1")
			assert.Equal(t, 1, p.count(key), "not retried")
			assert.Equal(t, map[string]deploy.Action{"ConfigMap/cm-0": deploy.Created, "ConfigMap/cm-2": deploy.Created}, actions(cs))
			assert.Equal(t, map[string]string{"cm-0": "1", "cm-2": "1", "kube-root-ca.crt": ""}, liveData(t, c, ns))
			t.Log(err)
		})
	}
}
