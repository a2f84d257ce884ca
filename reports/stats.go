package reports

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/squall-dev/squall/loadgen/stats"
)

// Histogram is one recorded histogram: a summary for people and plots, and the histogram itself in
// the HDR V2 compressed encoding (base64), from which it decodes without loss. Values are in the
// histogram's own unit: nanoseconds for latencies, plain numbers for per-client figures (the
// histogram's name says which; see loadgen/stats). Every field is zero for an empty histogram.
//
// A Histogram is immutable once made (by HistogramFrom, another From function or reading JSON):
// its summary is derived from HDR (on reading, recomputed from it), and Hist decodes HDR once, on
// first use, for every copy of the value.
type Histogram struct {
	Count int64   `json:"count"`
	Min   int64   `json:"min"`
	Mean  float64 `json:"mean"`
	P50   int64   `json:"p50"`
	P90   int64   `json:"p90"`
	P99   int64   `json:"p99"`
	P999  int64   `json:"p999"`
	Max   int64   `json:"max"`
	HDR   string  `json:"hdr"`

	dec *decoded // HDR decoded on first use; nil for a Histogram built field by field
	err error    // why HDR could not be written (MarshalJSON reports it)
}

// decoded is a Histogram's HDR, decoded once.
type decoded struct {
	once sync.Once
	h    *stats.Hist
	err  error
}

// HistogramFrom summarises and encodes h.
func HistogramFrom(h *stats.Hist) Histogram {
	enc, err := h.Encode()
	out := Histogram{Count: h.Count(), HDR: enc, err: err, dec: &decoded{}}
	if out.Count > 0 {
		out.Min, out.Mean, out.Max = h.Min(), h.Mean(), h.Max()
		out.P50, out.P90, out.P99, out.P999 = h.Percentile(50), h.Percentile(90), h.Percentile(99), h.Percentile(99.9)
	}
	return out
}

// histogramFromHDR reads an encoded histogram and summarises it. It decodes into the sparse form,
// which costs a few hundred bytes where the full form costs a few hundred kilobytes, and refuses an
// encoding of another geometry than loadgen/stats records in (it could not be merged without loss).
func histogramFromHDR(enc string) (Histogram, error) {
	if enc == "" {
		return Histogram{}, nil
	}
	p, err := hdrhistogram.DecodePacked([]byte(enc))
	if err != nil {
		return Histogram{}, fmt.Errorf("hdr: %w", err)
	}
	g := histGeometry()
	if p.LowestTrackableValue() != g[0] || p.HighestTrackableValue() != g[1] || p.SignificantFigures() != g[2] {
		return Histogram{}, fmt.Errorf("hdr: geometry [%d, %d] with %d digits, want [%d, %d] with %d",
			p.LowestTrackableValue(), p.HighestTrackableValue(), p.SignificantFigures(), g[0], g[1], g[2])
	}
	var total int64
	overflow := false
	p.ForEachBucket(func(_, c int64) bool {
		if c < 0 || total > math.MaxInt64-c {
			overflow = true
			return false
		}
		total += c
		return true
	})
	if overflow || total != p.TotalCount() {
		return Histogram{}, errors.New("hdr: bucket counts overflow the total")
	}
	h := Histogram{Count: total, HDR: enc, dec: &decoded{}}
	if total > 0 {
		v := p.ValueAtPercentilesSlice([]float64{50, 90, 99, 99.9})
		h.Min, h.Mean, h.Max = p.Min(), p.Mean(), p.Max()
		h.P50, h.P90, h.P99, h.P999 = v[0], v[1], v[2], v[3]
	}
	return h, nil
}

// histGeometry is the lowest and highest trackable value and significant figures of every
// histogram loadgen/stats records.
var histGeometry = sync.OnceValue(func() [3]int64 {
	h := stats.NewHist().HDR()
	return [3]int64{h.LowestTrackableValue(), h.HighestTrackableValue(), h.SignificantFigures()}
})

// Hist decodes the histogram (an empty one when HDR is). The result is shared by every copy of h
// and must not be modified: Clone it to merge into it.
func (h Histogram) Hist() (*stats.Hist, error) {
	if h.HDR == "" {
		return stats.NewHist(), nil
	}
	if h.dec == nil {
		return decodeHist(h.HDR)
	}
	h.dec.once.Do(func() { h.dec.h, h.dec.err = decodeHist(h.HDR) })
	return h.dec.h, h.dec.err
}

func decodeHist(enc string) (*stats.Hist, error) {
	d, err := stats.DecodeHist(enc)
	if err != nil {
		return nil, fmt.Errorf("reports: %w", err)
	}
	return d, nil
}

