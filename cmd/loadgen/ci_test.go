package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/squall-dev/squall/reports"
	"github.com/squall-dev/squall/scenarios"
)

// repoRoot is the repository, from this package's directory.
var repoRoot = filepath.Join("..", "..")

// ciJob is one job of an example pipeline as it runs for one matrix entry: its shell lines with
// the matrix's values in place.
type ciJob struct {
	pipeline string            // file, for messages
	name     string            // job, and the matrix entry
	vars     map[string]string // the matrix entry
	lines    []string
}

// TestCIPipelines parses the example pipelines under ci/ and checks that every command they call
// exists: each `make` target in the Makefile, each `loadgen` command in loadgen's command tree with
// flags it accepts and arguments its validation takes; that the files they name exist and read (the
// scenario at its time scale, the baseline, the gate file); that every baseline was made by the
// scenario at the time scale it is gated at (a fresh run will not be refused as another plan); and
// that both pipelines and the Makefile's CI_SCENARIOS list the same set.
func TestCIPipelines(t *testing.T) {
	makeTargets, makeSet := makefile(t)
	var jobs []ciJob
	jobs = append(jobs, githubJobs(t, filepath.Join(repoRoot, "ci", "github", "squall.yml"))...)
	jobs = append(jobs, gitlabJobs(t, filepath.Join(repoRoot, "ci", "gitlab", ".gitlab-ci.yml"))...)

	sets := map[string][]string{"Makefile CI_SCENARIOS": makeSet}
	for _, j := range jobs {
		t.Run(j.pipeline+"/"+j.name, func(t *testing.T) {
			var runs, gated []string // plans run and plans of the baselines gated against, as NAME:SCALE
			outs := map[string]bool{}
			for _, line := range j.lines {
				for _, args := range commands(line) {
					switch filepath.Base(args[0]) {
					case "make":
						for _, a := range args[1:] {
							if !strings.HasPrefix(a, "-") && !strings.Contains(a, "=") && !slices.Contains(makeTargets, a) {
								t.Errorf("%q: make has no target %q (targets: %s)", line, a, strings.Join(makeTargets, ", "))
							}
						}
					case "loadgen":
						kind, plan, out, errs := checkLoadgen(line, args[1:], outs)
						for _, e := range errs {
							t.Error(e)
						}
						switch kind {
						case "run":
							runs = append(runs, plan)
							outs[out] = true
						case "gate":
							gated = append(gated, plan)
						}
					}
				}
			}
			if !slices.Equal(gated, runs) {
				t.Errorf("the job runs %v and gates against baselines of %v: make the baselines with the same scenario and time scale (make ci-baselines)", runs, gated)
			}
			if len(runs) != 1 {
				t.Errorf("%d loadgen runs in the job, want one", len(runs))
			}
			sets[j.pipeline] = append(sets[j.pipeline], runs...)
		})
	}
	for name, set := range sets {
		slices.Sort(set)
		if want := slices.Sorted(slices.Values(makeSet)); !slices.Equal(set, want) {
			t.Errorf("%s runs %v, the Makefile's CI_SCENARIOS %v: keep them the same set", name, set, want)
		}
	}
	if len(sets) != 3 {
		t.Errorf("pipelines found: %v", slices.Collect(func(yield func(string) bool) {
			for k := range sets {
				if !yield(k) {
					return
				}
			}
		}))
	}
}

