package stats

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// HistPoint is one histogram over one interval: a summary for plotting and the encoded histogram
// so that intervals from several workers merge without loss. Durations are nanoseconds.
type HistPoint struct {
	Count int64  `json:"count"`
	P50   int64  `json:"p50"`
	P90   int64  `json:"p90"`
	P99   int64  `json:"p99"`
	Max   int64  `json:"max"`
	HDR   string `json:"hdr"`
}

func newHistPoint(h *hdrhistogram.Histogram) *HistPoint {
	p := &HistPoint{Count: h.TotalCount()}
	if p.Count > 0 {
		v := h.ValueAtPercentiles([]float64{50, 90, 99})
		p.P50, p.P90, p.P99, p.Max = v[50], v[90], v[99], h.Max()
	}
	if b, err := encodeHDR(h); err == nil {
		p.HDR = string(b)
	}
	return p
}

// newPackedPoint is newHistPoint of a sparse histogram: the same summary and the same encoding.
func newPackedPoint(h *hdrhistogram.PackedHistogram) *HistPoint {
	p := &HistPoint{Count: h.TotalCount()}
	if p.Count > 0 {
		v := h.ValueAtPercentilesSlice([]float64{50, 90, 99})
		p.P50, p.P90, p.P99, p.Max = v[0], v[1], v[2], h.Max()
	}
	if b, err := encodePacked(h); err == nil {
		p.HDR = string(b)
	}
	return p
}

// packed decodes the interval's histogram into a sparse one.
func (p *HistPoint) packed() (*hdrhistogram.PackedHistogram, error) {
	if p == nil {
		return newPacked(), nil
	}
	return decodePacked(p.HDR)
}

// Hist decodes the interval's histogram.
func (p *HistPoint) Hist() (*Hist, error) {
	if p == nil || p.HDR == "" {
		return NewHist(), nil
	}
	return DecodeHist(p.HDR)
}

// Interval is one point of the one-second time series.
type Interval struct {
	// Second is the end of the interval in whole seconds since the run's start; intervals of
	// several workers with the same Second are merged.
	Second   int                   `json:"t"`
	Start    time.Time             `json:"start"`
	End      time.Time             `json:"end"`
	Counters map[string]int64      `json:"counters,omitempty"` // deltas over the interval
	Gauges   map[string]int64      `json:"gauges,omitempty"`   // values at the end
	Hists    map[string]*HistPoint `json:"hists,omitempty"`
}

// Rate returns a counter's delta per second over the interval.
func (iv Interval) Rate(counter string) float64 {
	d := iv.End.Sub(iv.Start).Seconds()
	if d <= 0 {
		d = 1
	}
	return float64(iv.Counters[counter]) / d
}

// Merge adds o into a copy of iv: counters and gauges summed, histograms merged.
func (iv Interval) Merge(o Interval) (Interval, error) {
	out := Interval{
		Second:   iv.Second,
		Start:    iv.Start,
		End:      iv.End,
		Counters: maps.Clone(iv.Counters),
		Gauges:   maps.Clone(iv.Gauges),
		Hists:    maps.Clone(iv.Hists),
	}
	if out.Counters == nil {
		out.Counters = map[string]int64{}
	}
	if out.Gauges == nil {
		out.Gauges = map[string]int64{}
	}
	if out.Hists == nil {
		out.Hists = map[string]*HistPoint{}
	}
	if out.Start.IsZero() || (!o.Start.IsZero() && o.Start.Before(out.Start)) {
		out.Start = o.Start
	}
	if o.End.After(out.End) {
		out.End = o.End
	}
	for n, v := range o.Counters {
		out.Counters[n] += v
	}
	for n, v := range o.Gauges {
		out.Gauges[n] += v
	}
	for n, p := range o.Hists {
		cur, ok := out.Hists[n]
		if !ok {
			out.Hists[n] = p
			continue
		}
		// Sparse: an interval's histogram holds a few populated buckets, and a controller merges
		// every worker's every second.
		a, err := cur.packed()
		if err != nil {
			return out, fmt.Errorf("stats: interval %d %s: %w", iv.Second, n, err)
		}
		b, err := p.packed()
		if err != nil {
			return out, fmt.Errorf("stats: interval %d %s: %w", o.Second, n, err)
		}
		a.Merge(b) // same geometry: nothing dropped
		out.Hists[n] = newPackedPoint(a)
	}
	return out, nil
}

// Series is a one-second time series, ordered by Second.
type Series []Interval

// MergeSeries merges several workers' series by second: intervals with the same Second are
// merged (counters and gauges summed, histograms merged), the result is ordered by Second. Within
// one series, points that share a Second (a late tick, a final point just after the last tick) are
// first collapsed into one whose gauges are those of the later point; a second a series skipped (a
// starved worker's tick came late, and the next interval covers both) gets that series' gauges as
// they were, so that a merged gauge (connections open) does not dip by a whole worker's share
// for a tick that was merely late. The skipped second's counters and histograms are in the next
// interval.
func MergeSeries(all ...Series) (Series, error) {
	bySec := map[int]Interval{}
	for _, raw := range all {
		s, err := collapse(raw)
		if err != nil {
			return nil, err
		}
		s = carryGauges(s)
		for _, iv := range s {
			cur, ok := bySec[iv.Second]
			if !ok {
				m, err := iv.Merge(Interval{})
				if err != nil {
					return nil, err
				}
				bySec[iv.Second] = m
				continue
			}
			m, err := cur.Merge(iv)
			if err != nil {
				return nil, err
			}
			bySec[iv.Second] = m
		}
	}
	out := make(Series, 0, len(bySec))
	for _, sec := range slices.Sorted(maps.Keys(bySec)) {
		out = append(out, bySec[sec])
	}
	return out, nil
}

// compile-time check that the JSON forms are what we think.
var _ json.Marshaler = (*Hist)(nil)

// carryGauges returns s with a gauges-only point for every second skipped between two of its
// points, holding the gauges of the point before (s is ordered by Second, one point each).
func carryGauges(s Series) Series {
	var out Series
	for i, iv := range s {
		if i > 0 {
			prev := s[i-1]
			for sec := prev.Second + 1; sec < iv.Second; sec++ {
				if out == nil {
					out = slices.Clone(s[:i])
				}
				start := prev.End.Add(time.Duration(sec-prev.Second-1) * time.Second)
				out = append(out, Interval{Second: sec, Start: start, End: start.Add(time.Second), Gauges: maps.Clone(prev.Gauges)})
			}
		}
		if out != nil {
			out = append(out, iv)
		}
	}
	if out == nil {
		return s
	}
	return out
}

// collapse merges the points of one series that share a Second; gauges keep the later value.
func collapse(s Series) (Series, error) {
	out := make(Series, 0, len(s))
	idx := map[int]int{}
	for _, iv := range s {
		j, ok := idx[iv.Second]
		if !ok {
			idx[iv.Second] = len(out)
			out = append(out, iv)
			continue
		}
		prev := out[j]
		m, err := prev.Merge(iv)
		if err != nil {
			return nil, err
		}
		m.Gauges = maps.Clone(iv.Gauges)
		if iv.End.Before(prev.End) {
			m.Gauges = maps.Clone(prev.Gauges)
		}
		out[j] = m
	}
	return out, nil
}
