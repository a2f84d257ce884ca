package loadgen

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/refserver/protocol"
)

// runUntil starts RunLocal in the background and returns a stop function that cancels it and waits
// (safe to call more than once).
func runUntil(t *testing.T, p Plan, tg Target, rec *stats.Recorder, opts RunOptions) (stop func() RunSummary) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan RunSummary, 1)
	go func() {
		sum, err := RunLocal(ctx, p, tg, rec, opts)
		if err != nil {
			t.Error(err)
		}
		done <- sum
	}()
	var once sync.Once
	var sum RunSummary
	return func() RunSummary {
		once.Do(func() {
			cancel()
			sum = <-done
		})
		return sum
	}
}

// TestReconnectPolicyDelays drops 1 000 connections at once per policy and measures, per client, the
// time from the drop to its next dial.
func TestReconnectPolicyDelays(t *testing.T) {
	if testing.Short() {
		t.Skip("1 000 connections per policy")
	}
	const n = 1000
	// planned: the delays the policy chose (exact); actual: drop to dial as run, which adds the
	// scheduler's lag (large on a loaded machine under the race detector, so only loosely bounded).
	tests := []struct {
		policy ReconnectPolicy
		check  func(t *testing.T, planned, actual []time.Duration)
	}{
		{ReconnectPolicy{Kind: PolicyConstant}, func(t *testing.T, planned, actual []time.Duration) {
			// All at 1 s: the escalation's lock-step.
			if planned[0] != time.Second || planned[len(planned)-1] != time.Second {
				t.Errorf("constant planned delays span [%v, %v], want all 1s", planned[0], planned[len(planned)-1])
			}
			if actual[0] < time.Second || actual[len(actual)/2] > 1200*time.Millisecond {
				t.Errorf("constant actual delays min %v p50 %v, want at 1s", actual[0], actual[len(actual)/2])
			}
		}},
		{ReconnectPolicy{Kind: PolicyBackoff}, func(t *testing.T, planned, actual []time.Duration) {
			if planned[0] < time.Second || planned[len(planned)-1] >= 2*time.Second {
				t.Errorf("backoff planned first delays span [%v, %v], want within [1s, 2s)", planned[0], planned[len(planned)-1])
			}
			if actual[0] < time.Second {
				t.Errorf("backoff retried after %v, before 1s", actual[0])
			}
			// No lock-step: the retries spread over the 1 s jitter window; no 10 ms slot holds more
			// than a few percent of them.
			for _, d := range [][]time.Duration{planned, actual} {
				slots := map[time.Duration]int{}
				for _, x := range d {
					slots[x/(10*time.Millisecond)]++
				}
				worst := 0
				for _, c := range slots {
					worst = max(worst, c)
				}
				if len(slots) < 80 || worst > 40 {
					t.Errorf("backoff retries bunch: %d distinct 10 ms slots, busiest holds %d of %d", len(slots), worst, len(d))
				}
			}
			if p := planned[len(planned)/2]; p < 1400*time.Millisecond || p > 1600*time.Millisecond {
				t.Errorf("backoff planned median %v, want about 1.5s", p)
			}
		}},
		{ReconnectPolicy{Kind: PolicyLadder}, func(t *testing.T, planned, actual []time.Duration) {
			// First step 0 s; the next step would be 1 s.
			if planned[len(planned)-1] != 0 || actual[len(actual)/2] > 200*time.Millisecond {
				t.Errorf("ladder first delays planned max %v, actual p50 %v, want 0 s", planned[len(planned)-1], actual[len(actual)/2])
			}
		}},
		{ReconnectPolicy{Kind: PolicyImmediate}, func(t *testing.T, planned, actual []time.Duration) {
			if planned[len(planned)-1] != 0 || actual[len(actual)/2] > 200*time.Millisecond {
				t.Errorf("immediate delays planned max %v, actual p50 %v, want 0", planned[len(planned)-1], actual[len(actual)/2])
			}
		}},
	}
	for _, tc := range tests {
		t.Run(string(tc.policy.Kind), func(t *testing.T) {
			g := newFakeGateway(t)
			p := Plan{Name: "drops", Seed: 42,
				Cohorts: []Cohort{{Name: "c", Count: n, Behaviour: Behaviour{Reconnect: tc.policy, RoomSize: 10}}},
				Phases:  []Phase{{Kind: PhaseRamp, Rate: 2000}, {Kind: PhaseHold, Duration: time.Minute}},
			}
			rec := stats.NewRecorder(time.Now())
			var raw samples
			stop := runUntil(t, p, g.target(), rec, RunOptions{OnSample: raw.add})
			defer stop()
			waitFor(t, 20*time.Second, "1000 clients connected", func() bool { return rec.Counter(stats.CtrConnects) == n && g.open() == n })
			if got := g.dropAll(); got != n {
				t.Fatalf("dropped %d connections, want %d", got, n)
			}
			waitFor(t, 20*time.Second, "1000 reconnects", func() bool { return rec.Counter(stats.CtrReconnects) == n })
			d, planned := raw.get(HistReconnectDelay), raw.get(HistReconnectPlanned)
			if len(d) != n || len(planned) != n {
				t.Fatalf("%d reconnect delays (%d planned), want %d", len(d), len(planned), n)
			}
			slices.Sort(d)
			slices.Sort(planned)
			t.Logf("%s: %d drops, planned min %v p50 %v max %v; actual min %v p50 %v p99 %v max %v", tc.policy.Kind, len(d),
				planned[0], planned[len(planned)/2], planned[len(planned)-1], d[0], d[len(d)/2], d[len(d)*99/100], d[len(d)-1])
			tc.check(t, planned, d)
		})
	}
}