// checkLoadgen checks one loadgen command line: the command and its flags exist, its arguments
// pass its validation, and the files it names read. It returns what the command is ("run" or
// "gate"), the plan it runs or its baseline was made with ("NAME:SCALE"), a run's --out directory,
// and every problem found. A gate must read a result a run of the job wrote (outs).
func checkLoadgen(line string, args []string, outs map[string]bool) (kind, plan, out string, errs []string) {
	fail := func(format string, a ...any) {
		errs = append(errs, fmt.Sprintf("%q: ", line)+fmt.Sprintf(format, a...))
	}
	root := newRoot(&env{stdout: io.Discard, stderr: io.Discard})
	cmd, rest, err := root.Find(args)
	if err != nil || cmd == root {
		fail("no loadgen command %q", strings.Join(args, " "))
		return
	}
	if err := cmd.ParseFlags(rest); err != nil {
		fail("loadgen %s: %v", cmd.Name(), err)
		return
	}
	pos := cmd.Flags().Args()
	if err := cmd.ValidateArgs(pos); err != nil {
		fail("loadgen %s: %v", cmd.Name(), err)
		return
	}
	flag := func(name string) string { return cmd.Flags().Lookup(name).Value.String() }
	inRepo := func(p string) string { return filepath.Join(repoRoot, p) }
	planOf := func(name string, scale float64) string { return name + ":" + strconv.FormatFloat(scale, 'g', -1, 64) }
	kind = cmd.Name()
	switch kind {
	case "run":
		if len(pos) != 1 {
			fail("the example runs one scenario file")
			return
		}
		scale, err := strconv.ParseFloat(flag("time-scale"), 64)
		if err != nil || scale <= 0 {
			fail("--time-scale %q", flag("time-scale"))
			return
		}
		s, err := scenarios.Load(inRepo(pos[0]), scenarios.WithTimeScale(scale))
		if err != nil {
			fail("%v", err)
			return
		}
		return kind, planOf(s.Name, scale), filepath.Clean(flag("out")), errs
	case "gate":
		if !outs[filepath.Dir(filepath.Clean(pos[0]))] || filepath.Base(pos[0]) != reports.FileName {
			fail("gates %s, which no run of the job writes", pos[0])
		}
		base, err := reports.ReadJSON(inRepo(flag("baseline")))
		if err != nil {
			fail("baseline: %v (make it with `make ci-baselines`)", err)
			return
		}
		if base.StopReason != reports.StopCompleted || slices.ContainsFunc(base.SLOs, func(v reports.SLOVerdict) bool { return !v.Pass }) {
			fail("baseline %s did not complete with every SLO held", flag("baseline"))
		}
		if c := flag("config"); c != "" {
			g, err := scenarios.LoadGate(inRepo(c))
			if err == nil {
				_, err = g.Tolerances(base)
			}
			if err != nil {
				fail("%v", err)
			}
		}
		if base.Scenario == nil {
			fail("baseline %s is not a scenario's run", flag("baseline"))
			return
		}
		return kind, planOf(base.Scenario.Name, base.Scenario.TimeScale), "", errs
	case "report":
		if !outs[filepath.Dir(filepath.Clean(pos[0]))] {
			fail("renders %s, which no run of the job writes", pos[0])
		}
		if b := flag("baseline"); b != "" {
			if _, err := os.Stat(inRepo(b)); err != nil {
				fail("baseline: %v", err)
			}
		}
	}
	return kind, "", "", errs
}

// commands splits a shell line into its simple commands (at ||, &&, ; and |), each as words; a
// word in quotes keeps its spaces.
func commands(line string) [][]string {
	var out [][]string
	var words []string
	var cur strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	end := func() {
		flush()
		if len(words) > 0 {
			out = append(out, words)
		}
		words = nil
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\'' || c == '"':
			j := strings.IndexByte(line[i+1:], c)
			if j < 0 {
				j = len(line) - i - 1
			}
			cur.WriteString(line[i+1 : i+1+j])
			inWord = true
			i += j + 1
		case c == ' ' || c == '\t':
			flush()
		case c == '|' || c == '&' || c == ';':
			end()
			if i+1 < len(line) && line[i+1] == c {
				i++
			}
		case c == '#' && !inWord:
			end()
			return out
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	end()
	return out
}

// makefile returns the Makefile's targets and its CI_SCENARIOS.
func makefile(t *testing.T) (targets, ciSet []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^([a-z][a-z0-9-]*):`).FindAllStringSubmatch(string(b), -1) {
		targets = append(targets, m[1])
	}
	m := regexp.MustCompile(`(?m)^CI_SCENARIOS\s*\?=\s*(.+)$`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatal("the Makefile has no CI_SCENARIOS")
	}
	return targets, strings.Fields(m[1])
}

// shellLines splits a script into lines, joining those continued with a backslash.
func shellLines(script string) []string {
	var out []string
	acc := ""
	for _, l := range strings.Split(script, "\n") {
		if s, ok := strings.CutSuffix(strings.TrimRight(l, " "), "\\"); ok {
			acc += s + " "
			continue
		}
		if l = strings.TrimSpace(acc + l); l != "" {
			out = append(out, l)
		}
		acc = ""
	}
	return out
}

var ghExpr = regexp.MustCompile(`\$\{\{\s*([^}]*?)\s*\}\}`)

// githubJobs reads a GitHub Actions workflow: every job's run steps, once per matrix entry.
func githubJobs(t *testing.T, path string) []ciJob {
	t.Helper()
	var wf struct {
		Jobs map[string]struct {
			Strategy struct {
				Matrix struct {
					Include []map[string]string `yaml:"include"`
				} `yaml:"matrix"`
			} `yaml:"strategy"`
			Steps []struct {
				Uses string `yaml:"uses"`
				Run  string `yaml:"run"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	readYAML(t, path, &wf)
	if len(wf.Jobs) == 0 {
		t.Fatalf("%s: no jobs", path)
	}
	var out []ciJob
	for name, job := range wf.Jobs {
		entries := job.Strategy.Matrix.Include
		if len(entries) == 0 {
			entries = []map[string]string{{}}
		}
		for _, vars := range entries {
			j := ciJob{pipeline: "github", name: fmt.Sprintf("%s%v", name, vars), vars: vars}
			for _, st := range job.Steps {
				for _, l := range shellLines(st.Run) {
					j.lines = append(j.lines, ghExpr.ReplaceAllStringFunc(l, func(e string) string {
						key := ghExpr.FindStringSubmatch(e)[1]
						if v, ok := vars[strings.TrimPrefix(key, "matrix.")]; ok && strings.HasPrefix(key, "matrix.") {
							return v
						}
						return e
					}))
				}
			}
			out = append(out, j)
		}
	}
	return out
}

