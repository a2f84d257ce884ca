package reports

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/squall-dev/squall/loadgen"
)

// WorkerSummary is how one worker's part of the run went, as the worker reported it; its
// measurements are in Worker.Stats.
type WorkerSummary struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// StopReason is "completed", "cancelled: ..." or the failure.
	StopReason string `json:"stop_reason"`
	// Phases are the worker's phases as they ran, with what the plan asked of this worker.
	Phases []Phase `json:"phases,omitempty"`
	// Clients is how many clients the worker started.
	Clients int `json:"clients"`
	// Unreliable is set when the worker's schedule-lag p99 was above the plan's bound; Reason says so.
	Unreliable bool   `json:"unreliable"`
	Reason     string `json:"reason,omitempty"`
	// LagP99 is the worker's schedule-lag p99.
	LagP99 time.Duration `json:"lag_p99_ns"`
	// Delivery is what the worker's end-of-hold delivery check found.
	Delivery Delivery `json:"delivery"`
}

// Delivery is what an end-of-hold delivery check found (the same figures are among the counters).
type Delivery struct {
	// Gaps are roomSeqs members never received.
	Gaps int64 `json:"gaps"`
	// AckedUndelivered are, of those, broadcasts the server had acknowledged to their sender.
	AckedUndelivered int64 `json:"acked_undelivered"`
	// Ghosts are exits whose presence leave some observer had not seen when ramp-down began.
	Ghosts int64 `json:"ghosts"`
}

// WorkerSummaryFrom converts the load generator's run summary.
func WorkerSummaryFrom(s loadgen.RunSummary) WorkerSummary {
	out := WorkerSummary{Start: s.Start, End: s.End, StopReason: s.StopReason, Clients: s.Clients,
		Unreliable: s.Unreliable, Reason: s.Reason, LagP99: s.LagP99,
		Delivery: Delivery{Gaps: s.Delivery.Gaps, AckedUndelivered: s.Delivery.AckedUndelivered, Ghosts: s.Delivery.Ghosts}}
	for _, ph := range s.Phases {
		out.Phases = append(out.Phases, Phase{Name: ph.Name, Kind: string(ph.Kind), RatePerSecond: ph.Rate,
			TargetClients: ph.Target, Duration: ph.Duration, Start: ph.Start, End: ph.End})
	}
	return out
}

// DecodeWorkerSummary converts a run summary as a worker sends it to the controller (the JSON of a
// loadgen.RunSummary); nil when the worker sent none.
func DecodeWorkerSummary(raw json.RawMessage) (*WorkerSummary, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s loadgen.RunSummary
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("reports: worker summary: %w", err)
	}
	out := WorkerSummaryFrom(s)
	return &out, nil
}
