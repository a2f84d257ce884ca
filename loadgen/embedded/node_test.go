package embedded

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/refserver/protocol"
)

// TestChildNodeFaults runs clients against a gateway node in a child process and takes it through
// pause/resume, kill, restart and drain, checking what the clients saw.
func TestChildNodeFaults(t *testing.T) {
	const n = 20
	e := startEmbedded(t, Options{Process: true, Config: fastGateway()})
	node := e.Nodes()[0]
	if node.PID() == 0 {
		t.Fatal("no child process")
	}
	p := loadgen.Plan{Name: "faults", Seed: 8,
		Cohorts: []loadgen.Cohort{{Name: "c", Count: n, Behaviour: loadgen.Behaviour{
			RoomCount: 2, SendInterval: 100 * time.Millisecond,
			Reconnect: loadgen.ReconnectPolicy{Kind: loadgen.PolicyConstant, Initial: 200 * time.Millisecond},
		}}},
		Phases:           []loadgen.Phase{{Kind: loadgen.PhaseRamp}, {Kind: loadgen.PhaseHold, Duration: time.Minute}},
		ScheduleLagBound: time.Minute,
	}
	rec := stats.NewRecorder(time.Now())
	stop := runUntil(t, p, e.Target(), rec, loadgen.RunOptions{})
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	connected := func(want int64) func() bool {
		return func() bool { return rec.Gauge(stats.GaugeConnections) == want }
	}
	waitFor(t, 10*time.Second, "clients connected", connected(n))

	// Pause: the node holds every socket but answers nothing; latency from intended send times grows.
	before := rec.Snapshot().Percentile(stats.HistFanout, 100)
	if err := node.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	pausedAt := time.Now()
	waitFor(t, 5*time.Second, "time to pass while paused", func() bool { return time.Since(pausedAt) > 400*time.Millisecond })
	if err := node.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "broadcasts delayed by the pause to arrive", func() bool {
		return rec.Snapshot().Percentile(stats.HistFanout, 100) >= 300*time.Millisecond
	})
	t.Logf("fanout max before pause %v, after %v", before, rec.Snapshot().Percentile(stats.HistFanout, 100))

	// Kill: connections drop without a close frame; clients retry until the node is back.
	reconnects := rec.Counter(stats.CtrReconnects)
	if err := node.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "clients to notice the kill", connected(0))
	// A tab that noticed the drop writing (and closed the socket itself) counts a write error.
	if got := rec.Counter(stats.CloseCodeCounter(int(protocol.CloseAbnormal))) + rec.Counter(stats.ErrorCounter(stats.ErrRead)) +
		rec.Counter(stats.ErrorCounter(stats.ErrWrite)); got < n {
		t.Errorf("abnormal closes after kill %d, want %d", got, n)
	}
	waitFor(t, 5*time.Second, "failed reconnect attempts", func() bool { return rec.Counter(stats.ErrorCounter(stats.ErrDialRefused)) > 0 })
	if err := node.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "clients back after restart", func() bool {
		return rec.Counter(stats.CtrReconnects)-reconnects == n && rec.Gauge(stats.GaugeConnections) == n
	})

	// Drain: 1001 with a retry hint, then the process exits; a restart brings everyone back.
	if err := node.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "1001 closes", func() bool {
		return rec.Counter(stats.CloseCodeCounter(int(protocol.CloseDraining))) == n
	})
	if err := node.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "clients back after the drain", connected(n))
	sum := stop()
	t.Logf("counters %v; stop %q", rec.Snapshot().Counters, sum.StopReason)
}

func TestInProcessNodeCannotPause(t *testing.T) {
	e := startEmbedded(t, Options{})
	if err := e.Nodes()[0].Pause(context.Background()); !errors.Is(err, ErrInProcess) {
		t.Errorf("pause of an in-process node: %v, want ErrInProcess", err)
	}
}

// TestTwoNodes spreads clients over two gateway processes. Without a shared broker each node holds
// its own rooms of the same names, so delivery is checked per node: nothing may be reported lost.
func TestTwoNodes(t *testing.T) {
	e := startEmbedded(t, Options{Nodes: 2})
	if len(e.Target().Endpoints) != 2 || e.Nodes()[0].PID() == e.Nodes()[1].PID() {
		t.Fatalf("want two node processes, got %d endpoints", len(e.Target().Endpoints))
	}
	p := smallPlan(42, 3, 1500*time.Millisecond) // client i: node i%2, room i%3: every room on both nodes
	p.ScheduleLagBound = 5 * time.Second
	rec := stats.NewRecorder(time.Now())
	sum, err := loadgen.RunLocal(context.Background(), p, e.Target(), rec, loadgen.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	snap := rec.Snapshot()
	t.Logf("delivery %+v counters %v", sum.Delivery, snap.Counters)
	for _, c := range []string{stats.CtrGaps, stats.CtrAckedUndelivered, stats.CtrOrderViolations, stats.CtrDuplicates, loadgen.CtrGhosts} {
		if n := snap.Counter(c); n != 0 {
			t.Errorf("%s = %d, want 0", c, n)
		}
	}
	if snap.Counter(stats.CtrConnects) != 42 || snap.Counter(stats.CtrMessagesReceived) == 0 {
		t.Errorf("connects %d received %d", snap.Counter(stats.CtrConnects), snap.Counter(stats.CtrMessagesReceived))
	}
}
