package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/reports"
)

// fanoutResult writes a completed run of the fan-out scenario with 100 clients whose broadcast
// latencies spread evenly up to fanoutMax, graded by a fan-out p99 SLO of 100 ms, and returns its
// path.
func fanoutResult(t *testing.T, dir, name string, fanoutMax time.Duration, clients int) string {
	t.Helper()
	start := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	rec := stats.NewRecorder(start)
	for i := range 2000 {
		rec.Record(stats.HistFanout, fanoutMax*time.Duration(i+1)/2000)
		rec.Record(stats.HistUpgrade, 800*time.Microsecond)
	}
	rec.Add(stats.CtrConnectAttempts, int64(clients))
	rec.Add(stats.CtrConnects, int64(clients))
	rec.Add(stats.CtrMessagesSent, 200)
	rec.Add(stats.CtrMessagesReceived, 2000)
	r := reports.New("fanout", 7)
	if err := r.SetPlan(loadgen.Plan{Name: "fanout", Seed: 7, Cohorts: []loadgen.Cohort{{Name: "tabs", Count: clients}}}); err != nil {
		t.Fatal(err)
	}
	r.Scenario = &reports.Scenario{File: "scenarios/fanout.yaml", Name: "fanout", TimeScale: 0.5}
	r.Target = reports.Target{Kind: "embedded", Nodes: 1}
	r.Stats = reports.StatsFrom(rec.Snapshot())
	r.Started, r.Ended, r.Duration, r.StopReason = start, start.Add(5*time.Second), 5*time.Second, reports.StopCompleted
	r.Workers = []reports.Worker{{Clients: clients, Status: reports.WorkerOK}}
	p99 := r.Stats.Percentile(stats.HistFanout, 99).Seconds()
	r.SLOs = []reports.SLOVerdict{{Name: "fanout_p99", Metric: "fanout_latency", Bound: "p99 <= 100ms", Agg: "p99", Op: "<=",
		Threshold: 0.1, Unit: "seconds", Value: p99, Pass: p99 <= 0.1}}
	path := filepath.Join(dir, name)
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestGate shows the gate's exit codes: 0 when fan-out p99 holds against the baseline, 99 when it
// regresses beyond its tolerance, 2 when the plans differ or an input is bad.
func TestGate(t *testing.T) {
	dir := t.TempDir()
	base := fanoutResult(t, dir, "base.json", 10*time.Millisecond, 100)
	same := fanoutResult(t, dir, "same.json", 11*time.Millisecond, 100)
	slower := fanoutResult(t, dir, "slower.json", 30*time.Millisecond, 100)
	broken := fanoutResult(t, dir, "broken.json", 300*time.Millisecond, 100)
	bigger := fanoutResult(t, dir, "bigger.json", 10*time.Millisecond, 200)
	loose := filepath.Join(dir, "loose.yaml")
	if err := os.WriteFile(loose, []byte("classes:\n  latency: {relative: 300%}\nmetrics:\n  fanout_p99: {relative: 300%}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ignoreSLOs := filepath.Join(dir, "ignore-slos.yaml")
	if err := os.WriteFile(ignoreSLOs, []byte("slos: ignore\nclasses:\n  latency: {ignore: true}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badGate := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badGate, []byte("metrics:\n  fanout_p999: {relative: 10%}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string // lines of output that must appear
	}{
		{"within tolerance", []string{same, "--baseline", base}, exitOK,
			[]string{"gate passed: no regression beyond tolerance in 12 figures"}},
		{"fan-out p99 regressed", []string{slower, "--baseline", base}, exitSLO,
			[]string{"REGRESSION: worse by 19.8ms (+200%), beyond the tolerance of 25% and 2ms", "GATE FAILED: fanout_p99, fanout_latency p50, fanout_latency p99"}},
		{"tolerance from the gate file", []string{slower, "--baseline", base, "--config", loose}, exitOK,
			[]string{"gate passed"}},
		{"SLO broken", []string{broken, "--baseline", base, "--config", loose}, exitSLO,
			[]string{"passed in the baseline, fails now (p99 <= 100ms)", "GATE FAILED: fanout_p99"}},
		{"SLO failing in both runs", []string{broken, "--baseline", broken}, exitSLO,
			[]string{"SLO FAILS (as in the baseline)", "GATE FAILED: SLO fanout_p99 fails"}},
		{"slos: ignore", []string{broken, "--baseline", broken, "--config", ignoreSLOs}, exitOK, []string{"gate passed"}},
		{"plans differ", []string{bigger, "--baseline", base}, exitUsage,
			[]string{"their plans differ (clients 100 in the baseline, 200 in the new run)"}},
		{"no baseline", []string{same}, exitUsage, []string{"gate needs --baseline OLD.json"}},
		{"baseline missing", []string{same, "--baseline", filepath.Join(dir, "nope.json")}, exitUsage, []string{"--baseline: reports:", "no such file"}},
		{"bad gate file", []string{same, "--baseline", base, "--config", badGate}, exitUsage,
			[]string{"bad.yaml:2:3: metrics.fanout_p999: \"fanout_p999\" is neither an SLO of fanout, nor a headline figure"}},
		{"two results", []string{same, slower, "--baseline", base}, exitUsage, []string{"gate takes one result file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(context.Background(), append([]string{"gate"}, tc.args...)...)
			out := stdout + stderr
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s", code, tc.code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
