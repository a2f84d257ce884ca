package stats

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Recorder collects measurements from many goroutines. The zero value is not usable; call
// NewRecorder.
type Recorder struct {
	start time.Time

	mu       sync.RWMutex // guards the three maps (not the values they point to)
	hists    map[string]*liveHist
	counters map[string]*atomic.Int64
	gauges   map[string]*atomic.Int64

	tickMu   sync.Mutex // serialises Tick
	lastCtr  map[string]int64
	lastTick time.Time
}

// liveHist is one histogram being recorded: the cumulative one and the current interval's. They
// are sparse (hdrhistogram's PackedHistogram: a few bytes per populated bucket) rather than dense
// (~270 KB of counts each at this geometry): a worker records a dozen histograms, most of whose
// values fall in a few hundred buckets, and three dense copies of each were ~0.6 KB per client of
// a worker holding 16 000.
type liveHist struct {
	mu       sync.Mutex
	cum      *hdrhistogram.PackedHistogram
	interval *hdrhistogram.PackedHistogram
	spare    *hdrhistogram.PackedHistogram // an empty histogram Tick swaps in; only Tick touches it
}

// NewRecorder returns an empty recorder whose run started at start (the time intervals count from).
func NewRecorder(start time.Time) *Recorder {
	return &Recorder{
		start:    start,
		hists:    make(map[string]*liveHist),
		counters: make(map[string]*atomic.Int64),
		gauges:   make(map[string]*atomic.Int64),
		lastCtr:  make(map[string]int64),
		lastTick: start,
	}
}

// Start is the instant the recorder counts intervals from.
func (r *Recorder) Start() time.Time { return r.start }

func newHDR() *hdrhistogram.Histogram { return hdrhistogram.New(histLowest, histHighest, histSigFigs) }

func newPacked() *hdrhistogram.PackedHistogram {
	return hdrhistogram.NewPacked(histLowest, histHighest, histSigFigs)
}

func (r *Recorder) hist(name string) *liveHist {
	r.mu.RLock()
	h := r.hists[name]
	r.mu.RUnlock()
	if h != nil {
		return h
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if h = r.hists[name]; h == nil {
		h = &liveHist{cum: newPacked(), interval: newPacked(), spare: newPacked()}
		r.hists[name] = h
	}
	return h
}

func (r *Recorder) counter(m map[string]*atomic.Int64, name string) *atomic.Int64 {
	r.mu.RLock()
	c := m[name]
	r.mu.RUnlock()
	if c != nil {
		return c
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c = m[name]; c == nil {
		c = new(atomic.Int64)
		m[name] = c
	}
	return c
}

// Record adds a latency to the named histogram.
func (r *Recorder) Record(hist string, d time.Duration) { r.RecordValue(hist, int64(d)) }

// RecordValue adds a value to the named histogram. Values outside [0, 1h in ns] are clamped and
// counted under CtrClamped.
func (r *Recorder) RecordValue(hist string, v int64) {
	if v < 0 || v > histHighest {
		r.Add(CtrClamped, 1)
		v = min(max(v, 0), histHighest)
	}
	h := r.hist(hist)
	h.mu.Lock()
	_ = h.cum.RecordValue(v) // in range by construction
	_ = h.interval.RecordValue(v)
	h.mu.Unlock()
}

// Add adds n to the named counter.
func (r *Recorder) Add(counter string, n int64) { r.counter(r.counters, counter).Add(n) }

// SetGauge sets the named gauge.
func (r *Recorder) SetGauge(name string, v int64) { r.counter(r.gauges, name).Store(v) }

// AddGauge adds n (may be negative) to the named gauge, e.g. +1 on connect and -1 on close.
func (r *Recorder) AddGauge(name string, n int64) { r.counter(r.gauges, name).Add(n) }

// Counter returns the current value of a counter.
func (r *Recorder) Counter(name string) int64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if c := r.counters[name]; c != nil {
		return c.Load()
	}
	return 0
}

// Gauge returns the current value of a gauge.
func (r *Recorder) Gauge(name string) int64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if c := r.gauges[name]; c != nil {
		return c.Load()
	}
	return 0
}

