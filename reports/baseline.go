package reports

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/squall-dev/squall/loadgen"
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
	// NotJudged is set on a timing (a duration or a per-second rate) that got worse beyond its
	// tolerance while a run's generator was saturated: its change measures the generator, so it is
	// shown and not counted as a regression (Detail says so).
	NotJudged bool `json:"not_judged,omitempty"`
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

// ComparisonName is the SLO's name in a comparison and in a gate file: its name, followed by its
// cohort in brackets when it grades one cohort ("close_codes{1006} count [viewers]"), so that the
// same SLO on two cohorts makes two rows.
func (v SLOVerdict) ComparisonName() string {
	if c := v.CohortName(); c != "all" {
		return v.Name + " [" + c + "]"
	}
	return v.Name
}

// Tolerance classes: figures that share a default tolerance (see DefaultTolerances).
const (
	ClassLatency    = "latency"    // durations: latency percentiles, connect and reconnect times
	ClassRate       = "rate"       // ratios: error and disconnect rates
	ClassMemory     = "memory"     // bytes and bytes per second: memory per connection, its growth
	ClassCount      = "count"      // counts of events: violations, false disconnects, attempts
	ClassThroughput = "throughput" // per-second rates of events and delivered messages
)

// DefaultTolerances are the tolerances of each class when a gate file says nothing else. They are
// meant for runs of the same plan on the same kind of machine: latencies may get 25 % and 2 ms
// worse, error and disconnect rates 50 % and one percentage point, memory per connection 20 % and
// 2 KiB, counts 50 % and one event, throughput 10 %.
var DefaultTolerances = map[string]Tolerance{
	ClassLatency:    {Relative: 0.25, Absolute: 0.002},
	ClassRate:       {Relative: 0.5, Absolute: 0.01},
	ClassMemory:     {Relative: 0.2, Absolute: 2048},
	ClassCount:      {Relative: 0.5, Absolute: 1},
	ClassThroughput: {Relative: 0.1},
}

// ToleranceClass returns the class of a figure in unit (an SLO's or a headline figure's unit).
func ToleranceClass(unit string) string {
	switch unit {
	case "seconds":
		return ClassLatency
	case "ratio":
		return ClassRate
	case "bytes", "bytes_per_sec":
		return ClassMemory
	case "per_second", "messages":
		return ClassThroughput
	}
	return ClassCount
}

// Tolerances says how much worse each figure may get. For a row it takes, in this order, the
// tolerance given for its name (ByName: an SLO's name or a headline figure's name such as
// "fanout_latency p99"), the one given for its class (ByClass), and DefaultTolerances. The zero
// Tolerances uses the defaults everywhere.
type Tolerances struct {
	ByName  map[string]Tolerance
	ByClass map[string]Tolerance
}

// For returns the tolerance of a row.
func (t Tolerances) For(name, unit string) Tolerance {
	if tol, ok := t.ByName[name]; ok {
		return tol
	}
	class := ToleranceClass(unit)
	if tol, ok := t.ByClass[class]; ok {
		return tol
	}
	return DefaultTolerances[class]
}

// HeadlineMetric is one headline figure compared between runs: every run has it (when it measured
// anything of the kind), whatever its scenario grades.
type HeadlineMetric struct {
	Name      string // the row's name, and its key in a gate file
	Metric    string // the metric: a catalogue name where there is one
	Agg       string
	Unit      string
	Direction string
	Meaning   string
	// Value reads the figure; ok is false when the run measured nothing of the kind.
	Value func(Headline) (v float64, ok bool)
}

