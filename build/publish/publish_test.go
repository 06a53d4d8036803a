package publish_test

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/build/publish"
	"github.com/shipkit/shipkit/observe"
)

// countingTransport counts the blob bytes uploaded and can fail manifest uploads.
type countingTransport struct {
	requests      atomic.Int64
	uploaded      atomic.Int64
	failManifests bool
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.requests.Add(1)
	if strings.Contains(r.URL.Path, "/blobs/uploads/") && (r.Method == http.MethodPatch || r.Method == http.MethodPut) && r.ContentLength > 0 {
		c.uploaded.Add(r.ContentLength)
	}
	if c.failManifests && r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
		return &http.Response{StatusCode: http.StatusInternalServerError, Body: io.NopCloser(strings.NewReader("boom")),
			Header: http.Header{}, Request: r}, nil
	}
	return http.DefaultTransport.RoundTrip(r)
}

func newRegistry(t *testing.T) name.Repository {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	repo, err := name.NewRepository(strings.TrimPrefix(srv.URL, "http://")+"/team/app", name.Insecure)
	require.NoError(t, err)
	return repo
}

func TestIndexByDigestAndSkipsPresentBlobs(t *testing.T) {
	ctx := context.Background()
	repo := newRegistry(t)
	idx, err := random.Index(1024, 2, 2)
	require.NoError(t, err)
	want, err := idx.Digest()
	require.NoError(t, err)

	tr := &countingTransport{}
	var events []observe.Event
	var mu sync.Mutex
	obs := observe.ObserverFunc(func(e observe.Event) { mu.Lock(); events = append(events, e); mu.Unlock() })
	d, err := publish.Index(ctx, idx, repo, publish.WithTransport(tr), publish.WithKeychain(authn.NewMultiKeychain()),
		publish.WithTags("v1"), publish.WithObserver(obs))
	require.NoError(t, err)
	assert.Equal(t, want.String(), d.DigestStr())
	assert.Positive(t, tr.uploaded.Load())
	mu.Lock()
	require.NotEmpty(t, events)
	assert.Equal(t, observe.Started, events[0].Phase)
	for _, e := range events {
		assert.Equal(t, observe.StageBuild, e.Stage)
		assert.Equal(t, "push "+repo.String(), e.Step)
	}
	last := events[len(events)-1]
	assert.Equal(t, observe.Finished, last.Phase)
	assert.Equal(t, d.String(), last.Message)
	var progressed bool
	for _, e := range events {
		progressed = progressed || (e.Phase == observe.Progress && e.Done > 0 && e.Total > 0)
	}
	assert.True(t, progressed, "push progress in bytes reaches the observer")
	mu.Unlock()

	// Pull back by digest and by tag.
	got, err := remote.Index(d)
	require.NoError(t, err)
	gotDigest, err := got.Digest()
	require.NoError(t, err)
	assert.Equal(t, want, gotDigest)
	tagged, err := remote.Head(repo.Tag("v1"))
	require.NoError(t, err)
	assert.Equal(t, want, tagged.Digest)

	// Publishing again uploads nothing.
	again := &countingTransport{}
	d2, err := publish.Index(ctx, idx, repo, publish.WithTransport(again))
	require.NoError(t, err)
	assert.Equal(t, d, d2)
	assert.Zero(t, again.uploaded.Load(), "blobs already in the registry must not be uploaded again")
}

func TestIndexFailureIsNotSuccess(t *testing.T) {
	repo := newRegistry(t)
	idx, err := random.Index(256, 1, 1)
	require.NoError(t, err)
	d, err := publish.Index(context.Background(), idx, repo, publish.WithTransport(&countingTransport{failManifests: true}),
		publish.WithRemoteOptions(remote.WithRetryStatusCodes()))
	require.Error(t, err)
	assert.Contains(t, err.Error(), repo.String())
	assert.Empty(t, d.DigestStr())
}

// TestInvalidOptions: an invalid option value fails before any request, naming it.
func TestInvalidOptions(t *testing.T) {
	idx, err := random.Index(64, 1, 1)
	require.NoError(t, err)
	tr := &countingTransport{}
	repo := newRegistry(t)
	for _, tt := range []struct {
		opt  publish.Option
		want string
	}{
		{publish.WithTags("v1", "has:colon"), `"has:colon" is not a tag`},
		{publish.WithTags(""), `"" is not a tag`},
		{publish.WithTags(".hidden"), `".hidden" is not a tag`},
		{publish.WithTransport(nil), "nil transport"},
	} {
		_, err := publish.Index(context.Background(), idx, repo, publish.WithTransport(tr), tt.opt)
		assert.ErrorContains(t, err, tt.want)
	}
	assert.Zero(t, tr.requests.Load(), "no request was sent")
}
