package reports

import (
	"fmt"
	"strings"
)

// comparisonRow is one row of a Comparison as the renderings show it.
type comparisonRow struct {
	MetricComparison
	BaselineText, NewText, ChangeText, ToleranceText string
	// Verdict is REGRESSION, "SLO fails (as in the baseline)", "ok", "better", "ignored" or
	// "not compared" (a run had no value).
	Verdict string
	Bad     bool // a regression or a failing SLO
}

// rowsOf returns the comparison's rows as shown (nil without a comparison).
func rowsOf(c *Comparison) []comparisonRow {
	if c == nil {
		return nil
	}
	out := make([]comparisonRow, len(c.Metrics))
	for i, m := range c.Metrics {
		row := comparisonRow{MetricComparison: m, BaselineText: "-", NewText: "-", ChangeText: "-", ToleranceText: "ignored"}
		if !m.BaselineMissing {
			row.BaselineText = FormatQuantity(m.Baseline, m.Unit)
		}
		if !m.NewMissing {
			row.NewText = FormatQuantity(m.New, m.Unit)
		}
		if !m.BaselineMissing && !m.NewMissing {
			row.ChangeText = signed(m.Change, m.Unit)
			if m.RelativeChange != 0 {
				row.ChangeText += fmt.Sprintf(" (%+.0f%%)", 100*m.RelativeChange)
			}
		}
		if !m.Tolerance.Ignore {
			row.ToleranceText = toleranceText(&m)
		}
		switch {
		case m.Regression:
			row.Verdict, row.Bad = "REGRESSION", true
		case m.Kind == ComparisonSLO && !m.NewPass:
			row.Verdict, row.Bad = "SLO fails (as in the baseline)", true
		case m.Tolerance.Ignore:
			row.Verdict = "ignored"
		case m.BaselineMissing || m.NewMissing:
			row.Verdict = "not compared"
		case m.Detail == "better":
			row.Verdict = "better"
		default:
			row.Verdict = "ok"
		}
		out[i] = row
	}
	return out
}

// comparisonOf returns the comparison row of the SLO whose ComparisonName is slo.
func comparisonOf(rows []comparisonRow, slo string) *comparisonRow {
	for i := range rows {
		if rows[i].Kind == ComparisonSLO && rows[i].Name == slo {
			return &rows[i]
		}
	}
	return nil
}

// baselineLine says what the run is compared with and how it came out, in one sentence.
func baselineLine(c *Comparison) string {
	base := c.Baseline.File
	if base == "" {
		base = c.Baseline.Name
	}
	when := ""
	if !c.Baseline.Started.IsZero() {
		when = " (run " + c.Baseline.Started.UTC().Format("2006-01-02 15:04 UTC") + ")"
	}
	regs := c.Regressions()
	if len(regs) == 0 {
		return fmt.Sprintf("Against the baseline %s%s: no regression beyond tolerance in %d figures.", base, when, len(c.Metrics))
	}
	names := make([]string, len(regs))
	for i, m := range regs {
		names[i] = m.Name
	}
	return fmt.Sprintf("Against the baseline %s%s: %d of %d figures REGRESSED beyond tolerance: %s.", base, when, len(regs), len(c.Metrics), strings.Join(names, ", "))
}
