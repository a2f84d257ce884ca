package reports_test

import (
	"bytes"
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/squall-dev/squall/reports"
	"github.com/squall-dev/squall/scenarios"
)

// renderFixtures are fixed results the renderings are checked against, each with what it is
// rendered with:
//   - storm: a real reconnect-storm run (two cohorts, two workers, a proxy outage, telemetry);
//   - synthetic: the synthetic golden run (a breached and an unbounded SLO, a failed fault step, a
//     lost worker, an unreliable generator), with a diagnosis of every class;
//   - capacity: a real capacity-ramp run, with its steps and knee;
//   - comparison: a run of the built-in plan against an earlier one, with zero tolerance for
//     latencies so that some figures regress;
//   - storm-baseline: the storm run against itself (every SLO compared, nothing regressed).
func options() reports.RenderOptions { return reports.RenderOptions{Glossary: scenarios.Glossary()} }

var renderFixtures = []struct {
	name, path string
	prepare    func(t *testing.T, r *reports.Result) reports.RenderOptions
}{
	{"storm", "testdata/report/storm.result.json", nil},
	{"synthetic", "testdata/result.golden.json", func(t *testing.T, r *reports.Result) reports.RenderOptions {
		r.Diagnosis = testDiagnosis()
		return options()
	}},
	{"capacity", "testdata/report/capacity.result.json", func(t *testing.T, r *reports.Result) reports.RenderOptions {
		r.StepRamp = stepRampOf(t, r)
		return options()
	}},
	{"comparison", "testdata/report/smoke-new.result.json", func(t *testing.T, r *reports.Result) reports.RenderOptions {
		base := readFixture(t, "testdata/report/smoke-baseline.result.json")
		c, err := reports.Compare(base, r, reports.Tolerances{ByClass: map[string]reports.Tolerance{reports.ClassLatency: {}}},
			"smoke-baseline.result.json", "smoke-new.result.json")
		if err != nil {
			t.Fatal(err)
		}
		o := options()
		o.Comparison = c
		return o
	}},
	{"storm-baseline", "testdata/report/storm.result.json", func(t *testing.T, r *reports.Result) reports.RenderOptions {
		c, err := reports.Compare(readFixture(t, "testdata/report/storm.result.json"), r, reports.Tolerances{}, "storm.result.json", "storm.result.json")
		if err != nil {
			t.Fatal(err)
		}
		o := options()
		o.Comparison = c
		return o
	}},
}

// fixture reads a fixture and prepares it.
func fixture(t *testing.T, i int) (*reports.Result, reports.RenderOptions) {
	t.Helper()
	fx := renderFixtures[i]
	r := readFixture(t, fx.path)
	if fx.prepare == nil {
		return r, options()
	}
	return r, fx.prepare(t, r)
}

// testDiagnosis has a finding of every class.
func testDiagnosis() *reports.Diagnosis {
	return &reports.Diagnosis{Findings: []reports.Finding{
		{Class: reports.ClassServer, Code: "orphaned_subscriptions", Title: "Orphaned subscriptions: 40 left at the end", Severity: reports.SeverityCritical,
			Evidence: []string{"ws_orphaned_subscriptions ended at 40 with no connection open"}, Fix: "release subscriptions on every close path"},
		{Class: reports.ClassClient, Code: "reconnect_storm", Title: "Reconnect storm: 196 reconnects/s at the peak", Severity: reports.SeverityWarning,
			Evidence: []string{"196 reconnect attempts in one second", "reconnect delays p50 498ms, p99 645ms: little spread"}},
		{Class: reports.ClassBetween, Code: "proxy_idle_timeout", Title: "Connections cut with 1006 at a regular age", Severity: reports.SeverityWarning,
			Evidence: []string{"199 closes 1006 at 60s ± 1s of age", "no heartbeat timeout counted by the gateway"}, Fix: "raise the proxy idle timeout above the heartbeat interval"},
	}}
}