// names returns the histogram, counter and gauge names in sorted order, with their cells.
func (r *Recorder) cells() (hn []string, hs []*liveHist, ctrs, gauges map[string]int64) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for n := range r.hists {
		hn = append(hn, n)
	}
	sort.Strings(hn)
	for _, n := range hn {
		hs = append(hs, r.hists[n])
	}
	ctrs = make(map[string]int64, len(r.counters))
	for n, c := range r.counters {
		ctrs[n] = c.Load()
	}
	gauges = make(map[string]int64, len(r.gauges))
	for n, c := range r.gauges {
		gauges[n] = c.Load()
	}
	return hn, hs, ctrs, gauges
}

// Snapshot returns everything recorded since the start. It does not disturb intervals.
func (r *Recorder) Snapshot() Snapshot {
	s, _ := r.snapshot(func(h *liveHist) (*Hist, error) {
		d := newHDR()
		h.mu.Lock()
		h.cum.MergeInto(d) // same geometry: nothing dropped
		h.mu.Unlock()
		return &Hist{h: d}, nil
	})
	return s
}

// snapshot is a Snapshot of the counters, gauges and each histogram as hist makes it.
func (r *Recorder) snapshot(hist func(*liveHist) (*Hist, error)) (Snapshot, error) {
	hn, hs, ctrs, gauges := r.cells()
	s := Snapshot{
		Start:    r.start,
		At:       time.Now(),
		Hists:    make(map[string]*Hist, len(hn)),
		Counters: ctrs,
		Gauges:   gauges,
	}
	for i, n := range hn {
		h, err := hist(hs[i])
		if err != nil {
			return Snapshot{}, fmt.Errorf("stats: encode histogram %s: %w", n, err)
		}
		s.Hists[n] = h
	}
	return s, nil
}

// SnapshotCompact is a Snapshot whose histograms are already in their encoded form (as
// Snapshot.Compact leaves them), made from the sparse histograms without a dense copy: what a
// worker sends its controller every few seconds. Reading its histograms decodes them.
func (r *Recorder) SnapshotCompact() (Snapshot, error) {
	return r.snapshot(func(h *liveHist) (*Hist, error) {
		h.mu.Lock()
		c := h.cum.Clone() // a few bytes per populated bucket
		h.mu.Unlock()
		b, err := marshalPacked(c)
		if err != nil {
			return nil, err
		}
		return &Hist{compact: b}, nil
	})
}

// SnapshotCounts is a Snapshot of the counters and gauges only (Hists nil: not included), cheap
// enough to take every second.
func (r *Recorder) SnapshotCounts() Snapshot {
	_, _, ctrs, gauges := r.cells()
	return Snapshot{Start: r.start, At: time.Now(), Counters: ctrs, Gauges: gauges}
}

// Tick closes the current interval at now and returns it: the histograms recorded since the last
// Tick, counter deltas and the gauges' current values. Call it once a second from one goroutine;
// the interval's Second is the whole number of seconds from the start to now, rounded, so that
// workers sharing a start instant produce intervals that merge by second.
func (r *Recorder) Tick(now time.Time) Interval {
	r.tickMu.Lock()
	defer r.tickMu.Unlock()
	hn, hs, ctrs, gauges := r.cells()
	iv := Interval{
		Second:   secondOf(r.start, now),
		Start:    r.lastTick,
		End:      now,
		Counters: make(map[string]int64),
		Gauges:   gauges,
		Hists:    make(map[string]*HistPoint),
	}
	r.lastTick = now
	for n, v := range ctrs {
		if d := v - r.lastCtr[n]; d != 0 {
			iv.Counters[n] = d
		}
		r.lastCtr[n] = v
	}
	for i, n := range hn {
		h := hs[i]
		h.mu.Lock()
		if h.interval.TotalCount() == 0 {
			h.mu.Unlock()
			continue
		}
		c := h.interval
		h.interval = h.spare
		h.mu.Unlock()
		iv.Hists[n] = newPackedPoint(c)
		c.Reset()
		h.spare = c
	}
	return iv
}

func secondOf(start, now time.Time) int {
	return int((now.Sub(start) + time.Second/2) / time.Second)
}
