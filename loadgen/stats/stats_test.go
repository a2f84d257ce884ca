package stats

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// record feeds n pseudo-random latencies and counters into each recorder given.
func record(seed uint64, n int, recs ...*Recorder) {
	rng := rand.New(rand.NewPCG(seed, 1))
	hists := []string{HistConnect, HistFanout, HistPingRTT}
	for range n {
		h := hists[rng.IntN(len(hists))]
		d := time.Duration(rng.ExpFloat64() * float64(3*time.Millisecond))
		code := 1000 + rng.IntN(2)*6
		for _, r := range recs {
			r.Record(h, d)
			r.Add(CtrMessagesReceived, 1)
			r.Add(CloseCodeCounter(code), 1)
		}
	}
}

func TestMergeEqualsUnion(t *testing.T) {
	tests := []struct {
		name    string
		workers int
		each    int
	}{
		{"one", 1, 500},
		{"three", 3, 2000},
		{"empty-and-full", 2, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			all := NewRecorder(t0)
			var snaps []Snapshot
			for w := range tc.workers {
				r := NewRecorder(t0)
				n := tc.each
				if tc.name == "empty-and-full" && w == 1 {
					n = 1000
				}
				record(uint64(w+1), n, r, all)
				r.SetGauge(GaugeConnections, int64(10*(w+1)))
				all.AddGauge(GaugeConnections, int64(10*(w+1)))
				snaps = append(snaps, r.Snapshot())
			}
			merged := MergeAll(snaps...)
			want := all.Snapshot()
			if !merged.Equal(want) {
				t.Fatalf("merged snapshot differs from the union:\nmerged counters %v\nunion counters  %v", merged.Counters, want.Counters)
			}
			for _, h := range want.HistNames() {
				if merged.Count(h) != want.Count(h) || merged.Percentile(h, 99) != want.Percentile(h, 99) {
					t.Errorf("%s: merged count %d p99 %v, union %d %v", h, merged.Count(h), merged.Percentile(h, 99), want.Count(h), want.Percentile(h, 99))
				}
			}
			// Merging must not change its inputs.
			if len(snaps) > 1 && snaps[0].Equal(merged) {
				t.Errorf("first input equals the merge of several: inputs were modified or merge dropped data")
			}
		})
	}
}

func TestSnapshotJSONRoundTrip(t *testing.T) {
	r := NewRecorder(t0)
	record(7, 3000, r)
	r.Record(HistReconnect, 59*time.Minute) // near the top of the range
	r.Record(HistReconnect, 0)
	r.SetGauge(GaugeConnections, 42)
	s := r.Snapshot()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var got Snapshot
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !got.Equal(s) {
		t.Fatalf("round trip lost data")
	}
	if !got.Start.Equal(s.Start) || !got.At.Equal(s.At) {
		t.Errorf("times: got %v %v, want %v %v", got.Start, got.At, s.Start, s.At)
	}
	for _, h := range s.HistNames() {
		if !got.Hist(h).Equal(s.Hist(h)) {
			t.Errorf("%s differs after round trip", h)
		}
	}
	// A second round trip is byte-identical.
	b2, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(b2) {
		t.Errorf("second encoding differs from the first")
	}
}

func TestHistUnmarshalRejects(t *testing.T) {
	other, err := hdrhistogram.New(1, 1000, 2).Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, hdr, want string }{
		{"garbage", "bm90IGEgaGlzdG9ncmFt", "decode histogram"},
		{"another geometry", string(other), "geometry"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h Hist
			err := json.Unmarshal([]byte(`{"hdr":"`+tc.hdr+`"}`), &h)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestConcurrentRecording(t *testing.T) {
	r := NewRecorder(t0)
	const goroutines, each = 64, 500
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var ticked []Interval
	var tickWG sync.WaitGroup
	tickWG.Add(1)
	go func() { // a ticker and a snapshot reader run while clients record
		defer tickWG.Done()
		now := t0
		for {
			select {
			case <-stop:
				return
			default:
			}
			now = now.Add(time.Second)
			ticked = append(ticked, r.Tick(now))
			_ = r.Snapshot()
		}
	}()
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r.Record(HistFanout, time.Duration(g*each+i)*time.Microsecond)
				r.Add(CtrMessagesReceived, 1)
				r.AddGauge(GaugeConnections, 1)
			}
		}()
	}
	wg.Wait()
	close(stop)
	tickWG.Wait()
	ticked = append(ticked, r.Tick(t0.Add(time.Hour)))

	s := r.Snapshot()
	if got := s.Count(HistFanout); got != goroutines*each {
		t.Errorf("count %d, want %d", got, goroutines*each)
	}
	if got := s.Counter(CtrMessagesReceived); got != goroutines*each {
		t.Errorf("counter %d, want %d", got, goroutines*each)
	}
	if got := s.Gauge(GaugeConnections); got != goroutines*each {
		t.Errorf("gauge %d, want %d", got, goroutines*each)
	}
	// The intervals together hold exactly what the cumulative histogram holds.
	var sumCtr, sumHist int64
	union := NewHist()
	for _, iv := range ticked {
		sumCtr += iv.Counters[CtrMessagesReceived]
		if p := iv.Hists[HistFanout]; p != nil {
			sumHist += p.Count
			h, err := p.Hist()
			if err != nil {
				t.Fatal(err)
			}
			union.Merge(h)
		}
	}
	if sumCtr != goroutines*each || sumHist != goroutines*each {
		t.Errorf("intervals sum to %d counts, %d values; want %d", sumCtr, sumHist, goroutines*each)
	}
	if !union.Equal(s.Hist(HistFanout)) {
		t.Errorf("union of interval histograms differs from the cumulative histogram")
	}
}

