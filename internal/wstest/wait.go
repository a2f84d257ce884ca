// Package wstest holds what the tests of several packages need to drive a WebSocket gateway from
// outside: waiting for a condition with a deadline, and a client that dials the reference gateway
// and collects the frames it receives.
package wstest

import (
	"testing"
	"time"
)

// WaitFor checks cond every few milliseconds until it holds; after d the test fails naming what it
// waited for. It is for conditions that no event signals (a gauge reaching a value, a process
// gone); where a channel or callback says when something happened, wait on that instead.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
