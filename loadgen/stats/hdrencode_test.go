package stats

import (
	"math/rand/v2"
	"testing"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// TestEncodeHDRDecodes checks that what encodeHDR writes decodes, with hdrhistogram's own decoder,
// into the histogram that was encoded: empty, one value, sparse and dense ones, huge counts.
func TestEncodeHDRDecodes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name string
		fill func(h *hdrhistogram.Histogram)
	}{
		{"empty", func(*hdrhistogram.Histogram) {}},
		{"one value", func(h *hdrhistogram.Histogram) { _ = h.RecordValue(1234567) }},
		{"lowest and highest", func(h *hdrhistogram.Histogram) { _ = h.RecordValue(histLowest); _ = h.RecordValue(histHighest) }},
		{"sparse", func(h *hdrhistogram.Histogram) {
			for range 50 {
				_ = h.RecordValue(rng.Int64N(histHighest))
			}
		}},
		{"dense", func(h *hdrhistogram.Histogram) {
			for range 100_000 {
				_ = h.RecordValue(int64(rng.ExpFloat64() * 2e6))
			}
		}},
		{"huge counts", func(h *hdrhistogram.Histogram) {
			_ = h.RecordValues(1000, 1<<40)
			_ = h.RecordValues(2000, 1<<57)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHDR()
			tc.fill(h)
			b, err := encodeHDR(h)
			if err != nil {
				t.Fatal(err)
			}
			got, err := hdrhistogram.Decode(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !got.Equals(h) {
				t.Errorf("decoded histogram differs: count %d max %d, want %d %d", got.TotalCount(), got.Max(), h.TotalCount(), h.Max())
			}
			if _, err := DecodeHist(string(b)); err != nil {
				t.Errorf("DecodeHist: %v", err)
			}
		})
	}
}

func BenchmarkEncodeHDR(b *testing.B) {
	h := newHDR()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10_000 {
		_ = h.RecordValue(int64(rng.ExpFloat64() * 2e6))
	}
	b.Run("pooled best speed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = encodeHDR(h)
		}
	})
	b.Run("hdrhistogram Encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
		}
	})
}
