package scenarios

import (
	"bytes"
	"math"
	"reflect"
	"testing"
)

func TestGrade(t *testing.T) {
	slos := []SLO{
		{Metric: "ordering_violations", Agg: AggCount, Bound: Bound{Op: OpEQ, Value: 0}},
		{Metric: "ghost_presence_duration", Agg: AggMax, Bound: Bound{Op: OpLT, Value: 5}},
		{Metric: "ping_rtt", Agg: AggP99, Bound: Bound{Op: OpLE, Value: 0.1}, Cohort: "office"},
		{Metric: "close_codes", Label: "1006", Agg: AggCount, Bound: Bound{Op: OpLE, Value: 3}},
		{Metric: "schedule_lag", Agg: AggP99, Bound: Bound{Op: OpLT, Value: 0.05}},
		{Metric: "shed_total", Agg: AggCount, Bound: Bound{Op: OpEQ, Value: 0}, Optional: true},
		{Metric: "connect_time", Bound: Bound{Op: OpGE, Value: 0}},
		{Metric: "recovery_time", Agg: AggMax, Bound: Bound{Op: OpGT, Value: 1}},
	}
	src := StaticSource{
		{"ordering_violations", "count", ""}:   0,
		{"ghost_presence_duration", "max", ""}: 5, // on the bound of a strict <: fails
		{"ping_rtt", "p99", "office"}:          0.1,
		{"ping_rtt", "p99", ""}:                9, // another cohort's figure must not be used
		{"close_codes:1006", "count", ""}:      4,
		{"schedule_lag", "p99", ""}:            math.NaN(),
		{"connect_time", "p99", ""}:            0.012,
	}
	want := []struct {
		pass, noData bool
		observed     float64
	}{
		{true, false, 0},
		{false, false, 5},
		{true, false, 0.1},
		{false, false, 4},
		{false, true, 0}, // NaN is no data
		{true, true, 0},  // optional without data passes
		{true, false, 0.012},
		{false, true, 0}, // no data fails
	}
	vs := Grade(slos, src)
	if len(vs) != len(want) {
		t.Fatalf("%d verdicts for %d SLOs", len(vs), len(slos))
	}
	for i, w := range want {
		v := vs[i]
		if v.Pass != w.pass || v.NoData != w.noData || v.Observed != w.observed {
			t.Errorf("%s: pass %v nodata %v observed %v, want %v %v %v", v.Name, v.Pass, v.NoData, v.Observed, w.pass, w.noData, w.observed)
		}
	}
	if vs[6].Agg != AggP99 || vs[6].Name != "connect_time p99" {
		t.Errorf("default aggregation: %+v", vs[6])
	}
	if ExitCode(vs) != ExitBreach || ExitCode(vs[:1]) != ExitOK || Passed(vs) {
		t.Error("exit codes")
	}
}

func TestBoundHolds(t *testing.T) {
	cases := []struct {
		op   Op
		obs  float64
		want bool
	}{
		{OpLT, 0.9, true}, {OpLT, 1, false},
		{OpLE, 1, true}, {OpLE, 1.1, false},
		{OpGT, 1.1, true}, {OpGT, 1, false},
		{OpGE, 1, true}, {OpGE, 0.9, false},
		{OpEQ, 1, true}, {OpEQ, 0, false},
		{"=>", 1, false},
	}
	for _, c := range cases {
		if got := (Bound{Op: c.op, Value: 1}).Holds(c.obs); got != c.want {
			t.Errorf("%v %s 1 = %v, want %v", c.obs, c.op, got, c.want)
		}
	}
}