// histogramJSON is Histogram's JSON form.
type histogramJSON struct {
	Count int64   `json:"count"`
	Min   int64   `json:"min"`
	Mean  float64 `json:"mean"`
	P50   int64   `json:"p50"`
	P90   int64   `json:"p90"`
	P99   int64   `json:"p99"`
	P999  int64   `json:"p999"`
	Max   int64   `json:"max"`
	HDR   string  `json:"hdr"`
}

// MarshalJSON writes the summary and the encoding.
func (h Histogram) MarshalJSON() ([]byte, error) {
	if h.err != nil {
		return nil, h.err
	}
	return json.Marshal(histogramJSON{Count: h.Count, Min: h.Min, Mean: h.Mean,
		P50: h.P50, P90: h.P90, P99: h.P99, P999: h.P999, Max: h.Max, HDR: h.HDR})
}

// UnmarshalJSON reads the encoding, checks it and derives the summary from it; the summary
// written beside it is not trusted.
func (h *Histogram) UnmarshalJSON(b []byte) error {
	var j histogramJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	r, err := histogramFromHDR(j.HDR)
	if err != nil {
		return err
	}
	*h = r
	return nil
}

// Stats is a snapshot of the client-side measurements — histograms, counters and gauges — since
// the run's start: the merged figures of every worker, or one worker's. Per-cohort figures sit
// beside the overall ones under names prefixed "cohort/NAME/" (see Cohort). Gauges of several
// workers are summed.
type Stats struct {
	Start      time.Time            `json:"start"`
	At         time.Time            `json:"at"` // when the snapshot was taken (the latest, after a merge)
	Histograms map[string]Histogram `json:"histograms"`
	Counters   map[string]int64     `json:"counters"`
	Gauges     map[string]int64     `json:"gauges"`
}

// StatsFrom converts a snapshot of the load generator's recorder. Maps s has none of stay nil.
func StatsFrom(s stats.Snapshot) Stats {
	out := Stats{Start: s.Start, At: s.At, Counters: maps.Clone(s.Counters), Gauges: maps.Clone(s.Gauges)}
	if s.Hists != nil {
		out.Histograms = make(map[string]Histogram, len(s.Hists))
		for n, h := range s.Hists {
			out.Histograms[n] = HistogramFrom(h)
		}
	}
	return out
}

// Snapshot converts s back into the load generator's form, with histograms of its own (decoded
// and copied), e.g. to merge it.
func (s Stats) Snapshot() (stats.Snapshot, error) {
	out := stats.Snapshot{Start: s.Start, At: s.At, Counters: maps.Clone(s.Counters), Gauges: maps.Clone(s.Gauges)}
	if s.Histograms != nil {
		out.Hists = make(map[string]*stats.Hist, len(s.Histograms))
	}
	for _, n := range s.HistNames() {
		h, err := s.Histograms[n].Hist()
		if err != nil {
			return stats.Snapshot{}, fmt.Errorf("histogram %s: %w", n, err)
		}
		out.Hists[n] = h.Clone()
	}
	return out, nil
}

// MergeStats returns the union of several snapshots (workers'): histograms merged value by value,
// counters and gauges added.
func MergeStats(ss ...Stats) (Stats, error) {
	snaps := make([]stats.Snapshot, 0, len(ss))
	for i, s := range ss {
		snap, err := s.Snapshot()
		if err != nil {
			return Stats{}, fmt.Errorf("reports: merge stats %d: %w", i, err)
		}
		snaps = append(snaps, snap)
	}
	return StatsFrom(stats.MergeAll(snaps...)), nil
}

// Hist returns the named histogram decoded (shared: do not modify it), or an empty one when s has
// none by that name or it does not decode (ReadJSON and the From functions never leave one that
// does not).
func (s Stats) Hist(name string) *stats.Hist {
	h, err := s.Histograms[name].Hist()
	if err != nil {
		return stats.NewHist()
	}
	return h
}

// Percentile returns the value at percentile p (in percent: 99 for p99) of the named latency
// histogram; zero when nothing was recorded.
func (s Stats) Percentile(hist string, p float64) time.Duration {
	return time.Duration(s.Hist(hist).Percentile(p))
}

// Count is the number of values in the named histogram (zero when absent).
func (s Stats) Count(hist string) int64 { return s.Histograms[hist].Count }

// Counter returns a counter's value (zero when absent).
func (s Stats) Counter(name string) int64 { return s.Counters[name] }

// Gauge returns a gauge's value (zero when absent).
func (s Stats) Gauge(name string) int64 { return s.Gauges[name] }

