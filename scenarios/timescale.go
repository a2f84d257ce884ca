package scenarios

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"
)

// ApplyTimeScale makes the scenario run f times as long: every duration is multiplied by f (target
// heartbeats and timeouts, cohort intervals, reconnect delays, exit times, phases, timeline offsets,
// toxic attributes, settle), every per-second rate (ramp and arrival rates, accept and storm-alert
// rates, toxic bandwidth) is divided by f, and SLO bounds follow their metric (see Metric.Scaling and
// SLO.TimeScaled). The schedule-lag bound is left alone: the generator's own lag does not follow the
// scenario's clock. Client counts are unchanged, so a scaled run reaches the same population, faster.
//
// f composes: TimeScale is multiplied by f. Load and Parse already apply the file's time scale (or
// WithTimeScale's); call ApplyTimeScale only to rescale a loaded scenario. f must be above 0.
func (s *Scenario) ApplyTimeScale(f float64) error {
	if !(f > 0) || math.IsInf(f, 0) {
		return fmt.Errorf("scenarios: time scale %v (want a factor above 0)", f)
	}
	if vanished := s.scale(f); len(vanished) > 0 {
		return fmt.Errorf("scenarios: time scale %v shrinks %s to nothing", f, strings.Join(vanished, ", "))
	}
	if s.TimeScale == 0 {
		s.TimeScale = 1
	}
	s.TimeScale *= f
	return nil
}

// scale applies factor f to every duration, rate and SLO bound of s; it returns the paths of
// durations that were above zero and rounded down to zero.
func (s *Scenario) scale(f float64) (vanished []string) {
	if f == 1 {
		return nil
	}
	sc := scaler{f: f}
	v := reflect.ValueOf(s).Elem()
	t := v.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "slos" || name == "time_scale" {
			continue
		}
		sc.walk(v.Field(i), name, t.Field(i).Tag.Get("scale"))
	}
	for i := range s.SLOs {
		o := &s.SLOs[i]
		if m, ok := LookupMetric(o.Metric); ok {
			o.Bound.Value *= boundFactor(m, o.Agg, o.TimeScaled, f)
		}
	}
	return sc.vanished
}

type scaler struct {
	f        float64
	vanished []string
}

// walk scales v (reached at path, with the field's scale tag): durations are multiplied, fields
// tagged scale:"rate" divided, fields tagged scale:"-" left alone.
func (sc *scaler) walk(v reflect.Value, path, tag string) {
	if tag == "-" {
		return
	}
	if v.Type() == durationType {
		d := time.Duration(v.Int())
		scaled := time.Duration(math.Round(float64(d) * sc.f))
		if d != 0 && scaled == 0 {
			sc.vanished = append(sc.vanished, path)
		}
		v.SetInt(int64(scaled))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			sc.walk(v.Elem(), path, tag)
		}
	case reflect.Slice:
		for i := range v.Len() {
			sc.walk(v.Index(i), fmt.Sprintf("%s[%d]", path, i), tag)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			fl := t.Field(i)
			name, _, _ := strings.Cut(fl.Tag.Get("yaml"), ",")
			if !fl.IsExported() || name == "" {
				continue
			}
			sc.walk(v.Field(i), join(path, name), fl.Tag.Get("scale"))
		}
	case reflect.Float64:
		if tag == "rate" {
			v.SetFloat(v.Float() / sc.f)
		}
	case reflect.Int:
		if tag == "rate" && v.Int() != 0 {
			v.SetInt(max(int64(math.Round(float64(v.Int())/sc.f)), 1))
		}
	}
}
