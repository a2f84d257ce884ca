package loadgen

import (
	"context"
	"testing"
	"time"

	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/refserver"
)

// fastGateway is a gateway config with short heartbeats and reorder timeout, so behaviours that
// depend on them play out within a test.
func fastGateway(flaws ...refserver.Flaw) refserver.Config {
	cfg := refserver.Config{HeartbeatInterval: 300 * time.Millisecond, HeartbeatTimeout: time.Second, ReorderTimeout: 300 * time.Millisecond}
	if len(flaws) > 0 {
		cfg.Flaws = refserver.Flaws{}
		for _, f := range flaws {
			cfg.Flaws[f] = true
		}
	}
	return cfg
}

// twoCohorts is a plan where "leavers" exit on their own during the hold while "observers" watch
// the same room.
func twoCohorts(leave Behaviour, hold time.Duration) Plan {
	leave.RoomCount, leave.RoomPrefix = 1, "shared-"
	return Plan{Name: "exits", Seed: 11,
		Cohorts: []Cohort{
			{Name: "leavers", Count: 5, Behaviour: leave, SourceIPs: "127.2.0.0/24"},
			{Name: "observers", Count: 10, Behaviour: Behaviour{RoomCount: 1, RoomPrefix: "shared-"}, SourceIPs: "127.3.0.0/24"},
		},
		Phases:           []Phase{{Kind: PhaseRamp}, {Kind: PhaseHold, Duration: hold}, {Kind: PhaseRampDown}},
		ScheduleLagBound: 5 * time.Second,
	}
}

// TestExits runs each exit against the reference gateway and reads what the observers saw during the
// hold: the presence convergence of the tabs that left (none for navigate: the user never left).
func TestExits(t *testing.T) {
	tests := []struct {
		name             string
		io               string // Plan.ClientIO ("" the default)
		exit             Exit
		flaws            []refserver.Flaw
		wantConverged    int64         // presence convergences measured during the hold
		minConv, maxConv time.Duration // their range
		wantGhosts       bool
		wantConnects     int64
	}{
		{"close", "", Exit{Kind: ExitClose, After: 300 * time.Millisecond}, nil, 5, 0, 500 * time.Millisecond, false, 15},
		{"tab-close", "", Exit{Kind: ExitTabClose, After: 300 * time.Millisecond}, nil, 5, 0, 500 * time.Millisecond, false, 15},
		// A vanished tab is noticed by the server's heartbeat timeout: 1 s after the last frame it got
		// (a pong up to one 300 ms ping interval before the tab vanished), swept every 300 ms.
		{"vanish", "", Exit{Kind: ExitVanish, After: 300 * time.Millisecond}, nil, 5, 650 * time.Millisecond, 2500 * time.Millisecond, false, 15},
		// The goroutine client I/O keeps and watches a vanished tab's socket its own way.
		{"vanish/goroutine", ClientIOGoroutine, Exit{Kind: ExitVanish, After: 300 * time.Millisecond}, nil, 5, 650 * time.Millisecond, 2500 * time.Millisecond, false, 15},
		{"close/goroutine", ClientIOGoroutine, Exit{Kind: ExitClose, After: 300 * time.Millisecond}, nil, 5, 0, 500 * time.Millisecond, false, 15},
		{"navigate", "", Exit{Kind: ExitNavigate, After: 300 * time.Millisecond}, nil, 0, 0, 0, false, 20},
		{"tab-close with no-presence-leave", "", Exit{Kind: ExitTabClose, After: 300 * time.Millisecond}, []refserver.Flaw{refserver.FlawNoPresenceLeave}, 0, 0, 0, true, 15},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := startGateway(t, fastGateway(tc.flaws...))
			p := twoCohorts(Behaviour{Exit: tc.exit}, 3*time.Second)
			p.ClientIO = tc.io
			rec := stats.NewRecorder(time.Now())
			var atRampDown stats.Snapshot
			var raw samples
			opts := RunOptions{OnSample: raw.add, OnPhase: func(_ int, ph Phase, _ time.Time) {
				if ph.Kind == PhaseRampDown {
					atRampDown = rec.Snapshot()
				}
			}}
			sum, err := RunLocal(context.Background(), p, e.target, rec, e.opts(p, opts))
			if err != nil {
				t.Fatal(err)
			}
			snap := rec.Snapshot()
			t.Logf("during hold: presence %d (p50 %v max %v); end: counters %v, ghosts %d",
				atRampDown.Count(stats.HistPresence), atRampDown.Percentile(stats.HistPresence, 50), atRampDown.Percentile(stats.HistPresence, 100),
				snap.Counters, sum.Delivery.Ghosts)
			if got := atRampDown.Count(stats.HistPresence); got != tc.wantConverged {
				t.Errorf("presence convergences during hold %d, want %d", got, tc.wantConverged)
			}
			if tc.wantConverged > 0 {
				lo, hi := atRampDown.Percentile(stats.HistPresence, 0), atRampDown.Percentile(stats.HistPresence, 100)
				if lo < tc.minConv || hi > tc.maxConv {
					t.Errorf("presence convergence in [%v, %v], want within [%v, %v]", lo, hi, tc.minConv, tc.maxConv)
				}
			}
			if got := atRampDown.Counter(stats.CtrConnects); got != tc.wantConnects {
				t.Errorf("connects before ramp-down %d, want %d", got, tc.wantConnects)
			}
			if ghosts := snap.Counter(CtrGhosts); (ghosts > 0) != tc.wantGhosts {
				t.Errorf("ghosts %d, want ghosts: %v", ghosts, tc.wantGhosts)
			}
		})
	}
}

