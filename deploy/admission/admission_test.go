package admission_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/admission"
	"github.com/shipkit/shipkit/sign"
)

// gateFunc adapts a function to deploy.Gate.
type gateFunc func(ctx context.Context, objs []*unstructured.Unstructured) (*deploy.Decision, error)

func (f gateFunc) Check(ctx context.Context, objs []*unstructured.Unstructured) (*deploy.Decision, error) {
	return f(ctx, objs)
}

// denyLatest denies every container image that ends in ":latest".
var denyLatest = gateFunc(func(_ context.Context, objs []*unstructured.Unstructured) (*deploy.Decision, error) {
	d := &deploy.Decision{}
	for _, o := range objs {
		cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "containers")
		for _, c := range cs {
			img, _ := c.(map[string]any)["image"].(string)
			if strings.HasSuffix(img, ":latest") {
				d.Deny(deploy.Reason{Reason: sign.Reason{Code: deploy.ReasonNotPinned, Message: "not pinned"}, Object: deploy.RefOf(o), Container: "app", Image: img})
			}
		}
	}
	return d, nil
})

func review(op, image string, dryRun bool) string {
	obj := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"app","image":"` + image + `"}]}}`
	return `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"705ab4f5-6393-11e8-b7cc-42010a800002",` +
		`"kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},` +
		`"namespace":"shop","operation":"` + op + `","dryRun":` + map[bool]string{true: "true", false: "false"}[dryRun] + `,"object":` + obj + `}}`
}

func post(t *testing.T, h http.Handler, body string, mutate ...func(*http.Request)) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/validate?timeout=10s", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for _, m := range mutate {
		m(req)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// newHandler is admission.NewHandler that fails the test on an error.
func newHandler(t *testing.T, g deploy.Gate, opts ...admission.Option) *admission.Handler {
	t.Helper()
	h, err := admission.NewHandler(g, opts...)
	require.NoError(t, err)
	return h
}

func response(t *testing.T, rec *httptest.ResponseRecorder) *admissionv1.AdmissionReview {
	t.Helper()
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var out admissionv1.AdmissionReview
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out))
	require.NotNil(t, out.Response)
	assert.Equal(t, "admission.k8s.io/v1", out.APIVersion)
	assert.Equal(t, "AdmissionReview", out.Kind)
	assert.EqualValues(t, "705ab4f5-6393-11e8-b7cc-42010a800002", out.Response.UID, "the request's uid is echoed")
	return &out
}

func TestVerdicts(t *testing.T) {
	h := newHandler(t, denyLatest)
	for _, tt := range []struct {
		name, op, image string
		dryRun          bool
		allowed         bool
	}{
		{"pinned create", "CREATE", "registry.example/app@sha256:" + strings.Repeat("a", 64), false, true},
		{"latest create", "CREATE", "nginx:latest", false, false},
		{"latest update", "UPDATE", "nginx:latest", false, false},
		{"latest dry run", "CREATE", "nginx:latest", true, false},
		{"delete is not judged", "DELETE", "nginx:latest", false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := response(t, post(t, h, review(tt.op, tt.image, tt.dryRun)))
			assert.Equal(t, tt.allowed, out.Response.Allowed)
			if !tt.allowed {
				require.NotNil(t, out.Response.Result)
				assert.EqualValues(t, http.StatusForbidden, out.Response.Result.Code)
				assert.Equal(t, "denied by the deploy gate: Pod/shop/p: container app: image nginx:latest: not pinned", out.Response.Result.Message,
					"the object gets the request's namespace")
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	h := newHandler(t, denyLatest, admission.WithMaxBodyBytes(1024))
	for _, tt := range []struct {
		name   string
		body   string
		mutate func(*http.Request)
		code   int
		says   string
	}{
		{"garbage", "not json at all", nil, http.StatusBadRequest, "not an AdmissionReview"},
		{"empty", "", nil, http.StatusBadRequest, "empty request body"},
		{"v1beta1", `{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}`, nil, http.StatusBadRequest, "want admission.k8s.io/v1 AdmissionReview"},
		{"no request", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, nil, http.StatusBadRequest, "no request"},
		{"no uid", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"operation":"CREATE"}}`, nil, http.StatusBadRequest, "no uid"},
		{"too large", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","pad":"` + strings.Repeat("x", 2048) + `"}`, nil, http.StatusRequestEntityTooLarge, "larger than 1024 bytes"},
		{"GET", "", func(r *http.Request) { r.Method = http.MethodGet }, http.StatusMethodNotAllowed, "POST"},
		{"yaml", review("CREATE", "x", false), func(r *http.Request) { r.Header.Set("Content-Type", "application/yaml") }, http.StatusUnsupportedMediaType, "application/json"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var mutate []func(*http.Request)
			if tt.mutate != nil {
				mutate = append(mutate, tt.mutate)
			}
			rec := post(t, h, tt.body, mutate...)
			assert.Equal(t, tt.code, rec.Code)
			assert.Contains(t, rec.Body.String(), tt.says)
		})
	}
}

// TestGateErrorFailsClosed: a gate that cannot decide denies, with code 500; the
// error's text stays in the webhook's log.
func TestGateErrorFailsClosed(t *testing.T) {
	var logs strings.Builder
	h := newHandler(t, gateFunc(func(context.Context, []*unstructured.Unstructured) (*deploy.Decision, error) {
		return nil, errors.New("registry unreachable: " + strings.Repeat("<html>", 5000))
	}), admission.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	out := response(t, post(t, h, review("CREATE", "a", false)))
	assert.False(t, out.Response.Allowed)
	assert.EqualValues(t, http.StatusInternalServerError, out.Response.Result.Code)
	assert.Equal(t, "the deploy gate could not decide; see the webhook's logs", out.Response.Result.Message)
	assert.Contains(t, logs.String(), "registry unreachable")
	assert.Less(t, logs.Len(), admission.MaxLoggedErrorBytes+2048, "the logged error is cut")
}

// TestTimeout: the API server's ?timeout= bounds the decision.
func TestTimeout(t *testing.T) {
	h := newHandler(t, gateFunc(func(ctx context.Context, _ []*unstructured.Unstructured) (*deploy.Decision, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}))
	start := time.Now()
	rec := post(t, h, review("CREATE", "a", false), func(r *http.Request) { r.URL.RawQuery = "timeout=200ms" })
	out := response(t, rec)
	assert.False(t, out.Response.Allowed)
	assert.Less(t, time.Since(start), 2*time.Second)
	assert.Contains(t, out.Response.Result.Message, "could not decide in time")
}

// TestLongMessage: thousands of reasons are cut, and the rest counted.
func TestLongMessage(t *testing.T) {
	h := newHandler(t, gateFunc(func(_ context.Context, objs []*unstructured.Unstructured) (*deploy.Decision, error) {
		d := &deploy.Decision{}
		for range 2000 {
			d.Deny(deploy.Reason{Reason: sign.Reason{Code: deploy.ReasonPolicy, Message: "something is wrong here"}, Object: deploy.RefOf(objs[0])})
		}
		return d, nil
	}))
	out := response(t, post(t, h, review("CREATE", "a", false)))
	assert.LessOrEqual(t, len(out.Response.Result.Message), admission.MaxMessageBytes+32)
	assert.Contains(t, out.Response.Result.Message, "more")
}
