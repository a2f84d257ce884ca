package reports

import (
	"fmt"
	"math"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/refserver/protocol"
)

// timelineCharts draws the run second by second, every chart with the phases and chaos events
// marked: connections, connects and reconnects, disconnects by close code, p50/p99 of each latency
// (read from each second's merged histogram), and the gateway's memory per connection, goroutines,
// shed and rejections. A chart without any data is left out; notes say why some are missing.
func (r *Result) timelineCharts() (charts []Chart, notes []string, err error) {
	t := newTimeline(r)
	add := func(c *Chart, e error) {
		if e != nil && err == nil {
			err = e
		}
		if c != nil {
			charts = append(charts, *c)
		}
	}
	if len(r.Series) == 0 {
		notes = append(notes, "The result has no one-second series: no client timeline can be drawn.")
	}
	gauge := func(name string) func(Interval) (float64, bool) {
		return func(iv Interval) (float64, bool) { v, ok := iv.Gauges[name]; return float64(v), ok }
	}
	rate := func(name string) func(Interval) (float64, bool) {
		return func(iv Interval) (float64, bool) { return iv.Rate(name), true }
	}
	tel := func(name string) func(TelemetryPoint) (float64, bool) {
		return func(p TelemetryPoint) (float64, bool) { v, ok := p.Values[name]; return v, ok }
	}
	add(t.chart("timeline-connections", "Active connections", "Connections open at the end of each second: as the clients count them, and as the gateway does.", "connections", []named{
		{"clients: open connections", t.series(gauge(stats.GaugeConnections))},
		{"gateway: " + protocol.MetricConnectionsActive, t.telemetry(tel(protocol.MetricConnectionsActive))},
	}))
	add(t.chart("timeline-connects", "Connects and reconnects per second", "Connections made, reconnections made, reconnect attempts and failed connects, per second.", "per second", []named{
		{"connects", t.series(rate(stats.CtrConnects))},
		{"reconnects", t.series(rate(stats.CtrReconnects))},
		{"reconnect attempts", t.series(rate(stats.CtrReconnectAttempts))},
		{"connect errors", t.series(rate(stats.CtrConnectErrors))},
	}))
	var closes []named
	for _, n := range counterNames(r.Series, stats.PrefixCloseCode) {
		closes = append(closes, named{"close " + strings.TrimPrefix(n, stats.PrefixCloseCode), t.series(rate(n))})
	}
	add(t.chart("timeline-disconnects", "Disconnects per second by close code", "Connections closed each second, one line per close code (1000 normal, 1001 going away, 1006 abnormal: no close frame, 1008 policy, 1013 try again later).", "per second", closes))
	for _, h := range seriesHistNames(r.Series) {
		pct := func(p func(Histogram) int64) plotter.XYs { // the interval's own percentile (derived from its HDR)
			return t.series(func(iv Interval) (float64, bool) {
				ih, ok := iv.Histograms[h]
				return ms(p(ih)), ok && ih.Count > 0
			})
		}
		add(t.chart("timeline-latency-"+h, h+": p50 and p99 per second", "The median and 99th percentile of "+h+" in each second, read from that second's histogram merged across workers (not a percentile of percentiles).", "milliseconds", []named{
			{"p50", pct(func(h Histogram) int64 { return h.P50 })}, {"p99", pct(func(h Histogram) int64 { return h.P99 })},
		}))
	}
	switch {
	case r.Telemetry.Status == "" || r.Telemetry.Status == TelemetryNone:
		why := r.Telemetry.Reason
		if why == "" {
			why = "no gateway metrics were scraped"
		}
		notes = append(notes, "No gateway timelines (memory per connection, goroutines, shed and rejections): "+why+".")
		return charts, notes, err
	case r.Telemetry.Status == TelemetryPartial:
		notes = append(notes, "Gateway figures are partial: "+r.Telemetry.Reason+".")
	}
	add(t.chart("timeline-memory-per-connection", "Gateway memory per connection", "The gateway's resident memory divided by its open connections, at each scrape.", "KiB", []named{
		{"RSS / connections", t.telemetry(func(p TelemetryPoint) (float64, bool) { return p.MemoryPerConn / 1024, p.MemoryPerConn > 0 })},
	}))
	add(t.chart("timeline-goroutines", "Gateway goroutines", "Goroutines of the gateway (summed over its nodes), at each scrape.", "goroutines", []named{
		{protocol.MetricGoGoroutines, t.telemetry(tel(protocol.MetricGoGoroutines))},
	}))
	shed := []named{{"shed", t.telemetryRate(protocol.MetricShedTotal)}}
	for _, n := range telemetryNames(r.Telemetry, protocol.MetricConnRejectionsTotal) {
		shed = append(shed, named{"rejected " + strings.TrimPrefix(n, protocol.MetricConnRejectionsTotal), t.telemetryRate(n)})
	}
	if len(shed) == 1 {
		shed = append(shed, named{"rejected", t.telemetryRate(protocol.MetricConnRejectionsTotal)})
	}
	add(t.chart("timeline-shed", "Gateway shed and rejections per second", "Connections the gateway shed by admission control, and upgrades it rejected by reason, per second.", "per second", shed))
	return charts, notes, err
}

func ms(ns int64) float64 { return float64(ns) / float64(time.Millisecond) }

// percentileTicks label the x axis of a percentile plot, where x is 1/(1-q).
var percentileTicks = plot.ConstantTicks{
	{Value: 1, Label: "0%"}, {Value: 2, Label: "50%"}, {Value: 10, Label: "90%"}, {Value: 100, Label: "99%"},
	{Value: 1000, Label: "99.9%"}, {Value: 1e4, Label: "99.99%"}, {Value: 1e5, Label: "99.999%"}, {Value: 1e6, Label: "99.9999%"},
}

