package sign

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// Defaults of a [Cache].
const (
	// DefaultCacheTTL is how long a Cache keeps a verdict that passed.
	DefaultCacheTTL = 5 * time.Minute
	// DefaultDeniedTTL is how long a Cache keeps a denial: short, because a denied
	// image is often one whose signatures or attestations are still being pushed;
	// once they are, a verifier with this cache sees them within 10 seconds.
	DefaultDeniedTTL = 10 * time.Second
	// DefaultCacheEntries is how many verdicts a Cache keeps at most.
	DefaultCacheEntries = 10000
)

// Cache keeps verification verdicts (a *[Verified] or a *[DeniedError]) by key, for
// a time: a digest's content cannot change, but its signatures can be added or
// removed, so a verdict expires. Other errors (a registry that did not answer) are
// not kept. Concurrent lookups of one key run the verification once and share it.
// A Cache is safe for concurrent use; share one between verifiers to bound memory.
//
// A pass is kept for [DefaultCacheTTL] (5 minutes) and a denial for
// [DefaultDeniedTTL] (10 seconds) unless set otherwise. A denial returned from the
// cache is a copy of the kept *DeniedError with CachedAt and CachedUntil set, so its
// message says it is a cached verdict and until when; sign/cosign's Verifier says a
// cached pass is one in its observer's step message.
type Cache struct {
	ttl, deniedTTL time.Duration
	max            int
	now            func() time.Time

	mu       sync.Mutex
	entries  map[string]cacheEntry
	inflight map[string]*cacheCall
}

type cacheEntry struct {
	v       *Verified
	denied  *DeniedError
	at      time.Time // when the verdict was reached
	expires time.Time
}

type cacheCall struct {
	done chan struct{}
	v    *Verified
	err  error
}

// CacheOption configures a [Cache].
type CacheOption func(*Cache)

// CacheTTL sets how long a passing verdict is kept (default [DefaultCacheTTL]); 0 or
// less keeps none.
func CacheTTL(d time.Duration) CacheOption { return func(c *Cache) { c.ttl = d } }

// CacheDeniedTTL sets how long a denial is kept (default [DefaultDeniedTTL], 10
// seconds); 0 or less keeps none. This is how long signatures and attestations
// pushed after a denial can go unseen: keep it short.
func CacheDeniedTTL(d time.Duration) CacheOption { return func(c *Cache) { c.deniedTTL = d } }

// CacheMaxEntries bounds how many verdicts are kept (default [DefaultCacheEntries]);
// 0 or less keeps none (concurrent lookups of one key still share one run), as a
// TTL of 0 does.
func CacheMaxEntries(n int) CacheOption { return func(c *Cache) { c.max = max(n, 0) } }

// NewCache returns an empty cache.
func NewCache(opts ...CacheOption) *Cache {
	c := &Cache{ttl: DefaultCacheTTL, deniedTTL: DefaultDeniedTTL, max: DefaultCacheEntries, now: time.Now,
		entries: map[string]cacheEntry{}, inflight: map[string]*cacheCall{}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Do returns the verdict kept for key, or runs verify to get it. While verify runs,
// other calls for the same key wait for its verdict instead of running their own; a
// waiter whose context ends returns ctx.Err(). A nil Cache runs verify every time.
func (c *Cache) Do(ctx context.Context, key string, verify func(ctx context.Context) (*Verified, error)) (*Verified, error) {
	if c == nil {
		return verify(ctx)
	}
	for {
		c.mu.Lock()
		if e, ok := c.entries[key]; ok {
			if c.now().Before(e.expires) {
				c.mu.Unlock()
				if e.denied != nil {
					return nil, e.cachedDenial()
				}
				return e.v.clone(), nil
			}
			delete(c.entries, key)
		}
		if call, ok := c.inflight[key]; ok {
			c.mu.Unlock()
			select {
			case <-call.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			// The leader's own context may have ended; then try again with ours.
			if isContextErr(call.err) && ctx.Err() == nil {
				continue
			}
			return call.v.clone(), call.err
		}
		call := &cacheCall{done: make(chan struct{})}
		c.inflight[key] = call
		c.mu.Unlock()

		c.run(ctx, key, call, verify)
		return call.v.clone(), call.err
	}
}

// run runs verify for the call that leads key and publishes its verdict, also when
// verify panics (then the waiters get an error and the panic goes on).
func (c *Cache) run(ctx context.Context, key string, call *cacheCall, verify func(ctx context.Context) (*Verified, error)) {
	call.err = errors.New("verification did not finish")
	defer func() {
		c.mu.Lock()
		delete(c.inflight, key)
		var denied *DeniedError
		now := c.now()
		switch {
		case call.err == nil && c.ttl > 0:
			c.store(key, cacheEntry{v: call.v, at: now, expires: now.Add(c.ttl)})
		case errors.As(call.err, &denied) && c.deniedTTL > 0:
			kept := *denied // a copy the caller cannot change
			kept.Reasons = slices.Clone(denied.Reasons)
			c.store(key, cacheEntry{denied: &kept, at: now, expires: now.Add(c.deniedTTL)})
		}
		c.mu.Unlock()
		close(call.done)
	}()
	call.v, call.err = verify(ctx)
}

// store adds an entry, making room first; c.mu is held.
func (c *Cache) store(key string, e cacheEntry) {
	if c.max == 0 {
		return
	}
	if len(c.entries) >= c.max {
		now := c.now()
		for k, old := range c.entries {
			if !now.Before(old.expires) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries { // still full: drop arbitrary entries
			if len(c.entries) < c.max {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = e
}

// Forget drops every verdict kept, for example after a key was revoked.
func (c *Cache) Forget() {
	if c == nil {
		return
	}
	c.mu.Lock()
	clear(c.entries)
	c.mu.Unlock()
}

// cachedDenial returns a copy of the kept denial that says it is cached.
func (e cacheEntry) cachedDenial() *DeniedError {
	d := *e.denied
	d.Reasons = slices.Clone(d.Reasons)
	d.CachedAt, d.CachedUntil = e.at, e.expires
	return &d
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// clone copies v, so that a caller changing its verdict does not change the cache's.
func (v *Verified) clone() *Verified {
	if v == nil {
		return nil
	}
	c := *v
	c.Signers = slices.Clone(v.Signers)
	c.Attestations = cloneAttestations(v.Attestations)
	c.Platforms = slices.Clone(v.Platforms)
	for i := range c.Platforms {
		p := &c.Platforms[i]
		if p.Platform != nil {
			pl := *p.Platform
			pl.OSFeatures = slices.Clone(pl.OSFeatures)
			pl.Features = slices.Clone(pl.Features)
			p.Platform = &pl
		}
		p.Attestations = cloneAttestations(p.Attestations)
	}
	return &c
}

func cloneAttestations(as []Attestation) []Attestation {
	as = slices.Clone(as)
	for i := range as {
		as[i].Predicate = slices.Clone(as[i].Predicate)
	}
	return as
}
