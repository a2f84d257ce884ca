package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/squall-dev/squall/reports"
)

// scenarioDir holds the scenario library, seen from this package.
var scenarioDir = filepath.Join("..", "..", "scenarios")

// TestValidate shows that `loadgen validate` accepts the library and rejects each kind of broken
// file with file:line and a message, exit code 2. Output in testdata/validate.golden (-update).
func TestValidate(t *testing.T) {
	invalid := func(name string) string { return filepath.Join(scenarioDir, "testdata", "invalid", name+".yaml") }
	tests := []struct {
		name  string
		files []string
		code  int
	}{
		{"the library", []string{filepath.Join(scenarioDir, "smoke.yaml"), filepath.Join(scenarioDir, "escalation-91847.yaml")}, exitOK},
		{"unknown field", []string{invalid("unknown-field")}, exitUsage},
		{"bad duration", []string{invalid("bad-duration")}, exitUsage},
		{"SLO on an unknown metric", []string{invalid("unknown-metric")}, exitUsage},
		{"timeline event after the end", []string{invalid("event-after-end")}, exitUsage},
		{"one bad file among good ones", []string{filepath.Join(scenarioDir, "smoke.yaml"), invalid("bad-duration")}, exitUsage},
		{"missing file", []string{filepath.Join(scenarioDir, "no-such.yaml")}, exitUsage},
		{"no file", nil, exitUsage},
	}
	var golden strings.Builder
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(context.Background(), append([]string{"validate"}, tc.files...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s%s", code, tc.code, stdout, stderr)
			}
			if tc.code != exitOK && len(tc.files) > 0 && !strings.Contains(stdout, ".yaml:") {
				t.Errorf("no file:line in the report:\n%s", stdout)
			}
			golden.WriteString("== " + tc.name + "\n" + stdout + stderr)
		})
	}
	checkGolden(t, filepath.Join("testdata", "validate.golden"), golden.String())
}

// TestRunScenarioBadInput: what `loadgen run FILE` refuses before starting anything, each with
// the exit code DESIGN §6 gives it. Output in testdata/run_bad_input.golden (-update).
func TestRunScenarioBadInput(t *testing.T) {
	smoke := filepath.Join(scenarioDir, "smoke.yaml")
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"invalid scenario", []string{"run", filepath.Join(scenarioDir, "testdata", "invalid", "unknown-field.yaml")}, exitUsage},
		{"missing file", []string{"run", "no-such.yaml"}, exitUsage},
		{"two files", []string{"run", smoke, smoke}, exitUsage},
		{"plan flag with a file", []string{"run", smoke, "--clients", "10"}, exitUsage},
		{"unknown flaw", []string{"run", smoke, "--flaw", "no-such-flaw"}, exitUsage},
		{"zero time scale", []string{"run", smoke, "--time-scale", "0"}, exitUsage},
		{"time scale without a file", []string{"run", "--time-scale", "0.5"}, exitUsage},
	}
	var golden strings.Builder
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(context.Background(), append(tc.args, "--out", t.TempDir())...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s%s", code, tc.code, stdout, stderr)
			}
			golden.WriteString("== " + tc.name + "\n" + stdout + stderr)
		})
	}
	checkGolden(t, filepath.Join("testdata", "run_bad_input.golden"), golden.String())
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	got = filepath.ToSlash(got)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (-update rewrites it):\n%s", path, got)
	}
}

// runScenarioCLI runs `loadgen run FILE ARGS...` into a temporary --out and reads the result back.
func runScenarioCLI(t *testing.T, file string, args ...string) (int, string, *reports.Result) {
	t.Helper()
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code, stdout, stderr := runCLI(ctx, append([]string{"run", file, "--out", out, "--progress", "plain"}, args...)...)
	res, err := reports.ReadJSON(filepath.Join(out, reports.FileName))
	if err != nil {
		t.Fatalf("exit %d, no result: %v\n%s%s", code, err, stdout, stderr)
	}
	checkRenderings(t, out, stdout)
	return code, stdout + stderr, res
}

