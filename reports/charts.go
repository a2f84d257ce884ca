package reports

import (
	"bytes"
	"fmt"
	"html/template"
	"image/color"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/stats"
)

// Chart is one figure of the HTML report: an inline SVG drawn by gonum.org/v1/plot.
type Chart struct {
	ID      string // stable, unique in the report ("timeline-connections")
	Title   string
	Caption string        // what it shows, one sentence
	SVG     template.HTML // the <svg> element, without XML prolog
	Legend  []LegendEntry // the lines, shown under the chart (not over the data)
}

// LegendEntry names one line of a chart and its colour (CSS hex).
type LegendEntry struct{ Name, Colour string }

func hexColour(c color.Color) string {
	r, g, b, _ := c.RGBA()
	return fmt.Sprintf("#%02x%02x%02x", r>>8, g>>8, b>>8)
}

// chartWidth and chartHeight are every chart's size; CSS scales them to the page.
const (
	chartWidth  = 17 * vg.Centimeter
	chartHeight = 6.5 * vg.Centimeter
)

// palette holds distinguishable colours (Okabe-Ito), also in grey print.
var palette = []color.Color{
	color.RGBA{0, 114, 178, 255},   // blue
	color.RGBA{213, 94, 0, 255},    // vermillion
	color.RGBA{0, 158, 115, 255},   // green
	color.RGBA{204, 121, 167, 255}, // purple
	color.RGBA{230, 159, 0, 255},   // orange
	color.RGBA{86, 180, 233, 255},  // sky
	color.RGBA{120, 120, 120, 255}, // grey
	color.RGBA{0, 0, 0, 255},       // black
}

func colour(i int) color.Color { return palette[i%len(palette)] }

// newPlot makes a plot with the report's fonts and grid.
func newPlot(title, xLabel, yLabel string) *plot.Plot {
	p := plot.New()
	sans := func(f font.Font, size vg.Length) font.Font {
		f.Variant, f.Size = "Sans", size
		return f
	}
	p.Title.Text = title
	p.Title.TextStyle.Font = sans(p.Title.TextStyle.Font, 11)
	p.X.Label.Text, p.Y.Label.Text = xLabel, yLabel
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = sans(a.Label.TextStyle.Font, 9)
		a.Tick.Label.Font = sans(a.Tick.Label.Font, 8)
	}
	p.Legend.TextStyle.Font = sans(p.Legend.TextStyle.Font, 8)
	p.X.Tick.Marker = plainTicks{}
	p.Y.Tick.Marker = plainTicks{}
	p.Add(plotter.NewGrid())
	return p
}

// plainTicks are gonum's default ticks labelled without trailing zeros ("25", not "25.00").
type plainTicks struct{}

func (plainTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'g', 6, 64)
		}
	}
	return ts
}

// timeTicks label a time axis in whole seconds at a round step, six to twelve labels.
type timeTicks struct{}

func (timeTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) || math.IsInf(hi-lo, 0) {
		return nil
	}
	step := 0.0
	for _, s := range []float64{1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400} {
		if (hi-lo)/s <= 12 {
			step = s
			break
		}
	}
	if step == 0 { // longer than 12 days (a hand-edited result): a round power of ten
		step = math.Pow(10, math.Ceil(math.Log10((hi-lo)/12)))
	}
	var ts []plot.Tick
	for i, v := 0, math.Ceil(lo/step)*step; v <= hi && i <= 24; i, v = i+1, v+step {
		if v == 0 {
			v = 0 // not -0
		}
		ts = append(ts, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
	}
	return ts
}

// headroom raises the y axis by a share of its range, room for the markers' labels at the top.
func headroom(p *plot.Plot, share float64) {
	if p.Y.Max > p.Y.Min {
		p.Y.Max += (p.Y.Max - p.Y.Min) * share
	}
}

// svgProlog is what vgsvg writes before the <svg> element.
var svgProlog = regexp.MustCompile(`(?s)^.*?(<svg)`)

// render draws p as an inline SVG element.
func render(p *plot.Plot) (template.HTML, error) {
	c := vgsvg.New(chartWidth, chartHeight)
	p.Draw(draw.New(c))
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return "", err
	}
	s := svgProlog.ReplaceAllString(b.String(), "$1")
	s = strings.Replace(s, "<svg ", `<svg role="img" `, 1)
	return template.HTML(s), nil // drawn by vgsvg from numbers; its text is escaped by it
}

