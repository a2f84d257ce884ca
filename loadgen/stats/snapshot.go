package stats

import (
	"maps"
	"slices"
	"time"
)

// Snapshot is everything a Recorder (or several, merged) recorded since the start.
type Snapshot struct {
	Start    time.Time        `json:"start"`
	At       time.Time        `json:"at"` // when the snapshot was taken (the latest, after a merge)
	Hists    map[string]*Hist `json:"hists"`
	Counters map[string]int64 `json:"counters"`
	Gauges   map[string]int64 `json:"gauges"` // merged by sum (connections of all workers)
}

// Compact replaces every histogram by its JSON form (Hist.Compact), for a snapshot that is kept
// only to be sent.
func (s Snapshot) Compact() error {
	for _, h := range s.Hists {
		if err := h.Compact(); err != nil {
			return err
		}
	}
	return nil
}

// Merge returns the union of s and o: histograms merged value by value, counters and gauges
// added. Neither input is changed.
func (s Snapshot) Merge(o Snapshot) Snapshot {
	out := Snapshot{
		Start:    s.Start,
		At:       s.At,
		Hists:    make(map[string]*Hist, len(s.Hists)+len(o.Hists)),
		Counters: make(map[string]int64, len(s.Counters)+len(o.Counters)),
		Gauges:   make(map[string]int64, len(s.Gauges)+len(o.Gauges)),
	}
	if out.Start.IsZero() || (!o.Start.IsZero() && o.Start.Before(out.Start)) {
		out.Start = o.Start
	}
	if o.At.After(out.At) {
		out.At = o.At
	}
	for _, src := range []map[string]*Hist{s.Hists, o.Hists} {
		for n, h := range src {
			if cur, ok := out.Hists[n]; ok {
				cur.Merge(h)
			} else {
				out.Hists[n] = h.Clone()
			}
		}
	}
	for n, v := range s.Counters {
		out.Counters[n] += v
	}
	for n, v := range o.Counters {
		out.Counters[n] += v
	}
	for n, v := range s.Gauges {
		out.Gauges[n] += v
	}
	for n, v := range o.Gauges {
		out.Gauges[n] += v
	}
	return out
}

// MergeAll merges any number of snapshots (the zero Snapshot when there are none): each histogram
// of the result is made once and every snapshot's merged into it (merging pairwise would copy the
// growing result once per snapshot: with 53 workers' dozen histograms, ~340 MB a merge).
func MergeAll(ss ...Snapshot) Snapshot {
	if len(ss) == 0 {
		return Snapshot{}
	}
	out := MergeCounts(ss...)
	out.Hists = make(map[string]*Hist)
	for _, s := range ss {
		for n, h := range s.Hists {
			cur, ok := out.Hists[n]
			if !ok {
				cur = NewHist()
				out.Hists[n] = cur
			}
			cur.Merge(h)
		}
	}
	return out
}

// MergeCounts is MergeAll without the histograms (Hists nil): counters and gauges added, the
// earliest start and the latest instant. It is cheap enough for every live update.
func MergeCounts(ss ...Snapshot) Snapshot {
	if len(ss) == 0 {
		return Snapshot{}
	}
	out := Snapshot{Counters: make(map[string]int64), Gauges: make(map[string]int64)}
	for _, s := range ss {
		if out.Start.IsZero() || (!s.Start.IsZero() && s.Start.Before(out.Start)) {
			out.Start = s.Start
		}
		if s.At.After(out.At) {
			out.At = s.At
		}
		for n, v := range s.Counters {
			out.Counters[n] += v
		}
		for n, v := range s.Gauges {
			out.Gauges[n] += v
		}
	}
	return out
}

// Hist returns the named histogram, or an empty one.
func (s Snapshot) Hist(name string) *Hist {
	if h := s.Hists[name]; h != nil {
		return h
	}
	return NewHist()
}

// Percentile returns the latency at percentile p of the named histogram, p in percent (99 for
// p99); zero when nothing was recorded.
func (s Snapshot) Percentile(hist string, p float64) time.Duration {
	return time.Duration(s.Hist(hist).Percentile(p))
}

// Count is the number of values in the named histogram.
func (s Snapshot) Count(hist string) int64 { return s.Hist(hist).Count() }

// Counter returns a counter's value (zero when absent).
func (s Snapshot) Counter(name string) int64 { return s.Counters[name] }

// Gauge returns a gauge's value (zero when absent).
func (s Snapshot) Gauge(name string) int64 { return s.Gauges[name] }

// HistNames returns the histogram names in sorted order.
func (s Snapshot) HistNames() []string { return slices.Sorted(maps.Keys(s.Hists)) }

// Equal reports whether two snapshots hold the same histograms, counters and gauges (times are
// not compared).
func (s Snapshot) Equal(o Snapshot) bool {
	if !maps.Equal(nonZero(s.Counters), nonZero(o.Counters)) || !maps.Equal(nonZero(s.Gauges), nonZero(o.Gauges)) {
		return false
	}
	names := map[string]bool{}
	for n := range s.Hists {
		names[n] = true
	}
	for n := range o.Hists {
		names[n] = true
	}
	for n := range names {
		if !s.Hist(n).Equal(o.Hist(n)) {
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
