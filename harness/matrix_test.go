package harness

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/squall-dev/squall/reports"
	"github.com/squall-dev/squall/scenarios"
)

// The flaw matrix: every scenario of the library runs against the clean gateway, where every SLO
// must hold, and against each flaw its SLOs name in `catches`, where at least one SLO naming that
// flaw must break on data (a breach "without data" does not count). Every flaw of the gateway must
// be caught by at least one scenario, unless matrixGaps names it with the reason (none today). The table is
// printed and kept in scenarios/README.md between the matrix markers (-update rewrites it).
//
// Each run is a subtest named after its cell, SCENARIO/clean or SCENARIO/FLAW, so that -run picks
// cells (the README and the every-flaw-caught check then need every cell): for example
// `go test -run 'TestFlawMatrix/(proxy-idle-timeout|reconnect-storm)/' ./harness`. The cells named
// in diagnosisChecks (diagnosis_test.go) also check what the run's diagnosis says, in their
// subtest "diagnosis".
//
// Knobs (environment):
//
//	SQUALL_MATRIX_REPEAT=N    run the clean column N times (a false alarm in any repeat fails)
//	SQUALL_MATRIX_PARALLEL=N  scenario runs at once (default 2; each run is its own processes)
//	SQUALL_MATRIX_ONLY=a,b    only these scenarios (by name; the README is then not compared)
//
// Load-dependent SLOs: on a shared 2-core machine a run's latencies and the generator's own
// schedule lag depend on what else runs. The clean check therefore tolerates a failing SLO on
// connect_time, ping_rtt, fanout_latency or schedule_lag only when the run itself says it was
// unreliable (result.json "reliable": false, the generator's schedule lag above its bound); a
// reliable run must hold them like every other SLO. Those metrics are never what a flaw is caught
// by (no SLO on them carries `catches`).

// matrixScale is the time scale every scenario runs at in the matrix, unless matrixScales names
// another for it.
const matrixScale = 0.1

// matrixScales are the scenarios that need another scale: smoke's 200 tabs each send every second
// in rooms of 50, which at 0.1 is 100 000 deliveries a second — an overload of this machine, not a
// smoke test (its delivery SLOs then break for real as slow consumers are cut). reconnect-storm's
// outage comes at 10 s: at 0.1 that is the very second the series' first interval closes, and
// recovery_time needs the connection count of an interval closed before the fault (on a loaded
// machine the tick came second, and the clean run had no data).
var matrixScales = map[string]float64{"smoke": 0.5, "reconnect-storm": 0.2}

// loadDependent are the metrics whose bound the clean check excuses on an unreliable run.
var loadDependent = map[string]bool{"connect_time": true, "ping_rtt": true, "fanout_latency": true, "schedule_lag": true}

// matrixGaps are flaws no scenario can catch yet, with what is missing. The test fails when a gap
// is caught after all (remove it here) or when any other flaw is not caught.
var matrixGaps = map[string]string{}

// matrixRun is one cell: a scenario against the clean gateway (flaw "") or one flaw.
type matrixRun struct {
	scenario string
	file     string
	flaw     string
	repeat   int
	scale    float64       // the time scale it runs at
	planned  time.Duration // the scenario's planned length at that scale

	res     *reports.Result
	code    int
	out     string
	elapsed time.Duration
	verdict string // pass, breach, FAIL (clean run breached), MISSED (flaw not caught), "not run" (-run left it out)
	why     string
}

func TestFlawMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every scenario against the clean gateway and each flaw it catches (about 4 minutes)")
	}
	repeat := envInt(t, "SQUALL_MATRIX_REPEAT", 1)
	parallel := envInt(t, "SQUALL_MATRIX_PARALLEL", 2)
	var only []string
	if s := os.Getenv("SQUALL_MATRIX_ONLY"); s != "" {
		only = strings.Split(s, ",")
	}

	files, err := filepath.Glob(filepath.Join(scenarioDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios in %s: %v", scenarioDir, err)
	}
	type entry struct {
		name    string
		file    string
		catches []string
		slos    []scenarios.SLO
		scale   float64
		planned time.Duration // at scale
	}
	var lib []entry
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), "scale-") {
			continue // capacity runs of 20 000 clients and more: make bench-scale runs them
		}
		s, err := scenarios.Load(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(only) > 0 && !slices.Contains(only, s.Name) {
			continue
		}
		for _, o := range s.SLOs {
			if loadDependent[o.Metric] && len(o.Catches) > 0 {
				t.Errorf("%s: SLO %s catches %v on a load-dependent metric: the matrix cannot excuse it", s.Name, o.Metric, o.Catches)
			}
		}
		scale := matrixScale
		if sc, ok := matrixScales[s.Name]; ok {
			scale = sc
		}
		scaled, err := scenarios.Load(f, scenarios.WithTimeScale(scale))
		if err != nil {
			t.Fatalf("%s at time scale %v: %v", f, scale, err)
		}
		lib = append(lib, entry{s.Name, f, s.Catches(), s.SLOs, scale, scaled.Duration()})
	}

	var runs []*matrixRun
	for _, e := range lib {
		for i := range repeat {
			runs = append(runs, &matrixRun{scenario: e.name, file: e.file, repeat: i, scale: e.scale, planned: e.planned})
		}
		for _, fl := range e.catches {
			runs = append(runs, &matrixRun{scenario: e.name, file: e.file, flaw: fl, scale: e.scale, planned: e.planned})
		}
	}
	for c := range diagnosisChecks {
		if !slices.ContainsFunc(runs, func(r *matrixRun) bool { return r.cell() == c }) && len(only) == 0 {
			t.Errorf("diagnosisChecks names %s --flaw %q, which is no cell of the matrix", c.scenario, c.flaw)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	bin := buildLoadgen(ctx, t)
	start := time.Now()
	// The longest runs start first, so that the matrix does not end on one long run alone.
	order := slices.Clone(runs)
	slices.SortStableFunc(order, func(a, b *matrixRun) int { return cmp.Compare(b.planned, a.planned) })
	sem := make(chan struct{}, max(parallel, 1))
	var wg sync.WaitGroup
	for _, r := range order {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			// Each cell is a subtest (SCENARIO/clean or SCENARIO/FLAW): -run picks cells, and the
			// subtests run at once, up to parallel of them (a subtest's time is its run's).
			t.Run(r.name(), func(t *testing.T) {
				r.run(ctx, t, bin)
				r.grade()
				if r.verdict == "FAIL" || r.verdict == "MISSED" {
					t.Errorf("%s: %s\n%s", r.label(), r.why, lastLines(r.out, 40))
				} else {
					t.Logf("%s: %s in %v (%s)", r.label(), r.verdict, r.elapsed.Round(100*time.Millisecond), r.why)
				}
				if check := diagnosisChecks[r.cell()]; check != nil {
					t.Run("diagnosis", func(t *testing.T) { check(t, r.res) })
				}
			})
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	caught := map[string][]string{}
	ran := 0
	for _, r := range runs {
		if r.verdict == "" {
			r.verdict = "not run"
		} else {
			ran++
		}
		if r.flaw != "" && r.verdict == "breach" {
			caught[r.flaw] = append(caught[r.flaw], r.scenario)
		}
	}
	complete := ran == len(runs) // -run picked every cell
	if len(only) == 0 && complete {
		for _, fl := range scenarios.KnownFlaws {
			gap, isGap := matrixGaps[fl]
			switch {
			case len(caught[fl]) == 0 && !isGap:
				t.Errorf("flaw %s is caught by no scenario", fl)
			case len(caught[fl]) > 0 && isGap:
				t.Errorf("flaw %s is caught by %v: remove it from matrixGaps", fl, caught[fl])
			case isGap:
				t.Logf("flaw %s: not caught (%s)", fl, gap)
			}
		}
	}

	// A step ramp's knee, from the first clean run of each scenario that ramps in steps.
	for _, r := range runs {
		if r.flaw != "" || r.repeat != 0 || r.res == nil {
			continue
		}
		s, err := scenarios.Load(r.file, scenarios.WithTimeScale(r.scale))
		if err != nil || !s.StepRamp() {
			continue
		}
		var b strings.Builder
		if err := scenarios.WriteSteps(&b, scenarios.StepRampOf(scenarios.Steps(s, r.res))); err != nil {
			t.Errorf("%s: steps: %v", r.label(), err)
		}
		fmt.Printf("%s, step by step:\n%s", r.label(), b.String())
	}

	names := make([]string, 0, len(lib))
	for _, e := range lib {
		names = append(names, e.name)
	}
	table := matrixTable(names, runs)
	fmt.Printf("flaw matrix (time scale %v, %d of %d runs, %d at once, clean runs x%d): %v\n%s",
		matrixScale, ran, len(runs), parallel, repeat, elapsed.Round(time.Second), table)
	t.Logf("flaw matrix: %d runs in %v", ran, elapsed.Round(time.Second))
	if len(only) == 0 && complete && !t.Failed() {
		checkReadmeMatrix(t, filepath.Join(scenarioDir, "README.md"), table)
	}
}

// matrixCell names a cell of the matrix: a scenario against the clean gateway (flaw "") or a flaw.
type matrixCell struct{ scenario, flaw string }

func (r *matrixRun) cell() matrixCell { return matrixCell{r.scenario, r.flaw} }

// name is the run's subtest name: SCENARIO/clean (SCENARIO/clean-N for the Nth repeat) or
// SCENARIO/FLAW.
func (r *matrixRun) name() string {
	switch {
	case r.flaw != "":
		return r.scenario + "/" + r.flaw
	case r.repeat > 0:
		return fmt.Sprintf("%s/clean-%d", r.scenario, r.repeat+1)
	}
	return r.scenario + "/clean"
}

func (r *matrixRun) label() string {
	s := r.scenario + " clean"
	if r.flaw != "" {
		s = r.scenario + " --flaw " + r.flaw
	} else if r.repeat > 0 {
		s += fmt.Sprintf(" (repeat %d)", r.repeat+1)
	}
	return s
}

// run executes `loadgen run FILE --time-scale S --flaw F` and reads its result.
func (r *matrixRun) run(ctx context.Context, t *testing.T, bin string) {
	dir := t.TempDir()
	rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(rctx, bin, "run", r.file, "--time-scale", strconv.FormatFloat(r.scale, 'g', -1, 64),
		"--flaw", r.flaw, "--out", dir, "--progress", "none")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	r.elapsed = time.Since(start)
	r.out = string(out)
	r.code = 0
	if err != nil {
		r.code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		}
	}
	if res, err := reports.ReadJSON(filepath.Join(dir, reports.FileName)); err == nil {
		r.res = res
	}
}

// grade sets the run's verdict by the matrix's rules (see the top of this file).
func (r *matrixRun) grade() {
	if r.res == nil || r.res.StopReason != reports.StopCompleted || (r.code != scenarios.ExitOK && r.code != scenarios.ExitBreach) {
		r.verdict, r.why = "FAIL", fmt.Sprintf("the run did not complete (exit %d)", r.code)
		if r.flaw != "" {
			r.verdict = "MISSED"
		}
		return
	}
	s, err := scenarios.Load(r.file)
	if err != nil || len(s.SLOs) != len(r.res.SLOs) {
		r.verdict, r.why = "FAIL", fmt.Sprintf("verdicts do not match the scenario's SLOs (%v)", err)
		return
	}
	if r.flaw == "" {
		var bad, excused []string
		for i, v := range r.res.SLOs {
			switch {
			case v.Pass:
			case loadDependent[s.SLOs[i].Metric] && !r.res.Reliable:
				excused = append(excused, v.Name)
			default:
				bad = append(bad, v.Name+": "+v.Detail)
			}
		}
		if len(bad) > 0 {
			r.verdict, r.why = "FAIL", "clean gateway breached "+strings.Join(bad, "; ")
			return
		}
		r.verdict, r.why = "pass", "every SLO held"
		if len(excused) > 0 {
			r.why = fmt.Sprintf("every bug SLO held; %s excused: the run was unreliable (%s)", strings.Join(excused, ", "), r.res.UnreliableReason)
		}
		return
	}
	var hit []string
	for i, v := range r.res.SLOs {
		if !v.Pass && !v.NoData && slices.Contains(s.SLOs[i].Catches, r.flaw) {
			hit = append(hit, v.Name+" ("+v.Detail+")")
		}
	}
	if len(hit) == 0 {
		r.verdict, r.why = "MISSED", "no SLO that catches "+r.flaw+" broke"
		return
	}
	r.verdict, r.why = "breach", strings.Join(hit, "; ")
}

// matrixTable renders scenario × (clean, each flaw) as a Markdown table: "pass", "breach", "FAIL"
// (clean run breached), "MISSED" (a flaw the scenario claims went unnoticed), "not run" (-run left
// the cell out), "·" (not targeted).
// A cell holds the worst verdict of its runs (repeats of the clean run).
func matrixTable(names []string, runs []*matrixRun) string {
	cols := append([]string{""}, scenarios.KnownFlaws...)
	var b strings.Builder
	b.WriteString("| scenario | clean |")
	for _, c := range cols[1:] {
		b.WriteString(" " + c + " |")
	}
	b.WriteString("\n| --- |")
	for range cols {
		b.WriteString(" --- |")
	}
	b.WriteString("\n")
	rank := map[string]int{"": 0, "not run": 0, "pass": 1, "breach": 1, "FAIL": 2, "MISSED": 2}
	for _, n := range names {
		b.WriteString("| " + n + " |")
		for _, c := range cols {
			cell := ""
			for _, r := range runs {
				if r.scenario == n && r.flaw == c && rank[r.verdict] >= rank[cell] {
					cell = r.verdict
				}
			}
			if cell == "" {
				cell = "·"
			}
			b.WriteString(" " + cell + " |")
		}
		b.WriteString("\n")
	}
	return b.String()
}

const matrixBegin, matrixEnd = "<!-- flaw-matrix:begin (TestFlawMatrix -update rewrites) -->\n", "<!-- flaw-matrix:end -->"

// checkReadmeMatrix compares the README's copy of the table with the computed one (-update writes it).
func checkReadmeMatrix(t *testing.T, path, table string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	before, rest, ok1 := strings.Cut(doc, matrixBegin)
	got, after, ok2 := strings.Cut(rest, matrixEnd)
	if !ok1 || !ok2 {
		t.Fatalf("%s has no flaw matrix between %q and %q", path, strings.TrimSpace(matrixBegin), matrixEnd)
	}
	if *update {
		if err := os.WriteFile(path, []byte(before+matrixBegin+table+matrixEnd+after), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got != table {
		t.Errorf("%s's flaw matrix differs from the computed one (-update rewrites it):\nREADME:\n%s\ncomputed:\n%s", path, got, table)
	}
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

func lastLines(s string, lines int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}
