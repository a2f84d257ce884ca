package refserver

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// AuthUnavailableError is the answer to a token check that could not be made: the auth backend
// failed, or its circuit breaker is open. The client is closed with 1013 auth_unavailable and the
// retry hint RetryAfter.
type AuthUnavailableError struct {
	RetryAfter  time.Duration // jittered hint for the client
	BreakerOpen bool          // the breaker refused the call (the backend was not asked)
	Err         error         // the backend's error, nil when the breaker refused
}

func (e *AuthUnavailableError) Error() string {
	if e.BreakerOpen {
		return fmt.Sprintf("auth backend unavailable: circuit breaker open, retry after %s", e.RetryAfter)
	}
	return fmt.Sprintf("auth backend failed: %v", e.Err)
}

func (e *AuthUnavailableError) Unwrap() error { return e.Err }

// Result labels of ws_auth_requests_total.
const (
	authOK          = "ok"          // the token is valid
	authInvalid     = "invalid"     // the token is bad, expired or forged (4001)
	authError       = "error"       // the backend failed (1013)
	authUnavailable = "unavailable" // the breaker is open; the backend was not asked (1013)
)

// authGuard is every token check of the gateway: the cache (skipped under FlawNoAuthCache), then
// the circuit breaker, then the backend (a SimulatedBackend around the configured one). It records
// ws_auth_requests_total: cached="true" when the cache or a concurrent identical check answered, so
// the checks with cached="false" and a result other than "unavailable" are exactly the backend calls.
// Safe for concurrent use.
type authGuard struct {
	backend  *SimulatedBackend
	cache    *authCache // nil under FlawNoAuthCache
	breaker  *breaker
	cooldown time.Duration
	m        *metrics
	log      *slog.Logger
}

func newAuthGuard(s *Server, inner AuthBackend) *authGuard {
	cfg := s.cfg
	g := &authGuard{
		backend:  NewSimulatedBackend(inner, cfg.AuthLatency, cfg.AuthFailRate),
		cooldown: cfg.AuthBreakerCooldown,
		log:      s.log,
	}
	if !cfg.Flaws.Has(FlawNoAuthCache) {
		g.cache = newAuthCache(cfg.AuthCacheTTL, cfg.AuthCacheSize, nil)
	}
	g.breaker = newBreaker(cfg.AuthBreakerFailures, cfg.AuthBreakerCooldown, nil, func(from, to breakerState) {
		if g.m != nil {
			v := 0.0
			if to != breakerClosed {
				v = 1
			}
			g.m.authBreakerOpen.Set(v)
		}
		switch to {
		case breakerOpen:
			g.log.Warn("auth circuit breaker open", "from", from.String(), "cooldown", g.cooldown)
		case breakerClosed:
			g.log.Info("auth circuit breaker closed", "from", from.String())
		}
	})
	return g
}

// checkWithin is check bounded by timeout under parent. A backend that answers at once
// (SimulatedBackend.instant) is asked under parent itself: a deadline's context and timer per
// connection would cost more than the check.
func (g *authGuard) checkWithin(parent context.Context, timeout time.Duration, token string) (string, error) {
	if g.backend.instant() {
		return g.check(parent, token)
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	return g.check(ctx, token)
}

// check returns the user of token. Errors: one wrapping ErrUnauthorized for a bad token, an
// *AuthUnavailableError when the backend failed or the breaker is open, or ctx's error.
func (g *authGuard) check(ctx context.Context, token string) (string, error) {
	if g.cache == nil {
		user, err := g.call(ctx, token)
		g.count(err, false)
		return user, err
	}
	key := tokenKey(sha256.Sum256([]byte(token)))
	user, hit, wait, own := g.cache.lookup(key)
	switch {
	case hit:
		g.count(nil, true)
		return user, nil
	case wait != nil:
		select {
		case <-wait.done:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		g.count(wait.err, true)
		return wait.user, wait.err
	}
	user, exp, err := g.callExpiry(ctx, token)
	if err == nil && exp.IsZero() {
		exp = tokenExpiry(token)
	}
	g.cache.complete(key, own, user, err, exp)
	g.count(err, false)
	return user, err
}

// call asks the backend through the breaker.
func (g *authGuard) call(ctx context.Context, token string) (string, error) {
	user, _, err := g.callExpiry(ctx, token)
	return user, err
}

// callExpiry is call that also returns the accepted token's expiry when the backend knows it,
// else the zero time.
func (g *authGuard) callExpiry(ctx context.Context, token string) (string, time.Time, error) {
	ok, retry := g.breaker.allow()
	if !ok {
		return "", time.Time{}, &AuthUnavailableError{RetryAfter: jitter(retry, 1, 1.5) + jitter(time.Second, 0, 1), BreakerOpen: true}
	}
	user, exp, err := g.backend.AuthenticateExpiry(ctx, token)
	switch {
	case err == nil, errors.Is(err, ErrUnauthorized):
		g.breaker.done(true)
		return user, exp, err
	case errors.Is(ctx.Err(), context.Canceled):
		g.breaker.cancel() // the server is closing: says nothing about the backend
		return "", time.Time{}, err
	default: // failure or timeout (ctx deadline)
		g.breaker.done(false)
		return "", time.Time{}, &AuthUnavailableError{RetryAfter: jitter(time.Second, 0.5, 1.5), Err: err}
	}
}

// count records one check in ws_auth_requests_total.
func (g *authGuard) count(err error, cached bool) {
	if g.m == nil {
		return
	}
	result := authOK
	var ue *AuthUnavailableError
	switch {
	case err == nil:
	case errors.Is(err, ErrUnauthorized):
		result = authInvalid
	case errors.As(err, &ue) && ue.BreakerOpen:
		result = authUnavailable
	default:
		result = authError
	}
	c := "false"
	if cached {
		c = "true"
	}
	g.m.authRequests.WithLabelValues(result, c).Inc()
}

func (g *authGuard) cacheLen() int {
	if g.cache == nil {
		return 0
	}
	return g.cache.len()
}

// authRetryHint is the retry hint for a failed check: the AuthUnavailableError's, else a jittered
// second (ctx ended).
func authRetryHint(err error) time.Duration {
	var ue *AuthUnavailableError
	if errors.As(err, &ue) && ue.RetryAfter > 0 {
		return ue.RetryAfter
	}
	return jitter(time.Second, 0.5, 1.5)
}
