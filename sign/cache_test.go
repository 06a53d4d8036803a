package sign

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeClock is a settable time for the cache's expiry.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now }
func (f *fakeClock) Add(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func TestCacheVerdicts(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1700000000, 0)}
	c := NewCache(CacheTTL(time.Minute), CacheDeniedTTL(time.Second))
	c.now = clock.Now
	ctx := context.Background()
	var runs atomic.Int64
	pass := func(context.Context) (*Verified, error) {
		runs.Add(1)
		return &Verified{Signers: []string{"a"}}, nil
	}
	deny := func(context.Context) (*Verified, error) {
		runs.Add(1)
		return nil, &DeniedError{Reasons: []Reason{{Code: ReasonUnsigned, Message: "no signature"}}}
	}
	fail := func(context.Context) (*Verified, error) { runs.Add(1); return nil, errors.New("registry down") }

	v, err := c.Do(ctx, "pass", pass)
	require.NoError(t, err)
	v.Signers[0] = "changed by the caller"
	v, err = c.Do(ctx, "pass", pass)
	require.NoError(t, err)
	assert.Equal(t, []string{"a"}, v.Signers, "a caller's change must not reach the cache")
	assert.EqualValues(t, 1, runs.Load())

	_, err = c.Do(ctx, "deny", deny)
	require.ErrorIs(t, err, ErrDenied)
	var fresh *DeniedError
	require.ErrorAs(t, err, &fresh)
	assert.True(t, fresh.CachedAt.IsZero(), "a verdict just reached is not a cached one")
	assert.NotContains(t, err.Error(), "cached")
	fresh.Reasons[0].Message = "changed by the caller"
	reached := clock.Now()
	clock.Add(500 * time.Millisecond)
	_, err = c.Do(ctx, "deny", deny)
	require.ErrorIs(t, err, ErrDenied)
	assert.EqualValues(t, 2, runs.Load(), "a denial is kept for its TTL")
	var cached *DeniedError
	require.ErrorAs(t, err, &cached)
	assert.Equal(t, reached, cached.CachedAt)
	assert.Equal(t, reached.Add(time.Second), cached.CachedUntil)
	assert.Equal(t, "denied by policy (cached verdict of 2023-11-14T22:13:20Z, kept until 2023-11-14T22:13:21Z): no signature", err.Error(),
		"a cached denial says so, with the reason as it was kept")
	clock.Add(2 * time.Second)
	_, err = c.Do(ctx, "deny", deny)
	assert.EqualValues(t, 3, runs.Load(), "a denial expires sooner than a pass")
	require.ErrorAs(t, err, &cached)
	assert.True(t, cached.CachedAt.IsZero(), "after its TTL a denial is reached again")
	_, _ = c.Do(ctx, "pass", pass)
	assert.EqualValues(t, 3, runs.Load())
	clock.Add(time.Minute)
	_, _ = c.Do(ctx, "pass", pass)
	assert.EqualValues(t, 4, runs.Load(), "a pass expires too")

	_, _ = c.Do(ctx, "fail", fail)
	_, _ = c.Do(ctx, "fail", fail)
	assert.EqualValues(t, 6, runs.Load(), "other errors are not kept")

	c.Forget()
	_, _ = c.Do(ctx, "pass", pass)
	assert.EqualValues(t, 7, runs.Load())

	var nilCache *Cache
	_, _ = nilCache.Do(ctx, "pass", pass)
	assert.EqualValues(t, 8, runs.Load(), "a nil cache runs every time")
}

// The default cache forgets a denial after DefaultDeniedTTL, which is short: once
// the signatures are pushed, the next verification after it sees them.
func TestCacheDefaultDeniedTTL(t *testing.T) {
	assert.LessOrEqual(t, DefaultDeniedTTL, 10*time.Second)
	clock := &fakeClock{now: time.Unix(1700000000, 0)}
	c := NewCache()
	c.now = clock.Now
	signed := false
	verify := func(context.Context) (*Verified, error) {
		if !signed {
			return nil, &DeniedError{Reasons: []Reason{{Code: ReasonUnsigned, Message: "no signature"}}}
		}
		return &Verified{Signers: []string{"k"}}, nil
	}
	ctx := context.Background()
	_, err := c.Do(ctx, "img", verify)
	require.ErrorIs(t, err, ErrDenied)
	signed = true // the signature is pushed
	clock.Add(DefaultDeniedTTL - time.Millisecond)
	_, err = c.Do(ctx, "img", verify)
	require.ErrorContains(t, err, "cached verdict of", "within the TTL the denial is the cached one, and says so")
	clock.Add(time.Millisecond)
	v, err := c.Do(ctx, "img", verify)
	require.NoError(t, err, "past DefaultDeniedTTL the signature is seen")
	assert.Equal(t, []string{"k"}, v.Signers)
}

func TestCacheSharesConcurrentRuns(t *testing.T) {
	c := NewCache()
	release := make(chan struct{})
	var runs atomic.Int64
	slow := func(context.Context) (*Verified, error) {
		runs.Add(1)
		<-release
		return &Verified{}, nil
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Do(context.Background(), "k", slow)
			assert.NoError(t, err)
		}()
	}
	// A waiter whose context ends gives up without waiting for the run.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.Eventually(t, func() bool { return runs.Load() == 1 }, 5*time.Second, time.Millisecond)
	_, err := c.Do(ctx, "k", slow)
	assert.ErrorIs(t, err, context.Canceled)
	close(release)
	wg.Wait()
	assert.EqualValues(t, 1, runs.Load())
}

func TestCacheBounded(t *testing.T) {
	c := NewCache(CacheMaxEntries(3))
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		_, err := c.Do(context.Background(), k, func(context.Context) (*Verified, error) { return &Verified{}, nil })
		require.NoError(t, err)
	}
	assert.LessOrEqual(t, len(c.entries), 3)

	var runs int
	none := NewCache(CacheMaxEntries(0))
	for range 2 {
		_, err := none.Do(context.Background(), "a", func(context.Context) (*Verified, error) { runs++; return &Verified{}, nil })
		require.NoError(t, err)
	}
	assert.Equal(t, 2, runs, "CacheMaxEntries(0) keeps no verdict (it kept one before)")
	assert.Empty(t, none.entries)
}

// TestCacheClonesPlatforms: a multi-arch verdict handed out by the cache is the
// caller's own down to each platform's attestations.
func TestCacheClonesPlatforms(t *testing.T) {
	c := NewCache(CacheTTL(time.Minute))
	ctx := context.Background()
	verify := func(context.Context) (*Verified, error) {
		return &Verified{Platforms: []PlatformVerified{{
			Platform:     &v1.Platform{OS: "linux", Architecture: "arm64"},
			Attestations: []Attestation{{PredicateType: "p", Predicate: []byte(`{"a":1}`)}},
		}}}, nil
	}
	v, err := c.Do(ctx, "k", verify)
	require.NoError(t, err)
	v.Platforms[0].Platform.Architecture = "amd64"
	v.Platforms[0].Attestations[0].Predicate[2] = 'b'
	v.Platforms[0].Attestations[0].PredicateType = "changed"
	v, err = c.Do(ctx, "k", verify)
	require.NoError(t, err)
	assert.Equal(t, "arm64", v.Platforms[0].Platform.Architecture)
	assert.Equal(t, "p", v.Platforms[0].Attestations[0].PredicateType)
	assert.JSONEq(t, `{"a":1}`, string(v.Platforms[0].Attestations[0].Predicate))
}