func TestTickIntervals(t *testing.T) {
	r := NewRecorder(t0)
	r.Record(HistConnect, 2*time.Millisecond)
	r.Add(CtrConnects, 3)
	r.SetGauge(GaugeConnections, 3)
	iv1 := r.Tick(t0.Add(time.Second))
	r.Add(CtrConnects, 2)
	iv2 := r.Tick(t0.Add(2*time.Second + 10*time.Millisecond))

	if iv1.Second != 1 || iv2.Second != 2 {
		t.Errorf("seconds %d %d, want 1 2", iv1.Second, iv2.Second)
	}
	if iv1.Counters[CtrConnects] != 3 || iv2.Counters[CtrConnects] != 2 {
		t.Errorf("deltas %d %d, want 3 2", iv1.Counters[CtrConnects], iv2.Counters[CtrConnects])
	}
	if iv1.Hists[HistConnect] == nil || iv1.Hists[HistConnect].Count != 1 {
		t.Errorf("interval 1 histogram: %+v", iv1.Hists[HistConnect])
	}
	if _, ok := iv2.Hists[HistConnect]; ok {
		t.Errorf("interval 2 has a connect histogram, want none (nothing recorded)")
	}
	if got := time.Duration(iv1.Hists[HistConnect].P99); got < 1990*time.Microsecond || got > 2010*time.Microsecond {
		t.Errorf("p99 %v, want 2ms within precision", got)
	}
	if iv2.Gauges[GaugeConnections] != 3 {
		t.Errorf("gauge %d, want 3", iv2.Gauges[GaugeConnections])
	}
}

func TestMergeSeriesBySecond(t *testing.T) {
	a, b, all := NewRecorder(t0), NewRecorder(t0), NewRecorder(t0)
	a.SetGauge(GaugeConnections, 5)
	b.SetGauge(GaugeConnections, 7)
	var sa, sb, sall Series
	for sec := 1; sec <= 3; sec++ {
		record(uint64(sec), 200, a, all)
		record(uint64(sec+10), 100*sec, b, all)
		now := t0.Add(time.Duration(sec) * time.Second)
		sa = append(sa, a.Tick(now))
		if sec != 2 { // worker b misses a tick: its second-3 point holds two seconds
			sb = append(sb, b.Tick(now))
		}
		sall = append(sall, all.Tick(now))
	}
	m, err := MergeSeries(sa, sb)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 3 {
		t.Fatalf("%d points, want 3", len(m))
	}
	for i := range m {
		if m[i].Second != i+1 {
			t.Errorf("point %d second %d", i, m[i].Second)
		}
		// Second 2 holds b's gauges as they were at second 1: b's clients were still open.
		if c := m[i].Gauges[GaugeConnections]; c != 12 {
			t.Errorf("second %d: %d connections, want 12 (5 + 7)", m[i].Second, c)
		}
	}
	// Seconds 1 and 3 merged together with 2 equal the union's total.
	var got, want int64
	for i := range m {
		got += m[i].Counters[CtrMessagesReceived]
		want += sall[i].Counters[CtrMessagesReceived]
	}
	if got != want {
		t.Errorf("merged series counts %d, union %d", got, want)
	}
	h1, _ := m[0].Hists[HistFanout].Hist()
	u1, _ := sall[0].Hists[HistFanout].Hist()
	if !h1.Equal(u1) {
		t.Errorf("second 1: merged histogram differs from the union's")
	}
}

func TestClamp(t *testing.T) {
	r := NewRecorder(t0)
	r.Record(HistConnect, -time.Second)
	r.Record(HistConnect, 2*time.Hour)
	s := r.Snapshot()
	if s.Counter(CtrClamped) != 2 || s.Count(HistConnect) != 2 {
		t.Errorf("clamped %d count %d, want 2 2", s.Counter(CtrClamped), s.Count(HistConnect))
	}
}

func TestRecordDoesNotAllocate(t *testing.T) {
	r := NewRecorder(t0)
	r.Record(HistFanout, time.Millisecond)
	r.Add(CtrAcks, 1)
	key := CloseCodeCounter(1006)
	allocs := testing.AllocsPerRun(1000, func() {
		r.Record(HistFanout, 3*time.Millisecond)
		r.Add(CtrAcks, 1)
		r.Add(CloseCodeCounter(1006), 1)
		r.SetGauge(GaugeConnections, 5)
	})
	_ = key
	if allocs != 0 {
		t.Errorf("%.1f allocations per record, want 0", allocs)
	}
}

