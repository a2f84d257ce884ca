package reports

import (
	"fmt"
	"image/color"
	"math"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// displayUnit scales a value of unit for an axis: seconds in milliseconds, bytes in KiB.
func displayUnit(unit string) (scale float64, label string) {
	switch unit {
	case UnitSeconds:
		return 1000, "milliseconds"
	case UnitBytes:
		return 1.0 / 1024, "KiB"
	case UnitBytesPerSec:
		return 1.0 / 1024, "KiB/s"
	case UnitPerSecond:
		return 1, "per second"
	case "":
		return 1, "value"
	}
	return 1, strings.ReplaceAll(unit, "_", " ")
}

// kneeCharts draws, for a step ramp, one chart per SLO: its value at each step against its bound,
// the knee (the last step of the passing run from the first) marked.
func (r *Result) kneeCharts() ([]Chart, error) {
	sr := r.StepRamp
	if sr == nil || len(sr.Steps) == 0 {
		return nil, nil
	}
	ticks := make(plot.ConstantTicks, len(sr.Steps))
	for i, st := range sr.Steps {
		ticks[i] = plot.Tick{Value: float64(i + 1), Label: fmt.Sprintf("%s (%d)", st.Phase, st.Connections)}
	}
	var out []Chart
	for j, slo := range sr.Steps[0].SLOs {
		scale, yLabel := displayUnit(slo.Unit)
		var pass, fail plotter.XYs
		var all plotter.XYs
		for i, st := range sr.Steps {
			if j >= len(st.SLOs) || st.SLOs[j].Name != slo.Name || st.SLOs[j].NoData || st.SLOs[j].Unbounded {
				continue
			}
			v := st.SLOs[j]
			xy := plotter.XY{X: float64(i + 1), Y: v.Value * scale}
			all = append(all, xy)
			if v.Pass {
				pass = append(pass, xy)
			} else {
				fail = append(fail, xy)
			}
		}
		if len(all) == 0 {
			continue
		}
		p := newPlot(slo.Name+" per step", "step (peak connections)", yLabel)
		p.X.Tick.Marker = ticks
		p.X.Min, p.X.Max = 0.5, float64(len(sr.Steps))+0.5
		p.Y.Min = 0
		legend, err := line(p, slo.Name, 0, all, false)
		if err != nil {
			return nil, err
		}
		for _, g := range []struct {
			xys   plotter.XYs
			c     color.Color
			shape draw.GlyphDrawer
			name  string
		}{{pass, color.RGBA{26, 127, 55, 255}, draw.CircleGlyph{}, "step held"}, {fail, color.RGBA{207, 34, 46, 255}, draw.CrossGlyph{}, "step broke the SLO"}} {
			if len(g.xys) == 0 {
				continue
			}
			s, err := plotter.NewScatter(g.xys)
			if err != nil {
				return nil, err
			}
			s.Color, s.Shape, s.Radius = g.c, g.shape, vg.Points(3.5)
			p.Add(s)
			legend = append(legend, LegendEntry{Name: g.name, Colour: hexColour(g.c)})
		}
		if !math.IsNaN(slo.Threshold) && slo.Unit != "" {
			bound := slo.Threshold * scale
			l, err := plotter.NewLine(plotter.XYs{{X: 0.5, Y: bound}, {X: float64(len(sr.Steps)) + 0.5, Y: bound}})
			if err != nil {
				return nil, err
			}
			l.Color, l.Width, l.Dashes = color.RGBA{207, 34, 46, 255}, vg.Points(1), []vg.Length{vg.Points(4), vg.Points(3)}
			p.Add(l)
			legend = append(legend, LegendEntry{Name: "bound " + slo.Bound, Colour: hexColour(l.Color)})
		}
		if p.Y.Max <= p.Y.Min {
			p.Y.Max = p.Y.Min + 1
		}
		headroom(p, 0.2)
		if sr.Knee >= 0 {
			label := "knee"
			if !sr.KneeReached {
				label = "last step, held"
			}
			p.Add(markers{{At: float64(sr.Knee + 1), Label: label}})
		}
		svg, err := render(p)
		if err != nil {
			return nil, fmt.Errorf("chart knee-%s: %w", slo.Name, err)
		}
		out = append(out, Chart{ID: "knee-" + chartID(slo.Name), Title: slo.Name + " per step", SVG: svg, Legend: legend,
			Caption: fmt.Sprintf("The SLO graded on each step's own window (its ramp and hold); the dashed line is its bound (%s), the grey line the knee.", slo.Bound)})
	}
	return out, nil
}

// chartID turns a name into an HTML id fragment.
func chartID(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return '-'
	}, name)
}

// kneeTable has one row per step, the knee marked.
func (r *Result) kneeTable() *Table {
	sr := r.StepRamp
	if sr == nil || len(sr.Steps) == 0 {
		return nil
	}
	t := &Table{ID: "table-steps", Caption: "Steps of the ramp: each graded on its own window.",
		Header: []string{"step", "peak connections", "sent/s", "delivered/s", "result", "broken SLOs", "knee"}}
	for i, st := range sr.Steps {
		res, knee := "PASS", ""
		var broken []string
		for _, v := range st.SLOs {
			if !v.Pass {
				broken = append(broken, v.Name+" "+v.Measured())
			}
		}
		if !st.Pass {
			res = "FAIL"
		}
		if i == sr.Knee {
			knee = "knee"
			if !sr.KneeReached {
				knee = "held to the end: the knee lies beyond"
			}
		}
		t.Rows = append(t.Rows, []string{st.Phase, count(st.Connections), fmt.Sprintf("%.0f", st.SentRate), fmt.Sprintf("%.0f", st.DeliveredRate),
			res, strings.Join(broken, ", "), knee})
	}
	return t
}

// kneeText says where the knee is, in one sentence.
func kneeText(sr *StepRamp) string {
	switch {
	case sr == nil || len(sr.Steps) == 0:
		return ""
	case sr.Knee < 0:
		return fmt.Sprintf("The knee lies below the first step: %s already broke an SLO.", sr.Steps[0].Phase)
	case !sr.KneeReached:
		st := sr.Steps[sr.Knee]
		return fmt.Sprintf("Knee not reached: the last step, %s, held with %d connections, %.0f messages/s sent and %.0f/s delivered.", st.Phase, st.Connections, st.SentRate, st.DeliveredRate)
	}
	st := sr.Steps[sr.Knee]
	return fmt.Sprintf("Knee: %s, with %d connections, %.0f messages/s sent and %.0f/s delivered; the next step broke an SLO.", st.Phase, st.Connections, st.SentRate, st.DeliveredRate)
}
