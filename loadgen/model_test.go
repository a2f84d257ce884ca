package loadgen

import (
	"context"
	"testing"
	"time"

	"github.com/squall-dev/squall/loadgen/stats"
)

func TestOpenModel(t *testing.T) {
	g := newFakeGateway(t)
	p := Plan{Name: "open", Seed: 2,
		Cohorts:          []Cohort{{Name: "o", Count: 50, Behaviour: Behaviour{RoomSize: 10}}},
		Model:            Model{Kind: ModelOpen, ArrivalRate: 50, Lifetime: 500 * time.Millisecond},
		Phases:           []Phase{{Kind: PhaseHold, Duration: 2 * time.Second}, {Kind: PhaseRampDown}},
		ScheduleLagBound: 5 * time.Second,
	}
	rec := stats.NewRecorder(time.Now())
	peak := int64(0)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				peak = max(peak, rec.Gauge(stats.GaugeConnections))
			}
		}
	}()
	sum, err := RunLocal(context.Background(), p, g.target(), rec, RunOptions{})
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	snap := rec.Snapshot()
	t.Logf("clients %d, peak connections %d, counters %v", sum.Clients, peak, snap.Counters)
	if sum.Clients != 100 || snap.Counter(stats.CtrConnects) != 100 {
		t.Errorf("%d clients arrived and %d connected, want 100 (50/s for 2 s)", sum.Clients, snap.Counter(stats.CtrConnects))
	}
	// Each lives 0.5 s at 50 arrivals/s: about 25 at once, never all 100.
	if peak < 15 || peak > 45 {
		t.Errorf("peak concurrency %d, want about 25", peak)
	}
	if n := snap.Counter(CtrExits); n < 100 {
		t.Errorf("%d exits, want every client to leave", n)
	}
}

func TestResume(t *testing.T) {
	for _, ok := range []bool{true, false} {
		name := map[bool]string{true: "resumed", false: "resume_failed re-joins"}[ok]
		t.Run(name, func(t *testing.T) {
			const n = 20
			g := newFakeGateway(t)
			g.resumeOK.Store(ok)
			p := Plan{Name: "resume", Seed: 6,
				Cohorts: []Cohort{{Name: "r", Count: n, Behaviour: Behaviour{
					RoomCount: 2, Resume: true, Reconnect: ReconnectPolicy{Kind: PolicyImmediate},
				}}},
				Phases: []Phase{{Kind: PhaseRamp}, {Kind: PhaseHold, Duration: time.Minute}},
			}
			rec := stats.NewRecorder(time.Now())
			stop := runUntil(t, p, g.target(), rec, RunOptions{})
			defer stop()
			waitFor(t, 10*time.Second, "joined", func() bool { return rec.Counter(stats.CtrAcks) == n && g.open() == n })
			g.dropAll()
			waitFor(t, 10*time.Second, "reconnected", func() bool { return rec.Counter(stats.CtrReconnects) == n })
			stop()
			snap := rec.Snapshot()
			t.Logf("counters %v", snap.Counters)
			resumes, failures := snap.Counter(stats.CtrResumes), snap.Counter(stats.CtrResumeFailures)
			if ok && (resumes != n || failures != 0) {
				t.Errorf("resumes %d failures %d, want %d and 0", resumes, failures, n)
			}
			if !ok && (resumes != 0 || failures != n) {
				t.Errorf("resumes %d failures %d, want 0 and %d", resumes, failures, n)
			}
			// One join per connection, and one more after each failed resume (acked each).
			wantAcks := int64(n + map[bool]int64{true: 0, false: n}[ok])
			if got := snap.Counter(stats.CtrAcks); got != wantAcks {
				t.Errorf("acks %d, want %d", got, wantAcks)
			}
		})
	}
}
