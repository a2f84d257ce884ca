package reports

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/squall-dev/squall/chaos"
	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/loadgen/telemetry"
)

var update = flag.Bool("update", false, "rewrite golden files")

// goldenRun is a small run with every part of the schema filled, made the way a run makes its
// result: from the producing packages' values through the From functions. testdata/result.v1.json
// is the same run as schema 1's code wrote it.
func goldenRun(t testing.TB) *Result {
	t.Helper()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rec := stats.NewRecorder(start)
	rec.Record(stats.HistConnect, 1500*time.Microsecond)
	rec.Record(stats.HistConnect, 2500*time.Microsecond)
	rec.Record(stats.HistFanout, 3*time.Millisecond)
	rec.RecordValue(stats.CohortKey("tabs", "reconnect_attempts_per_client"), 2)
	rec.Add(stats.CtrConnects, 2)
	rec.Add(stats.CohortKey("tabs", stats.CtrConnects), 2)
	rec.Add(stats.CloseCodeCounter(1000), 1)
	rec.SetGauge(stats.GaugeConnections, 1)
	iv := rec.Tick(start.Add(time.Second))
	rec.Record(stats.HistFanout, 5*time.Millisecond)
	iv2 := rec.Tick(start.Add(2 * time.Second))
	snap := rec.Snapshot()
	snap.At = start.Add(2 * time.Second)
	series, err := SeriesFrom(stats.Series{iv, iv2})
	if err != nil {
		t.Fatal(err)
	}
	sum := WorkerSummaryFrom(loadgen.RunSummary{Start: start, End: start.Add(2 * time.Second), StopReason: "completed",
		Phases: []loadgen.PhaseRecord{
			{Phase: loadgen.Phase{Name: "ramp", Kind: loadgen.PhaseRamp, Rate: 100, Target: 2}, Start: start, End: start.Add(time.Second)},
			{Phase: loadgen.Phase{Name: "hold", Kind: loadgen.PhaseHold, Duration: time.Second}, Start: start.Add(time.Second), End: start.Add(2 * time.Second)},
		},
		Clients: 2, Unreliable: true, Reason: "schedule-lag p99 60ms above 50ms", LagP99: 60 * time.Millisecond,
		Delivery: loadgen.DeliveryReport{Gaps: 3, AckedUndelivered: 1, Ghosts: 2}})
	st := StatsFrom(snap)
	fault := func(ev chaos.Event) *Fault { f := FaultFrom(ev); return &f }
	overhead := OverheadFrom(chaos.Overhead{
		Direct:   chaos.RTTStats{N: 2000, Min: 20 * time.Microsecond, P50: 40 * time.Microsecond, P99: 90 * time.Microsecond, Max: time.Millisecond},
		Proxied:  chaos.RTTStats{N: 2000, Min: 120 * time.Microsecond, P50: 170 * time.Microsecond, P99: 440 * time.Microsecond, Max: 2 * time.Millisecond},
		AddedP50: 130 * time.Microsecond, AddedP99: 350 * time.Microsecond})
	return &Result{
		Schema: SchemaVersion, Tool: "loadgen test", Name: "smoke",
		Plan:   json.RawMessage(`{"name":"smoke","seed":7}`),
		Target: Target{Kind: "embedded", URLs: []string{"ws://127.0.0.1:1/ws"}, MetricURLs: []string{"http://127.0.0.1:1/metrics"}, Nodes: 1},
		Env: Environment{GoVersion: "go1.26", OS: "linux", Arch: "amd64", Cores: 2, GOMAXPROCS: 2, MemoryBytes: 24 << 30,
			FDLimitSoft: 20000, FDLimitHard: 20000, Seed: 7},
		Started: start, Ended: start.Add(2 * time.Second), Duration: 2 * time.Second, StopReason: StopCompleted,
		Phases:   []Phase{{Name: "ramp", Start: start, End: start.Add(time.Second)}, {Name: "hold", Start: start.Add(time.Second), End: start.Add(2 * time.Second)}},
		Scenario: &Scenario{File: "scenarios/smoke.yaml", Name: "smoke", TimeScale: 0.5, Flaws: []string{"no-presence-leave"}, Source: "name: smoke\n"},
		Events: []Event{{At: start, Kind: EventPhase, Message: "ramp"},
			{At: start.Add(time.Second), Kind: EventFault, Message: "add_toxic lag on office-net", Fault: fault(chaos.Event{
				Index: 0, At: time.Second, Offset: 1001 * time.Millisecond, Time: start.Add(time.Second), Took: time.Millisecond,
				Action: chaos.ActionAddToxic, Target: "office-net", Params: map[string]string{"toxic": "lag", "type": "latency", "latency": "100"}})},
			{At: start.Add(1500 * time.Millisecond), Kind: EventFault, Message: "kill node-0: failed: no such node", Fault: fault(chaos.Event{
				Index: 1, At: 1500 * time.Millisecond, Offset: 1500 * time.Millisecond, Time: start.Add(1500 * time.Millisecond),
				Action: chaos.ActionKill, Target: "node-0", Error: "no such node"})},
			{At: start.Add(1800 * time.Millisecond), Kind: "worker_lost", Message: "worker 1 lost", Worker: 1}},
		Stats:  st,
		Series: series,
		Telemetry: TelemetryFrom(telemetry.Telemetry{Status: telemetry.StatusOK, Targets: []string{"http://127.0.0.1:1/metrics"}, Scrapes: 2, Errors: 1,
			Points:  []telemetry.Point{{Second: 1, At: start.Add(time.Second), Values: map[string]float64{"ws_connections_active": 2, "process_resident_memory_bytes": 2e6}, MemoryPerConn: 1e6, Nodes: 1}},
			Summary: telemetry.Summary{PeakConnections: 2, PeakRSSBytes: 2e6, MemoryPerConnAtPeak: 1e6, PeakGoroutines: 10, Shed: 1, MemoryGrowthBytesPerS: 12.5}}),
		ProxyOverhead: &overhead,
		Workers: []Worker{{Index: 0, Addr: "127.0.0.1:2", PID: 42, Clients: 2, Status: WorkerOK, Stats: &st, Summary: &sum},
			{Index: 1, Addr: "127.0.0.1:3", PID: 43, Clients: 0, Status: WorkerLost, Error: "exit status 7"}},
		Reliable: false, UnreliableReason: "1 of 2 workers lost or failed",
		SLOs: []SLOVerdict{{Name: "fanout_latency p99", Metric: "fanout_latency", Bound: "p99 < 100ms", Agg: "p99", Op: "<", Threshold: 0.1, Unit: "seconds", Value: 0.005, Pass: true, Detail: "PASS; observed 5ms; cohort all"},
			{Name: "recovery_time max", Metric: "recovery_time", Bound: "max < 5s", Agg: "max", Op: "<", Threshold: 5, Unit: "seconds", Pass: false, Unbounded: true, Detail: "FAIL; observed never; cohort all"}},
	}
}

