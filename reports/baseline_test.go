package reports

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/stats"
)

// runWith is a completed run of the "fanout" scenario whose fan-out latencies are spread evenly up
// to fanoutMax, with the given counters.
func runWith(t *testing.T, fanoutMax time.Duration, counters map[string]int64) *Result {
	t.Helper()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rec := stats.NewRecorder(start)
	for i := range 1000 {
		rec.Record(stats.HistFanout, fanoutMax*time.Duration(i+1)/1000)
		rec.Record(stats.HistUpgrade, time.Millisecond)
	}
	for k, v := range counters {
		rec.Add(k, v)
	}
	r := New("fanout", 1)
	if err := r.SetPlan(loadgen.Plan{Name: "fanout", Cohorts: []loadgen.Cohort{{Name: "all", Count: 100}}}); err != nil {
		t.Fatal(err)
	}
	r.Scenario = &Scenario{File: "fanout.yaml", Name: "fanout", TimeScale: 0.1}
	r.Target = Target{Kind: "embedded", Nodes: 1}
	r.Stats = StatsFrom(rec.Snapshot())
	r.Started, r.Ended, r.Duration, r.StopReason = start, start.Add(10*time.Second), 10*time.Second, StopCompleted
	r.Workers = []Worker{{Clients: 100, Status: WorkerOK}}
	p99 := r.Stats.Percentile(stats.HistFanout, 99).Seconds()
	r.SLOs = []SLOVerdict{{Name: "fanout_p99", Metric: "fanout_latency", Bound: "p99 <= 50ms", Agg: "p99", Op: "<=",
		Threshold: 0.05, Unit: "seconds", Value: p99, Pass: p99 <= 0.05}}
	return r
}

func row(t *testing.T, c *Comparison, name string) MetricComparison {
	t.Helper()
	for _, m := range c.Metrics {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("no row %q in %+v", name, c.Metrics)
	return MetricComparison{}
}

func TestCompareFanoutRegression(t *testing.T) {
	counters := map[string]int64{stats.CtrConnectAttempts: 100, stats.CtrConnects: 100}
	base := runWith(t, 10*time.Millisecond, counters)
	for _, tc := range []struct {
		name       string
		fanoutMax  time.Duration
		tol        Tolerances
		regression bool
		sloFails   bool
	}{
		{"same", 10 * time.Millisecond, Tolerances{}, false, false},
		{"better", 5 * time.Millisecond, Tolerances{}, false, false},
		{"within the default 25%", 12 * time.Millisecond, Tolerances{}, false, false},
		{"beyond the default", 20 * time.Millisecond, Tolerances{}, true, false},
		{"allowed by name", 20 * time.Millisecond, Tolerances{ByName: map[string]Tolerance{"fanout_latency p99": {Relative: 1.5}, "fanout_latency p50": {Relative: 1.5}, "fanout_p99": {Relative: 1.5}}}, false, false},
		{"allowed by class", 20 * time.Millisecond, Tolerances{ByClass: map[string]Tolerance{ClassLatency: {Relative: 1.5}}}, false, false},
		{"ignored", 20 * time.Millisecond, Tolerances{ByClass: map[string]Tolerance{ClassLatency: {Ignore: true}}}, false, false},
		{"absolute part holds", 20 * time.Millisecond, Tolerances{ByClass: map[string]Tolerance{ClassLatency: {Relative: 0.1, Absolute: 0.02}}}, false, false},
		{"SLO broken", 60 * time.Millisecond, Tolerances{ByName: map[string]Tolerance{"fanout_p99": {Relative: 100}}}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cur := runWith(t, tc.fanoutMax, counters)
			c, err := Compare(base, cur, tc.tol, "old.json", "new.json")
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Regressed(); got != tc.regression {
				t.Errorf("regressed %v, want %v: %+v", got, tc.regression, c.Regressions())
			}
			r := row(t, c, "fanout_latency p99")
			if math.Abs(r.Baseline-base.Stats.Percentile(stats.HistFanout, 99).Seconds()) > 1e-9 || r.Change != r.New-r.Baseline {
				t.Errorf("row %+v", r)
			}
			slo := row(t, c, "fanout_p99")
			if slo.Kind != ComparisonSLO || slo.NewPass == tc.sloFails || !slo.BaselinePass {
				t.Errorf("SLO row %+v", slo)
			}
			if tc.sloFails && (!slo.Regression || !strings.Contains(slo.Detail, "passed in the baseline, fails now")) {
				t.Errorf("a broken SLO is not a regression: %+v", slo)
			}
		})
	}
}

