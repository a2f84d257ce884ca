package refserver

import (
	"sync"
	"time"
)

// breakerState is the state of a circuit breaker.
type breakerState int

const (
	breakerClosed   breakerState = iota // calls pass; consecutive failures are counted
	breakerOpen                         // calls are refused until the cooldown has passed
	breakerHalfOpen                     // one probe call is in flight; others are refused
)

func (s breakerState) String() string {
	switch s {
	case breakerOpen:
		return "open"
	case breakerHalfOpen:
		return "half-open"
	}
	return "closed"
}

// breaker is the circuit breaker in front of the auth backend. It opens after threshold consecutive
// failures, refuses calls for cooldown, then lets exactly one probe through (half-open): a success
// closes it, a failure opens it for another cooldown. Safe for concurrent use.
type breaker struct {
	threshold int
	cooldown  time.Duration
	now       func() time.Time
	onChange  func(from, to breakerState) // called with mu held; must not call back

	mu       sync.Mutex
	state    breakerState
	failures int       // consecutive failures while closed
	openedAt time.Time // when it last opened
}

func newBreaker(threshold int, cooldown time.Duration, now func() time.Time, onChange func(from, to breakerState)) *breaker {
	if now == nil {
		now = time.Now
	}
	if onChange == nil {
		onChange = func(breakerState, breakerState) {}
	}
	return &breaker{threshold: threshold, cooldown: cooldown, now: now, onChange: onChange}
}

// allow asks to make one call. ok means call and then report the outcome with done; otherwise
// retry is how long until the breaker may let a call through again (at least 1 ms).
func (b *breaker) allow() (ok bool, retry time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case breakerClosed:
		return true, 0
	case breakerOpen:
		left := b.openedAt.Add(b.cooldown).Sub(b.now())
		if left > 0 {
			return false, left
		}
		b.set(breakerHalfOpen)
		return true, 0
	default: // half-open: a probe is in flight
		return false, max(b.cooldown/10, time.Millisecond)
	}
}

// done reports the outcome of a call allow let through. A rejected token is a success: the backend
// answered.
func (b *breaker) done(success bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case success:
		b.failures = 0
		if b.state != breakerClosed {
			b.set(breakerClosed)
		}
	case b.state == breakerHalfOpen:
		b.openedAt = b.now()
		b.set(breakerOpen)
	case b.state == breakerClosed:
		b.failures++
		if b.failures >= b.threshold {
			b.failures = 0
			b.openedAt = b.now()
			b.set(breakerOpen)
		}
	}
}

// cancel gives back a call allow let through whose outcome says nothing about the backend (the
// server is closing): a half-open breaker goes back to open so that the next call probes.
func (b *breaker) cancel() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == breakerHalfOpen {
		b.state = breakerOpen // openedAt unchanged: the cooldown has passed, the next call probes
	}
}

func (b *breaker) set(to breakerState) {
	from := b.state
	b.state = to
	b.onChange(from, to)
}

func (b *breaker) current() breakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}