// buildLoadgen builds this binary without the race detector, for runs whose latency SLOs must
// hold (a race-enabled generator is several times slower than the real one).
func buildLoadgen(ctx context.Context, t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "loadgen")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	build := exec.CommandContext(ctx, goBin, "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestRunSmokeScenario runs the scenario `make run` runs, at half its time scale, end to end with
// the binary as a user runs it: every SLO holds, the verdicts are in result.json and the table is
// printed. On a machine so busy that the run itself says its generator was saturated (schedule lag
// above the bound), the latency SLOs cannot be held against it: the delivery SLOs must still hold.
func TestRunSmokeScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs 200 clients for 7 s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := buildLoadgen(ctx, t)
	dir := t.TempDir()
	cmd := exec.CommandContext(ctx, bin, "run", filepath.Join(scenarioDir, "smoke.yaml"), "--time-scale", "0.5", "--out", dir, "--progress", "plain")
	outb, runErr := cmd.CombinedOutput()
	out := string(outb)
	res, err := reports.ReadJSON(filepath.Join(dir, reports.FileName))
	if err != nil {
		t.Fatalf("%v (run: %v)\n%s", err, runErr, out)
	}
	if res.StopReason != reports.StopCompleted || res.Scenario == nil || res.Scenario.Name != "smoke" || res.Scenario.TimeScale != 0.5 {
		t.Errorf("result: stop %q, scenario %+v", res.StopReason, res.Scenario)
	}
	if len(res.SLOs) != 9 {
		t.Fatalf("%d SLO verdicts in result.json, want 9\n%s", len(res.SLOs), out)
	}
	timing := map[string]bool{"connect_time": true, "fanout_latency": true, "schedule_lag": true}
	for _, v := range res.SLOs {
		if !v.Pass && (res.Reliable || !timing[v.Metric]) {
			t.Errorf("SLO %s: %s", v.Name, v.Detail)
		}
	}
	if !res.Reliable {
		t.Logf("machine saturated, latency SLOs not required: %s", res.UnreliableReason)
		return
	}
	if runErr != nil || !strings.Contains(out, "verdict: PASS (9 of 9 SLOs held)") || !strings.Contains(out, "result: ") {
		t.Errorf("run: %v, want exit 0 with the verdict table and the result path:\n%s", runErr, out)
	}
}

// TestRunScenarioBreach runs scenarios whose SLO holds on the clean gateway and breaks under the
// flaw it is about, each graded on numbers the run really has: exit 0, then 99 with the failing
// verdict in result.json and on the terminal.
func TestRunScenarioBreach(t *testing.T) {
	t.Setenv(beMain, "1") // the gateway node is this binary in a child process
	tests := []struct {
		file, flaw, slo, observed string
	}{
		// orphaned subscriptions come from the gateway's /metrics
		{"tab-close-leak.yaml", "leak-on-error", "orphaned_subscriptions last", "40"},
		// ghosts from the clients' presence tracker: never cleared
		{"tab-close-ghosts.yaml", "no-presence-leave", "ghost_presence_duration max", "never"},
	}
	for _, tc := range tests {
		t.Run(tc.flaw, func(t *testing.T) {
			file := filepath.Join("testdata", "scenarios", tc.file)
			code, out, _ := runScenarioCLI(t, file)
			if code != exitOK {
				t.Fatalf("clean gateway: exit %d, want 0\n%s", code, out)
			}
			code, out, res := runScenarioCLI(t, file, "--flaw", tc.flaw)
			if code != exitSLO {
				t.Fatalf("%s: exit %d, want 99\n%s", tc.flaw, code, out)
			}
			if len(res.SLOs) == 0 || res.SLOs[0].Pass || res.SLOs[0].NoData {
				t.Errorf("verdicts %+v: want the first failing on data", res.SLOs)
			}
			if got := res.Scenario.Flaws; len(got) != 1 || got[0] != tc.flaw {
				t.Errorf("result records flaws %v", got)
			}
			if !regexp.MustCompile(`FAIL +` + regexp.QuoteMeta(tc.slo) + ` .* ` + tc.observed + `\n`).MatchString(out) {
				t.Errorf("verdict table does not show %s failing at %s:\n%s", tc.slo, tc.observed, out)
			}
		})
	}
}
