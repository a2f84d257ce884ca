package loadgen

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestPolicyDelays(t *testing.T) {
	s := time.Second
	tests := []struct {
		name    string
		p       ReconnectPolicy
		attempt int
		lo, hi  time.Duration // delay in [lo, hi)
		giveUp  bool
	}{
		{"backoff first", ReconnectPolicy{}, 1, s, 2 * s, false},
		{"backoff second", ReconnectPolicy{Kind: PolicyBackoff}, 2, 1500 * time.Millisecond, 2500 * time.Millisecond, false},
		{"backoff seventh", ReconnectPolicy{Kind: PolicyBackoff}, 7, time.Duration(float64(s) * 11.390625), time.Duration(float64(s)*11.390625) + s, false},
		{"backoff gives up after 7", ReconnectPolicy{Kind: PolicyBackoff}, 8, 0, 0, true},
		{"backoff capped", ReconnectPolicy{Kind: PolicyBackoff, MaxAttempts: -1}, 30, 30 * s, 31 * s, false},
		{"backoff no jitter", ReconnectPolicy{Kind: PolicyBackoff, Jitter: -1}, 1, s, s + 1, false},
		{"ladder 1", ReconnectPolicy{Kind: PolicyLadder}, 1, 0, 1, false},
		{"ladder 4", ReconnectPolicy{Kind: PolicyLadder}, 4, 5 * s, 5*s + 1, false},
		{"ladder stays at 30s", ReconnectPolicy{Kind: PolicyLadder}, 50, 30 * s, 30*s + 1, false},
		{"constant", ReconnectPolicy{Kind: PolicyConstant}, 99, s, s + 1, false},
		{"constant gives up after 100", ReconnectPolicy{Kind: PolicyConstant}, 101, 0, 0, true},
		{"immediate", ReconnectPolicy{Kind: PolicyImmediate}, 1000, 0, 1, false},
		{"none", ReconnectPolicy{Kind: PolicyNone}, 1, 0, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			for range 50 {
				d, ok := tc.p.Delay(tc.attempt, rng)
				if ok == tc.giveUp {
					t.Fatalf("ok = %v, want %v", ok, !tc.giveUp)
				}
				if ok && (d < tc.lo || d >= tc.hi) {
					t.Fatalf("delay %v outside [%v, %v)", d, tc.lo, tc.hi)
				}
			}
		})
	}
}

// TestBackoffJitterSpreads draws the first delay of 1 000 clients (each its own seeded source, as in
// a run): they spread over the jitter window instead of retrying together.
func TestBackoffJitterSpreads(t *testing.T) {
	var buckets [10]int
	p := ReconnectPolicy{Kind: PolicyBackoff}
	seen := map[time.Duration]bool{}
	for i := range 1000 {
		rng := rand.New(rand.NewPCG(7, uint64(i)<<8))
		d, _ := p.Delay(1, rng)
		seen[d] = true
		buckets[(d-time.Second)/(100*time.Millisecond)]++
	}
	for i, n := range buckets {
		if n < 50 || n > 150 { // 100 expected per 100 ms bucket
			t.Errorf("bucket %d holds %d of 1000 delays: not uniform over the jitter", i, n)
		}
	}
	if len(seen) < 990 {
		t.Errorf("only %d distinct delays of 1000", len(seen))
	}
}

func TestPolicyValidate(t *testing.T) {
	for _, p := range []ReconnectPolicy{{Kind: "exponential"}, {Initial: -1}, {Multiplier: 0.5}, {Kind: PolicyLadder, Steps: []time.Duration{-1}}} {
		if p.Validate() == nil {
			t.Errorf("%+v: no error", p)
		}
	}
	if err := (ReconnectPolicy{}).Validate(); err != nil {
		t.Error(err)
	}
}