// HistNames returns the histogram names in sorted order.
func (s Stats) HistNames() []string { return slices.Sorted(maps.Keys(s.Histograms)) }

// Cohort returns the figures s holds for one cohort (those under "cohort/NAME/"), under their plain
// names; a map s has nothing of the cohort's for stays nil.
func (s Stats) Cohort(name string) Stats {
	p := stats.CohortPrefix + name + "/"
	out := Stats{Start: s.Start, At: s.At}
	for k, h := range s.Histograms {
		if rest, ok := strings.CutPrefix(k, p); ok {
			if out.Histograms == nil {
				out.Histograms = map[string]Histogram{}
			}
			out.Histograms[rest] = h
		}
	}
	out.Counters = cohortOf(s.Counters, p)
	out.Gauges = cohortOf(s.Gauges, p)
	return out
}

func cohortOf(m map[string]int64, prefix string) map[string]int64 {
	var out map[string]int64
	for k, v := range m {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			if out == nil {
				out = map[string]int64{}
			}
			out[rest] = v
		}
	}
	return out
}

// CohortNames lists the cohorts s holds figures for, sorted.
func (s Stats) CohortNames() []string {
	seen := map[string]bool{}
	add := func(k string) {
		if rest, ok := strings.CutPrefix(k, stats.CohortPrefix); ok {
			if name, _, ok := strings.Cut(rest, "/"); ok {
				seen[name] = true
			}
		}
	}
	for k := range s.Histograms {
		add(k)
	}
	for k := range s.Counters {
		add(k)
	}
	return slices.Sorted(maps.Keys(seen))
}

// Equal reports whether s and o hold the same histograms, counters and gauges (zero counters and
// gauges count as absent; times are not compared).
func (s Stats) Equal(o Stats) bool {
	if !maps.Equal(nonZero(s.Counters), nonZero(o.Counters)) || !maps.Equal(nonZero(s.Gauges), nonZero(o.Gauges)) {
		return false
	}
	names := map[string]bool{}
	for n := range s.Histograms {
		names[n] = true
	}
	for n := range o.Histograms {
		names[n] = true
	}
	for n := range names {
		a, b := s.Histograms[n], o.Histograms[n]
		if a.HDR == b.HDR {
			continue
		}
		if a.Count != b.Count || !s.Hist(n).Equal(o.Hist(n)) {
			return false
		}
	}
	return true
}

func nonZero(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// Interval is one point of the one-second time series.
type Interval struct {
	// Second is the end of the interval in whole seconds since the run's start.
	Second     int                  `json:"second"`
	Start      time.Time            `json:"start"`
	End        time.Time            `json:"end"`
	Counters   map[string]int64     `json:"counters,omitempty"` // deltas over the interval
	Gauges     map[string]int64     `json:"gauges,omitempty"`   // values at the end
	Histograms map[string]Histogram `json:"histograms,omitempty"`
}

// Rate returns a counter's delta per second over the interval.
func (iv Interval) Rate(counter string) float64 {
	d := iv.End.Sub(iv.Start).Seconds()
	if d <= 0 {
		d = 1
	}
	return float64(iv.Counters[counter]) / d
}

// Series is a one-second time series, ordered by Second.
type Series []Interval

// IntervalFrom converts one interval of the load generator's series. An interval histogram that
// does not decode is left out, and named in the error.
func IntervalFrom(iv stats.Interval) (Interval, error) {
	out := Interval{Second: iv.Second, Start: iv.Start, End: iv.End, Counters: maps.Clone(iv.Counters), Gauges: maps.Clone(iv.Gauges)}
	var errs []error
	if iv.Hists != nil {
		out.Histograms = make(map[string]Histogram, len(iv.Hists))
	}
	for _, n := range slices.Sorted(maps.Keys(iv.Hists)) {
		p := iv.Hists[n]
		if p == nil {
			continue
		}
		h, err := histogramFromHDR(p.HDR)
		if err != nil {
			errs = append(errs, fmt.Errorf("second %d histogram %s: %w", iv.Second, n, err))
			continue
		}
		out.Histograms[n] = h
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("reports: %w", errors.Join(errs...))
	}
	return out, nil
}

// SeriesFrom converts the load generator's one-second series. It returns every interval, with the
// histograms it could read, and an error naming those it could not.
func SeriesFrom(s stats.Series) (Series, error) {
	if s == nil {
		return nil, nil
	}
	out := make(Series, 0, len(s))
	var errs []error
	for _, iv := range s {
		c, err := IntervalFrom(iv)
		if err != nil {
			errs = append(errs, err)
		}
		out = append(out, c)
	}
	return out, errors.Join(errs...)
}
