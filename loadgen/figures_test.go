package loadgen

import (
	"context"
	"testing"
	"time"

	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/refserver"
)

// TestClientFigures runs several cohorts against the in-process gateway and checks the figures
// that are per cohort, per tab and per user: two sending cohorts in the same rooms (their client
// numbers coincide: neither may take the other's broadcast for its own echo), tabs that vanish
// (the gateway's heartbeat cleans them up), tabs that close without a close frame (not an error),
// and users with three tabs.
func TestClientFigures(t *testing.T) {
	cfg := refserver.Config{HeartbeatInterval: 200 * time.Millisecond, HeartbeatTimeout: 600 * time.Millisecond}
	e := startGateway(t, cfg)
	send := Behaviour{RoomCount: 2, RoomPrefix: "doc-", SendInterval: 100 * time.Millisecond, PayloadSize: 8}
	p := Plan{
		Name: "figures", Seed: 3,
		Cohorts: []Cohort{
			{Name: "a", Count: 6, Behaviour: send, SourceIPs: "127.9.1.0/24"},
			{Name: "b", Count: 6, Behaviour: send, SourceIPs: "127.9.2.0/24"},
			{Name: "sleepers", Count: 4, SourceIPs: "127.9.3.0/24", Behaviour: Behaviour{RoomPrefix: "doc-", RoomCount: 2,
				Exit: Exit{Kind: ExitVanish, After: 200 * time.Millisecond}}},
			{Name: "closers", Count: 4, SourceIPs: "127.9.4.0/24", Behaviour: Behaviour{RoomPrefix: "doc-", RoomCount: 2,
				Exit: Exit{Kind: ExitTabClose, After: 200 * time.Millisecond}}},
			{Name: "tabs", Count: 6, SourceIPs: "127.9.5.0/24", Behaviour: Behaviour{TabsPerUser: 3, RoomPrefix: "quiet-"}},
		},
		Phases:           []Phase{{Kind: PhaseRamp, Rate: 200}, {Kind: PhaseHold, Duration: 2 * time.Second}, {Kind: PhaseRampDown}},
		ScheduleLagBound: 5 * time.Second,
	}
	rec := stats.NewRecorder(time.Now())
	if _, err := RunLocal(context.Background(), p, e.target, rec, e.opts(p, RunOptions{})); err != nil {
		t.Fatal(err)
	}
	snap := rec.Snapshot()
	t.Logf("counters %v", snap.Counters)
	for _, c := range []string{stats.CtrOrderViolations, CtrApplyOrder, stats.CtrDuplicates, stats.ErrorCounter(stats.ErrRead),
		stats.ErrorCounter("read_timeout"), CtrFalseDisconnects, CtrZombiesUncleaned} {
		if n := snap.Counter(c); n != 0 {
			t.Errorf("%s = %d, want 0", c, n)
		}
	}
	t.Run("per cohort", func(t *testing.T) {
		for _, name := range []string{"a", "b"} {
			c := snap.Cohort(name)
			if c.Counter(stats.CtrMessagesSent) == 0 || c.Count(stats.HistFanout) == 0 || c.Count(stats.HistConnect) == 0 {
				t.Errorf("cohort %s: sent %d, fanout %d, connect %d samples", name, c.Counter(stats.CtrMessagesSent),
					c.Count(stats.HistFanout), c.Count(stats.HistConnect))
			}
		}
		sum := int64(0)
		for _, name := range snap.CohortNames() {
			sum += snap.Cohort(name).Counter(stats.CtrConnects)
		}
		if sum != snap.Counter(stats.CtrConnects) {
			t.Errorf("cohorts' connects add up to %d, the run's are %d", sum, snap.Counter(stats.CtrConnects))
		}
	})
	t.Run("zombie cleanup", func(t *testing.T) {
		z := snap.Cohort("sleepers")
		if n := z.Count(HistZombieCleanup); n != 4 {
			t.Fatalf("zombie cleanups %d, want 4", n)
		}
		// Gone within the heartbeat timeout plus an interval (DESIGN §2), with room for a loaded machine.
		if mx := z.Percentile(HistZombieCleanup, 100); mx < 400*time.Millisecond || mx > 3*time.Second {
			t.Errorf("zombie cleanup max %v, want about 0.6-0.8 s", mx)
		}
	})
	t.Run("attempts per client", func(t *testing.T) {
		if n := snap.Count(HistReconnectAttemptsPerClient); n != 26 {
			t.Errorf("attempts recorded for %d tabs, want 26", n)
		}
	})
	t.Run("connections per user", func(t *testing.T) {
		tabs := snap.Cohort("tabs")
		if n, mx := tabs.Count(HistConnsPerUser), tabs.Hist(HistConnsPerUser).Max(); n != 2 || mx != 3 {
			t.Errorf("tabs: %d users, peak %d; want 2 users holding 3", n, mx)
		}
		if mx := snap.Cohort("a").Hist(HistConnsPerUser).Max(); mx != 1 {
			t.Errorf("cohort a: peak %d per user, want 1", mx)
		}
	})
}

