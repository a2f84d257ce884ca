package reports

import (
	"bytes"
	"fmt"
	"io"
	"strings"
)

// SummaryFileName is the conventional name of the Markdown summary in a run's output directory.
const SummaryFileName = "summary.md"

// WriteSummary writes summary.md: the verdict, the SLO table and the key figures, in GitHub
// Markdown small enough for a pull-request comment (a few kilobytes whatever the run's size).
func (r *Result) WriteSummary(w io.Writer, opts RenderOptions) error {
	var b bytes.Buffer
	o := r.Outcome()
	mark := "✅"
	switch {
	case !o.Pass:
		mark = "❌"
	case !r.Reliable: // held, but on figures that cannot be trusted
		mark = "⚠️"
	}
	fmt.Fprintf(&b, "## %s %s: %s — %s\n\n", mark, mdEscape(nameOf(r)), o.Word, mdEscape(o.Text))
	if !r.Reliable {
		fmt.Fprintf(&b, "> **⚠️ Unreliable run:** %s. Its figures describe the load generator as much as the target.\n\n", mdEscape(r.UnreliableReason))
	}
	rows := rowsOf(opts.Comparison)
	if c := opts.Comparison; c != nil {
		mark := "✅"
		if c.Regressed() {
			mark = "❌"
		}
		fmt.Fprintf(&b, "%s %s\n\n", mark, mdEscape(baselineLine(c)))
		for _, n := range c.Notes {
			fmt.Fprintf(&b, "- note: %s\n", mdEscape(n))
		}
		if len(c.Notes) > 0 {
			b.WriteString("\n")
		}
	}
	fmt.Fprintf(&b, "%s\n\n", mdEscape(r.Paragraph(opts.Glossary)))
	if len(r.SLOs) > 0 {
		b.WriteString("| result | SLO | cohort | bound | measured |")
		if rows != nil {
			b.WriteString(" baseline | change | vs baseline |")
		}
		b.WriteString("\n|---|---|---|---|---|")
		if rows != nil {
			b.WriteString("---|---|---|")
		}
		b.WriteString("\n")
		for _, v := range r.SLOs {
			res := v.Result()
			if !v.Pass {
				res = "**" + res + "**"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |", res, mdCode(v.Name), mdEscape(v.CohortName()), mdEscape(v.Bound), mdEscape(v.Measured()))
			if rows != nil {
				if row := comparisonOf(rows, v.ComparisonName()); row != nil {
					fmt.Fprintf(&b, " %s | %s | %s |", row.BaselineText, row.ChangeText, mdVerdict(*row))
				} else {
					b.WriteString(" - | - | not compared |")
				}
			}
			b.WriteString("\n")
		}
		b.WriteString("\n")
	}
	if rows != nil {
		b.WriteString("| headline figure | baseline | new | change | tolerance | vs baseline |\n|---|---|---|---|---|---|\n")
		for _, row := range rows {
			if row.Kind == ComparisonHeadline {
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", mdEscape(row.Name), row.BaselineText, row.NewText, row.ChangeText, row.ToleranceText, mdVerdict(row))
			}
		}
		b.WriteString("\n")
	}
	if d := r.Diagnosis; d != nil {
		writeDiagnosisMarkdown(&b, d)
	}
	b.WriteString("| key figure | value |\n|---|---|\n")
	for _, f := range r.KeyFigures() {
		v := f.Text()
		if f.Note != "" {
			v += " (" + mdEscape(f.Note) + ")"
		}
		fmt.Fprintf(&b, "| %s | %s |\n", mdEscape(f.Name), v)
	}
	b.WriteString("\n<sub>Rendered by " + mdEscape(toolName(r)) + " from result.json (schema " + fmt.Sprint(r.Schema) +
		"); report.html has the timelines, percentile plots and the full configuration.</sub>\n")
	_, err := w.Write(b.Bytes())
	return err
}

func nameOf(r *Result) string {
	if r.Name == "" {
		return "run"
	}
	return r.Name
}

func toolName(r *Result) string {
	if r.Tool == "" {
		return "loadgen"
	}
	return r.Tool
}

// mdEscape keeps text from being read as Markdown or HTML in a table cell.
var mdReplacer = strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;", "*", `\*`, "_", `\_`, "`", "'", "[", `\[`, "]", `\]`, "\n", " ")

func mdEscape(s string) string { return mdReplacer.Replace(s) }

// mdCode renders s as inline code (backticks inside are replaced; pipes escaped for tables).
func mdCode(s string) string {
	return "`" + strings.NewReplacer("`", "'", "|", `\|`, "\n", " ").Replace(s) + "`"
}

func mdVerdict(row comparisonRow) string {
	if row.Bad {
		return "**" + mdEscape(row.Verdict) + "**"
	}
	return mdEscape(row.Verdict)
}