var glVar = regexp.MustCompile(`\$\{?([A-Z_][A-Z0-9_]*)\}?`)

// gitlabJobs reads a GitLab CI file: every job's script, once per combination of its parallel
// matrix.
func gitlabJobs(t *testing.T, path string) []ciJob {
	t.Helper()
	var doc map[string]any
	readYAML(t, path, &doc)
	var out []ciJob
	for name, v := range doc {
		job, ok := v.(map[string]any)
		if !ok || job["script"] == nil {
			continue
		}
		var script []string
		for _, key := range []string{"script", "after_script"} {
			lines, _ := job[key].([]any)
			for _, l := range lines {
				script = append(script, fmt.Sprint(l))
			}
		}
		combos := []map[string]string{{}}
		if par, ok := job["parallel"].(map[string]any); ok {
			combos = nil
			for _, entry := range par["matrix"].([]any) {
				combos = append(combos, expand(entry.(map[string]any))...)
			}
		}
		for _, vars := range combos {
			j := ciJob{pipeline: "gitlab", name: fmt.Sprintf("%s%v", name, vars), vars: vars}
			for _, l := range script {
				for _, sl := range shellLines(l) {
					j.lines = append(j.lines, glVar.ReplaceAllStringFunc(sl, func(e string) string {
						if v, ok := vars[glVar.FindStringSubmatch(e)[1]]; ok {
							return v
						}
						return e
					}))
				}
			}
			out = append(out, j)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no job with a script", path)
	}
	return out
}

// expand is the cartesian product of one parallel:matrix entry (a value may be a list).
func expand(entry map[string]any) []map[string]string {
	out := []map[string]string{{}}
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range entry {
			if !yield(k) {
				return
			}
		}
	}) {
		var vals []string
		switch v := entry[k].(type) {
		case []any:
			for _, x := range v {
				vals = append(vals, fmt.Sprint(x))
			}
		default:
			vals = []string{fmt.Sprint(v)}
		}
		var next []map[string]string
		for _, m := range out {
			for _, val := range vals {
				c := map[string]string{k: val}
				for kk, vv := range m {
					c[kk] = vv
				}
				next = append(next, c)
			}
		}
		out = next
	}
	return out
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestCheckLoadgen shows that the pipeline check refuses what does not exist.
func TestCheckLoadgen(t *testing.T) {
	for _, tc := range []struct {
		line, want string
	}{
		{"bin/loadgen gate out/x/result.json --baselin ci/baselines/smoke.json", "unknown flag: --baselin"},
		{"bin/loadgen gates out/x/result.json", `no loadgen command "gates out/x/result.json"`},
		{"bin/loadgen run scenarios/nope.yaml --time-scale 0.1 --out out/x", "cannot read"},
		{"bin/loadgen run scenarios/smoke.yaml --time-scale fast --out out/x", `invalid argument "fast"`},
		{"bin/loadgen gate out/y/result.json --baseline ci/baselines/nope.json", "gates out/y/result.json, which no run of the job writes"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			_, _, _, errs := checkLoadgen(tc.line, commands(tc.line)[0][1:], map[string]bool{"out/x": true})
			if !strings.Contains(strings.Join(errs, "\n"), tc.want) {
				t.Errorf("problems %q, want one saying %q", errs, tc.want)
			}
		})
	}
}

func TestCommands(t *testing.T) {
	got := commands(`bin/loadgen run "a b.yaml" --out x || test $? -eq 99; make build && echo 'x|y' # comment`)
	want := [][]string{{"bin/loadgen", "run", "a b.yaml", "--out", "x"}, {"test", "$?", "-eq", "99"}, {"make", "build"}, {"echo", "x|y"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("commands = %q, want %q", got, want)
	}
}
