package reports

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// JUnitFileName is the conventional name of the JUnit rendering in a run's output directory.
const JUnitFileName = "junit.xml"

// JUnit's XML, as CI systems read it (Jenkins, GitLab, GitHub test reporters).
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Properties []junitProperty `xml:"properties>property,omitempty"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	Skipped   *junitProblem `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes the run as JUnit XML: one test suite for the run with a test case for the run
// itself (an error when it did not complete, a failure when its figures are unreliable), one per
// SLO (a failure carries the measured value and the bound) and, given a comparison, one per
// baseline check.
func (r *Result) WriteJUnit(w io.Writer, opts RenderOptions) error {
	name := r.Name
	if name == "" {
		name = "run"
	}
	secs := strconv.FormatFloat(r.Duration.Seconds(), 'f', 3, 64)
	suite := junitSuite{Name: name, Time: secs}
	if !r.Started.IsZero() {
		suite.Timestamp = r.Started.UTC().Format("2006-01-02T15:04:05")
	}
	suite.Properties = append(suite.Properties,
		junitProperty{"scenario", scenarioName(r)},
		junitProperty{"target", r.Target.Kind},
		junitProperty{"clients", strconv.Itoa(r.Clients())},
		junitProperty{"stop_reason", r.StopReason},
		junitProperty{"seed", strconv.FormatUint(r.Env.Seed, 10)},
		junitProperty{"tool", r.Tool},
	)
	if r.Scenario != nil && len(r.Scenario.Flaws) > 0 {
		suite.Properties = append(suite.Properties, junitProperty{"flaws", strings.Join(r.Scenario.Flaws, ",")})
	}

	run := junitCase{Name: "run", Classname: name + ".run", Time: secs}
	switch {
	case r.StopReason != StopCompleted:
		o := r.Outcome()
		run.Error = &junitProblem{Message: o.Text, Type: r.StopReason, Text: o.Text}
	case !r.Reliable:
		why := "the generator's figures are unreliable: " + r.UnreliableReason
		run.Failure = &junitProblem{Message: why, Type: "unreliable", Text: why}
	default:
		run.SystemOut = fmt.Sprintf("completed in %s with %d clients", FormatDuration(r.Duration), r.Clients())
	}
	suite.Cases = append(suite.Cases, run)

	for _, v := range r.SLOs {
		c := junitCase{Name: v.Name + " [" + v.CohortName() + "]", Classname: name + ".slo", Time: "0"}
		msg := fmt.Sprintf("measured %s, bound %s (cohort %s)", v.Measured(), v.Bound, v.CohortName())
		switch v.Result() {
		case ResultPass:
			c.SystemOut = msg
		case ResultSkipNoData:
			c.Skipped = &junitProblem{Message: "optional SLO without data: " + msg}
		default:
			c.Failure = &junitProblem{Message: msg, Type: "slo_breached", Text: sloFailureText(v, opts.Glossary)}
		}
		suite.Cases = append(suite.Cases, c)
	}
	suite.Cases = append(suite.Cases, baselineCases(name, opts)...)

	for _, c := range suite.Cases {
		suite.Tests++
		switch {
		case c.Error != nil:
			suite.Errors++
		case c.Failure != nil:
			suite.Failures++
		case c.Skipped != nil:
			suite.Skipped++
		}
	}
	doc := junitSuites{Name: "loadgen " + name, Tests: suite.Tests, Failures: suite.Failures, Errors: suite.Errors,
		Time: secs, Suites: []junitSuite{suite}}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("reports: junit: %w", err)
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

// baselineCases are the JUnit test cases of a comparison with a baseline, one per row (none
// without a comparison): a regression is a failure carrying the baseline, the new value, the
// change and the tolerance.
func baselineCases(suite string, opts RenderOptions) []junitCase {
	var out []junitCase
	for _, row := range rowsOf(opts.Comparison) {
		c := junitCase{Name: "baseline: " + row.Name, Classname: suite + ".baseline", Time: "0"}
		msg := fmt.Sprintf("baseline %s, now %s, change %s, tolerance %s: %s", row.BaselineText, row.NewText, row.ChangeText, row.ToleranceText, row.Detail)
		switch {
		case row.Regression:
			c.Failure = &junitProblem{Message: msg, Type: "regression", Text: msg}
		case row.Tolerance.Ignore:
			c.Skipped = &junitProblem{Message: "ignored by the gate: " + msg}
		default:
			c.SystemOut = msg
		}
		out = append(out, c)
	}
	return out
}

// sloFailureText is the body of a failed SLO's test case: the numbers, then what the SLO means
// and catches.
func sloFailureText(v SLOVerdict, g Glossary) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s of %s over cohort %s measured %s; the bound is %s.", v.Result(), v.Agg, v.Metric, v.CohortName(), v.Measured(), v.Bound)
	doc := g.Metric(v.Metric)
	if doc.Meaning != "" {
		fmt.Fprintf(&b, "\nMeasures: %s.", strings.TrimSuffix(doc.Meaning, "."))
	}
	if doc.Catches != "" {
		fmt.Fprintf(&b, "\nCatches: %s.", strings.TrimSuffix(doc.Catches, "."))
	}
	if len(v.Catches) > 0 {
		fmt.Fprintf(&b, "\nMeant to break under the flaws: %s.", strings.Join(v.Catches, ", "))
	}
	return b.String()
}

func scenarioName(r *Result) string {
	if r.Scenario != nil {
		return r.Scenario.Name
	}
	return "(built-in plan)"
}
