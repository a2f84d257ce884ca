package scenarios

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/squall-dev/squall/chaos"
	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/refserver/protocol"
	"github.com/squall-dev/squall/reports"
)

// sourceResult is a 10-second run: ramp 0–2 s, hold 2–8 s, ramp-down 8–10 s; 100 connections that
// drop to 60 at second 4 (a proxy disabled at 3.5 s) and are back at second 6.
func sourceResult() *reports.Result {
	t0 := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	sec := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	rec := stats.NewRecorder(t0)
	for i := 1; i <= 100; i++ {
		rec.Record(stats.HistUpgrade, time.Duration(i)*time.Millisecond)
	}
	rec.Add(stats.CtrOrderViolations, 3)
	rec.Add(stats.CloseCodeCounter(1006), 2)
	var series stats.Series
	conns := []int64{50, 100, 100, 100, 60, 80, 100, 100, 100, 0}
	for i, c := range conns {
		rec.SetGauge(stats.GaugeConnections, c)
		if i == 4 {
			rec.Add(stats.CtrReconnectAttempts, 40)
		}
		series = append(series, rec.Tick(sec(float64(i+1))))
	}
	r := reports.New("t", 1)
	r.Started, r.Ended, r.Duration = t0, sec(10), 10*time.Second
	rs, err := reports.SeriesFrom(series)
	if err != nil {
		panic(err)
	}
	r.Stats, r.Series = reports.StatsFrom(rec.Snapshot()), rs
	r.Phases = []reports.Phase{{Name: "ramp", Start: t0, End: sec(2)}, {Name: "hold", Start: sec(2), End: sec(8)}, {Name: "ramp-down", Start: sec(8), End: sec(10)}}
	r.Events = []reports.Event{{At: sec(3.5), Kind: reports.EventFault, Fault: &reports.Fault{Action: string(chaos.ActionDisableProxy), Target: "p"}},
		{At: sec(4), Kind: reports.EventFault, Fault: &reports.Fault{Action: string(chaos.ActionEnableProxy), Target: "p"}}}
	for i := 0; i <= 10; i++ {
		r.Telemetry.Points = append(r.Telemetry.Points, reports.TelemetryPoint{Second: i, At: sec(float64(i)), MemoryPerConn: 1000 + 10*float64(i),
			Values: map[string]float64{protocol.MetricOrphanedSubscriptions: float64(i % 3), protocol.MetricProcessResidentMemory: 1e6 + 500*float64(i)}})
	}
	r.Telemetry.Status = reports.TelemetryOK
	return r
}

