package refserver

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// ErrBackendFailure is returned by SimulatedBackend for the calls its fail rate picks: the backend
// failed, the token was not judged.
var ErrBackendFailure = errors.New("auth backend failure (simulated)")

// SimulatedBackend stands for the real auth service in front of another AuthBackend: every call
// waits the configured latency and fails with the configured probability before the inner backend
// judges the token. It counts the calls that reach it, which is what the auth cache saves. With zero
// latency and fail rate it is transparent. Safe for concurrent use; the latency and fail rate may be
// changed while it serves (chaos timelines and tests do).
type SimulatedBackend struct {
	inner    AuthBackend
	latency  atomic.Int64  // ns
	failRate atomic.Uint64 // float64 bits
	calls    atomic.Uint64
	failures atomic.Uint64
}

var _ AuthBackend = (*SimulatedBackend)(nil)

// NewSimulatedBackend wraps inner with latency and a fail rate (0..1, clamped).
func NewSimulatedBackend(inner AuthBackend, latency time.Duration, failRate float64) *SimulatedBackend {
	b := &SimulatedBackend{inner: inner}
	b.SetLatency(latency)
	b.SetFailRate(failRate)
	return b
}

// SetLatency changes the latency of later calls (negative means 0).
func (b *SimulatedBackend) SetLatency(d time.Duration) { b.latency.Store(int64(max(d, 0))) }

// SetFailRate changes the share of later calls that fail (clamped to 0..1).
func (b *SimulatedBackend) SetFailRate(r float64) {
	if math.IsNaN(r) || r < 0 {
		r = 0
	}
	b.failRate.Store(math.Float64bits(min(r, 1)))
}

// instant reports whether a call answers at once, so that nothing need bound its time: no
// latency, and the built-in JWT check inside (no network).
func (b *SimulatedBackend) instant() bool {
	_, local := b.inner.(*JWTBackend)
	return local && b.latency.Load() == 0
}

// Calls returns the number of calls that reached the backend.
func (b *SimulatedBackend) Calls() uint64 { return b.calls.Load() }

// Failures returns the number of calls the fail rate made fail.
func (b *SimulatedBackend) Failures() uint64 { return b.failures.Load() }

// Authenticate waits the latency (or until ctx ends), fails with the fail rate, and otherwise asks
// the inner backend.
func (b *SimulatedBackend) Authenticate(ctx context.Context, token string) (string, error) {
	user, _, err := b.AuthenticateExpiry(ctx, token)
	return user, err
}

// AuthenticateExpiry is Authenticate that also returns the token's expiry when the inner backend
// gives it (a tokenExpirer), else the zero time.
func (b *SimulatedBackend) AuthenticateExpiry(ctx context.Context, token string) (string, time.Time, error) {
	b.calls.Add(1)
	if d := time.Duration(b.latency.Load()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return "", time.Time{}, ctx.Err()
		}
	}
	if r := math.Float64frombits(b.failRate.Load()); r > 0 && rand.Float64() < r {
		b.failures.Add(1)
		return "", time.Time{}, ErrBackendFailure
	}
	if te, ok := b.inner.(tokenExpirer); ok {
		return te.AuthenticateExpiry(ctx, token)
	}
	user, err := b.inner.Authenticate(ctx, token)
	return user, time.Time{}, err
}

var _ tokenExpirer = (*SimulatedBackend)(nil)
