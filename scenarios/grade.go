package scenarios

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"

	"github.com/squall-dev/squall/reports"
)

// Exit codes of `loadgen run` and `loadgen gate` (DESIGN §6).
const (
	ExitOK      = 0  // every SLO held
	ExitHarness = 1  // the harness failed
	ExitUsage   = 2  // usage error or invalid scenario
	ExitBreach  = 99 // an SLO (or a baseline gate) was breached
)

// MetricSource answers what a run measured. Value returns agg (an Agg, as a string) of metric over
// the clients of cohort ("" = every client), in the metric's base unit (seconds, bytes, count, per
// second); ok is false when the run has no data for it. A labelled metric is asked for as
// "metric:label" (close_codes:1006; see SLO.Key).
type MetricSource interface {
	Value(metric, agg, cohort string) (v float64, ok bool)
}

// Query is one question to a MetricSource.
type Query struct{ Metric, Agg, Cohort string }

// StaticSource is a MetricSource that answers from a map (tests, replays of stored verdicts).
type StaticSource map[Query]float64

// Value implements MetricSource.
func (s StaticSource) Value(metric, agg, cohort string) (float64, bool) {
	v, ok := s[Query{metric, agg, cohort}]
	return v, ok
}

// Key is the metric name an SLO asks a MetricSource for: the metric, or "metric:label".
func (o SLO) Key() string {
	if o.Label == "" {
		return o.Metric
	}
	return o.Metric + ":" + o.Label
}

// Verdict is the grade of one SLO.
type Verdict struct {
	Name     string  `json:"name"`
	Metric   string  `json:"metric"`
	Label    string  `json:"label,omitempty"`
	Agg      Agg     `json:"agg"`
	Cohort   string  `json:"cohort,omitempty"`
	Op       Op      `json:"op"`
	Bound    float64 `json:"bound"`    // in Unit
	Observed float64 `json:"observed"` // in Unit; 0 when NoData
	Unit     Unit    `json:"unit"`
	// NoData is set when the run produced nothing for the SLO (or a NaN). Such an SLO fails unless it
	// is Optional: a metric that silently went missing must not read as a pass.
	NoData   bool `json:"no_data,omitempty"`
	Optional bool `json:"optional,omitempty"`
	Pass     bool `json:"pass"`
	// Catches are the gateway flaws the SLO is meant to break under (SLO.Catches).
	Catches []string `json:"catches,omitempty"`
}

// Grade evaluates every SLO against m, in order.
func Grade(slos []SLO, m MetricSource) []Verdict {
	out := make([]Verdict, 0, len(slos))
	for _, o := range slos {
		agg := o.Agg
		unit := UnitCount
		if md, ok := LookupMetric(o.Metric); ok {
			if agg == "" {
				agg = md.DefaultAgg()
			}
			unit = aggUnit(md.Unit, agg)
		}
		name := o.Name
		if name == "" {
			o.Agg = agg
			name = o.defaultName()
		}
		v := Verdict{Name: name, Metric: o.Metric, Label: o.Label, Agg: agg, Cohort: o.Cohort,
			Op: o.Bound.Op, Bound: o.Bound.Value, Unit: unit, Optional: o.Optional, Catches: o.Catches}
		obs, ok := m.Value(o.Key(), string(agg), o.Cohort)
		if !ok || math.IsNaN(obs) {
			v.NoData = true
			v.Pass = o.Optional
		} else {
			v.Observed = obs
			v.Pass = o.Bound.Holds(obs)
		}
		out = append(out, v)
	}
	return out
}

// Passed reports whether every verdict passed.
func Passed(vs []Verdict) bool {
	for _, v := range vs {
		if !v.Pass {
			return false
		}
	}
	return true
}

// ExitCode is the exit code of a run graded by vs: ExitOK when all held, ExitBreach otherwise.
func ExitCode(vs []Verdict) int {
	if Passed(vs) {
		return ExitOK
	}
	return ExitBreach
}

