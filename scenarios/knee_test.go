package scenarios

import (
	"strings"
	"testing"
	"time"

	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/reports"
)

// TestStepsAndKnee grades a synthetic step ramp of two steps: the first holds every SLO, the second
// breaks the fan-out latency bound, so the knee is the first step with its connections and rates.
func TestStepsAndKnee(t *testing.T) {
	s, err := Parse("steps.yaml", []byte(`
name: steps
cohorts: [{name: users, count: 200, behaviour: {send_interval: 1s}}]
phases:
  - {name: step-100, kind: ramp, rate: 100, target: 100}
  - {name: hold-100, kind: hold, duration: 2s}
  - {name: step-200, kind: ramp, rate: 100, target: 200}
  - {name: hold-200, kind: hold, duration: 2s}
  - {kind: ramp-down, rate: 0}
slos:
  - {metric: fanout_latency, agg: p99, bound: "< 100ms"}
  - {metric: lost_acked_messages, agg: count, bound: "== 0"}
`))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_700_000_000, 0)
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	iv := func(sec int, conns int64, sent int64, latency time.Duration) reports.Interval {
		h := stats.NewHist()
		for range 50 {
			h.RecordValue(int64(latency))
		}
		return reports.Interval{Second: sec, Start: at(sec - 1), End: at(sec),
			Counters:   map[string]int64{stats.CtrMessagesSent: sent, stats.CtrMessagesReceived: 10 * sent},
			Gauges:     map[string]int64{stats.GaugeConnections: conns},
			Histograms: map[string]reports.Histogram{stats.HistFanout: reports.HistogramFrom(h)}}
	}
	r := &reports.Result{Started: at(0), Ended: at(7), Duration: 7 * time.Second,
		Phases: []reports.Phase{
			{Name: "step-100", Start: at(0), End: at(1)}, {Name: "hold-100", Start: at(1), End: at(3)},
			{Name: "step-200", Start: at(3), End: at(4)}, {Name: "hold-200", Start: at(4), End: at(6)},
			{Name: "ramp-down", Start: at(6), End: at(7)},
		},
		Series: reports.Series{
			iv(1, 100, 100, 5*time.Millisecond), iv(2, 100, 100, 5*time.Millisecond), iv(3, 100, 100, 6*time.Millisecond),
			iv(4, 200, 200, 50*time.Millisecond), iv(5, 200, 200, 300*time.Millisecond), iv(6, 200, 200, 400*time.Millisecond),
			iv(7, 0, 0, time.Millisecond),
		},
	}
	r.Stats = reports.Stats{Counters: map[string]int64{}}

	steps := Steps(s, r)
	if len(steps) != 2 {
		t.Fatalf("%d steps, want 2 (the hold phases)", len(steps))
	}
	first, second := steps[0], steps[1]
	if first.Phase != "hold-100" || !first.Pass() || first.Connections != 100 || first.SentRate != 100 || first.DeliveredRate != 1000 {
		t.Errorf("first step %+v", first)
	}
	if second.Phase != "hold-200" || second.Pass() || second.Verdicts[0].Pass || !second.Verdicts[1].Pass {
		t.Errorf("second step %+v", second)
	}
	if k := Knee(steps); k != 0 {
		t.Errorf("knee %d, want 0", k)
	}
	var b strings.Builder
	sr := StepRampOf(steps)
	if sr.Knee != 0 || !sr.KneeReached || len(sr.Steps) != 2 || !sr.Steps[0].Pass || sr.Steps[1].Pass ||
		sr.Steps[1].Connections != 200 || sr.Steps[1].SLOs[0].Pass || sr.Steps[1].SLOs[0].Name != "fanout_latency p99" {
		t.Errorf("step ramp for result.json %+v", sr)
	}
	if err := WriteSteps(&b, sr); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"hold-100  100", "hold-200  200", "FAIL    fanout_latency p99 400ms",
		"knee: hold-100, 100 connections, 100 messages/s sent, 1000/s delivered"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("steps table lacks %q:\n%s", want, b.String())
		}
	}
	if Knee(nil) != -1 || Knee(steps[1:]) != -1 {
		t.Error("no passing first step must give knee -1")
	}
	if StepRampOf(nil) != nil {
		t.Error("a step ramp without steps")
	}
	if sr := StepRampOf(steps[:1]); sr.Knee != 0 || sr.KneeReached {
		t.Errorf("every step held: %+v", sr)
	}
}
