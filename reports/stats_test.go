package reports

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/stats"
)

// TestHistogramSummary checks that the summary read back from an encoding (the sparse decoder, as
// ParseJSON and SeriesFrom use it) is the one HistogramFrom computes on the full histogram.
func TestHistogramSummary(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name   string
		values func(h *stats.Hist)
	}{
		{"empty", func(*stats.Hist) {}},
		{"one value", func(h *stats.Hist) { h.RecordValue(int64(3 * time.Millisecond)) }},
		{"plain counts", func(h *stats.Hist) {
			for i := range 100 {
				h.RecordValue(int64(i % 7))
			}
		}},
		{"latencies over six decades", func(h *stats.Hist) {
			for range 20000 {
				h.RecordValue(int64(rng.ExpFloat64() * float64(time.Millisecond) * float64(1+rng.IntN(1000))))
			}
		}},
		{"clamped at an hour", func(h *stats.Hist) { h.RecordValue(int64(2 * time.Hour)); h.RecordValue(1) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := stats.NewHist()
			tc.values(h)
			want := HistogramFrom(h)
			got, err := histogramFromHDR(want.HDR)
			if err != nil {
				t.Fatal(err)
			}
			if summary(got) != summary(want) {
				t.Errorf("from the encoding %+v, from the histogram %+v", summary(got), summary(want))
			}
			back, err := got.Hist()
			if err != nil || !back.Equal(h) {
				t.Errorf("decoded histogram differs (%v)", err)
			}
		})
	}
}

func summary(h Histogram) histogramJSON {
	return histogramJSON{Count: h.Count, Min: h.Min, Mean: h.Mean, P50: h.P50, P90: h.P90, P99: h.P99, P999: h.P999, Max: h.Max, HDR: h.HDR}
}

// TestHistogramDecodesOnce checks that every copy of a Histogram shares one decoded histogram,
// decoded on first use even when several goroutines ask at once.
func TestHistogramDecodesOnce(t *testing.T) {
	src := stats.NewHist()
	src.RecordValue(42)
	b, err := json.Marshal(HistogramFrom(src))
	if err != nil {
		t.Fatal(err)
	}
	var h Histogram
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	if h.dec == nil || h.dec.h != nil {
		t.Fatal("a histogram read from JSON is decoded before its first use, or never cached")
	}
	got := make([]*stats.Hist, 8)
	var wg sync.WaitGroup
	for i := range got {
		c := h // a copy
		wg.Go(func() {
			d, err := c.Hist()
			if err != nil {
				t.Error(err)
			}
			got[i] = d
		})
	}
	wg.Wait()
	for i, d := range got {
		if d != got[0] || d.Count() != 1 {
			t.Errorf("copy %d decoded its own histogram (or a wrong one: %d values)", i, d.Count())
		}
	}
	// One built field by field has no cache and decodes every time, correctly.
	bare := Histogram{Count: 1, HDR: h.HDR}
	if d, err := bare.Hist(); err != nil || d.Count() != 1 {
		t.Errorf("bare histogram: %v", err)
	}
	if _, err := (Histogram{HDR: "garbage"}).Hist(); err == nil {
		t.Error("a garbage encoding decoded")
	}
}

func TestHistogramMarshalReportsEncodingError(t *testing.T) {
	if _, err := json.Marshal(Histogram{err: errors.New("encoding failed")}); err == nil {
		t.Error("a histogram that could not be encoded was written")
	}
}

