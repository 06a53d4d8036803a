package admission_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/admission"
	"github.com/shipkit/shipkit/sign"
)

// warnMany is denyLatest that also warns, per object: a short warning, a long one
// with a newline and a tab in it, and n more of 150 runes each.
func warnMany(n int) gateFunc {
	return func(ctx context.Context, objs []*unstructured.Unstructured) (*deploy.Decision, error) {
		d, err := denyLatest(ctx, objs)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			warn := func(msg string) {
				d.Warn(deploy.Reason{Reason: sign.Reason{Code: deploy.ReasonPolicy, Message: msg}, Object: deploy.RefOf(o), Rule: "rego:main.warn"})
			}
			warn("[rego:main.warn] no owner label")
			warn("[rego:main.warn] a long message\nover two lines\tand " + strings.Repeat("much more ", 60))
			for i := range n {
				warn(fmt.Sprintf("[rego:main.warn] warning %03d %s", i, strings.Repeat("x", 120)))
			}
		}
		return d, nil
	}
}

// checkWarnings asserts that ws are within the API server's bounds, that none would
// be dropped (no control characters, valid UTF-8), and that they start with the
// short and the cut long warning and, when more were given than fit, end with
// their count.
func checkWarnings(t *testing.T, ws []string, object string, given int) {
	t.Helper()
	require.GreaterOrEqual(t, len(ws), 2, "%q", ws)
	total := 0
	for _, w := range ws {
		n := utf8.RuneCountInString(w)
		assert.LessOrEqual(t, n, admission.MaxWarningRunes, w)
		total += n
		_, err := utilnet.NewWarningHeader(299, "", w)
		assert.NoError(t, err, "the API server would drop %q", w)
	}
	assert.LessOrEqual(t, total, admission.MaxWarningsRunes)
	assert.Equal(t, "deploy gate: "+object+": [rego:main.warn] no owner label", ws[0])
	assert.True(t, strings.HasPrefix(ws[1], "deploy gate: "+object+": [rego:main.warn] a long message over two lines and much more"), ws[1])
	assert.Equal(t, admission.MaxWarningRunes, utf8.RuneCountInString(ws[1]))
	assert.True(t, strings.HasSuffix(ws[1], "…"), ws[1])
	if given > len(ws) {
		kept := len(ws) - 1
		assert.Equal(t, fmt.Sprintf("deploy gate: and %d more warning(s)", given-kept), ws[len(ws)-1])
	}
}

// TestWarnings: the gate's warnings come back in the AdmissionResponse, allowed or
// denied, bounded as the API server bounds them.
func TestWarnings(t *testing.T) {
	for _, n := range []int{0, 3, 40} {
		h := newHandler(t, warnMany(n))
		for _, image := range []string{"registry.example/app@sha256:" + strings.Repeat("a", 64), "nginx:latest"} {
			out := response(t, post(t, h, review("CREATE", image, false)))
			assert.Equal(t, !strings.HasSuffix(image, ":latest"), out.Response.Allowed)
			checkWarnings(t, out.Response.Warnings, "Pod/shop/p", 2+n)
			if n == 3 {
				assert.Len(t, out.Response.Warnings, 5, "all fit")
			}
		}
	}
	out := response(t, post(t, newHandler(t, denyLatest), review("CREATE", "nginx:latest", false)))
	assert.Nil(t, out.Response.Warnings, "no warnings, none sent")
}

// warningRecorder collects the Warning headers client-go receives, as kubectl
// prints them.
type warningRecorder struct {
	mu   sync.Mutex
	seen []string
}

func (r *warningRecorder) HandleWarningHeader(code int, agent, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, text)
}

func (r *warningRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.seen
	r.seen = nil
	return s
}

// TestWebhookWarnings registers the handler with the real API server: the gate's
// warnings reach the client as Warning headers (what kubectl apply prints), for an
// allowed create and beside a denial, every one of them (none dropped for a newline,
// none cut by the API server), the ones past the bound counted.
func TestWebhookWarnings(t *testing.T) {
	c := cluster.Get(t)
	ns := c.NewNamespace(t)
	srv := httptest.NewTLSServer(newHandler(t, warnMany(40)))
	t.Cleanup(srv.Close)
	register(t, c, ns, srv)

	rec := &warningRecorder{}
	cfg := rest.CopyConfig(c.RESTConfig())
	cfg.WarningHandler = rec
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	pods := cs.CoreV1().Pods(ns)

	pinned := podOf("warned", "registry.example/app@sha256:"+strings.Repeat("b", 64))
	_, err = pods.Create(t.Context(), pinned, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	require.NoError(t, err)
	allowed := rec.take()
	checkWarnings(t, allowed, "Pod/"+ns+"/warned", 42)
	assert.Contains(t, allowed[len(allowed)-1], "more warning(s)", "40 long warnings do not all fit")

	_, err = pods.Create(t.Context(), podOf("latest", "nginx:latest"), metav1.CreateOptions{})
	require.ErrorContains(t, err, "denied by the deploy gate")
	checkWarnings(t, rec.take(), "Pod/"+ns+"/latest", 42)
}
