package reports

import (
	"fmt"
	"strings"
	"time"
)

// Comparison kinds: what a row of a Comparison compares.
const (
	ComparisonSLO      = "slo"      // an SLO graded in both runs (its value, and its verdict)
	ComparisonHeadline = "headline" // a headline figure every run has (latency percentiles, rates, memory)
)

// Directions: which way a metric gets worse.
const (
	HigherIsWorse = "higher_is_worse" // latencies, error and disconnect rates, memory
	LowerIsWorse  = "lower_is_worse"  // delivered messages, connections held
)

// Comparison is a result set against a baseline result of the same plan (Compare): for every SLO
// and every headline figure, the baseline value, the new value, the change and whether the change
// is a regression beyond its tolerance. It is what `loadgen gate` turns into an exit code and what
// the reports render beside the SLO table.
//
// A Comparison is a plain value: build it once, then share it read-only.
type Comparison struct {
	// Baseline and New identify the two runs compared.
	Baseline RunRef `json:"baseline"`
	New      RunRef `json:"new"`
	// Metrics are the rows, SLOs first (in the new run's order), then the headline figures (in
	// Headlines' order).
	Metrics []MetricComparison `json:"metrics"`
	// Notes are what a reader should know before trusting the comparison: an unreliable run (its
	// generator was saturated or lost workers), different loadgen or gateway builds, different
	// flaws. They do not change the verdict.
	Notes []string `json:"notes,omitempty"`
}

// RunRef identifies one run of a comparison.
type RunRef struct {
	// File is the result file the run was read from ("" when compared in memory).
	File     string    `json:"file,omitempty"`
	Name     string    `json:"name"`
	Started  time.Time `json:"started"`
	Tool     string    `json:"tool,omitempty"` // "loadgen VERSION"
	Reliable bool      `json:"reliable"`
}

// MetricComparison is one row of a Comparison: one SLO or one headline figure in both runs.
type MetricComparison struct {
	// Name identifies the row: the SLO's name for an SLO ("fanout_p99"); for a headline figure its
	// metric and aggregation ("fanout_latency p99"). Tolerances in a gate file are keyed by it.
	Name string `json:"name"`
	// Kind is ComparisonSLO or ComparisonHeadline.
	Kind string `json:"kind"`
	// Metric and Agg say what is measured: a metric of the catalogue (scenarios.Metrics, or the
	// headline metrics of Headlines) and its aggregation ("p99", "count", "max", ...).
	Metric string `json:"metric"`
	Agg    string `json:"agg"`
	// Unit is the base unit of Baseline, New, Change and Tolerance.Absolute ("seconds", "bytes",
	// "count", "per_second", "ratio", ...).
	Unit string `json:"unit"`
	// Direction is HigherIsWorse or LowerIsWorse.
	Direction string `json:"direction"`
	// Baseline and New are the values in the two runs, in Unit; meaningless where the matching
	// Missing flag is set.
	Baseline float64 `json:"baseline"`
	New      float64 `json:"new"`
	// BaselineMissing and NewMissing are set when that run had no value (the SLO was not graded
	// there, or it had no data): such a row is shown and never a regression.
	BaselineMissing bool `json:"baseline_missing,omitempty"`
	NewMissing      bool `json:"new_missing,omitempty"`
	// Change is New - Baseline, in Unit. RelativeChange is Change / |Baseline| (0.25 = 25 % more);
	// it is 0 when Baseline is 0 (RelativeChange then says nothing; Change does).
	Change         float64 `json:"change"`
	RelativeChange float64 `json:"relative_change"`
	// Tolerance is how much worse New may be than Baseline before it is a regression.
	Tolerance Tolerance `json:"tolerance"`
	// Regression is set when New is worse than Baseline by more than Tolerance allows, or, for an
	// SLO, when it passed in the baseline and fails now.
	Regression bool `json:"regression"`
	// BaselinePass and NewPass are an SLO's verdicts in the two runs (headline rows: both true).
	BaselinePass bool `json:"baseline_pass"`
	NewPass      bool `json:"new_pass"`
	// Detail is one sentence for people: how it changed and why that is (not) a regression.
	Detail string `json:"detail,omitempty"`
}

// Tolerance is how much worse a figure may get against its baseline before the change counts as a
// regression. A change is a regression when it is worse by more than BOTH Relative × |baseline|
// and Absolute: the relative part follows the figure's size, the absolute part keeps noise on tiny
// values (a p99 of 0.3 ms against 0.2 ms) from failing a build. The zero Tolerance makes every
// worsening a regression.
type Tolerance struct {
	// Relative is a fraction of the baseline value: 0.2 allows 20 % worse.
	Relative float64 `json:"relative" yaml:"relative"`
	// Absolute is in the metric's base unit (seconds, bytes, count, ratio).
	Absolute float64 `json:"absolute" yaml:"absolute"`
	// Ignore leaves the figure out of the verdict: it is still shown.
	Ignore bool `json:"ignore,omitempty" yaml:"ignore"`
}

// Regressions returns the rows that regressed.
func (c *Comparison) Regressions() []MetricComparison {
	var out []MetricComparison
	for _, m := range c.Metrics {
		if m.Regression {
			out = append(out, m)
		}
	}
	return out
}

// Regressed reports whether any row regressed.
func (c *Comparison) Regressed() bool { return len(c.Regressions()) > 0 }

// PlanMismatchError is Compare's refusal to compare two runs whose plans differ: a verdict on
// runs of another scenario, another number of clients, another time scale or another kind of
// target would mean nothing. Differences lists every way they differ.
type PlanMismatchError struct {
	Baseline, New string // the runs' files or names
	Differences   []PlanDifference
}

// PlanDifference is one way two plans differ.
type PlanDifference struct {
	// Field is what differs: "scenario", "clients", "time_scale" or "target_kind".
	Field    string `json:"field"`
	Baseline string `json:"baseline"`
	New      string `json:"new"`
}

func (e *PlanMismatchError) Error() string {
	parts := make([]string, len(e.Differences))
	for i, d := range e.Differences {
		parts[i] = fmt.Sprintf("%s %s in the baseline, %s in the new run", d.Field, d.Baseline, d.New)
	}
	return fmt.Sprintf("reports: will not compare %s with baseline %s: their plans differ (%s); make the baseline with the same scenario, clients, time scale and target kind",
		e.New, e.Baseline, strings.Join(parts, "; "))
}
