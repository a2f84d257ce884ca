package reports

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/squall-dev/squall/loadgen/stats"
)

func sampleResult(t *testing.T) *Result {
	t.Helper()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rec := stats.NewRecorder(start)
	for i := range 1000 {
		rec.Record(stats.HistFanout, time.Duration(i)*time.Microsecond)
		rec.Record(stats.HistScheduleLag, time.Duration(i%10)*time.Millisecond)
		rec.Add(stats.CtrMessagesReceived, 1)
	}
	iv := rec.Tick(start.Add(time.Second))
	r := New("smoke", 42)
	if err := r.SetPlan(map[string]any{"name": "smoke", "seed": 42}); err != nil {
		t.Fatal(err)
	}
	snap := StatsFrom(rec.Snapshot())
	r.Stats = snap
	series, err := SeriesFrom(stats.Series{iv})
	if err != nil {
		t.Fatal(err)
	}
	r.Series = series
	r.Started, r.Ended = start, start.Add(2*time.Second)
	r.Duration = 2 * time.Second
	r.StopReason = StopCompleted
	r.Workers = []Worker{{Index: 0, Clients: 10, Status: WorkerOK, Stats: &snap}}
	return r
}

func TestWriteReadRoundTrip(t *testing.T) {
	r := sampleResult(t)
	path := filepath.Join(t.TempDir(), FileName)
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	got, err := ReadJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Stats.Equal(r.Stats) || !got.Workers[0].Stats.Equal(r.Stats) {
		t.Errorf("stats changed in the round trip")
	}
	if got.Schema != SchemaVersion || got.Env.Seed != 42 || got.Env.Cores == 0 || !sameJSON(got.Plan, r.Plan) {
		t.Errorf("fields lost: schema %d seed %d cores %d plan %s", got.Schema, got.Env.Seed, got.Env.Cores, got.Plan)
	}
	if len(got.Series) != 1 || got.Series[0].Histograms[stats.HistFanout].Count != 1000 {
		t.Errorf("series lost")
	}
	// No temporary files are left next to the result.
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only %s", len(ents), FileName)
	}
}

func TestWriteReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A write that fails (unencodable plan) leaves the old file as it was.
	r := sampleResult(t)
	r.Plan = json.RawMessage("{not json")
	if err := r.WriteJSON(path); err == nil {
		t.Fatal("writing an invalid plan succeeded")
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Errorf("failed write changed the file: %q", b)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("%d entries after a failed write", len(ents))
	}
}

func TestJudge(t *testing.T) {
	tests := []struct {
		name     string
		bound    time.Duration
		lost     bool
		reliable bool
		why      string
	}{
		{"within bound", 50 * time.Millisecond, false, true, ""},
		{"lag above bound", time.Millisecond, false, false, "schedule-lag p99"},
		{"lost worker", 50 * time.Millisecond, true, false, "1 of 2 workers"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := sampleResult(t)
			if tc.lost {
				r.Workers = append(r.Workers, Worker{Index: 1, Status: WorkerLost})
			}
			r.Judge(tc.bound)
			if r.Reliable != tc.reliable || !strings.Contains(r.UnreliableReason, tc.why) {
				t.Errorf("reliable %v reason %q; want %v containing %q", r.Reliable, r.UnreliableReason, tc.reliable, tc.why)
			}
		})
	}
}

func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}