// stepRampOf grades a capacity run step by step, as a run does (the run that made the fixture
// did not keep its steps yet).
func stepRampOf(t *testing.T, r *reports.Result) *reports.StepRamp {
	t.Helper()
	s, err := scenarios.Parse(r.Scenario.File, []byte(r.Scenario.Source), scenarios.WithTimeScale(r.Scenario.TimeScale))
	if err != nil {
		t.Fatal(err)
	}
	return scenarios.StepRampOf(scenarios.Steps(s, r))
}

func readFixture(t *testing.T, path string) *reports.Result {
	t.Helper()
	r, err := reports.ReadJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// checkGolden compares got with testdata/report/name; go test -update rewrites it.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "report", name)
	if f := flag.Lookup("update"); f != nil && f.Value.String() == "true" {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it); got:\n%s", path, got)
	}
}

func TestJUnitGolden(t *testing.T) {
	for i, fx := range renderFixtures {
		t.Run(fx.name, func(t *testing.T) {
			r, opts := fixture(t, i)
			var b bytes.Buffer
			if err := r.WriteJUnit(&b, opts); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, fx.name+".junit.xml", b.Bytes())

			// It is well-formed, has a test case per SLO besides the run's, and each breached SLO's
			// failure carries the measured value and the bound.
			var doc struct {
				Tests int `xml:"tests,attr"`
				Cases []struct {
					Name    string `xml:"name,attr"`
					Failure *struct {
						Message string `xml:"message,attr"`
					} `xml:"failure"`
				} `xml:"testsuite>testcase"`
			}
			if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
				t.Fatalf("junit.xml does not parse: %v", err)
			}
			var rows []reports.MetricComparison
			if opts.Comparison != nil {
				rows = opts.Comparison.Metrics
			}
			if len(doc.Cases) != 1+len(r.SLOs)+len(rows) || doc.Tests != len(doc.Cases) {
				t.Fatalf("%d test cases (tests=%d), want the run's, one per SLO (%d) and one per baseline check (%d)", len(doc.Cases), doc.Tests, len(r.SLOs), len(rows))
			}
			for i, m := range rows {
				c := doc.Cases[1+len(r.SLOs)+i]
				if m.Regression != (c.Failure != nil) {
					t.Errorf("%s: regression %v but failure %v", c.Name, m.Regression, c.Failure)
				}
			}
			for i, v := range r.SLOs {
				c := doc.Cases[i+1]
				if v.Pass != (c.Failure == nil) {
					t.Errorf("%s: pass %v but failure %v", c.Name, v.Pass, c.Failure)
				}
				if c.Failure != nil && (!strings.Contains(c.Failure.Message, v.Measured()) || !strings.Contains(c.Failure.Message, v.Bound)) {
					t.Errorf("%s: failure %q lacks the measured value %q or the bound %q", c.Name, c.Failure.Message, v.Measured(), v.Bound)
				}
			}
		})
	}
}

func TestSummaryGolden(t *testing.T) {
	for i, fx := range renderFixtures {
		t.Run(fx.name, func(t *testing.T) {
			r, opts := fixture(t, i)
			var b bytes.Buffer
			if err := r.WriteSummary(&b, opts); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, fx.name+".summary.md", b.Bytes())
			if b.Len() > 16<<10 {
				t.Errorf("summary.md is %d bytes; a pull-request comment wants it small", b.Len())
			}
			for _, v := range r.SLOs {
				if !strings.Contains(b.String(), v.Name) {
					t.Errorf("summary.md lacks SLO %s", v.Name)
				}
			}
		})
	}
}

func TestWriteRenderings(t *testing.T) {
	r := readFixture(t, "testdata/result.golden.json")
	dir := t.TempDir()
	paths, err := r.WriteRenderings(dir, options())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{reports.HTMLFileName, reports.JUnitFileName, reports.SummaryFileName}
	if len(paths) != len(want) {
		t.Fatalf("paths %v, want %v", paths, want)
	}
	for i, p := range paths {
		if filepath.Base(p) != want[i] {
			t.Errorf("path %d is %s, want %s", i, p, want[i])
		}
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v (size %v)", p, err, fi)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(want) {
		t.Errorf("the directory holds %d files, want %d (no temporary files left)", len(entries), len(want))
	}
}