func TestStats(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	record := func(n int) stats.Snapshot {
		rec := stats.NewRecorder(start)
		for i := range n {
			rec.Record(stats.HistFanout, time.Duration(i)*time.Millisecond)
			rec.Record(stats.CohortKey("a", stats.HistFanout), time.Duration(i)*time.Millisecond)
			rec.Add(stats.CohortKey("b", stats.CtrConnects), 1)
			rec.Add(stats.CtrConnects, 1)
		}
		rec.SetGauge(stats.GaugeConnections, int64(n))
		return rec.Snapshot()
	}
	s1, s2 := record(10), record(30)
	st1, st2 := StatsFrom(s1), StatsFrom(s2)

	merged, err := MergeStats(st1, st2)
	if err != nil {
		t.Fatal(err)
	}
	if want := StatsFrom(stats.MergeAll(s1, s2)); !merged.Equal(want) || merged.Gauge(stats.GaugeConnections) != 40 {
		t.Errorf("merge is not the union")
	}
	if merged.Equal(st1) {
		t.Error("different stats compare equal")
	}
	back, err := st2.Snapshot()
	if err != nil || !back.Equal(s2) {
		t.Errorf("Snapshot does not give the recorded snapshot back (%v)", err)
	}
	if got, want := st2.Percentile(stats.HistFanout, 50), s2.Percentile(stats.HistFanout, 50); got != want || want == 0 {
		t.Errorf("p50 %v, want %v", got, want)
	}
	if st2.Count(stats.HistFanout) != 30 || st2.Count("nothing") != 0 || st2.Hist("nothing").Count() != 0 {
		t.Error("counts")
	}
	if got := strings.Join(st2.CohortNames(), ","); got != "a,b" {
		t.Errorf("cohorts %s", got)
	}
	a := st2.Cohort("a")
	if !a.Equal(StatsFrom(s2.Cohort("a"))) || a.Count(stats.HistFanout) != 30 || a.Counters != nil {
		t.Errorf("cohort a: %+v", a)
	}
	if none := st2.Cohort("c"); none.Histograms != nil || none.Counters != nil || none.Gauges != nil {
		t.Errorf("a cohort without figures has some: %+v", none)
	}
	if z := StatsFrom(stats.Snapshot{}); z.Histograms != nil || z.Counters != nil {
		t.Error("StatsFrom made maps the snapshot has not")
	}
}

func TestSeriesFrom(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rec := stats.NewRecorder(start)
	rec.Record(stats.HistFanout, time.Millisecond)
	rec.Record(stats.HistConnect, time.Millisecond)
	rec.Add(stats.CtrReconnectAttempts, 4)
	iv := rec.Tick(start.Add(2 * time.Second))
	s, err := SeriesFrom(stats.Series{iv})
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 1 || s[0].Second != iv.Second || s[0].Histograms[stats.HistFanout].Count != 1 || s[0].Rate(stats.CtrReconnectAttempts) != 2 {
		t.Errorf("series %+v", s)
	}
	if s, err := SeriesFrom(nil); s != nil || err != nil {
		t.Errorf("nil series: %v, %v", s, err)
	}
	bad := iv
	bad.Hists = map[string]*stats.HistPoint{stats.HistFanout: {Count: 1, HDR: "garbage"}, stats.HistConnect: iv.Hists[stats.HistConnect]}
	s, err = SeriesFrom(stats.Series{iv, bad})
	if err == nil || !strings.Contains(err.Error(), "histogram fanout") {
		t.Errorf("err %v, want one naming the histogram", err)
	}
	if len(s) != 2 || s[1].Histograms[stats.HistConnect].Count != 1 {
		t.Errorf("the readable histograms were not kept: %+v", s)
	}
}

func TestWorkerSummary(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	sum := loadgen.RunSummary{Start: start, End: start.Add(time.Minute), StopReason: "completed", Clients: 5, LagP99: time.Millisecond,
		Phases:   []loadgen.PhaseRecord{{Phase: loadgen.Phase{Name: "ramp", Kind: loadgen.PhaseRamp, Rate: 10, Target: 5}, Start: start, End: start.Add(time.Second)}},
		Delivery: loadgen.DeliveryReport{Gaps: 1, AckedUndelivered: 2, Ghosts: 3}}
	raw, err := json.Marshal(sum) // as a worker sends it
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeWorkerSummary(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := WorkerSummaryFrom(sum)
	if gj, _ := json.Marshal(got); string(gj) != string(mustJSON(t, want)) {
		t.Errorf("decoded %s, want %s", gj, mustJSON(t, want))
	}
	if want.Phases[0].Kind != "ramp" || want.Phases[0].RatePerSecond != 10 || want.Phases[0].TargetClients != 5 || want.Delivery.Ghosts != 3 {
		t.Errorf("converted %+v", want)
	}
	for _, none := range []string{"", "null"} {
		if s, err := DecodeWorkerSummary(json.RawMessage(none)); s != nil || err != nil {
			t.Errorf("%q: %v, %v", none, s, err)
		}
	}
	if _, err := DecodeWorkerSummary(json.RawMessage(`{"Clients": "x"}`)); err == nil {
		t.Error("a malformed summary decoded")
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
