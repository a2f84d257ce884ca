package stats

import (
	"encoding/json"
	"fmt"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Hist is a recorded histogram as a value. Its JSON form carries a readable summary and the
// histogram itself in the HDR V2 compressed encoding (base64), from which it is decoded without
// loss; the summary is ignored when reading.
type Hist struct {
	h *hdrhistogram.Histogram
	// compact is the JSON form standing in for h once Compact dropped it: a snapshot kept to be
	// sent holds a few kilobytes per histogram instead of its counts (hundreds of kilobytes).
	// Readers decode it on each call (so a compacted Hist can be read concurrently); the first
	// write brings h back.
	compact []byte
}

// Compact replaces the histogram by its JSON form (see Hist.compact). Reading it stays correct,
// at the cost of a decoding per call; MarshalJSON writes the form as it is.
func (h *Hist) Compact() error {
	if h == nil || h.compact != nil {
		return nil
	}
	b, err := h.MarshalJSON()
	if err != nil {
		return err
	}
	h.h, h.compact = nil, b
	return nil
}

// live is the histogram to read: h, or a decoding of the compact form (nil for an empty Hist).
func (h *Hist) live() *hdrhistogram.Histogram {
	if h.compact == nil {
		return h.h
	}
	var d Hist
	if err := d.UnmarshalJSON(h.compact); err != nil {
		return newHDR()
	}
	return d.h
}

// NewHist returns an empty histogram with the geometry every Recorder uses.
func NewHist() *Hist { return &Hist{h: newHDR()} }

// RecordValue adds v (clamped to the histogram's range).
func (h *Hist) RecordValue(v int64) {
	h.ensure()
	_ = h.h.RecordValue(min(max(v, 0), histHighest))
}

func (h *Hist) ensure() {
	if h.compact != nil {
		h.h, h.compact = h.live(), nil
	}
	if h.h == nil {
		h.h = newHDR()
	}
}

// Count is the number of values recorded.
func (h *Hist) Count() int64 {
	if h == nil {
		return 0
	}
	if l := h.live(); l != nil {
		return l.TotalCount()
	}
	return 0
}

// Percentile returns the value at percentile p, given in percent (99 for p99, 99.9 for p99.9);
// zero when the histogram is empty.
func (h *Hist) Percentile(p float64) int64 {
	if h.Count() == 0 {
		return 0
	}
	return h.live().ValueAtPercentile(p)
}

// Max is the largest value recorded (to the histogram's precision); zero when empty.
func (h *Hist) Max() int64 {
	if h.Count() == 0 {
		return 0
	}
	return h.live().Max()
}

// Min is the smallest value recorded (to the histogram's precision); zero when empty.
func (h *Hist) Min() int64 {
	if h.Count() == 0 {
		return 0
	}
	return h.live().Min()
}

// Mean is the mean of the recorded values; zero when empty.
func (h *Hist) Mean() float64 {
	if h.Count() == 0 {
		return 0
	}
	return h.live().Mean()
}

// Clone returns an independent copy.
func (h *Hist) Clone() *Hist {
	if h == nil {
		return NewHist()
	}
	if h.compact != nil {
		return &Hist{compact: h.compact} // immutable: shared
	}
	if h.h == nil {
		return NewHist()
	}
	return &Hist{h: h.h.Clone()}
}

// Merge adds every value of o into h.
func (h *Hist) Merge(o *Hist) {
	h.ensure()
	if o == nil {
		return
	}
	if l := o.live(); l != nil {
		h.h.Merge(l)
	}
}

// Equal reports whether both hold exactly the same counts.
func (h *Hist) Equal(o *Hist) bool {
	a, b := h.Clone(), o.Clone()
	a.ensure()
	b.ensure()
	return a.h.Equals(b.h)
}

// HDR returns the underlying histogram; it must not be modified.
func (h *Hist) HDR() *hdrhistogram.Histogram {
	h.ensure()
	return h.h
}

// Encode returns the HDR V2 compressed, base64 encoding.
func (h *Hist) Encode() (string, error) {
	h.ensure()
	b, err := encodeHDR(h.h)
	if err != nil {
		return "", fmt.Errorf("stats: encode histogram: %w", err)
	}
	return string(b), nil
}

// DecodeHist reads what Encode wrote. A histogram of another geometry (range or precision) is
// refused: merging it into ours could drop values without a word.
func DecodeHist(s string) (*Hist, error) {
	h, err := hdrhistogram.Decode([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("stats: decode histogram: %w", err)
	}
	if h.LowestTrackableValue() != histLowest || h.HighestTrackableValue() != histHighest || h.SignificantFigures() != histSigFigs {
		return nil, fmt.Errorf("stats: decode histogram: geometry [%d, %d] with %d digits, want [%d, %d] with %d",
			h.LowestTrackableValue(), h.HighestTrackableValue(), h.SignificantFigures(), histLowest, histHighest, histSigFigs)
	}
	return &Hist{h: h}, nil
}

// decodePacked is DecodeHist into a sparse histogram (no dense counts array is made); the empty
// string is an empty histogram.
func decodePacked(s string) (*hdrhistogram.PackedHistogram, error) {
	if s == "" {
		return newPacked(), nil
	}
	h, err := hdrhistogram.DecodePacked([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("stats: decode histogram: %w", err)
	}
	if h.LowestTrackableValue() != histLowest || h.HighestTrackableValue() != histHighest || h.SignificantFigures() != histSigFigs {
		return nil, fmt.Errorf("stats: decode histogram: geometry [%d, %d] with %d digits, want [%d, %d] with %d",
			h.LowestTrackableValue(), h.HighestTrackableValue(), h.SignificantFigures(), histLowest, histHighest, histSigFigs)
	}
	return h, nil
}

// histJSON is the JSON form of a Hist. Durations in the summary are nanoseconds.
type histJSON struct {
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

// MarshalJSON writes the summary and the encoded histogram.
func (h *Hist) MarshalJSON() ([]byte, error) {
	if h.compact != nil {
		return h.compact, nil
	}
	enc, err := h.Encode()
	if err != nil {
		return nil, err
	}
	return json.Marshal(histJSON{
		Count: h.Count(), Min: h.Min(), Mean: h.Mean(),
		P50: h.Percentile(50), P90: h.Percentile(90), P99: h.Percentile(99), P999: h.Percentile(99.9),
		Max: h.Max(), HDR: enc,
	})
}

// marshalPacked is MarshalJSON of a Hist holding the values of the sparse histogram h.
func marshalPacked(h *hdrhistogram.PackedHistogram) ([]byte, error) {
	enc, err := encodePacked(h)
	if err != nil {
		return nil, err
	}
	j := histJSON{HDR: string(enc)}
	if j.Count = h.TotalCount(); j.Count > 0 {
		v := h.ValueAtPercentilesSlice([]float64{50, 90, 99, 99.9})
		j.Min, j.Mean, j.P50, j.P90, j.P99, j.P999, j.Max = h.Min(), h.Mean(), v[0], v[1], v[2], v[3], h.Max()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads the encoded histogram; the summary is not trusted.
func (h *Hist) UnmarshalJSON(b []byte) error {
	var j histJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	if j.HDR == "" {
		h.h = newHDR()
		return nil
	}
	d, err := DecodeHist(j.HDR)
	if err != nil {
		return err
	}
	h.h = d.h
	return nil
}

// Dur converts a histogram value to a duration (for latency histograms).
func Dur(v int64) time.Duration { return time.Duration(v) }