// line adds one line to p, in the i-th colour, and returns its legend entry; empty data adds
// nothing. With dots, a sparse line also marks its points (where its data is).
func line(p *plot.Plot, name string, i int, xys plotter.XYs, dots bool) ([]LegendEntry, error) {
	if len(xys) == 0 {
		return nil, nil
	}
	l, pts, err := plotter.NewLinePoints(xys)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	l.Color = colour(i)
	l.Width = vg.Points(1.2)
	p.Add(l)
	if dots && len(xys) <= sparse {
		pts.Color = colour(i)
		pts.Shape = draw.CircleGlyph{}
		pts.Radius = vg.Points(1.6)
		p.Add(pts)
	}
	return []LegendEntry{{Name: name, Colour: hexColour(colour(i))}}, nil
}

// sparse is the number of points up to which a line also marks each point.
const sparse = 60

// marker is a vertical line on a timeline: a phase's start or a chaos event.
type marker struct {
	At    float64 // seconds since the run's start
	Label string
	Fault bool
}

// markers draws every marker across the data area, labelled along the line; they do not change
// the axes' ranges.
type markers []marker

func (ms markers) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	for _, m := range ms {
		x := trX(m.At)
		if x < c.Min.X || x > c.Max.X {
			continue
		}
		ls := draw.LineStyle{Color: color.RGBA{150, 150, 150, 255}, Width: vg.Points(0.8), Dashes: []vg.Length{vg.Points(3), vg.Points(2)}}
		tc := color.Color(color.RGBA{90, 90, 90, 255})
		if m.Fault {
			ls = draw.LineStyle{Color: color.RGBA{200, 30, 30, 255}, Width: vg.Points(1)}
			tc = color.RGBA{200, 30, 30, 255}
		}
		c.StrokeLine2(ls, x, c.Min.Y, x, c.Max.Y)
		sty := p.X.Tick.Label
		sty.Font.Size = 7
		sty.Color = tc
		sty.Rotation = -math.Pi / 2
		sty.XAlign = draw.XLeft
		sty.YAlign = draw.YTop
		c.FillText(sty, vg.Point{X: x + vg.Points(1.5), Y: c.Max.Y - vg.Points(2)}, m.Label)
	}
}

// timeline is a chart over the run's seconds with its phases and chaos events marked.
type timeline struct {
	r       *Result
	markers markers
	end     float64
}

func newTimeline(r *Result) *timeline {
	t := &timeline{r: r, end: r.Duration.Seconds()}
	for _, ph := range r.Phases {
		t.markers = append(t.markers, marker{At: t.at(ph.Start), Label: ph.Name})
	}
	for i, ev := range r.eventsMarked() {
		t.markers = append(t.markers, marker{At: t.at(ev.At), Label: eventLabel(i), Fault: true})
	}
	for _, iv := range r.Series {
		t.end = max(t.end, t.ivAt(iv))
	}
	return t
}

// at is the offset of an instant from the run's start, in seconds.
func (t *timeline) at(tm time.Time) float64 {
	if t.r.Started.IsZero() || tm.IsZero() {
		return 0
	}
	return tm.Sub(t.r.Started).Seconds()
}

// ivAt is where a one-second interval is plotted: its end.
func (t *timeline) ivAt(iv Interval) float64 {
	if t.r.Started.IsZero() || iv.End.IsZero() {
		return float64(iv.Second)
	}
	return t.at(iv.End)
}

// eventsMarked are the events a timeline marks in red: every one but the phases (drawn from
// r.Phases, once: every worker reports them).
func (r *Result) eventsMarked() []Event {
	var out []Event
	for _, ev := range r.Events {
		if ev.Kind != EventPhase {
			out = append(out, ev)
		}
	}
	return out
}

// eventLabel is the short label of the i-th marked event on the timelines ("E1", ...); the
// events table says what each is.
func eventLabel(i int) string { return "E" + strconv.Itoa(i+1) }

func (t *timeline) plot(title, yLabel string) *plot.Plot {
	p := newPlot(title, "seconds since the start", yLabel)
	p.X.Tick.Marker = timeTicks{}
	p.X.Min, p.X.Max = 0, math.Max(t.end, 1)
	p.Y.Min = 0
	return p
}