func TestResultSource(t *testing.T) {
	s := &Scenario{Cohorts: []Cohort{{Name: "a"}, {Name: "b"}},
		Phases: []Phase{{Kind: PhaseRamp}, {Kind: PhaseHold}, {Kind: PhaseRampDown}}}
	src := ResultSource{Result: sourceResult(), Scenario: s, ServerMemory: true}
	tests := []struct {
		metric, agg, cohort string
		want                float64
		ok                  bool
	}{
		{"connect_time", "p50", "", 0.050, true},
		{"connect_time", "max", "", 0.100, true},
		{"connect_time", "count", "", 100, true},
		{"connect_time", "rate", "", 10, true},
		{"ping_rtt", "p99", "", 0, false},  // nothing recorded: no percentile
		{"ping_rtt", "count", "", 0, true}, // but a count of zero
		{"ordering_violations", "count", "", 3, true},
		{"ordering_violations", "rate", "", 0.3, true},
		{"duplicates", "count", "", 0, true},
		{"close_codes:1006", "count", "", 2, true},
		{"close_codes:1000", "count", "", 0, true},
		{"reconnect_rate_peak", "max", "", 40, true},
		// connections were 100 in the interval ending at 3 s (before the fault at 3.5 s), 60 and 80 in
		// the ones ending at 5 and 6 s, 100 again in the one ending at 7 s: 3.5 s (the enable is a revert).
		{"recovery_time", "max", "", 3.5, true},
		{"orphaned_subscriptions", "last", "", 1, true},
		{"orphaned_subscriptions", "max", "", 2, true},
		{"shed_total", "count", "", 0, false}, // the gateway did not export it
		{"server_memory_per_connection", "max", "", 1100, true},
		{"server_memory_per_connection", "slope", "", 10, true},
		{"server_memory_growth_slope", "last", "", 500, true},
		{"ghost_presence_duration", "max", "", 0, false}, // no presence data at all
		{"zombie_cleanup_time", "max", "", 0, false},
		{"reconnect_attempts_per_client", "max", "", 0, false},
		{"false_disconnects", "count", "", 0, true}, // a counter: zero when nothing was counted
		{"concurrent_connections_per_client", "max", "", 0, false},
		{"ordering_violations", "count", "a", 0, false}, // not kept per cohort
	}
	for _, tc := range tests {
		t.Run(tc.metric+"_"+tc.agg+"_"+tc.cohort, func(t *testing.T) {
			got, ok := src.Value(tc.metric, tc.agg, tc.cohort)
			if ok != tc.ok || (ok && math.Abs(got-tc.want) > 1e-3*math.Max(1, math.Abs(tc.want))) {
				t.Errorf("Value(%s, %s, %q) = %v, %v; want %v, %v", tc.metric, tc.agg, tc.cohort, got, ok, tc.want, tc.ok)
			}
		})
	}

	t.Run("one cohort answers for itself", func(t *testing.T) {
		one := ResultSource{Result: sourceResult(), Scenario: &Scenario{Cohorts: []Cohort{{Name: "a"}}}}
		if v, ok := one.Value("ordering_violations", "count", "a"); !ok || v != 3 {
			t.Errorf("got %v, %v", v, ok)
		}
	})
	t.Run("a cohort that ran on its own answers from its figures", func(t *testing.T) {
		rec := stats.NewRecorder(time.Now())
		rec.Record(stats.HistPingRTT, 100*time.Millisecond)
		rec.Add(stats.CtrDuplicates, 2)
		per := ResultSource{Result: sourceResult(), Scenario: s, CohortStats: map[string]reports.Stats{"b": reports.StatsFrom(rec.Snapshot())}}
		if v, ok := per.Value("ping_rtt", "max", "b"); !ok || math.Abs(v-0.1) > 1e-3 {
			t.Errorf("ping_rtt max of b = %v, %v", v, ok)
		}
		if v, ok := per.Value("duplicates", "count", "b"); !ok || v != 2 {
			t.Errorf("duplicates of b = %v, %v", v, ok)
		}
		if _, ok := per.Value("reconnect_rate_peak", "max", "b"); ok {
			t.Error("a series figure answered for one cohort")
		}
		if _, ok := per.Value("duplicates", "count", "a"); ok {
			t.Error("a cohort without figures of its own answered")
		}
	})
	t.Run("a recovery that never happened fails its bound and records as unbounded", func(t *testing.T) {
		r := sourceResult()
		for i := 4; i < 8; i++ { // connections stay down until the ramp-down at 8 s
			r.Series[i].Gauges[stats.GaugeConnections] = 10
		}
		src := ResultSource{Result: r, Scenario: s}
		v, ok := src.Value("recovery_time", "max", "")
		if !ok || !math.IsInf(v, 1) {
			t.Fatalf("recovery_time = %v, %v; want +Inf", v, ok)
		}
		slo := SLO{Metric: "recovery_time", Agg: AggMax, Bound: Bound{Op: OpLT, Value: 5}}
		vs := Grade([]SLO{slo}, src)
		if vs[0].Pass || vs[0].ObservedText() != "never" {
			t.Errorf("verdict %+v (%s)", vs[0], vs[0].ObservedText())
		}
		rv := ReportVerdicts(vs)
		if _, err := json.Marshal(rv); err != nil || !rv[0].Unbounded || rv[0].Value != 0 {
			t.Errorf("report verdict %+v: %v", rv[0], err)
		}
	})
	t.Run("in-process gateway has no server memory", func(t *testing.T) {
		in := ResultSource{Result: sourceResult(), Scenario: s}
		if _, ok := in.Value("server_memory_per_connection", "max", ""); ok {
			t.Error("memory of the generator's own process graded as the gateway's")
		}
	})
	t.Run("ghosts never cleared", func(t *testing.T) {
		r := sourceResult()
		rec := stats.NewRecorder(r.Started)
		rec.Record(stats.HistPresence, 300*time.Millisecond)
		r.Stats = mergeStats(t, r.Stats, rec.Snapshot())
		src := ResultSource{Result: r, Scenario: s}
		if v, ok := src.Value("ghost_presence_duration", "max", ""); !ok || math.Abs(v-0.3) > 1e-3 {
			t.Errorf("every ghost cleared: max %v, %v; want 300ms", v, ok)
		}
		r.Stats.Counters[loadgenGhosts] = 2
		if v, ok := src.Value("ghost_presence_duration", "max", ""); !ok || !math.IsInf(v, 1) {
			t.Errorf("max %v, %v; want +Inf (never cleared)", v, ok)
		}
		if v, ok := src.Value("ghost_presence_duration", "count", ""); !ok || v != 3 {
			t.Errorf("count %v, %v; want 1 cleared + 2 never", v, ok)
		}
		if _, ok := src.Value("ghost_presence_duration", "p50", ""); ok {
			t.Error("a percentile over ghosts without exit times")
		}
		// With the ghosts' ages at ramp-down (what the load generator records), percentiles count them.
		rec2 := stats.NewRecorder(r.Started)
		rec2.Record(loadgen.HistGhostAge, 2*time.Second)
		rec2.Record(loadgen.HistGhostAge, 4*time.Second)
		r.Stats = mergeStats(t, r.Stats, rec2.Snapshot())
		r.Stats.Counters[loadgenGhosts] = 2
		if v, ok := src.Value("ghost_presence_duration", "p50", ""); !ok || math.Abs(v-2) > 0.01 {
			t.Errorf("p50 %v, %v; want 2s (0.3 s, 2 s, 4 s)", v, ok)
		}
		if v, ok := src.Value("ghost_presence_duration", "max", ""); !ok || !math.IsInf(v, 1) {
			t.Errorf("max %v, %v; want +Inf (never cleared)", v, ok)
		}
	})
}