func BenchmarkRecordParallel(b *testing.B) {
	r := NewRecorder(time.Now())
	b.RunParallel(func(pb *testing.PB) {
		d := time.Duration(0)
		for pb.Next() {
			d += 7 * time.Microsecond
			r.Record(HistFanout, d%time.Second)
		}
	})
}

func TestMergeSeriesCollapsesOneWorkersDuplicateSecond(t *testing.T) {
	a := NewRecorder(t0)
	var s Series
	a.Add(CtrConnects, 5)
	a.SetGauge(GaugeConnections, 5)
	s = append(s, a.Tick(t0.Add(time.Second)))
	a.Add(CtrConnects, 2)
	a.SetGauge(GaugeConnections, 7)
	s = append(s, a.Tick(t0.Add(1400*time.Millisecond))) // same second, later
	b := NewRecorder(t0)
	b.SetGauge(GaugeConnections, 10)
	m, err := MergeSeries(s, Series{b.Tick(t0.Add(time.Second))})
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 {
		t.Fatalf("%d points, want 1", len(m))
	}
	if got := m[0].Gauges[GaugeConnections]; got != 17 {
		t.Errorf("connections %d, want 7 (a's later value) + 10 (b)", got)
	}
	if got := m[0].Counters[CtrConnects]; got != 7 {
		t.Errorf("connects %d, want 7", got)
	}
}

func TestSnapshotCohort(t *testing.T) {
	rec := NewRecorder(time.Now())
	rec.Record(HistFanout, time.Millisecond)
	rec.Record(CohortKey("a", HistFanout), time.Millisecond)
	rec.Record(CohortKey("b", HistFanout), 3*time.Millisecond)
	rec.Add(CohortKey("b", CtrOrderViolations), 2)
	snap := rec.Snapshot()
	tests := []struct {
		cohort     string
		count      int64
		violations int64
	}{{"a", 1, 0}, {"b", 1, 2}, {"c", 0, 0}}
	for _, tt := range tests {
		t.Run(tt.cohort, func(t *testing.T) {
			c := snap.Cohort(tt.cohort)
			if got := c.Count(HistFanout); got != tt.count {
				t.Fatalf("fanout count %d, want %d", got, tt.count)
			}
			if got := c.Counter(CtrOrderViolations); got != tt.violations {
				t.Fatalf("violations %d, want %d", got, tt.violations)
			}
		})
	}
	if got := snap.CohortNames(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("cohorts %v", got)
	}
}

// TestHistCompact: a compacted histogram reads, merges and encodes as the original did.
func TestHistCompact(t *testing.T) {
	h := NewHist()
	for v := int64(1); v <= 1000; v++ {
		h.RecordValue(v * 1000)
	}
	want, err := h.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	c := h.Clone()
	if err := c.Compact(); err != nil {
		t.Fatal(err)
	}
	if c.h != nil {
		t.Fatal("Compact kept the counts")
	}
	if c.Count() != h.Count() || c.Percentile(99) != h.Percentile(99) || c.Max() != h.Max() || c.Min() != h.Min() || c.Mean() != h.Mean() {
		t.Errorf("compacted reads differ: count %d p99 %d", c.Count(), c.Percentile(99))
	}
	got, err := c.MarshalJSON()
	if err != nil || string(got) != string(want) {
		t.Errorf("compacted JSON differs (%v)", err)
	}
	m := NewHist()
	m.Merge(c)
	if !m.Equal(h) {
		t.Error("merging a compacted histogram lost values")
	}
	c.RecordValue(5)
	if c.Count() != h.Count()+1 {
		t.Errorf("a write to a compacted histogram: count %d, want %d", c.Count(), h.Count()+1)
	}
}

// TestSnapshotCompactEqualsSnapshot: the encoded snapshot made from the sparse histograms holds
// exactly what Snapshot's dense copies hold, and writes the same JSON.
func TestSnapshotCompactEqualsSnapshot(t *testing.T) {
	r := NewRecorder(time.Now())
	rng := rand.New(rand.NewPCG(5, 6))
	for range 20_000 {
		r.Record("a", time.Duration(rng.ExpFloat64()*float64(3*time.Millisecond)))
		r.RecordValue("b", rng.Int64N(histHighest))
	}
	r.Add("c", 3)
	dense := r.Snapshot()
	compact, err := r.SnapshotCompact()
	if err != nil {
		t.Fatal(err)
	}
	if len(compact.Hists) != 2 || compact.Counters["c"] != 3 {
		t.Fatalf("compact snapshot: %d hists, counter c %d", len(compact.Hists), compact.Counters["c"])
	}
	for n, d := range dense.Hists {
		c := compact.Hists[n]
		if !c.Equal(d) {
			t.Errorf("%s: compact %d values p99 %d, dense %d p99 %d", n, c.Count(), c.Percentile(99), d.Count(), d.Percentile(99))
		}
		cj, _ := c.MarshalJSON()
		dj, _ := d.MarshalJSON()
		if string(cj) != string(dj) {
			t.Errorf("%s: compact JSON %s\nwant %s", n, cj, dj)
		}
	}
}
