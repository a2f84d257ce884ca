package loadgen

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/refserver"
)

func TestRunAgainstEmbeddedInProcess(t *testing.T) {
	cfg := refserver.Config{HeartbeatInterval: time.Second, HeartbeatTimeout: 3 * time.Second}
	e := startGateway(t, cfg)
	p := smallPlan(100, 4, 2*time.Second)
	p.Cohorts[0].Behaviour.SendInterval = 500 * time.Millisecond // light enough for the race detector
	p.Cohorts[0].Behaviour.HeartbeatInterval = time.Second
	p.ScheduleLagBound = 5 * time.Second
	rec := stats.NewRecorder(time.Now())
	sum, err := RunLocal(context.Background(), p, e.target, rec, e.opts(p, RunOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	snap := rec.Snapshot()
	t.Logf("counters %v", snap.Counters)
	t.Logf("fanout p50 %v p99 %v; presence p99 %v", snap.Percentile(stats.HistFanout, 50), snap.Percentile(stats.HistFanout, 99), snap.Percentile(stats.HistPresence, 99))
	for _, c := range []string{stats.CtrOrderViolations, stats.CtrDuplicates, stats.CtrGaps, stats.CtrAckedUndelivered, stats.CtrConnectErrors, CtrGhosts} {
		if n := snap.Counter(c); n != 0 {
			t.Errorf("%s = %d, want 0", c, n)
		}
	}
	if n := snap.Counter(stats.CtrConnects); n != 100 {
		t.Errorf("connects = %d, want 100", n)
	}
	if snap.Counter(stats.CtrMessagesSent) < 300 || snap.Counter(stats.CtrMessagesReceived) < 20*snap.Counter(stats.CtrMessagesSent) {
		t.Errorf("received %d for %d sent to rooms of 25", snap.Counter(stats.CtrMessagesReceived), snap.Counter(stats.CtrMessagesSent))
	}
	if snap.Count(stats.HistPresence) == 0 {
		t.Error("no presence convergence measured")
	}
	srv := e.Server
	waitFor(t, 5*time.Second, "gateway to clean up", func() bool {
		st := srv.Stats()
		return st.ActiveConns == 0 && st.OrphanedSubscriptions == 0
	})
	if sum.StopReason != "completed" {
		t.Errorf("stop reason %q", sum.StopReason)
	}
}

func TestRunRefusesTooManyFiles(t *testing.T) {
	e := startGateway(t, refserver.Config{})
	// 12 000 clients fit one process's 20 000 files, but not with the in-process gateway's 12 000.
	p := smallPlan(12000, 20, time.Second)
	_, err := RunLocal(context.Background(), p, e.target, stats.NewRecorder(time.Now()), e.opts(p, RunOptions{}))
	if !errors.Is(err, ErrTooManyFiles) {
		t.Fatalf("err = %v, want ErrTooManyFiles", err)
	}
}