func TestResultSourceClientFigures(t *testing.T) {
	s := &Scenario{Cohorts: []Cohort{{Name: "a"}, {Name: "b"}}}
	r := sourceResult()
	rec := stats.NewRecorder(r.Started)
	for _, v := range []int64{0, 0, 1, 7} {
		rec.RecordValue(loadgen.HistReconnectAttemptsPerClient, v)
	}
	rec.RecordValue(loadgen.HistConnsPerUser, 2)
	rec.RecordValue(stats.CohortKey("b", loadgen.HistConnsPerUser), 8)
	rec.Record(loadgen.HistZombieCleanup, 3*time.Second)
	rec.Record(stats.CohortKey("a", stats.HistFanout), 5*time.Millisecond)
	rec.Record(stats.CohortKey("b", stats.HistFanout), 105*time.Millisecond)
	rec.Add(loadgen.CtrFalseDisconnects, 4)
	rec.Add(stats.CohortKey("b", loadgen.CtrFalseDisconnects), 1)
	r.Stats = mergeStats(t, r.Stats, rec.Snapshot())
	src := ResultSource{Result: r, Scenario: s}
	tests := []struct {
		metric, agg, cohort string
		want                float64
		ok                  bool
	}{
		{"reconnect_attempts_per_client", "max", "", 7, true},
		{"reconnect_attempts_per_client", "p50", "", 0, true},
		{"concurrent_connections_per_client", "max", "", 2, true},
		{"concurrent_connections_per_client", "max", "b", 8, true},
		{"concurrent_connections_per_client", "max", "a", 0, false}, // cohort a has figures, none of these
		{"zombie_cleanup_time", "max", "", 3, true},
		{"false_disconnects", "count", "", 4, true},
		{"false_disconnects", "count", "b", 1, true},
		{"false_disconnects", "count", "a", 0, true},
		{"fanout_latency", "max", "a", 0.005, true},
		{"fanout_latency", "max", "b", 0.105, true},
		{"fanout_latency", "max", "c", 0, false}, // no such cohort
	}
	for _, tt := range tests {
		t.Run(tt.metric+"_"+tt.agg+"_"+tt.cohort, func(t *testing.T) {
			v, ok := src.Value(tt.metric, tt.agg, tt.cohort)
			if ok != tt.ok || (ok && math.Abs(v-tt.want) > tt.want*0.01+1e-9) {
				t.Fatalf("Value = %v, %v; want %v, %v", v, ok, tt.want, tt.ok)
			}
		})
	}
	t.Run("zombies never cleaned", func(t *testing.T) {
		rec := stats.NewRecorder(r.Started)
		rec.Record(loadgen.HistZombieAge, 9*time.Second)
		rec.Add(loadgen.CtrZombiesUncleaned, 1)
		r2 := *r
		r2.Stats = mergeStats(t, r.Stats, rec.Snapshot())
		src := ResultSource{Result: &r2, Scenario: s}
		if v, ok := src.Value("zombie_cleanup_time", "max", ""); !ok || !math.IsInf(v, 1) {
			t.Errorf("max %v, %v; want never", v, ok)
		}
		if v, ok := src.Value("zombie_cleanup_time", "count", ""); !ok || v != 2 {
			t.Errorf("count %v, %v; want 2", v, ok)
		}
	})
}

// mergeStats adds what a recorder recorded to a result's figures.
func mergeStats(t *testing.T, st reports.Stats, add stats.Snapshot) reports.Stats {
	t.Helper()
	cur, err := st.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return reports.StatsFrom(cur.Merge(add))
}