// TestCompareCohortSLOs: the same SLO on two cohorts makes two rows, each matched with its own.
func TestCompareCohortSLOs(t *testing.T) {
	base := runWith(t, 10*time.Millisecond, nil)
	cur := runWith(t, 10*time.Millisecond, nil)
	for _, r := range []*Result{base, cur} {
		r.SLOs = []SLOVerdict{
			{Name: "close_codes{1006} count", Metric: "close_codes:1006", Agg: "count", Op: "==", Unit: "count", Cohort: "viewers", Pass: true},
			{Name: "close_codes{1006} count", Metric: "close_codes:1006", Agg: "count", Op: "==", Unit: "count", Cohort: "editors", Pass: true},
		}
	}
	cur.SLOs[1].Value, cur.SLOs[1].Pass = 7, false
	c, err := Compare(base, cur, Tolerances{}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if r := row(t, c, "close_codes{1006} count [viewers]"); r.Regression || r.New != 0 {
		t.Errorf("viewers %+v", r)
	}
	if r := row(t, c, "close_codes{1006} count [editors]"); !r.Regression || r.New != 7 {
		t.Errorf("editors %+v", r)
	}
}

func TestCompareDirectionsAndMissing(t *testing.T) {
	base := runWith(t, 10*time.Millisecond, map[string]int64{stats.CtrConnectAttempts: 100, stats.CtrConnects: 100,
		stats.CtrMessagesSent: 100, stats.CtrMessagesReceived: 10_000})
	cur := runWith(t, 10*time.Millisecond, map[string]int64{stats.CtrConnectAttempts: 100, stats.CtrConnects: 100,
		stats.CtrMessagesSent: 100, stats.CtrMessagesReceived: 5_000, stats.CloseCodeCounter(1006): 20, stats.CloseCodeCounter(1001): 50})
	c, err := Compare(base, cur, Tolerances{}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if r := row(t, c, "messages_received"); !r.Regression || r.Direction != LowerIsWorse || r.RelativeChange != -0.5 {
		t.Errorf("half the deliveries is not a regression: %+v", r)
	}
	if r := row(t, c, "disconnect_rate"); !r.Regression || r.New != 0.2 {
		t.Errorf("20 abnormal closes in 100 connections (1001 is clean): %+v", r)
	}
	if r := row(t, c, "memory_per_connection"); r.Regression || !r.BaselineMissing || !r.NewMissing || r.Detail != "no value in either run" {
		t.Errorf("memory without telemetry: %+v", r)
	}
}

func TestComparePlanMismatch(t *testing.T) {
	base := runWith(t, 10*time.Millisecond, nil)
	cur := runWith(t, 10*time.Millisecond, nil)
	cur.Scenario.TimeScale = 1
	cur.Target.Kind = "url"
	if err := cur.SetPlan(loadgen.Plan{Name: "fanout", Cohorts: []loadgen.Cohort{{Name: "all", Count: 200}}}); err != nil {
		t.Fatal(err)
	}
	_, err := Compare(base, cur, Tolerances{}, "base.json", "new.json")
	var pm *PlanMismatchError
	if !errors.As(err, &pm) {
		t.Fatalf("err %v, want a *PlanMismatchError", err)
	}
	var fields []string
	for _, d := range pm.Differences {
		fields = append(fields, d.Field)
	}
	if got := strings.Join(fields, ","); got != "clients,time_scale,target_kind" {
		t.Errorf("differences %s", got)
	}
	want := "reports: will not compare new.json with baseline base.json: their plans differ (clients 100 in the baseline, 200 in the new run; time_scale 0.1 in the baseline, 1 in the new run; target_kind embedded in the baseline, url in the new run)"
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message:\n%s\nwant prefix:\n%s", err, want)
	}
	cur.Scenario = nil // the built-in plan against a scenario
	if _, err := Compare(base, cur, Tolerances{}, "", ""); !errors.As(err, &pm) || pm.Differences[0].Field != "scenario" {
		t.Errorf("scenario against built-in plan: %v", err)
	}
}

func TestHeadlineCountsEveryError(t *testing.T) {
	r := runWith(t, time.Millisecond, map[string]int64{
		stats.CtrConnectAttempts: 200, stats.CtrConnects: 150,
		stats.CloseCodeCounter(1000): 40, stats.CloseCodeCounter(1001): 10, // clean
		stats.CloseCodeCounter(1006): 5, stats.CloseCodeCounter(1008): 3, stats.CloseCodeCounter(1013): 7,
		stats.ErrorCounter(stats.ErrUpgradeRefused):     50, // HTTP 503
		stats.ErrorCounter(stats.ErrRead):               4,
		stats.ErrorCounter("read_timeout"):              56,
		stats.ErrorCounter("server_sequence"):           3, // followed by its 4003 close
		stats.CloseCodeCounter(4003):                    3,
		loadgen.CtrFalseDisconnects:                     56,
		"cohort/a/" + stats.ErrorCounter(stats.ErrRead): 4, // a cohort's share, not counted twice
	})
	h := HeadlineOf(r)
	if h.Errors != 5+3+7+50+4+56+3 {
		t.Errorf("errors %d: %+v", h.Errors, h.ErrorKinds)
	}
	if h.AbnormalCloses != 5+3+7+3+4+56 || h.FalseDisconnects != 56 {
		t.Errorf("abnormal closes %d, false disconnects %d", h.AbnormalCloses, h.FalseDisconnects)
	}
	if h.ErrorKinds[0] != (ErrorKind{"read_timeout", 56}) || h.ErrorKinds[1] != (ErrorKind{"upgrade_refused", 50}) {
		t.Errorf("kinds not largest first: %+v", h.ErrorKinds)
	}
	if h.ErrorRate != float64(h.Errors)/200 || h.Clients != 100 || (h.ConnectTime.P50-time.Millisecond).Abs() > time.Millisecond/100 {
		t.Errorf("headline %+v", h)
	}
}

func TestFormatQuantity(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		unit string
		want string
	}{
		{0.0123456, "seconds", "12.3ms"},
		{0.0000123, "seconds", "12.3µs"},
		{2.5, "seconds", "2.5s"},
		{3072, "bytes", "3KiB"},
		{0.0125, "ratio", "1.25%"},
		{3, "count", "3"},
		{math.Inf(1), "seconds", "∞"},
	} {
		if got := FormatQuantity(tc.v, tc.unit); got != tc.want {
			t.Errorf("FormatQuantity(%v, %s) = %s, want %s", tc.v, tc.unit, got, tc.want)
		}
	}
}

