package scenarios

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/squall-dev/squall/reports"
)

// Gate is a gate file (gate.yaml): how much worse than its baseline a run may get before
// `loadgen gate` calls it a regression, and whether an SLO the run fails fails the gate. Every field
// may be left out; an empty file is the built-in defaults (reports.DefaultTolerances).
//
//	slos: fail            # fail (default): an SLO the new run fails fails the gate; ignore: only regressions do
//	classes:              # tolerance of every figure of a class: latency, rate, memory, count, throughput
//	  latency: {relative: 50%, absolute: 5ms}
//	metrics:              # tolerance of one figure: an SLO's name or a headline figure ("fanout_latency p99")
//	  fanout_latency p99: {relative: 30%, absolute: 2ms}
//	  memory_per_connection: {ignore: true}
//
// A tolerance's relative part is a fraction of the baseline value ("25%" or 0.25); its absolute
// part is in the figure's unit: a duration for latencies ("2ms"), bytes for memory ("2KiB"), a
// fraction or percentage for rates ("1%"), a number for counts. A change is a regression when it
// is worse by more than both parts.
type Gate struct {
	SLOs    string                   `yaml:"slos"`
	Classes map[string]GateTolerance `yaml:"classes"`
	Metrics map[string]GateTolerance `yaml:"metrics"`

	file string
	pos  positions
}

// GateTolerance is one tolerance as written in a gate file (see Gate).
type GateTolerance struct {
	Relative string `yaml:"relative"`
	Absolute string `yaml:"absolute"`
	Ignore   bool   `yaml:"ignore"`
}

// Gate slos values.
const (
	GateSLOsFail   = "fail"
	GateSLOsIgnore = "ignore"
)

// classUnits is the unit of a class's absolute tolerance.
var classUnits = map[string]string{
	reports.ClassLatency:    string(UnitSeconds),
	reports.ClassRate:       "ratio",
	reports.ClassMemory:     string(UnitBytes),
	reports.ClassCount:      string(UnitCount),
	reports.ClassThroughput: string(UnitPerSecond),
}

// LoadGate reads and checks the gate file at path; see ParseGate.
func LoadGate(path string) (*Gate, error) {
	data, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseGate(path, data)
}

// ParseGate reads a gate file from data (name is used in messages). It checks what can be checked
// without the runs: the slos value, the class names and every tolerance's relative part and a
// class's absolute part. The metric names and their absolute parts are checked against the runs by
// Tolerances. On failure the error is Errors, with every problem, in file order.
func ParseGate(name string, data []byte) (*Gate, error) {
	if errs := checkBounds(name, data); errs != nil {
		return nil, errs
	}
	g := &Gate{}
	pos, errs := decodeYAML(name, data, g, "a gate: slos, classes, metrics", "one gate per file")
	g.file, g.pos = name, pos
	if len(errs) == 1 && errs[0].Path == "" && strings.HasPrefix(errs[0].Msg, "empty file") {
		errs = nil // an empty gate file is the defaults
	}
	for _, e := range errs {
		if e.Path == "" { // the file as a whole could not be read
			return nil, errs
		}
	}
	switch g.SLOs {
	case "", GateSLOsFail, GateSLOsIgnore:
	default:
		errs = append(errs, g.errAt("slos", fmt.Sprintf("unknown value %q (want %s or %s)", g.SLOs, GateSLOsFail, GateSLOsIgnore)))
	}
	for _, class := range sortedKeys(g.Classes) {
		path := "classes." + class
		unit, ok := classUnits[class]
		if !ok {
			errs = append(errs, g.errAt(path, fmt.Sprintf("unknown class %q (want %s)", class, orList(sortedKeys(classUnits)))))
			continue
		}
		if _, err := g.Classes[class].resolve(unit); err != nil {
			errs = append(errs, g.errAt(path+"."+err.field, err.msg))
		}
	}
	for _, name := range sortedKeys(g.Metrics) {
		if _, err := g.Metrics[name].relative(); err != nil {
			errs = append(errs, g.errAt("metrics."+name+".relative", err.Error()))
		}
	}
	if len(errs) > 0 {
		return nil, errs.sorted()
	}
	return g, nil
}

// FailOnSLO reports whether an SLO the new run fails fails the gate (slos: fail, the default).
func (g *Gate) FailOnSLO() bool { return g == nil || g.SLOs != GateSLOsIgnore }

