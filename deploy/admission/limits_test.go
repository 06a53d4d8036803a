package admission_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/admission"
	"github.com/shipkit/shipkit/deploy/gate"
	"github.com/shipkit/shipkit/observe"
)

// TestNewHandlerRefusesOptions: options that would refuse every request (a body
// limit of 0 or -1 bytes, a timeout of zero or less, no request in flight) and a
// nil gate are refused by NewHandler, every one named in one *OptionError that
// matches deploy.ErrInvalidOption.
func TestNewHandlerRefusesOptions(t *testing.T) {
	for _, tt := range []struct {
		name string
		g    deploy.Gate
		opts []admission.Option
		want []string
	}{
		{"no body", denyLatest, []admission.Option{admission.WithMaxBodyBytes(0)}, []string{"WithMaxBodyBytes(0)"}},
		{"negative body", denyLatest, []admission.Option{admission.WithMaxBodyBytes(-1)}, []string{"WithMaxBodyBytes(-1)"}},
		{"no time", denyLatest, []admission.Option{admission.WithTimeout(0)}, []string{"WithTimeout(0s)"}},
		{"negative time", denyLatest, []admission.Option{admission.WithTimeout(-time.Second)}, []string{"WithTimeout(-1s)"}},
		{"nothing in flight", denyLatest, []admission.Option{admission.WithMaxInFlight(0)}, []string{"WithMaxInFlight(0)"}},
		{"every one at once", nil, []admission.Option{admission.WithMaxBodyBytes(-1), admission.WithTimeout(0), admission.WithMaxInFlight(-3)},
			[]string{"no gate", "WithMaxBodyBytes(-1)", "WithTimeout(0s)", "WithMaxInFlight(-3)"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, err := admission.NewHandler(tt.g, tt.opts...)
			assert.Nil(t, h)
			require.ErrorIs(t, err, deploy.ErrInvalidOption)
			var oe *admission.OptionError
			require.ErrorAs(t, err, &oe)
			assert.Len(t, oe.Problems, len(tt.want), "%v", err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
	_, err := admission.NewHandler(denyLatest, admission.WithMaxBodyBytes(1), admission.WithTimeout(time.Nanosecond), admission.WithMaxInFlight(1))
	assert.NoError(t, err, "the smallest valid values")
}

// TestMaxInFlight: with WithMaxInFlight(2), a third request while two are being
// judged waits for a slot within its time, then is denied with code 429 in the
// AdmissionReview (fails closed) without reaching the gate; a request after a slot
// frees is judged. The gate never runs more than two checks at once.
func TestMaxInFlight(t *testing.T) {
	release := make(chan struct{})
	var running, most, calls atomic.Int32
	entered := make(chan struct{}, 8)
	h := newHandler(t, gateFunc(func(ctx context.Context, _ []*unstructured.Unstructured) (*deploy.Decision, error) {
		calls.Add(1)
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		entered <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return &deploy.Decision{}, nil
	}), admission.WithMaxInFlight(2))

	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			out := response(t, post(t, h, review("CREATE", "a", false)))
			assert.True(t, out.Response.Allowed)
		})
	}
	<-entered
	<-entered

	start := time.Now()
	out := response(t, post(t, h, review("CREATE", "a", false), func(r *http.Request) { r.URL.RawQuery = "timeout=300ms" }))
	assert.False(t, out.Response.Allowed, "a request with no slot is denied, whatever the failurePolicy")
	require.NotNil(t, out.Response.Result)
	assert.EqualValues(t, http.StatusTooManyRequests, out.Response.Result.Code)
	assert.Contains(t, out.Response.Result.Message, "judging 2 requests already")
	assert.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond, "it waited for a slot")
	assert.EqualValues(t, 2, calls.Load(), "the gate was not called for it")

	close(release)
	wg.Wait()
	out = response(t, post(t, h, review("CREATE", "a", false)))
	assert.True(t, out.Response.Allowed, "a freed slot judges the next request")
	assert.EqualValues(t, 2, most.Load())
}

// TestObserverGetsSanitizedError: when the gate cannot decide, the observer's
// event carries the requester's message, not the gate's error, which can hold what
// a registry sent (observe/otel puts Err on spans); the kind of failure can still be
// matched.
func TestObserverGetsSanitizedError(t *testing.T) {
	img, err := name.NewDigest("registry.example/app@sha256:" + strings.Repeat("a", 64))
	require.NoError(t, err)
	page := "INTERNAL-ADMIN-PAGE " + strings.Repeat("<html>", 5000)
	var mu sync.Mutex
	var events []observe.Event
	h := newHandler(t, gateFunc(func(context.Context, []*unstructured.Unstructured) (*deploy.Decision, error) {
		return nil, &gate.VerifyError{Image: img, Failure: "the registry answered HTTP 403", Err: errors.New("unexpected status 403: " + page)}
	}), admission.WithObserver(observe.ObserverFunc(func(e observe.Event) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
	})))
	out := response(t, post(t, h, review("CREATE", "a", false)))
	assert.False(t, out.Response.Allowed)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, events, 1)
	e := events[0]
	assert.Equal(t, observe.Failed, e.Phase)
	require.Error(t, e.Err)
	assert.NotContains(t, e.Err.Error(), "INTERNAL-ADMIN-PAGE")
	assert.NotContains(t, e.Message, "INTERNAL-ADMIN-PAGE")
	assert.Less(t, len(e.Err.Error()), 512)
	assert.Contains(t, e.Err.Error(), out.Response.Result.Message, "the observer gets what the requester got")
	var ve *gate.VerifyError
	require.ErrorAs(t, e.Err, &ve)
	assert.Equal(t, "the registry answered HTTP 403", ve.Failure)
	assert.Equal(t, img, ve.Image)
	assert.NotContains(t, ve.Error(), "INTERNAL-ADMIN-PAGE")
}