// TestCloseCodesAndHints checks what a client does after the server closes its connection.
func TestCloseCodesAndHints(t *testing.T) {
	tests := []struct {
		name       string
		code       int
		reason     string
		wantDials  int64         // connection attempts per client within the window
		minDelay   time.Duration // the reconnect delay is at least this
		reconnects bool
	}{
		{"1000 never reconnects", int(protocol.CloseNormal), "", 1, 0, false},
		{"4001 never reconnects", int(protocol.CloseUnauthorized), "", 1, 0, false},
		{"1013 honours retry_after_ms", int(protocol.CloseTryAgainLater), protocol.FormatReason(protocol.ReasonShed, 700*time.Millisecond), 2, 700 * time.Millisecond, true},
		{"1001 drain hint", int(protocol.CloseDraining), protocol.FormatReason(protocol.ReasonDrain, 400*time.Millisecond), 2, 400 * time.Millisecond, true},
		{"1006 reconnects at once", int(protocol.CloseAbnormal), "", 2, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const n = 20
			g := newFakeGateway(t)
			onConnect := func(k int64) (int, string) {
				if k <= n {
					return tc.code, tc.reason
				}
				return 0, ""
			}
			g.onConnect.Store(&onConnect)
			p := Plan{Name: "closes", Seed: 3,
				Cohorts: []Cohort{{Name: "c", Count: n, Behaviour: Behaviour{Reconnect: ReconnectPolicy{Kind: PolicyImmediate}}}},
				Phases:  []Phase{{Kind: PhaseRamp}, {Kind: PhaseHold, Duration: time.Minute}},
			}
			rec := stats.NewRecorder(time.Now())
			var raw samples
			stop := runUntil(t, p, g.target(), rec, RunOptions{OnSample: raw.add})
			if tc.reconnects {
				waitFor(t, 10*time.Second, "reconnects", func() bool { return rec.Counter(stats.CtrConnects) == 2*n })
			} else {
				waitFor(t, 10*time.Second, "closes", func() bool {
					return rec.Counter(stats.CloseCodeCounter(tc.code)) == n && rec.Gauge(stats.GaugeClients) == 0
				})
			}
			stop()
			if got := rec.Counter(stats.CtrConnectAttempts); got != tc.wantDials*n {
				t.Errorf("connect attempts %d, want %d", got, tc.wantDials*n)
			}
			for _, d := range raw.get(HistReconnectDelay) {
				if d < tc.minDelay {
					t.Errorf("reconnect after %v, before the hint %v", d, tc.minDelay)
				}
			}
			if got := rec.Counter(stats.CloseCodeCounter(tc.code)); tc.code != int(protocol.CloseAbnormal) && got != n {
				t.Errorf("close code %d counted %d times, want %d", tc.code, got, n)
			}
		})
	}
}
