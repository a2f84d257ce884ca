package refserver

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tokenKey is the cache key of a token: its SHA-256, so that the cache holds no credentials and
// every entry has the same small size.
type tokenKey [sha256.Size]byte

// authCache remembers tokens the auth backend validated, for ttl but never past the token's own
// exp, so that a reconnect with the same token skips the backend (the seeds' "cached tokens for
// reconnections, 5-min TTL"). It also coalesces concurrent checks of one token into one backend call
// (a reconnect storm presents the same tokens at once). Only successes are cached. At most max
// entries: beyond it expired entries are swept, then arbitrary ones evicted. Safe for concurrent use.
type authCache struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu       sync.Mutex
	entries  map[tokenKey]cacheEntry
	inflight map[tokenKey]*authCall
}

type cacheEntry struct {
	user    string
	expires time.Time
}

// authCall is one backend check that concurrent checks of the same token wait for.
type authCall struct {
	done chan struct{} // closed when user and err are set
	user string
	err  error
}

func newAuthCache(ttl time.Duration, max int, now func() time.Time) *authCache {
	if now == nil {
		now = time.Now
	}
	return &authCache{ttl: ttl, max: max, now: now, entries: map[tokenKey]cacheEntry{}, inflight: map[tokenKey]*authCall{}}
}

// lookup returns the cached user of key, or the call in flight for it (wait on its done), or,
// when there is neither, registers a new call that the caller must make and finish with complete.
func (c *authCache) lookup(key tokenKey) (user string, hit bool, wait *authCall, own *authCall) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok {
		if c.now().Before(e.expires) {
			return e.user, true, nil, nil
		}
		delete(c.entries, key)
	}
	if call, ok := c.inflight[key]; ok {
		return "", false, call, nil
	}
	call := &authCall{done: make(chan struct{})}
	c.inflight[key] = call
	return "", false, nil, call
}

// complete finishes the call registered by lookup, caching a success until expires (zero: ttl from
// now) and waking the waiters.
func (c *authCache) complete(key tokenKey, call *authCall, user string, err error, tokenExp time.Time) {
	c.mu.Lock()
	delete(c.inflight, key)
	if err == nil {
		now := c.now()
		exp := now.Add(c.ttl)
		if !tokenExp.IsZero() && tokenExp.Before(exp) {
			exp = tokenExp
		}
		if exp.After(now) {
			c.putLocked(key, cacheEntry{user: user, expires: exp}, now)
		}
	}
	c.mu.Unlock()
	call.user, call.err = user, err
	close(call.done)
}

func (c *authCache) putLocked(key tokenKey, e cacheEntry, now time.Time) {
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.max {
		for k, old := range c.entries {
			if !now.Before(old.expires) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.max {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = e
}

func (c *authCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// tokenExpiry reads the exp claim of a JWT without verifying it (the backend verified it); zero
// when the token is not a JWT or has no exp. It only shortens cache entries, never lengthens them.
func tokenExpiry(token string) time.Time {
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &claims); err != nil || claims.ExpiresAt == nil {
		return time.Time{}
	}
	return claims.ExpiresAt.Time
}
