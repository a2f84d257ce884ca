package scenarios

import (
	"testing"
	"time"

	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/reports"
)

// TestPlanSLOs grades the built-in plan's SLOs: a run in which every client connected and
// delivered passes; one in which every client failed to connect fails, on data.
func TestPlanSLOs(t *testing.T) {
	plan := loadgen.Plan{Name: "builtin", Cohorts: []loadgen.Cohort{{Name: "tabs", Count: 50}}}
	run := func(fill func(rec *stats.Recorder)) []Verdict {
		rec := stats.NewRecorder(time.Now())
		fill(rec)
		r := &reports.Result{Stats: reports.StatsFrom(rec.Snapshot()), Duration: 5 * time.Second}
		return Grade(PlanSLOs(plan), ResultSource{Result: r})
	}
	good := run(func(rec *stats.Recorder) {
		for range 50 {
			rec.Record(stats.HistUpgrade, time.Millisecond)
			rec.Record(stats.HistScheduleLag, time.Millisecond)
		}
		rec.Add(stats.CtrMessagesReceived, 500)
	})
	if !Passed(good) {
		t.Errorf("a good run fails: %+v", good)
	}
	failed := run(func(rec *stats.Recorder) {
		rec.Add(stats.CtrConnectAttempts, 50)
		rec.Add(stats.ErrorCounter(stats.ErrDialRefused), 50)
		rec.Record(stats.HistScheduleLag, time.Millisecond)
	})
	if Passed(failed) {
		t.Fatalf("a run in which every client failed passes: %+v", failed)
	}
	if v := failed[0]; v.Name != "every client connected" || v.Pass || v.NoData || v.Observed != 0 || v.Bound != 50 {
		t.Errorf("first verdict %+v", v)
	}
}