// percentileCurve samples h's percentiles on a log grid of 1/(1-q), up to what its count resolves.
func percentileCurve(h *stats.Hist, scale float64) plotter.XYs {
	n := h.Count()
	var xys plotter.XYs
	for k := 0; ; k++ {
		x := math.Pow(10, float64(k)/20) // twenty points per decade
		q := 100 * (1 - 1/x)
		if x > float64(n) || x > 1e6 {
			break
		}
		xys = append(xys, plotter.XY{X: x, Y: float64(h.Percentile(q)) / scale})
	}
	last := math.Min(float64(n), 1e6)
	xys = append(xys, plotter.XY{X: math.Max(last, 2), Y: float64(h.Max()) / scale})
	return xys
}

// percentileCharts draws, for every histogram of the run, its percentile distribution (the x axis
// logarithmic in 1/(1-q), as HDR plots are): the whole run and each cohort.
func (r *Result) percentileCharts() ([]Chart, error) {
	var out []Chart
	cohorts := r.Stats.CohortNames()
	for _, name := range r.Stats.HistNames() {
		if strings.HasPrefix(name, stats.CohortPrefix) || r.Stats.Count(name) == 0 {
			continue
		}
		scale, unit := float64(time.Millisecond), "milliseconds"
		if !latencyHist(name) {
			scale, unit = 1, "value"
		}
		p := newPlot(name+": percentile distribution", "percentile (log scale)", unit)
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = percentileTicks
		p.Y.Min = 0
		legend, err := line(p, "all clients", 0, percentileCurve(r.Stats.Hist(name), scale), false)
		if err != nil {
			return nil, err
		}
		var with []string // the cohorts with values: drawn when there are several
		for _, c := range cohorts {
			if r.Stats.Count(stats.CohortKey(c, name)) > 0 {
				with = append(with, c)
			}
		}
		if len(with) > 1 {
			for i, c := range with {
				e, err := line(p, "cohort "+c, i+1, percentileCurve(r.Stats.Hist(stats.CohortKey(c, name)), scale), false)
				if err != nil {
					return nil, err
				}
				legend = append(legend, e...)
			}
		}
		svg, err := render(p)
		if err != nil {
			return nil, fmt.Errorf("chart percentiles-%s: %w", name, err)
		}
		h := r.Stats.Histograms[name]
		caption := fmt.Sprintf("%d observations over the whole run, merged across workers", h.Count)
		if latencyHist(name) {
			caption += fmt.Sprintf("; p50 %s, p99 %s, p99.9 %s, max %s.", FormatDuration(time.Duration(h.P50)),
				FormatDuration(time.Duration(h.P99)), FormatDuration(time.Duration(h.P999)), FormatDuration(time.Duration(h.Max)))
		} else {
			caption += fmt.Sprintf("; p50 %d, p99 %d, max %d.", h.P50, h.P99, h.Max)
		}
		out = append(out, Chart{ID: "percentiles-" + name, Title: name + " percentiles", Caption: caption, SVG: svg, Legend: legend})
	}
	return out, nil
}

// reconnectDelayChart draws the distribution of the delays from a drop to the next dial, as they
// ran and as the reconnect policy planned them: spikes mean clients retrying in lock-step, a flat
// spread jittered backoff.
func (r *Result) reconnectDelayChart() (*Chart, error) {
	ran, planned := r.Stats.Hist(loadgen.HistReconnectDelay), r.Stats.Hist(loadgen.HistReconnectPlanned)
	if ran.Count() == 0 && planned.Count() == 0 {
		return nil, nil
	}
	top := math.Max(float64(ran.Percentile(99.9)), float64(planned.Percentile(99.9))) / float64(time.Second)
	if top <= 0 {
		top = 1
	}
	const bins = 60
	width := top / bins
	p := newPlot("Reconnect delay distribution", "seconds from the drop to the next dial", "reconnects")
	p.Y.Min = 0
	var legend []LegendEntry
	for i, h := range []struct {
		name string
		h    *stats.Hist
	}{{"as run", ran}, {"as planned by the policy", planned}} {
		if h.h.Count() == 0 {
			continue
		}
		counts := make([]float64, bins+1)
		for _, bar := range h.h.HDR().Distribution() {
			if bar.Count == 0 {
				continue
			}
			mid := (float64(bar.From) + float64(bar.To)) / 2 / float64(time.Second)
			counts[min(int(mid/width), bins)] += float64(bar.Count)
		}
		xys := make(plotter.XYs, 0, 2*len(counts))
		for b, c := range counts { // a step line: one flat segment per bin
			xys = append(xys, plotter.XY{X: float64(b) * width, Y: c}, plotter.XY{X: float64(b+1) * width, Y: c})
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		l.Color = colour(i)
		l.Width = vg.Points(1.2)
		p.Add(l)
		legend = append(legend, LegendEntry{Name: h.name, Colour: hexColour(colour(i))})
	}
	svg, err := render(p)
	if err != nil {
		return nil, fmt.Errorf("chart reconnect-delay: %w", err)
	}
	caption := fmt.Sprintf("%d delays as run (p50 %s, p99 %s), in %d bins of %s up to the p99.9; the last bin holds everything beyond. Spikes are clients retrying in lock-step; a spread is jittered backoff.",
		ran.Count(), FormatDuration(time.Duration(ran.Percentile(50))), FormatDuration(time.Duration(ran.Percentile(99))), bins,
		FormatDuration(time.Duration(width*float64(time.Second))))
	return &Chart{ID: "reconnect-delay", Title: "Reconnect delay distribution", Caption: caption, SVG: svg, Legend: legend}, nil
}