// finish adds the markers last (on top of the data) and renders.
func (t *timeline) finish(p *plot.Plot) (template.HTML, error) {
	if p.Y.Max <= p.Y.Min {
		p.Y.Max = p.Y.Min + 1
	}
	headroom(p, 0.3)
	p.X.Min, p.X.Max = 0, math.Max(t.end, 1) // the gateway's scrapes may begin before the run
	p.Add(t.markers)
	return render(p)
}

// series returns one value per interval.
func (t *timeline) series(f func(Interval) (float64, bool)) plotter.XYs {
	var xys plotter.XYs
	for _, iv := range t.r.Series {
		if v, ok := f(iv); ok {
			xys = append(xys, plotter.XY{X: t.ivAt(iv), Y: v})
		}
	}
	return xys
}

// telemetry returns one value per scrape.
func (t *timeline) telemetry(f func(TelemetryPoint) (float64, bool)) plotter.XYs {
	var xys plotter.XYs
	for _, p := range t.r.Telemetry.Points {
		if v, ok := f(p); ok {
			x := float64(p.Second)
			if !p.At.IsZero() {
				x = t.at(p.At)
			}
			xys = append(xys, plotter.XY{X: x, Y: v})
		}
	}
	return xys
}

// telemetryRate is the per-second increase of a gateway counter between scrapes (a restart's
// reset counts as no increase).
func (t *timeline) telemetryRate(name string) plotter.XYs {
	var xys plotter.XYs
	var prev *TelemetryPoint
	for i := range t.r.Telemetry.Points {
		p := &t.r.Telemetry.Points[i]
		v, ok := p.Values[name]
		if !ok {
			continue
		}
		if prev != nil {
			dt := p.At.Sub(prev.At).Seconds()
			if dt <= 0 {
				dt = float64(p.Second - prev.Second)
			}
			d := v - prev.Values[name]
			if dt > 0 && d >= 0 {
				xys = append(xys, plotter.XY{X: t.at(p.At), Y: d / dt})
			}
		}
		prev = p
	}
	return xys
}

// named is one line of a chart.
type named struct {
	name string
	xys  plotter.XYs
}

// anyData reports whether some line has a non-zero value.
func anyData(ls []named) bool {
	for _, l := range ls {
		for _, xy := range l.xys {
			if xy.Y != 0 {
				return true
			}
		}
	}
	return false
}

func (t *timeline) chart(id, title, caption, yLabel string, ls []named) (*Chart, error) {
	if !anyData(ls) {
		return nil, nil
	}
	p := t.plot(title, yLabel)
	var legend []LegendEntry
	for i, l := range ls {
		e, err := line(p, l.name, i, l.xys, true)
		if err != nil {
			return nil, err
		}
		legend = append(legend, e...)
	}
	svg, err := t.finish(p)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", id, err)
	}
	return &Chart{ID: id, Title: title, Caption: caption, SVG: svg, Legend: legend}, nil
}

// timelineLatencies are the latencies drawn second by second, in this order (the others — spans
// inside these, delays drawn as a distribution — only get percentile plots).
var timelineLatencies = []string{stats.HistUpgrade, stats.HistFanout, stats.HistPingRTT, stats.HistAppPingRTT,
	stats.HistReconnect, stats.HistPresence, stats.HistScheduleLag}

// latencyHist reports whether the histogram name (without a cohort prefix) holds durations.
func latencyHist(name string) bool { return !slices.Contains(loadgen.ValueHists, name) }

// seriesHistNames lists the timeline latencies the series holds values of, in timelineLatencies' order.
func seriesHistNames(s Series) []string {
	seen := map[string]bool{}
	for _, iv := range s {
		for n, h := range iv.Histograms {
			if h.Count > 0 && slices.Contains(timelineLatencies, n) {
				seen[n] = true
			}
		}
	}
	var out []string
	for _, n := range timelineLatencies {
		if seen[n] {
			out = append(out, n)
		}
	}
	return out
}

// counterNames lists the series' counters (without cohorts) with the prefix, sorted.
func counterNames(s Series, prefix string) []string {
	seen := map[string]bool{}
	for _, iv := range s {
		for n := range iv.Counters {
			if strings.HasPrefix(n, prefix) {
				seen[n] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// telemetryNames lists the labelled series of a gateway metric family (`name{...}`), sorted.
func telemetryNames(tel Telemetry, family string) []string {
	seen := map[string]bool{}
	for _, p := range tel.Points {
		for n := range p.Values {
			if strings.HasPrefix(n, family+"{") {
				seen[n] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
