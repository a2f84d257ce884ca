package scenarios

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/name, rewriting it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestInvalidFiles loads every broken file under testdata/invalid and compares the complete error
// report with its golden file: each file holds one class of error (some several instances of it),
// and every problem in it must be reported, with its line.
func TestInvalidFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			s, err := Load(f)
			if err == nil {
				t.Fatalf("loaded %s without error: %+v", f, s)
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error is %T, want Errors", err)
			}
			for _, e := range es {
				if e.File != f {
					t.Errorf("error names file %q, want %q: %v", e.File, f, e)
				}
				if e.Line == 0 && name != "empty" {
					t.Errorf("error without a line: %v", e)
				}
			}
			golden(t, "invalid/"+name+".golden", []byte(err.Error()+"\n"))
		})
	}
}

// TestLibraryFilesLoad checks every scenario shipped in this folder.
func TestLibraryFilesLoad(t *testing.T) {
	files, _ := filepath.Glob("*.yaml")
	if len(files) < 2 {
		t.Fatalf("found %d scenario files, want at least smoke and escalation-91847", len(files))
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			s, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.TrimSuffix(f, ".yaml"); s.Name != want {
				t.Errorf("name %q, want the file name %q", s.Name, want)
			}
			if len(s.SLOs) == 0 {
				t.Error("no SLOs: a library scenario must grade something")
			}
			data, _ := os.ReadFile(f)
			if !bytes.HasPrefix(data, []byte("# ")) {
				t.Error("no header comment saying what the scenario reproduces and grades")
			}
		})
	}
}

