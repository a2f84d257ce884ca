package stats

import (
	"slices"
	"strings"
)

// Per-cohort figures live in the same Recorder and Snapshot as the overall ones, under keys
// prefixed with "cohort/<name>/": a client records everything twice, once plainly and once under
// its cohort's prefix, so that the overall figures stay the union of every cohort's and a cohort's
// figures travel (and merge across workers) with the rest.
const CohortPrefix = "cohort/"

// CohortKey is the key of a histogram, counter or gauge name for one cohort, e.g.
// CohortKey("editors", HistFanout) = "cohort/editors/fanout".
func CohortKey(cohort, name string) string { return CohortPrefix + cohort + "/" + name }

// Cohort returns the figures s holds for one cohort, under their plain names (the zero Snapshot's
// maps stay nil when s has none for it). The histograms are shared with s, not copied.
func (s Snapshot) Cohort(name string) Snapshot {
	p := CohortPrefix + name + "/"
	out := Snapshot{Start: s.Start, At: s.At}
	for k, h := range s.Hists {
		if rest, ok := strings.CutPrefix(k, p); ok {
			if out.Hists == nil {
				out.Hists = map[string]*Hist{}
			}
			out.Hists[rest] = h
		}
	}
	for k, v := range s.Counters {
		if rest, ok := strings.CutPrefix(k, p); ok {
			if out.Counters == nil {
				out.Counters = map[string]int64{}
			}
			out.Counters[rest] = v
		}
	}
	for k, v := range s.Gauges {
		if rest, ok := strings.CutPrefix(k, p); ok {
			if out.Gauges == nil {
				out.Gauges = map[string]int64{}
			}
			out.Gauges[rest] = v
		}
	}
	return out
}

// CohortNames lists the cohorts s holds figures for, sorted.
func (s Snapshot) CohortNames() []string {
	seen := map[string]bool{}
	add := func(k string) {
		if rest, ok := strings.CutPrefix(k, CohortPrefix); ok {
			if name, _, ok := strings.Cut(rest, "/"); ok {
				seen[name] = true
			}
		}
	}
	for k := range s.Hists {
		add(k)
	}
	for k := range s.Counters {
		add(k)
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