// Headlines are the headline figures of a comparison, in the order rows are shown.
var Headlines = []HeadlineMetric{
	latencyRow("connect_time", "p50", "dial to upgraded connection", func(h Headline) (Latency, time.Duration) { return h.ConnectTime, h.ConnectTime.P50 }),
	latencyRow("connect_time", "p99", "dial to upgraded connection", func(h Headline) (Latency, time.Duration) { return h.ConnectTime, h.ConnectTime.P99 }),
	latencyRow("fanout_latency", "p50", "intended send to each receipt of a broadcast", func(h Headline) (Latency, time.Duration) { return h.Fanout, h.Fanout.P50 }),
	latencyRow("fanout_latency", "p99", "intended send to each receipt of a broadcast", func(h Headline) (Latency, time.Duration) { return h.Fanout, h.Fanout.P99 }),
	latencyRow("ping_rtt", "p99", "WebSocket ping round trip", func(h Headline) (Latency, time.Duration) { return h.PingRTT, h.PingRTT.P99 }),
	latencyRow("reconnect_time", "p99", "a drop to the next welcome", func(h Headline) (Latency, time.Duration) { return h.Reconnect, h.Reconnect.P99 }),
	{Name: "error_rate", Metric: "error_rate", Agg: "ratio", Unit: "ratio", Direction: HigherIsWorse,
		Meaning: "errors (failed connects, abnormal closes, refusals, false disconnects) per connection attempt",
		Value:   func(h Headline) (float64, bool) { return h.ErrorRate, h.ConnectAttempts > 0 }},
	{Name: "disconnect_rate", Metric: "disconnect_rate", Agg: "ratio", Unit: "ratio", Direction: HigherIsWorse,
		Meaning: "connections that ended without a clean close, per connection",
		Value:   func(h Headline) (float64, bool) { return h.DisconnectRate, h.Connects > 0 }},
	{Name: "false_disconnects", Metric: "false_disconnects", Agg: "count", Unit: "count", Direction: HigherIsWorse,
		Meaning: "live, well-behaved clients cut for a heartbeat reason",
		Value:   func(h Headline) (float64, bool) { return float64(h.FalseDisconnects), h.Connects > 0 }},
	{Name: "memory_per_connection", Metric: "server_memory_per_connection", Agg: "at_peak", Unit: "bytes", Direction: HigherIsWorse,
		Meaning: "gateway resident memory per open connection at the peak of connections",
		Value:   func(h Headline) (float64, bool) { return h.MemoryPerConnection, h.MemoryPerConnection > 0 }},
	{Name: "messages_received", Metric: "messages_received", Agg: "count", Unit: "messages", Direction: LowerIsWorse,
		Meaning: "broadcast receipts (fan-out deliveries) over the run",
		Value:   func(h Headline) (float64, bool) { return float64(h.MessagesReceived), h.MessagesSent > 0 }},
}

func latencyRow(metric, agg, meaning string, get func(Headline) (Latency, time.Duration)) HeadlineMetric {
	return HeadlineMetric{Name: metric + " " + agg, Metric: metric, Agg: agg, Unit: "seconds", Direction: HigherIsWorse, Meaning: meaning,
		Value: func(h Headline) (float64, bool) {
			l, v := get(h)
			return v.Seconds(), l.Count > 0
		}}
}

// LookupHeadline returns the headline figure called name.
func LookupHeadline(name string) (HeadlineMetric, bool) {
	for _, m := range Headlines {
		if m.Name == name {
			return m, true
		}
	}
	return HeadlineMetric{}, false
}

// PlanIdentity is what two runs must share to be compared: the scenario (or the built-in plan's
// name), the number of clients, the time scale and the kind of target.
type PlanIdentity struct {
	Scenario   string
	Clients    int
	TimeScale  float64
	TargetKind string
}

// IdentityOf reads r's plan identity.
func IdentityOf(r *Result) PlanIdentity {
	id := PlanIdentity{Scenario: "built-in plan " + strconv.Quote(r.Name), TimeScale: 1, TargetKind: r.Target.Kind}
	if r.Scenario != nil {
		id.Scenario = r.Scenario.Name
		if r.Scenario.TimeScale > 0 {
			id.TimeScale = r.Scenario.TimeScale
		}
	}
	var p loadgen.Plan
	if len(r.Plan) > 0 && json.Unmarshal(r.Plan, &p) == nil && len(p.Cohorts) > 0 {
		id.Clients = p.Clients()
	} else {
		id.Clients = r.Clients()
	}
	return id
}