// TestMisbehaviours replays the escalation's client faults against the reference gateway.
func TestMisbehaviours(t *testing.T) {
	tests := []struct {
		name    string
		m       Misbehaviour
		flaws   []refserver.Flaw
		want    []string // counters above zero
		zero    []string // counters at zero
		sending bool
	}{
		// The gateway reorders swapped frames: nobody is cut off and rooms stay in order.
		{"swap", Misbehaviour{SwapEvery: 3}, nil, nil, []string{stats.CloseCodeCounter(4003), CtrApplyOrder, stats.CtrOrderViolations}, true},
		// Under no-seq-order the gateway applies frames as they come: senders see their own
		// broadcasts echoed out of order.
		{"swap under no-seq-order", Misbehaviour{SwapEvery: 3}, []refserver.Flaw{refserver.FlawNoSeqOrder}, []string{CtrApplyOrder}, nil, true},
		// A dropped seq leaves a gap that never fills: the gateway closes with 4003.
		{"drop", Misbehaviour{DropEvery: 5}, nil, []string{stats.CloseCodeCounter(4003), stats.CtrReconnects}, nil, true},
		// Duplicates are dropped by the gateway (and re-acked), never delivered twice.
		{"dupe", Misbehaviour{DupeEvery: 3}, nil, nil, []string{stats.CtrDuplicates, stats.CloseCodeCounter(4003)}, true},
		// A client that ignores pings and sends nothing is cut by the heartbeat timeout.
		{"ignore pings", Misbehaviour{IgnorePings: true}, nil, []string{stats.CtrDisconnects, stats.CtrReconnects}, nil, false},
		// Answering pings keeps an idle client connected.
		{"answers pings", Misbehaviour{}, nil, nil, []string{stats.CtrReconnects}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fastGateway(tc.flaws...)
			if tc.m.SwapEvery > 0 {
				// The pair goes out back to back, but the in-process gateway shares the loaded
				// machine with the generator: a reorder timeout of 300 ms was outlasted between its
				// reads of the two frames (a 4003 with the run's schedule lag at 1.4 s). The swap
				// rows check that the gap is filled, not how fast.
				cfg.ReorderTimeout = 3 * time.Second
			}
			e := startGateway(t, cfg)
			b := Behaviour{RoomCount: 2, Misbehave: tc.m, Reconnect: ReconnectPolicy{Kind: PolicyImmediate}}
			if tc.sending {
				b.SendInterval = 50 * time.Millisecond
			}
			p := Plan{Name: "misbehave", Seed: 4,
				Cohorts:          []Cohort{{Name: "m", Count: 10, Behaviour: b}},
				Phases:           []Phase{{Kind: PhaseRamp}, {Kind: PhaseHold, Duration: 2500 * time.Millisecond}, {Kind: PhaseRampDown}},
				ScheduleLagBound: 5 * time.Second,
			}
			rec := stats.NewRecorder(time.Now())
			if _, err := RunLocal(context.Background(), p, e.target, rec, e.opts(p, RunOptions{})); err != nil {
				t.Fatal(err)
			}
			snap := rec.Snapshot()
			t.Logf("counters %v", snap.Counters)
			for _, c := range tc.want {
				if snap.Counter(c) == 0 {
					t.Errorf("%s = 0, want above 0", c)
				}
			}
			for _, c := range tc.zero {
				if n := snap.Counter(c); n != 0 {
					t.Errorf("%s = %d, want 0", c, n)
				}
			}
		})
	}
}
