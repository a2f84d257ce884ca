package loadgen

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/refserver"
)

// TestAcceptance2000Clients: against the reference gateway in this process, 2 000
// clients in 20 rooms ramp at 500/s, exchange broadcasts for 20 s and leave. The result must show
// zero ordering violations and zero lost acknowledged messages, and the recorded percentiles must
// agree with a direct timing of the same path (every fan-out sample, kept raw and sorted) within the
// histogram's precision (3 significant digits).
var holdFor = 20 * time.Second

func TestAcceptance2000Clients(t *testing.T) {
	if testing.Short() {
		t.Skip("2 000 clients for 30 s")
	}
	clients, send := 2000, 20*time.Second // 100 broadcasts/s into rooms of 100: 10 000 deliveries/s
	if raceEnabled {
		// The race detector slows both sides several times over: the same run at a quarter of the
		// clients checks the code for races; the acceptance numbers come from the run without it.
		clients = 500
	}
	e := startGateway(t, refserver.Config{HeartbeatInterval: 10 * time.Second, HeartbeatTimeout: 30 * time.Second})
	p := Plan{
		Name: "acceptance-2000", Seed: 2000,
		Cohorts: []Cohort{{Name: "tabs", Count: clients, Behaviour: Behaviour{
			RoomCount: 20, SendInterval: send, PayloadSize: 64, HeartbeatInterval: 10 * time.Second,
		}}},
		Phases: []Phase{
			{Name: "ramp", Kind: PhaseRamp, Rate: 500},
			{Name: "exchange", Kind: PhaseHold, Duration: holdFor},
			{Name: "leave", Kind: PhaseRampDown, Rate: 500},
		},
		Settle: 5 * time.Second,
	}
	rec := stats.NewRecorder(time.Now())
	var raw samples
	sum, err := RunLocal(context.Background(), p, e.target, rec, e.opts(p, RunOptions{OnSample: raw.add}))
	if err != nil {
		t.Fatal(err)
	}
	snap := rec.Snapshot()
	t.Logf("stop %q, %d clients, phases:", sum.StopReason, sum.Clients)
	for _, ph := range sum.Phases {
		t.Logf("  %-8s %v", ph.Name, ph.End.Sub(ph.Start).Round(time.Millisecond))
	}
	t.Logf("counters %v", snap.Counters)
	t.Logf("delivery %+v; schedule lag p99 %v (unreliable=%v %s)", sum.Delivery, sum.LagP99, sum.Unreliable, sum.Reason)
	if sum.StopReason != "completed" {
		t.Errorf("stop reason %q", sum.StopReason)
	}
	if got := snap.Counter(stats.CtrConnects); got != int64(clients) {
		t.Errorf("connects %d, want %d", got, clients)
	}
	for _, c := range []string{stats.CtrOrderViolations, stats.CtrAckedUndelivered, stats.CtrGaps, stats.CtrDuplicates, stats.CtrConnectErrors} {
		if n := snap.Counter(c); n != 0 {
			t.Errorf("%s = %d, want 0", c, n)
		}
	}
	sent, recv := snap.Counter(stats.CtrMessagesSent), snap.Counter(stats.CtrMessagesReceived)
	members := int64(clients / 20)
	if sent < int64(clients)/4 || recv < (members-5)*sent {
		t.Errorf("%d broadcasts sent, %d received: want every one delivered to about %d members", sent, recv, members)
	}

	// The recorder's percentiles against the exact percentiles of every raw sample.
	for _, h := range []string{stats.HistFanout, stats.HistConnect, stats.HistUpgrade, stats.HistFirstFrame, stats.HistPresence} {
		d := raw.get(h)
		if int64(len(d)) != snap.Count(h) {
			t.Errorf("%s: %d raw samples, histogram holds %d", h, len(d), snap.Count(h))
			continue
		}
		if len(d) == 0 {
			t.Errorf("%s: no samples", h)
			continue
		}
		slices.Sort(d)
		for _, q := range []float64{50, 90, 99, 99.9, 100} {
			exact := d[min(len(d)-1, int(float64(len(d))*q/100))]
			if q < 100 {
				exact = d[max(0, int(float64(len(d))*q/100+0.5)-1)]
			}
			got := snap.Percentile(h, q)
			// 3 significant digits: within 0.1 % of the value (plus rounding at the bucket edge).
			tol := time.Duration(float64(exact)*0.002) + time.Microsecond
			if diff := got - exact; diff > tol || diff < -tol {
				t.Errorf("%s p%v: histogram %v, direct %v (tolerance %v)", h, q, got, exact, tol)
			}
			if q == 50 || q == 99 {
				t.Logf("%-22s p%-4v histogram %-14v direct %v", h, q, got, exact)
			}
		}
	}
	if n := snap.Count(stats.HistPresence); n == 0 {
		t.Error("no presence convergence measured at ramp-down")
	}
	srv := e.Server
	waitFor(t, 10*time.Second, "the gateway to release every connection", func() bool {
		st := srv.Stats()
		return st.ActiveConns == 0 && st.OrphanedSubscriptions == 0
	})
}
