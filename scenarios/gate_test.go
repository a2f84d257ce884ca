package scenarios

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/squall-dev/squall/reports"
)

func gateRun() *reports.Result {
	return &reports.Result{Name: "smoke", SLOs: []reports.SLOVerdict{{Name: "fanout_p99", Unit: "seconds"}}}
}

func TestParseGate(t *testing.T) {
	g, err := LoadGate("testdata/gate/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if g.FailOnSLO() {
		t.Error("slos: ignore still fails on SLOs")
	}
	tol, err := g.Tolerances(gateRun())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]reports.Tolerance{
		"fanout_latency p99":    {Relative: 0.3, Absolute: 0.002},
		"fanout_p99":            {Relative: 1},
		"memory_per_connection": {Ignore: true},
		"error_rate":            {Absolute: 0.005},
	}
	for name, w := range want {
		if got := tol.ByName[name]; got != w {
			t.Errorf("%s: %+v, want %+v", name, got, w)
		}
	}
	if got := tol.ByClass[reports.ClassMemory]; got != (reports.Tolerance{Relative: 0.3, Absolute: 4096}) {
		t.Errorf("memory class %+v", got)
	}
	if got := tol.ByClass[reports.ClassRate]; got != (reports.Tolerance{Absolute: 0.01}) {
		t.Errorf("rate class %+v", got)
	}
	// A figure the file does not name takes its class's tolerance, then the default.
	if got := tol.For("ping_rtt p99", "seconds"); got != (reports.Tolerance{Relative: 0.5, Absolute: 0.005}) {
		t.Errorf("ping_rtt p99 %+v", got)
	}
	if got := tol.For("false_disconnects", "count"); got != reports.DefaultTolerances[reports.ClassCount] {
		t.Errorf("false_disconnects %+v", got)
	}
}

// TestGateOtherScenariosSLOs: one gate file serves several scenarios; an SLO of another one, named
// as the catalogue names it, is no error, and its absolute part is still read in its unit.
func TestGateOtherScenariosSLOs(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		ok   bool
	}{
		{"metrics:\n  recovery_time max: {absolute: 2s}\n", true},
		{"metrics:\n  close_codes{1006} count: {absolute: 3}\n", true},
		{"metrics:\n  close_codes{1006} count [viewers]: {absolute: 3}\n", true},
		{"metrics:\n  recovery_time p12: {absolute: 2s}\n", false},
		{"metrics:\n  recovery_time max: {absolute: 2KiB}\n", false},
		{"metrics:\n  close_codes count: {absolute: 3}\n", false},
	} {
		g, err := ParseGate("gate.yaml", []byte(tc.yaml))
		if err == nil {
			_, err = g.Tolerances(gateRun())
		}
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v, want ok %v", tc.yaml, err, tc.ok)
		}
	}
}

func TestParseGateEmptyIsDefaults(t *testing.T) {
	for _, data := range []string{"", "# nothing yet\n"} {
		g, err := ParseGate("gate.yaml", []byte(data))
		if err != nil {
			t.Fatalf("%q: %v", data, err)
		}
		if tol, err := g.Tolerances(gateRun()); err != nil || tol.ByName != nil || tol.ByClass != nil || !g.FailOnSLO() {
			t.Errorf("%q: %+v %v", data, tol, err)
		}
	}
}

func TestGateErrors(t *testing.T) {
	g, err := LoadGate("testdata/gate/bad.yaml")
	if err == nil {
		t.Fatalf("accepted %+v", g)
	}
	want := []string{
		`scenarios: testdata/gate/bad.yaml:1:7: slos: unknown value "sometimes" (want fail or ignore)`,
		`scenarios: testdata/gate/bad.yaml:3:3: classes.latncy: unknown class "latncy" (want count, latency, memory, rate or throughput)`,
		`scenarios: testdata/gate/bad.yaml:4:22: classes.memory.absolute: want a number in bytes such as 16KiB, got "4 parsecs" (the figure is in bytes)`,
		`scenarios: testdata/gate/bad.yaml:6:34: metrics.fanout_latency p99.relative: want a fraction such as 25% or 0.25, got "lots"`,
		`scenarios: testdata/gate/bad.yaml:7:16: metrics.error_rate.absolut: unknown field "absolut" (did you mean "absolute"?)`,
	}
	if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", err, strings.Join(want, "\n"))
	}

	g, err = LoadGate("testdata/gate/unknown-metric.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.Tolerances(gateRun())
	var es Errors
	if !errors.As(err, &es) || len(es) != 2 {
		t.Fatalf("err %v, want two problems", err)
	}
	if es[0].Line != 3 || !strings.Contains(es[0].Error(), `metrics.fanot_p99: "fanot_p99" is neither an SLO of smoke, nor a headline figure, nor a metric and aggregation of the catalogue (want `) {
		t.Errorf("unknown metric: %v", es[0])
	}
	if es[1].Line != 4 || !strings.Contains(es[1].Error(), `metrics.connect_time p99.absolute: want a Go duration such as 45s or 250ms, got "2KiB" (the figure is in seconds)`) {
		t.Errorf("wrong unit: %v", es[1])
	}
}

// FuzzParseGate feeds arbitrary bytes to the gate decoder: it must never panic, every problem must
// be an *Error naming the file, and a gate it accepts must resolve against a run or say why not.
func FuzzParseGate(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/gate/*.yaml")
	seeds = append(seeds, "../ci/gate.yaml")
	for _, p := range seeds {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("metrics: {a: {relative: 1e400}}"))
	f.Add([]byte("classes: &a {latency: *a}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := ParseGate("fuzz.yaml", data)
		if err != nil {
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error %T %v is not a non-empty Errors", err, err)
			}
			for _, e := range es {
				if e.File != "fuzz.yaml" || e.Msg == "" {
					t.Fatalf("bad error %#v", e)
				}
			}
			return
		}
		if _, err := g.Tolerances(gateRun()); err != nil {
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("Tolerances error %T %v is not a non-empty Errors", err, err)
			}
		}
	})
}