// Tolerances resolves the gate's tolerances for a comparison with run: every metric the gate names
// must be an SLO of run or a headline figure (reports.Headlines), and its absolute part is read in
// that figure's unit. A nil Gate is the defaults.
func (g *Gate) Tolerances(run *reports.Result) (reports.Tolerances, error) {
	var t reports.Tolerances
	if g == nil {
		return t, nil
	}
	var errs Errors
	units := map[string]string{}
	for _, v := range run.SLOs {
		units[v.ComparisonName()] = v.Unit
	}
	for _, h := range reports.Headlines {
		units[h.Name] = h.Unit
	}
	for _, class := range sortedKeys(g.Classes) {
		tol, _ := g.Classes[class].resolve(classUnits[class]) // checked by ParseGate
		if t.ByClass == nil {
			t.ByClass = map[string]reports.Tolerance{}
		}
		t.ByClass[class] = tol
	}
	for _, name := range sortedKeys(g.Metrics) {
		path := "metrics." + name
		unit, ok := units[name]
		if !ok {
			// One gate file may serve several scenarios: an SLO named as the catalogue names it
			// ("recovery_time max", "close_codes{1006} count") belongs to another one.
			if unit, ok = catalogueSLOUnit(name); !ok {
				errs = append(errs, g.errAt(path, fmt.Sprintf("%q is neither an SLO of %s, nor a headline figure, nor a metric and aggregation of the catalogue (want %s, or METRIC AGG)",
					name, run.Name, orList(slices.Sorted(maps.Keys(units))))))
				continue
			}
		}
		tol, err := g.Metrics[name].resolve(unit)
		if err != nil {
			errs = append(errs, g.errAt(path+"."+err.field, err.msg))
			continue
		}
		if t.ByName == nil {
			t.ByName = map[string]reports.Tolerance{}
		}
		t.ByName[name] = tol
	}
	if len(errs) > 0 {
		return reports.Tolerances{}, errs.sorted()
	}
	return t, nil
}

// fieldError is a problem with one field of a tolerance.
type fieldError struct{ field, msg string }

// resolve reads the tolerance with its absolute part in unit.
func (gt GateTolerance) resolve(unit string) (reports.Tolerance, *fieldError) {
	rel, err := gt.relative()
	if err != nil {
		return reports.Tolerance{}, &fieldError{"relative", err.Error()}
	}
	abs := 0.0
	if s := strings.TrimSpace(gt.Absolute); s != "" {
		if unit == "ratio" {
			abs, err = parseFraction(s)
		} else {
			abs, err = parseValue(s, Unit(unit))
		}
		if err == nil && abs < 0 {
			err = fmt.Errorf("want a value of at least 0, got %q", gt.Absolute)
		}
		if err != nil {
			return reports.Tolerance{}, &fieldError{"absolute", fmt.Sprintf("%v (the figure is in %s)", err, unit)}
		}
	}
	return reports.Tolerance{Relative: rel, Absolute: abs, Ignore: gt.Ignore}, nil
}

// relative reads the relative part: "25%" or 0.25.
func (gt GateTolerance) relative() (float64, error) {
	s := strings.TrimSpace(gt.Relative)
	if s == "" {
		return 0, nil
	}
	f, err := parseFraction(s)
	if err != nil {
		return 0, err
	}
	if f < 0 {
		return 0, fmt.Errorf("want a fraction of at least 0 such as 25%% or 0.25, got %q", gt.Relative)
	}
	return f, nil
}

// parseFraction reads "25%" or 0.25.
func parseFraction(s string) (float64, error) {
	text, pct := strings.CutSuffix(strings.TrimSpace(s), "%")
	f, err := strconv.ParseFloat(strings.TrimSpace(text), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("want a fraction such as 25%% or 0.25, got %q", s)
	}
	if pct {
		f /= 100
	}
	return f, nil
}

// errAt is a problem at a field path of the gate file, with the line it was written on.
func (g *Gate) errAt(path, msg string) *Error {
	p := g.pos.lookup(path)
	return &Error{File: g.file, Line: p.line, Column: p.col, Path: path, Msg: msg}
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// catalogueSLOUnit reads an SLO's default name, "METRIC AGG" or "METRIC{LABEL} AGG" (followed by
// " [COHORT]" for an SLO on one cohort), and returns
// the unit of its values; ok is false when it names no metric and aggregation of the catalogue.
func catalogueSLOUnit(name string) (string, bool) {
	if i := strings.LastIndex(name, " ["); i > 0 && strings.HasSuffix(name, "]") {
		name = name[:i] // an SLO on one cohort
	}
	metric, agg, found := strings.Cut(name, " ")
	if !found {
		return "", false
	}
	metric, label, labelled := strings.Cut(metric, "{")
	m, ok := LookupMetric(metric)
	if !ok || !m.Allows(Agg(agg)) || labelled != m.Labelled || (labelled && !strings.HasSuffix(label, "}")) {
		return "", false
	}
	return string(aggUnit(m.Unit, Agg(agg))), true
}
