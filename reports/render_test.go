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

// renderFixtures are fixed results the renderings are checked against: a real reconnect-storm run
// (two cohorts, two workers, a proxy outage, gateway telemetry) and the synthetic golden run (a
// breached and an unbounded SLO, a failed fault step, a lost worker, an unreliable generator).
var renderFixtures = []struct{ name, path string }{
	{"storm", "testdata/report/storm.result.json"},
	{"synthetic", "testdata/result.golden.json"},
}

func options() reports.RenderOptions { return reports.RenderOptions{Glossary: scenarios.Glossary()} }

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
	for _, fx := range renderFixtures {
		t.Run(fx.name, func(t *testing.T) {
			r := readFixture(t, fx.path)
			var b bytes.Buffer
			if err := r.WriteJUnit(&b, options()); err != nil {
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
			if len(doc.Cases) != len(r.SLOs)+1 || doc.Tests != len(doc.Cases) {
				t.Fatalf("%d test cases (tests=%d), want one per SLO (%d) and the run's", len(doc.Cases), doc.Tests, len(r.SLOs))
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
	for _, fx := range renderFixtures {
		t.Run(fx.name, func(t *testing.T) {
			r := readFixture(t, fx.path)
			var b bytes.Buffer
			if err := r.WriteSummary(&b, options()); err != nil {
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