func TestParseBoundAndFormat(t *testing.T) {
	cases := []struct {
		text   string
		unit   Unit
		op     Op
		value  float64
		render string
	}{
		{"<= 45s", UnitSeconds, OpLE, 45, "45s"},
		{"<250ms", UnitSeconds, OpLT, 0.25, "250ms"},
		{" == 0", UnitCount, OpEQ, 0, "0"},
		{">= 1.5", UnitCount, OpGE, 1.5, "1.5"},
		{"< 16KiB", UnitBytes, OpLT, 16384, "16KiB"},
		{"< 2MB", UnitBytes, OpLT, 2e6, "1.91MiB"},
		{"< 512", UnitBytes, OpLT, 512, "512B"},
		{"< 5/s", UnitPerSecond, OpLT, 5, "5/s"},
		{"> 0.5", UnitPerSecond, OpGT, 0.5, "0.5/s"},
		{"< 64KiB/s", UnitBytesPerSec, OpLT, 65536, "64KiB/s"},
	}
	for _, c := range cases {
		b, err := parseBound(c.text, c.unit)
		if err != nil {
			t.Errorf("%q: %v", c.text, err)
			continue
		}
		if b.Op != c.op || math.Abs(b.Value-c.value) > 1e-12 {
			t.Errorf("%q = %s %v, want %s %v", c.text, b.Op, b.Value, c.op, c.value)
		}
		if got := FormatValue(b.Value, c.unit); got != c.render {
			t.Errorf("FormatValue(%v, %s) = %q, want %q", b.Value, c.unit, got, c.render)
		}
	}
	for _, bad := range []string{"45s", "<", "< NaN", "< 1e400", "<> 3", "< 3 apples"} {
		if _, err := parseBound(bad, UnitCount); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if got := FormatValue(0.0123456, UnitSeconds); got != "12.3ms" {
		t.Errorf("duration rounding: %q", got)
	}
	for _, c := range []struct {
		v    float64
		unit Unit
		want string
	}{{1023 * 1024, UnitBytes, "1023KiB"}, {1234.5, UnitCount, "1235"}, {4321.7, UnitPerSecond, "4322/s"}, {12.34, UnitCount, "12.3"}} {
		if got := FormatValue(c.v, c.unit); got != c.want {
			t.Errorf("FormatValue(%v, %s) = %q, want %q (no exponent)", c.v, c.unit, got, c.want)
		}
	}
}

// TestMetricCatalogue keeps the catalogue usable: every metric documented, with a default
// aggregation it allows and only known aggregations.
func TestMetricCatalogue(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range Metrics {
		if seen[m.Name] || m.Meaning == "" || m.Source == "" || m.Unit == "" || len(m.Aggs) == 0 {
			t.Errorf("%+v: duplicate or undocumented", m)
		}
		seen[m.Name] = true
		for _, a := range m.Aggs {
			if aggMeaning[a] == "" {
				t.Errorf("%s allows unknown aggregation %q", m.Name, a)
			}
		}
	}
	if len(Metrics) < 22 {
		t.Errorf("%d metrics, want the 22 of DESIGN §4 at least", len(Metrics))
	}
}

func TestWriteVerdictsGolden(t *testing.T) {
	slos := []SLO{
		{Name: "no ghosts", Metric: "ghost_presence_duration", Agg: AggMax, Bound: Bound{Op: OpLT, Value: 5}},
		{Metric: "ordering_violations", Agg: AggCount, Bound: Bound{Op: OpEQ, Value: 0}},
		{Metric: "fanout_latency", Agg: AggP99, Cohort: "editors", Bound: Bound{Op: OpLE, Value: 0.25}},
		{Metric: "server_memory_per_connection", Agg: AggMax, Bound: Bound{Op: OpLT, Value: 16384}},
		{Metric: "close_codes", Label: "1006", Agg: AggRate, Bound: Bound{Op: OpLT, Value: 2}},
		{Metric: "server_memory_growth_slope", Agg: AggLast, Bound: Bound{Op: OpLT, Value: 65536}},
		{Metric: "shed_total", Agg: AggCount, Bound: Bound{Op: OpEQ, Value: 0}, Optional: true},
	}
	src := StaticSource{
		{"ghost_presence_duration", "max", ""}:      0.8123,
		{"ordering_violations", "count", ""}:        3,
		{"fanout_latency", "p99", "editors"}:        0.0421,
		{"server_memory_per_connection", "max", ""}: 21504,
		{"close_codes:1006", "rate", ""}:            0.25,
	}
	var buf bytes.Buffer
	if err := WriteVerdicts(&buf, Grade(slos, src)); err != nil {
		t.Fatal(err)
	}
	golden(t, "verdicts.golden", buf.Bytes())

	buf.Reset()
	if err := WriteVerdicts(&buf, Grade(slos[:1], src)); err != nil {
		t.Fatal(err)
	}
	golden(t, "verdicts_pass.golden", buf.Bytes())
}

func TestReportVerdicts(t *testing.T) {
	vs := Grade([]SLO{
		{Metric: "close_codes", Label: "1006", Agg: AggCount, Bound: Bound{Op: OpEQ}, Cohort: "office"},
		{Metric: "ping_rtt", Agg: AggP99, Bound: Bound{Op: OpLT, Value: 0.1}},
	}, StaticSource{{"close_codes:1006", "count", "office"}: 2})
	rv := ReportVerdicts(vs)
	if len(rv) != 2 || rv[0].Metric != "close_codes:1006" || rv[0].Bound != "count == 0" || rv[0].Value != 2 || rv[0].Pass ||
		rv[0].Detail != "FAIL; observed 2; cohort office" || rv[1].Detail != "FAIL (no data); observed no data; cohort all" {
		t.Errorf("%+v", rv)
	}
	if back := VerdictsOf(rv); !reflect.DeepEqual(back, vs) {
		t.Errorf("VerdictsOf(ReportVerdicts(vs)):\n got %+v\nwant %+v", back, vs)
	}
}