// differences lists how b differs from a.
func (a PlanIdentity) differences(b PlanIdentity) []PlanDifference {
	var out []PlanDifference
	if a.Scenario != b.Scenario {
		out = append(out, PlanDifference{"scenario", a.Scenario, b.Scenario})
	}
	if a.Clients != b.Clients {
		out = append(out, PlanDifference{"clients", strconv.Itoa(a.Clients), strconv.Itoa(b.Clients)})
	}
	if a.TimeScale != b.TimeScale {
		out = append(out, PlanDifference{"time_scale", strconv.FormatFloat(a.TimeScale, 'g', -1, 64), strconv.FormatFloat(b.TimeScale, 'g', -1, 64)})
	}
	if a.TargetKind != b.TargetKind {
		out = append(out, PlanDifference{"target_kind", a.TargetKind, b.TargetKind})
	}
	return out
}

// Compare sets the new result against the baseline: one row per SLO of the new run (matched with
// the baseline's SLO of the same name) and one per headline figure (Headlines), each with both
// values, the change, its tolerance (from tol) and whether it regressed. It refuses, with a
// *PlanMismatchError, two runs whose plans differ in scenario, clients, time scale or target kind.
// baseFile and newFile name the runs in messages ("" to use their names).
//
// A row regresses when its new value is worse (in its direction) than the baseline by more than
// both tolerance parts, and an SLO row also when the SLO passed in the baseline and fails now. A
// row either run has no value for is shown and never regresses; an ignored row never regresses.
// When either run was unreliable (its generator saturated), changes of timings — durations and
// per-second rates — are shown but not judged: they measure the generator (the SLO's own verdict
// still is).
func Compare(baseline, current *Result, tol Tolerances, baseFile, newFile string) (*Comparison, error) {
	ref := func(r *Result, file string) RunRef {
		return RunRef{File: file, Name: r.Name, Started: r.Started, Tool: r.Tool, Reliable: r.Reliable}
	}
	c := &Comparison{Baseline: ref(baseline, baseFile), New: ref(current, newFile)}
	if diffs := IdentityOf(baseline).differences(IdentityOf(current)); len(diffs) > 0 {
		return nil, &PlanMismatchError{Baseline: cmp.Or(baseFile, baseline.Name), New: cmp.Or(newFile, current.Name), Differences: diffs}
	}

	// A saturated generator's timings measure the generator (its schedule lag shows in every
	// latency and per-second rate): they are shown but not judged when either run was unreliable.
	timings := ""
	switch {
	case !baseline.Reliable && !current.Reliable:
		timings = "both runs'"
	case !baseline.Reliable:
		timings = "the baseline's"
	case !current.Reliable:
		timings = "the new run's"
	}
	notJudged := func(row *MetricComparison) {
		if timings == "" || (row.Unit != "seconds" && row.Unit != "per_second") || !row.Regression {
			return
		}
		row.Regression, row.NotJudged = false, true
		row.Detail = fmt.Sprintf("not judged (%s generator was saturated, so its timings measure the generator): %s", timings, row.Detail)
	}
	old := map[string]SLOVerdict{}
	for _, v := range baseline.SLOs {
		old[v.ComparisonName()] = v
	}
	for _, v := range current.SLOs {
		row := MetricComparison{Name: v.ComparisonName(), Kind: ComparisonSLO, Metric: v.Metric, Agg: v.Agg, Unit: v.Unit,
			Direction: directionOf(v.Op), New: v.Value, NewPass: v.Pass, NewMissing: v.NoData || v.Unbounded}
		if v.Unbounded {
			row.New = math.Inf(1)
		}
		b, inBaseline := old[row.Name]
		if inBaseline {
			row.Baseline, row.BaselinePass, row.BaselineMissing = b.Value, b.Pass, b.NoData || b.Unbounded
			if b.Unbounded {
				row.Baseline = math.Inf(1)
			}
		} else {
			row.BaselineMissing, row.BaselinePass = true, true
		}
		row.Tolerance = tol.For(row.Name, row.Unit)
		judge(&row)
		notJudged(&row)
		if inBaseline && !row.Tolerance.Ignore && b.Pass && !v.Pass {
			row.Regression = true
			row.Detail = fmt.Sprintf("passed in the baseline, fails now (%s); %s", v.Bound, row.Detail)
		}
		c.Metrics = append(c.Metrics, row)
	}
	hb, hn := HeadlineOf(baseline), HeadlineOf(current)
	for _, m := range Headlines {
		row := MetricComparison{Name: m.Name, Kind: ComparisonHeadline, Metric: m.Metric, Agg: m.Agg, Unit: m.Unit,
			Direction: m.Direction, BaselinePass: true, NewPass: true}
		var ok bool
		row.Baseline, ok = m.Value(hb)
		row.BaselineMissing = !ok
		row.New, ok = m.Value(hn)
		row.NewMissing = !ok
		row.Tolerance = tol.For(row.Name, row.Unit)
		judge(&row)
		notJudged(&row)
		c.Metrics = append(c.Metrics, row)
	}

	if !baseline.Reliable {
		c.Notes = append(c.Notes, "the baseline is unreliable: "+baseline.UnreliableReason)
	}
	if !current.Reliable {
		c.Notes = append(c.Notes, "the new run is unreliable: "+current.UnreliableReason)
	}
	if baseline.Tool != current.Tool {
		c.Notes = append(c.Notes, fmt.Sprintf("different load generators: %q in the baseline, %q now", baseline.Tool, current.Tool))
	}
	if bg, ng := buildText(baseline.Env.Gateway), buildText(current.Env.Gateway); bg != ng {
		c.Notes = append(c.Notes, fmt.Sprintf("different gateway builds: %s in the baseline, %s now", bg, ng))
	}
	if bf, nf := flawsOf(baseline), flawsOf(current); bf != nf {
		c.Notes = append(c.Notes, fmt.Sprintf("different gateway flaws: %s in the baseline, %s now", bf, nf))
	}
	if baseline.Target.Nodes != current.Target.Nodes {
		c.Notes = append(c.Notes, fmt.Sprintf("different gateway node counts: %d in the baseline, %d now", baseline.Target.Nodes, current.Target.Nodes))
	}
	return c, nil
}