// TestCompareUnreliableTimings: when a run's generator was saturated its timings are shown, not
// judged; counts and SLO verdicts still are.
func TestCompareUnreliableTimings(t *testing.T) {
	counters := map[string]int64{stats.CtrConnectAttempts: 100, stats.CtrConnects: 100}
	base := runWith(t, 10*time.Millisecond, counters)
	cur := runWith(t, 40*time.Millisecond, map[string]int64{stats.CtrConnectAttempts: 100, stats.CtrConnects: 100, stats.CloseCodeCounter(1006): 30})
	cur.Reliable, cur.UnreliableReason = false, "schedule-lag p99 300ms above the bound 50ms: the generator was saturated"
	c, err := Compare(base, cur, Tolerances{}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	r := row(t, c, "fanout_latency p99")
	if r.Regression || !r.NotJudged || !strings.HasPrefix(r.Detail, "not judged (the new run's generator was saturated") {
		t.Errorf("a saturated run's latency is judged: %+v", r)
	}
	if r := row(t, c, "disconnect_rate"); !r.Regression {
		t.Errorf("a count is not judged on an unreliable run: %+v", r)
	}
	if len(c.Notes) == 0 || !strings.Contains(c.Notes[0], "the new run is unreliable") {
		t.Errorf("notes %q", c.Notes)
	}
}