// Result is the verdict word of one SLO: PASS, FAIL, "FAIL (no data)", or "skip (no data)" for an
// optional SLO without data (it counts as held).
func (v Verdict) Result() string {
	switch {
	case v.NoData && v.Pass:
		return "skip (no data)"
	case v.NoData:
		return "FAIL (no data)"
	case v.Pass:
		return "PASS"
	}
	return "FAIL"
}

// BoundText renders the bound, e.g. "<= 45s".
func (v Verdict) BoundText() string { return string(v.Op) + " " + FormatValue(v.Bound, v.Unit) }

// ObservedText renders the observed value, or "no data".
func (v Verdict) ObservedText() string {
	if v.NoData {
		return "no data"
	}
	return FormatValue(v.Observed, v.Unit)
}

// WriteVerdicts writes the verdict table for a terminal: one aligned row per SLO, the result first
// (PASS, FAIL, "FAIL (no data)", ...; upper case for what decides the run), then a summary line.
func WriteVerdicts(w io.Writer, vs []Verdict) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RESULT\tSLO\tCOHORT\tBOUND\tOBSERVED")
	failed, noData := 0, 0
	for _, v := range vs {
		if !v.Pass {
			failed++
			if v.NoData {
				noData++
			}
		}
		cohort := v.Cohort
		if cohort == "" {
			cohort = "all"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Result(), v.Name, cohort, v.BoundText(), v.ObservedText())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	switch {
	case len(vs) == 0:
		b.WriteString("verdict: PASS (no SLOs)")
	case failed == 0:
		fmt.Fprintf(&b, "verdict: PASS (%d of %d SLOs held)", len(vs), len(vs))
	default:
		fmt.Fprintf(&b, "verdict: FAIL (%d of %d SLOs breached", failed, len(vs))
		if noData > 0 {
			fmt.Fprintf(&b, ", %d without data", noData)
		}
		b.WriteString(")")
	}
	_, err := fmt.Fprintln(w, b.String())
	return err
}

// ReportVerdicts converts verdicts into the result model's form (reports.Result.SLOs): the bound as
// text, the observed value in the metric's base unit, and the result word, aggregation and cohort in
// Detail.
func ReportVerdicts(vs []Verdict) []reports.SLOVerdict {
	out := make([]reports.SLOVerdict, len(vs))
	for i, v := range vs {
		cohort := v.Cohort
		if cohort == "" {
			cohort = "all"
		}
		metric := v.Metric
		if v.Label != "" {
			metric += ":" + v.Label
		}
		out[i] = reports.SLOVerdict{
			Name:      v.Name,
			Metric:    metric,
			Bound:     string(v.Agg) + " " + v.BoundText(),
			Agg:       string(v.Agg),
			Cohort:    v.Cohort,
			Op:        string(v.Op),
			Threshold: v.Bound,
			Unit:      string(v.Unit),
			Optional:  v.Optional,
			Value:     v.Observed,
			Pass:      v.Pass,
			NoData:    v.NoData,
			Catches:   v.Catches,
			Detail:    fmt.Sprintf("%s; observed %s; cohort %s", v.Result(), v.ObservedText(), cohort),
		}
		if math.IsInf(v.Observed, 1) { // JSON has no infinity
			out[i].Value, out[i].Unbounded = 0, true
		}
	}
	return out
}

// VerdictsOf reads back the verdicts ReportVerdicts stored in a result.
func VerdictsOf(rs []reports.SLOVerdict) []Verdict {
	out := make([]Verdict, len(rs))
	for i, r := range rs {
		metric, label, _ := strings.Cut(r.Metric, ":")
		out[i] = Verdict{Name: r.Name, Metric: metric, Label: label, Agg: Agg(r.Agg), Cohort: r.Cohort, Op: Op(r.Op),
			Bound: r.Threshold, Observed: r.Value, Unit: Unit(r.Unit), NoData: r.NoData, Optional: r.Optional, Pass: r.Pass, Catches: r.Catches}
		if r.Unbounded {
			out[i].Observed = math.Inf(1)
		}
	}
	return out
}