// TestFalseDisconnectsAndUncleanedZombies runs against a gateway whose heartbeat is far slower than
// the tabs expect: tabs with a read timeout cut themselves although they were live (false
// disconnects; not those that ignore pings on purpose), and a vanished tab is never cleaned up
// before the run ends (counted with its age).
func TestFalseDisconnectsAndUncleanedZombies(t *testing.T) {
	cfg := refserver.Config{HeartbeatInterval: 20 * time.Second, HeartbeatTimeout: 60 * time.Second}
	e := startGateway(t, cfg)
	impatient := Behaviour{RoomPrefix: "quiet-", ReadTimeout: 400 * time.Millisecond,
		Reconnect: ReconnectPolicy{Kind: PolicyConstant, Initial: 100 * time.Millisecond, MaxAttempts: 2}}
	rude := impatient
	rude.Misbehave.IgnorePings = true
	rude.RoomPrefix = "rude-"
	p := Plan{
		Name: "silent", Seed: 4,
		Cohorts: []Cohort{
			{Name: "impatient", Count: 3, Behaviour: impatient, SourceIPs: "127.9.6.0/24"},
			{Name: "rude", Count: 3, Behaviour: rude, SourceIPs: "127.9.7.0/24"},
			{Name: "sleepers", Count: 2, SourceIPs: "127.9.8.0/24", Behaviour: Behaviour{RoomPrefix: "zz-",
				Exit: Exit{Kind: ExitVanish, After: 100 * time.Millisecond}}},
		},
		Phases:           []Phase{{Kind: PhaseRamp, Rate: 100}, {Kind: PhaseHold, Duration: 1500 * time.Millisecond}, {Kind: PhaseRampDown}},
		ScheduleLagBound: 5 * time.Second,
	}
	rec := stats.NewRecorder(time.Now())
	if _, err := RunLocal(context.Background(), p, e.target, rec, e.opts(p, RunOptions{})); err != nil {
		t.Fatal(err)
	}
	snap := rec.Snapshot()
	t.Logf("counters %v", snap.Counters)
	imp := snap.Cohort("impatient")
	if n, rt := imp.Counter(CtrFalseDisconnects), imp.Counter(stats.ErrorCounter("read_timeout")); n == 0 || n != rt {
		t.Errorf("impatient: %d false disconnects, %d read timeouts; want one for each read timeout, at least one", n, rt)
	}
	if n := snap.Cohort("rude").Counter(CtrFalseDisconnects); n != 0 {
		t.Errorf("rude (ignoring pings): %d false disconnects, want 0", n)
	}
	if h := snap.Cohort("impatient").Hist(HistReconnectAttemptsPerClient); h.Count() != 3 || h.Max() < 1 {
		t.Errorf("impatient: %d tabs, at most %d reconnect attempts; want 3 tabs, each reconnecting", h.Count(), h.Max())
	}
	z := snap.Cohort("sleepers")
	if n, c := z.Counter(CtrZombiesUncleaned), z.Count(HistZombieCleanup); n != 2 || c != 0 {
		t.Errorf("sleepers: %d never cleaned, %d cleaned; want 2, 0", n, c)
	}
	if age := z.Percentile(HistZombieAge, 50); age < time.Second {
		t.Errorf("zombie age at the end %v, want above 1 s", age)
	}
}

// TestFalseDisconnectBySweep runs quiet tabs that read and would answer pings against a gateway
// with the no-server-ping flaw: it never pings and its staleness sweep drops them without a close
// frame. Each drop is a false disconnect once the tab's next connection succeeds; tabs that ignore
// pings on purpose are not counted.
func TestFalseDisconnectBySweep(t *testing.T) {
	cfg := refserver.Config{HeartbeatInterval: 200 * time.Millisecond, HeartbeatTimeout: 300 * time.Millisecond,
		FlawSweepInterval: 300 * time.Millisecond, Flaws: refserver.Flaws{refserver.FlawNoServerPing: true}}
	e := startGateway(t, cfg)
	quiet := Behaviour{RoomPrefix: "calm-", Reconnect: ReconnectPolicy{Kind: PolicyConstant, Initial: 50 * time.Millisecond, MaxAttempts: 100}}
	rude := quiet
	rude.RoomPrefix = "rude-"
	rude.Misbehave.IgnorePings = true
	p := Plan{
		Name: "sweep", Seed: 6,
		Cohorts: []Cohort{
			{Name: "quiet", Count: 3, Behaviour: quiet, SourceIPs: "127.9.11.0/24"},
			{Name: "rude", Count: 3, Behaviour: rude, SourceIPs: "127.9.12.0/24"},
		},
		Phases:           []Phase{{Kind: PhaseRamp, Rate: 100}, {Kind: PhaseHold, Duration: 1500 * time.Millisecond}, {Kind: PhaseRampDown}},
		ScheduleLagBound: 5 * time.Second,
	}
	rec := stats.NewRecorder(time.Now())
	if _, err := RunLocal(context.Background(), p, e.target, rec, e.opts(p, RunOptions{})); err != nil {
		t.Fatal(err)
	}
	snap := rec.Snapshot()
	t.Logf("counters %v", snap.Counters)
	q := snap.Cohort("quiet")
	if q.Counter(stats.CloseCodeCounter(1006)) == 0 && q.Counter(stats.CtrReconnects) == 0 {
		t.Skip("the sweep dropped no quiet tab during the hold (machine too slow to tell)")
	}
	if n := q.Counter(CtrFalseDisconnects); n == 0 {
		t.Errorf("quiet tabs: %d reconnects after sweeps, 0 false disconnects", q.Counter(stats.CtrReconnects))
	}
	if n := snap.Cohort("rude").Counter(CtrFalseDisconnects); n != 0 {
		t.Errorf("rude (ignoring pings): %d false disconnects, want 0", n)
	}
}