func marshal(t *testing.T, r *Result) []byte {
	t.Helper()
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) []byte {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s changed (-update rewrites it after review):\n%s", path, got)
	}
	return want
}

// TestResultSchemaGolden pins the JSON shape of the current schema: a change to it shows up here
// and needs either a compatible addition (-update) or a new SchemaVersion (and ParseJSON reading
// the previous one).
func TestResultSchemaGolden(t *testing.T) {
	r := goldenRun(t)
	want := golden(t, "result.golden.json", marshal(t, r))
	// The golden file reads back into the same result, and writes back into the same file.
	back, err := ParseJSON(want)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Stats.Equal(r.Stats) || len(back.Series) != 2 || back.Workers[0].PID != 42 || back.Workers[0].Summary.LagP99 != 60*time.Millisecond {
		t.Errorf("golden file does not read back: %+v", back)
	}
	if got := marshal(t, back); string(got) != string(want) {
		t.Errorf("golden file does not write back the same:\n%s", got)
	}
}

// TestReadSchema1 reads a result schema 1's code wrote: it converts into exactly what the From
// functions make of the same run today.
func TestReadSchema1(t *testing.T) {
	r, err := ReadJSON(filepath.Join("testdata", "result.v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := goldenRun(t)
	for i := range want.SLOs { // schema 1 kept the bound as text only: its value and unit are not read back
		want.SLOs[i].Threshold, want.SLOs[i].Unit = 0, ""
	}
	if got, w := canonicalHDR(t, marshal(t, r)), canonicalHDR(t, marshal(t, want)); string(got) != string(w) {
		t.Errorf("schema 1 converts into\n%s\nwant\n%s", got, w)
	}
	// A few values by hand, so that the comparison above cannot pass by both sides losing them.
	if r.Schema != SchemaVersion || r.Stats.Counter(stats.CtrConnects) != 2 || r.Stats.Percentile(stats.HistConnect, 99) < 2*time.Millisecond {
		t.Errorf("stats: schema %d, %d connects, connect p99 %v", r.Schema, r.Stats.Counter(stats.CtrConnects), r.Stats.Percentile(stats.HistConnect, 99))
	}
	if f := r.Events[1].Fault; f == nil || f.Offset != 1001*time.Millisecond || f.Took != time.Millisecond || f.Action != "add_toxic" {
		t.Errorf("fault %+v", f)
	}
	s := r.Workers[0].Summary
	if s == nil || s.StopReason != "completed" || len(s.Phases) != 2 || s.Phases[0].RatePerSecond != 100 || s.Phases[1].Duration != time.Second ||
		!s.Phases[1].End.Equal(r.Ended) || s.Delivery.Ghosts != 2 || s.LagP99 != 60*time.Millisecond {
		t.Errorf("worker summary %+v", s)
	}
	if h := r.Series[1].Histograms[stats.HistFanout]; h.Count != 1 || h.P999 == 0 || h.Min == 0 {
		t.Errorf("interval histogram %+v: the summary schema 1 lacked (min, mean, p999) is not derived", h)
	}
	if o := r.ProxyOverhead; o == nil || o.Proxied.N != 2000 || o.AddedP99 != 350*time.Microsecond {
		t.Errorf("proxy overhead %+v", o)
	}
}

// hdrField is a histogram's encoding in a result's JSON.
var hdrField = regexp.MustCompile(`"hdr": "([^"]*)"`)

// canonicalHDR re-encodes every histogram of a JSON document, so that two documents holding the
// same histograms compare equal whichever encoder wrote them (a deflate stream is not unique: the
// schema 1 file's were written by hdrhistogram's own encoder).
func canonicalHDR(t *testing.T, doc []byte) []byte {
	t.Helper()
	return hdrField.ReplaceAllFunc(doc, func(m []byte) []byte {
		h, err := stats.DecodeHist(string(hdrField.FindSubmatch(m)[1]))
		if err != nil {
			t.Fatalf("histogram in the document: %v", err)
		}
		enc, err := h.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return []byte(`"hdr": "` + enc + `"`)
	})
}