func buildText(b *Build) string {
	if b == nil {
		return "unknown"
	}
	return strings.TrimSpace(b.Version + " " + b.Commit)
}

func flawsOf(r *Result) string {
	if r.Scenario == nil || len(r.Scenario.Flaws) == 0 {
		return "none"
	}
	return strings.Join(r.Scenario.Flaws, ",")
}

// directionOf says which way an SLO's value gets worse from its comparison: a lower bound ("at
// least") is broken by falling values, every other bound by rising ones.
func directionOf(op string) string {
	if op == ">=" || op == ">" {
		return LowerIsWorse
	}
	return HigherIsWorse
}

// judge fills a row's change and decides whether it regressed beyond its tolerance.
func judge(row *MetricComparison) {
	if row.BaselineMissing || row.NewMissing {
		switch {
		case row.BaselineMissing && row.NewMissing:
			row.Detail = "no value in either run"
		case row.BaselineMissing:
			row.Detail = "no value in the baseline"
		default:
			row.Detail = "no value in the new run"
		}
		return
	}
	row.Change = row.New - row.Baseline
	if math.IsInf(row.New, 0) || math.IsInf(row.Baseline, 0) {
		row.Change = 0
		if row.New != row.Baseline {
			row.Change = math.Copysign(math.MaxFloat64, row.New-row.Baseline)
		}
	}
	if row.Baseline != 0 && !math.IsInf(row.Baseline, 0) {
		row.RelativeChange = row.Change / math.Abs(row.Baseline)
	}
	worse := row.Change
	if row.Direction == LowerIsWorse {
		worse = -worse
	}
	allowed := max(row.Tolerance.Relative*math.Abs(row.Baseline), row.Tolerance.Absolute)
	switch {
	case row.Tolerance.Ignore:
		row.Detail = "ignored by the gate"
	case worse > allowed:
		row.Regression = true
		row.Detail = fmt.Sprintf("worse by %s, beyond the tolerance of %s", changeText(row, worse), toleranceText(row))
	case worse > 0:
		row.Detail = fmt.Sprintf("worse by %s, within the tolerance of %s", changeText(row, worse), toleranceText(row))
	case worse < 0:
		row.Detail = "better"
	default:
		row.Detail = "unchanged"
	}
}

