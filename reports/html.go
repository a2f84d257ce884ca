package reports

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strconv"
	"strings"
)

// HTMLFileName is the conventional name of the HTML report in a run's output directory.
const HTMLFileName = "report.html"

//go:embed templates/report.html.tmpl templates/report.css
var templateFS embed.FS

var reportTemplate = template.Must(template.New("report.html.tmpl").ParseFS(templateFS, "templates/report.html.tmpl"))

// sloRow is one row of the report's SLO table.
type sloRow struct {
	SLOVerdict
	Doc   MetricDoc
	Flaws []flawRef
	Base  *comparisonRow // against the baseline (nil without one, or when it is not compared)
}

type flawRef struct{ Name, Description string }

// htmlView is everything the template shows, computed before it runs.
type htmlView struct {
	Title      string
	CSS        template.CSS
	Outcome    Outcome
	Result     *Result
	Paragraph  string
	SLOs       []sloRow
	KeyFigures []KeyFigure

	// Comparison with a baseline (nil without one).
	Comparison     *Comparison
	BaselineLine   string
	ComparisonRows []comparisonRow
	// Diagnosis (Diagnosed false when the result carries none).
	Diagnosed bool
	Findings  []findingGroup
	// Step ramp: the knee charts and the steps (none for other runs).
	Knee      []Chart
	KneeTable *Table
	KneeText  string

	Timelines      []Chart
	TimelineNotes  []string
	Percentiles    []Chart
	ReconnectDelay *Chart
	Tables         []*Table
	Events         *Table

	Config      string // the plan, indented
	Source      string // the scenario file as written
	Environment [][2]string
}

// WriteHTML writes report.html: one self-contained file (inline CSS and SVG, no script, no font
// or image from elsewhere) that opens offline, prints and reads on a phone. In order: the verdict
// and the SLO table, the run in one paragraph, the key figures, the timelines with every phase and
// chaos event marked, the percentile plots, the reconnect-delay distribution, the per-cohort,
// per-phase and per-worker tables, the events, and the full configuration, scenario source and
// environment. It renders into memory first: on error nothing is written to w.
func (r *Result) WriteHTML(w io.Writer, opts RenderOptions) error {
	v, err := r.htmlView(opts)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := reportTemplate.Execute(&b, v); err != nil {
		return fmt.Errorf("reports: html: %w", err)
	}
	_, err = w.Write(b.Bytes())
	return err
}

func (r *Result) htmlView(opts RenderOptions) (*htmlView, error) {
	css, err := templateFS.ReadFile("templates/report.css")
	if err != nil {
		return nil, err
	}
	v := &htmlView{Title: nameOf(r), CSS: template.CSS(css), Outcome: r.Outcome(), Result: r,
		Paragraph: r.Paragraph(opts.Glossary), KeyFigures: r.KeyFigures()}
	if c := opts.Comparison; c != nil {
		v.Comparison, v.BaselineLine, v.ComparisonRows = c, baselineLine(c), rowsOf(c)
	}
	if r.Diagnosis != nil {
		v.Diagnosed, v.Findings = true, groupFindings(r.Diagnosis)
	}
	for _, s := range r.SLOs {
		row := sloRow{SLOVerdict: s, Doc: opts.Glossary.Metric(s.Metric), Base: comparisonOf(v.ComparisonRows, s.ComparisonName())}
		for _, f := range s.Catches {
			row.Flaws = append(row.Flaws, flawRef{f, opts.Glossary.Flaws[f]})
		}
		v.SLOs = append(v.SLOs, row)
	}
	if v.Timelines, v.TimelineNotes, err = r.timelineCharts(); err != nil {
		return nil, fmt.Errorf("reports: html: %w", err)
	}
	if v.Percentiles, err = r.percentileCharts(); err != nil {
		return nil, fmt.Errorf("reports: html: %w", err)
	}
	if v.ReconnectDelay, err = r.reconnectDelayChart(); err != nil {
		return nil, fmt.Errorf("reports: html: %w", err)
	}
	if v.Knee, err = r.kneeCharts(); err != nil {
		return nil, fmt.Errorf("reports: html: %w", err)
	}
	v.KneeTable, v.KneeText = r.kneeTable(), kneeText(r.StepRamp)
	for _, t := range []*Table{r.cohortTable(), r.phaseTable(), r.workerTable()} {
		if t != nil {
			v.Tables = append(v.Tables, t)
		}
	}
	v.Events = r.eventTable()
	if len(r.Plan) > 0 {
		var b bytes.Buffer
		if json.Indent(&b, r.Plan, "", "  ") == nil {
			v.Config = b.String()
		} else {
			v.Config = string(r.Plan)
		}
	}
	if r.Scenario != nil {
		v.Source = r.Scenario.Source
	}
	v.Environment = r.environmentRows()
	return v, nil
}

func (r *Result) environmentRows() [][2]string {
	e := r.Env
	rows := [][2]string{
		{"tool", toolName(r)},
		{"schema", strconv.Itoa(r.Schema)},
		{"go", e.GoVersion},
		{"os / arch", e.OS + " / " + e.Arch},
		{"cores / GOMAXPROCS", fmt.Sprintf("%d / %d", e.Cores, e.GOMAXPROCS)},
		{"memory", FormatValue(float64(e.MemoryBytes), UnitBytes)},
		{"open files (soft / hard)", fmt.Sprintf("%d / %d", e.FDLimitSoft, e.FDLimitHard)},
		{"host", orDash(e.Hostname)},
		{"seed", strconv.FormatUint(e.Seed, 10)},
		{"command", orDash(strings.Join(e.Args, " "))},
		{"target", targetText(r.Target)},
	}
	if len(r.Target.URLs) > 0 {
		rows = append(rows, [2]string{"target URLs", strings.Join(r.Target.URLs, " ")})
	}
	if len(r.Target.MetricURLs) > 0 {
		rows = append(rows, [2]string{"metrics URLs", strings.Join(r.Target.MetricURLs, " ")})
	}
	if t := r.Telemetry; t.Status != "" {
		rows = append(rows, [2]string{"gateway telemetry", fmt.Sprintf("%s: %d scrapes, %d errors %s", t.Status, t.Scrapes, t.Errors, t.Reason)})
	}
	if o := r.ProxyOverhead; o != nil {
		rows = append(rows, [2]string{"chaos proxy overhead", fmt.Sprintf("+%s p50, +%s p99 per round trip (measured before the run over %d round trips; proxied cohorts' latencies include it)",
			FormatDuration(o.AddedP50), FormatDuration(o.AddedP99), o.Proxied.N)})
	}
	if b := e.Loadgen; b.Version != "" {
		rows = append(rows, [2]string{"loadgen build", buildLine(b)})
	}
	if b := e.Gateway; b != nil {
		rows = append(rows, [2]string{"gateway build", buildLine(*b)})
	}
	return rows
}

func buildLine(b Build) string {
	return strings.Join(strings.Fields(strings.Join([]string{b.Name, b.Version, b.Commit, b.GoVersion}, " ")), " ")
}