func TestValidateFiles(t *testing.T) {
	var out bytes.Buffer
	if !ValidateFiles([]string{"smoke.yaml"}, &out) {
		t.Fatalf("smoke.yaml invalid:\n%s", &out)
	}
	if !strings.HasPrefix(out.String(), "ok smoke.yaml (smoke: 200 clients") {
		t.Errorf("output %q", &out)
	}
	out.Reset()
	if ValidateFiles([]string{"smoke.yaml", "testdata/invalid/event-after-end.yaml", "testdata/missing.yaml"}, &out) {
		t.Fatal("ok for invalid files")
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 { // ok line, two timeline problems, unreadable file
		t.Fatalf("got %d lines, want 4:\n%s", len(lines), &out)
	}
	if !strings.Contains(lines[3], "testdata/missing.yaml: cannot read") {
		t.Errorf("missing file reported as %q", lines[3])
	}
}

const minimal = `
name: minimal
cohorts:
  - name: users
    count: 10
phases:
  - {kind: ramp, rate: 10}
  - {kind: hold, duration: 10s}
`

func TestParseFillsDefaults(t *testing.T) {
	s, err := Parse("minimal.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	c := s.Cohorts[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"time_scale", s.TimeScale, 1.0},
		{"model", s.Model.Kind, ModelClosed},
		{"nodes", s.Target.Nodes, 1},
		{"heartbeat_interval", s.Target.HeartbeatInterval, 30 * time.Second},
		{"heartbeat_timeout", s.Target.HeartbeatTimeout, 60 * time.Second},
		{"accept_rate", s.Target.AcceptRate, 2000.0},
		{"source_ips", c.SourceIPs, DefaultSourceIPs},
		{"rooms.per_client", c.Behaviour.Rooms.PerClient, 1},
		{"rooms.prefix", c.Behaviour.Rooms.Prefix, "room-"},
		{"tabs_per_user", c.Behaviour.TabsPerUser, 1},
		{"reconnect.policy", c.Behaviour.Reconnect.Policy, PolicyBackoff},
		{"reconnect.initial", c.Behaviour.Reconnect.Initial, time.Second},
		{"reconnect.multiplier", c.Behaviour.Reconnect.Multiplier, 1.5},
		{"reconnect.max", c.Behaviour.Reconnect.Max, 30 * time.Second},
		{"reconnect.max_attempts", c.Behaviour.Reconnect.MaxAttempts, 7},
		{"exit.kind", c.Behaviour.Exit.Kind, ExitClose},
		{"phase name", s.Phases[1].Name, "hold"},
		{"schedule_lag_bound", s.ScheduleLagBound, DefaultScheduleLagBound},
		{"duration", s.Duration(), 11 * time.Second},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestParseShorthandsAnchorsAndMerges(t *testing.T) {
	src := `
name: shorthand
model: closed
behaviours:
cohorts:
  - name: a
    count: 10
    behaviour: &base
      reconnect: constant
      exit: tab-close
      send_interval: 1s
  - name: b
    count: 10
    behaviour:
      <<: *base
      reconnect: {policy: ladder, steps: [0s, 500ms]}
  - name: c
    count: 10
    behaviour: *base
phases:
  - {kind: ramp, rate: 10}
  - {kind: hold, duration: 10s}
slos:
  - {metric: ping_rtt, bound: "<= 250ms"}
  - {metric: close_codes, label: 1006, bound: "< 2/s", agg: rate}
`
	// "behaviours:" is a typo on purpose: strictness must catch it even when empty.
	_, err := Parse("s.yaml", []byte(src))
	if err == nil || !strings.Contains(err.Error(), `scenarios: s.yaml:4:1: behaviours: unknown field "behaviours"`) {
		t.Fatalf("want the unknown field reported, got %v", err)
	}
	s, err := Parse("s.yaml", []byte(strings.Replace(src, "behaviours:\n", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := s.Cohorts[0].Behaviour, s.Cohorts[1].Behaviour, s.Cohorts[2].Behaviour
	if a.Reconnect.Policy != PolicyConstant || a.Reconnect.MaxAttempts != 100 || a.Exit.Kind != ExitTabClose {
		t.Errorf("shorthands: %+v %+v", a.Reconnect, a.Exit)
	}
	if b.Reconnect.Policy != PolicyLadder || len(b.Reconnect.Steps) != 2 || b.Reconnect.Steps[1] != 500*time.Millisecond {
		t.Errorf("merge override: %+v", b.Reconnect)
	}
	if b.Exit.Kind != ExitTabClose || b.SendInterval != time.Second {
		t.Errorf("merged fields lost: %+v", b)
	}
	if c.SendInterval != time.Second || c.Reconnect.Policy != PolicyConstant {
		t.Errorf("alias: %+v", c)
	}
	if o := s.SLOs[0]; o.Agg != AggP99 || o.Bound != (Bound{Op: OpLE, Value: 0.25, text: "<= 250ms"}) {
		t.Errorf("slo 0: %+v", o)
	}
	if o := s.SLOs[1]; o.Label != "1006" || o.Key() != "close_codes:1006" || o.Bound.Value != 2 || o.Name != "close_codes{1006} rate" {
		t.Errorf("slo 1: %+v", o)
	}
}

func TestOptionsOverrideTheFile(t *testing.T) {
	src := minimal + "time_scale: 0.5\ntarget: {flaws: [no-drain]}\n"
	s, err := Parse("m.yaml", []byte(src), WithTimeScale(0.1), WithFlaws([]string{"leak-on-error"}), WithOut("/tmp/out"))
	if err != nil {
		t.Fatal(err)
	}
	if s.TimeScale != 0.1 || s.Phases[1].Duration != time.Second || s.Target.HeartbeatInterval != 3*time.Second {
		t.Errorf("time scale 0.1 not applied: scale %v hold %v heartbeat %v", s.TimeScale, s.Phases[1].Duration, s.Target.HeartbeatInterval)
	}
	if len(s.Target.Flaws) != 1 || s.Target.Flaws[0] != "leak-on-error" || s.Out != "/tmp/out" {
		t.Errorf("flaws %v out %q", s.Target.Flaws, s.Out)
	}
	// Without overrides the file's time scale applies.
	if s, err := Parse("m.yaml", []byte(src)); err != nil || s.Phases[1].Duration != 5*time.Second {
		t.Errorf("file time scale: %v %v", s, err)
	}
	// A bad override names the flag, not a line of the file.
	_, err = Parse("m.yaml", []byte(src), WithFlaws([]string{"no-such"}), WithTimeScale(-1))
	want := []string{
		`scenarios: m.yaml: time_scale: -1 is not a time scale (want a factor above 0, at most 1000; 0.1 runs ten times faster) (set by --time-scale)`,
		`scenarios: m.yaml: target.flaws[0]: unknown flaw "no-such" (want no-server-ping, leak-on-error, no-presence-leave, no-seq-order, no-conn-limit, unbounded-history, no-auth-cache or no-drain) (set by --flaw)`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("got\n%v\nwant\n%s", err, strings.Join(want, "\n"))
	}
	// --time-scale 0 is an error, not "the default".
	if _, err := Parse("m.yaml", []byte(src), WithTimeScale(0)); err == nil || !strings.Contains(err.Error(), "time_scale: 0 is not a time scale") {
		t.Errorf("time scale 0: %v", err)
	}
	// --flaw against a URL target.
	_, err = Parse("u.yaml", []byte(minimal+"target: {url: ws://127.0.0.1:8080/ws}\n"), WithFlaws([]string{"no-drain"}))
	if err == nil || !strings.Contains(err.Error(), "target.flaws: applies to the embedded gateway only") || !strings.Contains(err.Error(), "(set by --flaw)") {
		t.Errorf("flaws on a URL target: %v", err)
	}
	// A scale that rounds a duration away is an error, not a silent zero.
	_, err = Parse("m.yaml", []byte(minimal+"settle: 1ns\n"), WithTimeScale(0.1))
	if err == nil || !strings.Contains(err.Error(), "settle: time_scale 0.1 shrinks this duration to nothing") {
		t.Errorf("vanishing duration: %v", err)
	}
}

func TestValidateGoBuiltScenario(t *testing.T) {
	s := &Scenario{
		Name:    "built",
		Cohorts: []Cohort{{Name: "u", Count: 5}},
		Phases:  []Phase{{Kind: PhaseHold, Duration: time.Second}},
		SLOs:    []SLO{{Metric: "ping_rtt", Agg: AggP99, Bound: Bound{Op: OpLT, Value: 0.1}}},
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("valid Go-built scenario: %v", err)
	}
	s.SLOs = append(s.SLOs, SLO{Metric: "ping_rtt", Agg: AggP99})
	s.Cohorts[0].Count = -1
	err := s.Validate()
	want := "scenarios: cohorts[0].count: negative count -1 (want 0 or more clients)\n" +
		"scenarios: cohorts: no clients at all (every count is 0)\n" +
		`scenarios: slos[1].bound: missing (want a comparison such as "<= 45s" or "== 0")`
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

func TestCatches(t *testing.T) {
	s, err := Load("escalation-91847.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"leak-on-error", "no-conn-limit", "no-presence-leave", "no-seq-order", "no-server-ping"}
	if got := s.Catches(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("catches %v, want %v", got, want)
	}
	idx := s.SLOsCatching("no-seq-order")
	if len(idx) != 1 || s.SLOs[idx[0]].Metric != "ordering_violations" {
		t.Errorf("SLOs catching no-seq-order: %v", idx)
	}
}

// TestTargetURLs: urls lists the nodes of one gateway, on any host; url and urls exclude each
// other.
func TestTargetURLs(t *testing.T) {
	src := minimal + "target: {urls: [\"ws://10.9.0.2:8080/ws\", \"wss://gw.example:443/ws\"]}\n"
	s, err := Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if s.Target.Embedded() || len(s.Target.Addresses()) != 2 {
		t.Errorf("target %+v", s.Target)
	}
	_, err = Parse("t.yaml", []byte(minimal+"target: {url: \"ws://127.0.0.1:1/ws\", urls: [\"ws://127.0.0.1:2/ws\"]}\n"))
	if err == nil || !strings.Contains(err.Error(), "url and urls exclude each other") {
		t.Errorf("url and urls: %v", err)
	}
}
