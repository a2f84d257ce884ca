package loadgen

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/squall-dev/squall/loadgen/stats"
)

func smallPlan(clients, rooms int, hold time.Duration) Plan {
	return Plan{
		Name: "small", Seed: 1,
		Cohorts: []Cohort{{Name: "tabs", Count: clients, Behaviour: Behaviour{
			RoomCount: rooms, SendInterval: 200 * time.Millisecond, HeartbeatInterval: 500 * time.Millisecond,
			PayloadSize: 16,
		}}},
		Phases: []Phase{
			{Kind: PhaseRamp, Rate: 500},
			{Kind: PhaseHold, Duration: hold},
			{Kind: PhaseRampDown, Rate: 1000},
		},
	}
}

// samples collects every recorded latency (a direct timing beside the histograms).
type samples struct {
	mu sync.Mutex
	m  map[string][]time.Duration
}

func (s *samples) add(h string, d time.Duration) {
	s.mu.Lock()
	if s.m == nil {
		s.m = map[string][]time.Duration{}
	}
	s.m[h] = append(s.m[h], d)
	s.mu.Unlock()
}

func (s *samples) get(h string) []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.m[h]...)
}

// TestRunAgainstFakeGateway runs a small plan with each client I/O model.
func TestRunAgainstFakeGateway(t *testing.T) {
	for _, io := range ClientIOs {
		t.Run(io, func(t *testing.T) { testRunAgainstFakeGateway(t, io) })
	}
}

func testRunAgainstFakeGateway(t *testing.T, io string) {
	g := newFakeGateway(t)
	p := smallPlan(60, 3, 1500*time.Millisecond)
	p.ClientIO = io
	p.ScheduleLagBound = 5 * time.Second // the race detector on a shared machine
	p.Settle = 5 * time.Second
	p.Cohorts[0].Behaviour.PingInterval = 300 * time.Millisecond
	rec := stats.NewRecorder(time.Now())
	var raw samples
	sum, err := RunLocal(context.Background(), p, g.target(), rec, RunOptions{OnSample: raw.add})
	if err != nil {
		t.Fatal(err)
	}
	snap := rec.Snapshot()
	t.Logf("summary %+v", sum)
	t.Logf("counters %v", snap.Counters)
	if sum.StopReason != "completed" {
		t.Errorf("stop reason %q", sum.StopReason)
	}
	for _, c := range []string{stats.CtrOrderViolations, stats.CtrDuplicates, stats.CtrGaps, stats.CtrAckedUndelivered, stats.CtrConnectErrors} {
		if n := snap.Counter(c); n != 0 {
			t.Errorf("%s = %d, want 0", c, n)
		}
	}
	if n := snap.Counter(stats.CtrConnects); n != 60 {
		t.Errorf("connects = %d, want 60", n)
	}
	sent, recv := snap.Counter(stats.CtrMessagesSent), snap.Counter(stats.CtrMessagesReceived)
	// 60 clients in 3 rooms of 20: every broadcast reaches up to 20 members (fewer during the ramp).
	if sent < 200 || recv > sent*20 || recv < sent*19 {
		t.Errorf("sent %d received %d, want about 20 x sent and sent >= 200", sent, recv)
	}
	if got := snap.Count(stats.HistFanout); got != recv {
		t.Errorf("fanout samples %d, want %d", got, recv)
	}
	if snap.Count(stats.HistAppPingRTT) == 0 {
		t.Error("no app ping RTT recorded")
	}
	if snap.Count(stats.HistPingRTT) == 0 {
		t.Error("no WebSocket ping RTT recorded")
	}
	if snap.Count(stats.HistPresence) == 0 {
		t.Error("no presence convergence recorded at ramp-down")
	}
	if g.open() != 0 {
		waitFor(t, 3*time.Second, "gateway connections to close", func() bool { return g.open() == 0 })
	}
	for _, q := range []float64{50, 90, 99, 99.9, 100} {
		t.Logf("lag p%v = %v", q, snap.Percentile(stats.HistScheduleLag, q))
	}
	if sum.Unreliable {
		t.Errorf("run flagged unreliable: %s", sum.Reason)
	}
}
