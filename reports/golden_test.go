package reports

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/squall-dev/squall/chaos"
	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/loadgen/telemetry"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestResultSchemaGolden pins the JSON shape of schema 1: a change to it shows up here and needs
// either a compatible addition (-update) or a new SchemaVersion.
func TestResultSchemaGolden(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rec := stats.NewRecorder(start)
	rec.Record(stats.HistConnect, 1500*time.Microsecond)
	rec.Record(stats.HistFanout, 3*time.Millisecond)
	rec.Add(stats.CtrConnects, 1)
	rec.Add(stats.CloseCodeCounter(1000), 1)
	rec.SetGauge(stats.GaugeConnections, 1)
	iv := rec.Tick(start.Add(time.Second))
	snap := rec.Snapshot()
	snap.At = start.Add(time.Second)
	r := &Result{
		Schema: SchemaVersion, Tool: "loadgen test", Name: "smoke",
		Plan:   json.RawMessage(`{"name":"smoke","seed":7}`),
		Target: Target{Kind: "embedded", URLs: []string{"ws://127.0.0.1:1/ws"}, MetricURLs: []string{"http://127.0.0.1:1/metrics"}, Nodes: 1},
		Env: Environment{GoVersion: "go1.26", OS: "linux", Arch: "amd64", Cores: 2, GOMAXPROCS: 2, MemoryBytes: 24 << 30,
			FDLimitSoft: 20000, FDLimitHard: 20000, Seed: 7},
		Started: start, Ended: start.Add(2 * time.Second), Duration: 2 * time.Second, StopReason: StopCompleted,
		Phases:   []Phase{{Name: "ramp", Start: start, End: start.Add(time.Second)}, {Name: "hold", Start: start.Add(time.Second), End: start.Add(2 * time.Second)}},
		Scenario: &Scenario{File: "scenarios/smoke.yaml", Name: "smoke", TimeScale: 0.5, Flaws: []string{"no-presence-leave"}, Source: "name: smoke\n"},
		Events: []Event{{At: start, Kind: EventPhase, Message: "ramp"},
			{At: start.Add(time.Second), Kind: EventFault, Message: "add_toxic lag on office-net", Fault: &chaos.Event{
				Index: 0, At: time.Second, Offset: time.Second, Time: start.Add(time.Second), Took: time.Millisecond,
				Action: chaos.ActionAddToxic, Target: "office-net", Params: map[string]string{"toxic": "lag", "type": "latency", "latency": "100"}}}},
		Stats:     snap,
		Series:    stats.Series{iv},
		Telemetry: telemetry.Telemetry{Status: telemetry.StatusOK, Targets: []string{"http://127.0.0.1:1/metrics"}, Scrapes: 1, Points: []telemetry.Point{{Second: 1, At: start.Add(time.Second), Values: map[string]float64{"ws_connections_active": 1}, Nodes: 1}}},
		Workers:   []Worker{{Index: 0, Addr: "127.0.0.1:2", PID: 42, Clients: 1, Status: WorkerOK, Stats: &snap, Summary: json.RawMessage(`{"StopReason":"completed"}`)}},
		Reliable:  true,
	}
	got, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "result.golden.json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("result.json shape changed (-update rewrites %s after review):\n%s", path, got)
	}
	// And the golden file reads back into the same result.
	var back Result
	if err := json.Unmarshal(want, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Stats.Equal(r.Stats) || len(back.Series) != 1 || back.Workers[0].PID != 42 {
		t.Errorf("golden file does not read back")
	}
}
