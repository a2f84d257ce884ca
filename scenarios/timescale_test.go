package scenarios

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fill sets every duration, float and int reachable from v to a distinct non-zero value (and
// allocates pointers and one-element slices), so that a scaling rule that forgets a field shows.
func fill(v reflect.Value, n *int) {
	*n++
	if v.Type() == durationType {
		v.SetInt(int64(*n) * int64(time.Second))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0), n)
		v.Set(s)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), n)
			}
		}
	case reflect.Float64:
		v.SetFloat(float64(*n))
	case reflect.Int:
		v.SetInt(int64(*n) * 100)
	}
}

// collect lists every duration and every scale:"rate" number reachable from v by path.
func collect(v reflect.Value, path, tag string, out map[string]float64) {
	if v.Type() == durationType {
		out[path] = float64(v.Int())
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			collect(v.Elem(), path, tag, out)
		}
	case reflect.Slice:
		for i := range v.Len() {
			collect(v.Index(i), path+"[]", tag, out)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if f.IsExported() {
				collect(v.Field(i), path+"."+f.Name, f.Tag.Get("scale"), out)
			}
		}
	case reflect.Float64, reflect.Int:
		if tag == "rate" {
			if v.Kind() == reflect.Int {
				out[path+" (rate)"] = float64(v.Int())
			} else {
				out[path+" (rate)"] = v.Float()
			}
		}
	}
}

// TestApplyTimeScaleReachesEveryDuration fills every field of a Scenario, scales it, and checks each
// duration was multiplied and each rate divided, so a field added later cannot be forgotten.
func TestApplyTimeScaleReachesEveryDuration(t *testing.T) {
	var s Scenario
	n := 0
	fill(reflect.ValueOf(&s).Elem(), &n)
	s.SLOs = nil // bounds are checked separately
	s.TimeScale = 1
	before := map[string]float64{}
	collect(reflect.ValueOf(s), "", "", before)
	if len(before) < 40 {
		t.Fatalf("only %d durations and rates found; the fill helper is broken", len(before))
	}
	if err := s.ApplyTimeScale(0.25); err != nil {
		t.Fatal(err)
	}
	after := map[string]float64{}
	collect(reflect.ValueOf(s), "", "", after)
	for path, b := range before {
		want := b * 0.25
		switch {
		case strings.HasSuffix(path, " (rate)"):
			want = b / 0.25
		case path == ".ScheduleLagBound", path == ".Target.Auth.TTL":
			want = b
		}
		if math.Abs(after[path]-want) > 1e-9*math.Abs(want) {
			t.Errorf("%s: %v after scaling by 0.25, want %v", path, after[path], want)
		}
	}
	if s.TimeScale != 0.25 {
		t.Errorf("TimeScale %v, want 0.25", s.TimeScale)
	}
	if err := s.ApplyTimeScale(0); err == nil {
		t.Error("time scale 0 accepted")
	}
}

func TestBoundScaling(t *testing.T) {
	yes, no := true, false
	cases := []struct {
		metric     string
		agg        Agg
		timeScaled *bool
		want       float64 // factor at time scale 0.1
	}{
		{"ghost_presence_duration", AggMax, nil, 0.1}, // follows heartbeats: shrinks
		{"ping_rtt", AggP99, nil, 1},                  // network latency: unchanged
		{"ping_rtt", AggP99, &yes, 0.1},               // unless the SLO says so
		{"ghost_presence_duration", AggMax, &no, 1},
		{"ordering_violations", AggCount, nil, 1}, // counts: unchanged
		{"ordering_violations", AggRate, nil, 10}, // per second: ten times as many
		{"ordering_violations", AggRate, &no, 1},  // unless the SLO says so
		{"reconnect_rate_peak", AggMax, nil, 10},  // a per-second rate
		{"server_memory_growth_slope", AggLast, nil, 10},
		{"server_memory_per_connection", AggSlope, nil, 10},
		{"ghost_presence_duration", AggCount, nil, 1},
	}
	for _, c := range cases {
		t.Run(c.metric+"/"+string(c.agg), func(t *testing.T) {
			m, _ := LookupMetric(c.metric)
			if got := boundFactor(m, c.agg, c.timeScaled, 0.1); math.Abs(got-c.want) > 1e-9 {
				t.Errorf("factor %v, want %v", got, c.want)
			}
		})
	}
}

func TestParseAppliesScaleToBounds(t *testing.T) {
	src := minimal + `time_scale: 0.1
slos:
  - {metric: zombie_cleanup_time, agg: max, bound: "<= 45s"}
  - {metric: connect_time, agg: p99, bound: "< 500ms"}
  - {metric: reconnect_rate_peak, bound: "< 40/s"}
`
	s, err := Parse("b.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	got := []float64{s.SLOs[0].Bound.Value, s.SLOs[1].Bound.Value, s.SLOs[2].Bound.Value}
	want := []float64{4.5, 0.5, 400}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-9 {
			t.Errorf("slo %d bound %v, want %v", i, got[i], want[i])
		}
	}
	if s.Phases[0].Rate != 100 {
		t.Errorf("ramp rate %v, want 100 (10/s at a tenth of the time)", s.Phases[0].Rate)
	}
}