func changeText(row *MetricComparison, worse float64) string {
	s := FormatQuantity(worse, row.Unit)
	if row.RelativeChange != 0 {
		s += fmt.Sprintf(" (%+.0f%%)", 100*row.RelativeChange)
	}
	return s
}

func toleranceText(row *MetricComparison) string {
	t := row.Tolerance
	switch {
	case t.Relative > 0 && t.Absolute > 0:
		return fmt.Sprintf("%.0f%% and %s", 100*t.Relative, FormatQuantity(t.Absolute, row.Unit))
	case t.Relative > 0:
		return fmt.Sprintf("%.0f%%", 100*t.Relative)
	case t.Absolute > 0:
		return FormatQuantity(t.Absolute, row.Unit)
	}
	return "none"
}

// FormatQuantity renders v in unit for people: the units of SLO values as FormatValue does,
// ratios as percentages, the largest float (a change from or to "never") as ∞.
func FormatQuantity(v float64, unit string) string {
	switch {
	case math.IsInf(v, 0) || v == math.MaxFloat64 || v == -math.MaxFloat64:
		return "∞"
	case unit == "ratio":
		return strconv.FormatFloat(100*v, 'f', 2, 64) + "%"
	}
	return FormatValue(v, unit)
}

// WriteText writes the comparison as a table for a terminal: one line per row (name, baseline,
// new, change, tolerance, verdict), then the notes.
func (c *Comparison) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "METRIC\tBASELINE\tNEW\tCHANGE\tTOLERANCE\tRESULT")
	for _, m := range c.Metrics {
		name := m.Name
		if m.Kind == ComparisonSLO {
			name = "SLO " + name
		}
		val := func(v float64, missing bool) string {
			if missing {
				return "-"
			}
			return FormatQuantity(v, m.Unit)
		}
		change := "-"
		if !m.BaselineMissing && !m.NewMissing {
			change = signed(m.Change, m.Unit)
			if m.RelativeChange != 0 {
				change += fmt.Sprintf(" (%+.0f%%)", 100*m.RelativeChange)
			}
		}
		tol := "ignored"
		if !m.Tolerance.Ignore {
			tol = toleranceText(&m)
		}
		verdict := "ok"
		switch {
		case m.Regression:
			verdict = "REGRESSION: " + m.Detail
		case m.Kind == ComparisonSLO && !m.NewPass:
			verdict = "SLO FAILS (as in the baseline)"
		case m.NotJudged || m.BaselineMissing || m.NewMissing:
			verdict = m.Detail
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, val(m.Baseline, m.BaselineMissing), val(m.New, m.NewMissing), change, tol, verdict)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range c.Notes {
		if _, err := fmt.Fprintf(w, "note: %s\n", n); err != nil {
			return err
		}
	}
	return nil
}

func signed(v float64, unit string) string {
	if v >= 0 {
		return "+" + FormatQuantity(v, unit)
	}
	return "-" + FormatQuantity(-v, unit)
}
