package loadgen

import (
	"context"
	"testing"
	"time"

	"github.com/squall-dev/squall/loadgen/stats"
)

// TestGeneratorStallShowsInLatency stalls every scheduler goroutine for 500 ms in the middle of the
// hold. Latency is measured from each broadcast's intended send time, so the stall must appear in the
// fan-out percentiles (coordinated omission handled) and in the schedule lag, and the run must be
// flagged unreliable. The server-stamped latency, which starts when the late send finally reached the
// gateway, does not see it: that is the number a naive generator would have reported.
func TestGeneratorStallShowsInLatency(t *testing.T) {
	const stall = 500 * time.Millisecond
	g := newFakeGateway(t)
	p := Plan{Name: "stall", Seed: 5,
		Cohorts: []Cohort{{Name: "c", Count: 20, Behaviour: Behaviour{RoomSize: 5, SendInterval: 20 * time.Millisecond}}},
		Phases:  []Phase{{Kind: PhaseRamp}, {Kind: PhaseHold, Duration: 3 * time.Second}, {Kind: PhaseRampDown}},
	}
	rec := stats.NewRecorder(time.Now())
	var pause func(time.Duration)
	stalled := make(chan time.Time, 1)
	opts := RunOptions{
		stall: func(f func(time.Duration)) { pause = f },
		OnPhase: func(_ int, ph Phase, _ time.Time) {
			if ph.Kind != PhaseHold {
				return
			}
			go func() {
				time.Sleep(time.Second) // when to stall, not a synchronisation
				stalled <- time.Now()
				pause(stall)
			}()
		},
	}
	sum, err := RunLocal(context.Background(), p, g.target(), rec, opts)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-stalled:
	default:
		t.Fatal("the stall never ran")
	}
	snap := rec.Snapshot()
	q := func(h string, p float64) time.Duration { return snap.Percentile(h, p) }
	t.Logf("fanout p50 %v p90 %v p99 %v max %v", q(stats.HistFanout, 50), q(stats.HistFanout, 90), q(stats.HistFanout, 99), q(stats.HistFanout, 100))
	t.Logf("fanout_server (naive) p50 %v p90 %v p99 %v", q(stats.HistFanoutServer, 50), q(stats.HistFanoutServer, 90), q(stats.HistFanoutServer, 99))
	t.Logf("schedule lag p50 %v p90 %v p99 %v max %v", q(stats.HistScheduleLag, 50), q(stats.HistScheduleLag, 90), q(stats.HistScheduleLag, 99), q(stats.HistScheduleLag, 100))
	// About a sixth of the sends were intended inside the stall, late by 0-500 ms: p99 sits near 470 ms.
	if got := q(stats.HistFanout, 99); got < 350*time.Millisecond {
		t.Errorf("fanout p99 %v does not show the %v stall", got, stall)
	}
	if got := q(stats.HistFanout, 100); got < 450*time.Millisecond {
		t.Errorf("fanout max %v does not show the %v stall", got, stall)
	}
	if got := q(stats.HistScheduleLag, 99); got < 350*time.Millisecond {
		t.Errorf("schedule lag p99 %v does not show the %v stall", got, stall)
	}
	if !sum.Unreliable {
		t.Errorf("a stalled generator was not flagged unreliable (lag p99 %v)", sum.LagP99)
	}
	if q(stats.HistFanoutServer, 90) >= q(stats.HistFanout, 99) {
		t.Errorf("server-stamped p90 %v not below intended-time p99 %v", q(stats.HistFanoutServer, 90), q(stats.HistFanout, 99))
	}
}
