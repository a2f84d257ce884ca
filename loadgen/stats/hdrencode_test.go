package stats

import (
	"math/rand/v2"
	"runtime"
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
			// The sparse histogram of the same values encodes to the same bytes, and summarises
			// to the same interval point, without a dense copy.
			p := newPacked()
			if dropped := p.MergeFrom(h); dropped != 0 {
				t.Fatalf("MergeFrom dropped %d", dropped)
			}
			pb, err := encodePacked(p)
			if err != nil {
				t.Fatal(err)
			}
			if string(pb) != string(b) {
				t.Errorf("encodePacked differs from encodeHDR of the same values")
			}
			if got, want := *newPackedPoint(p), *newHistPoint(h); got != want {
				t.Errorf("packed point %+v, dense %+v", got, want)
			}
			pj, err := marshalPacked(p)
			if err != nil {
				t.Fatal(err)
			}
			dj, err := (&Hist{h: h}).MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if string(pj) != string(dj) {
				t.Errorf("marshalPacked %s\nwant %s", pj, dj)
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

// TestCountsIndex holds countsIndex to hdrhistogram's layout: a value recorded alone in a dense
// histogram of the Recorder's geometry lands at countsIndex(value), for the values at every
// bucket's edges and random ones across the whole range.
func TestCountsIndex(t *testing.T) {
	values := []int64{0, 1, 2, 1023, 1024, 2047, 2048, 2049, 4095, 4096, histHighest - 1, histHighest}
	for shift := range 42 {
		v := int64(1) << shift
		values = append(values, v-1, v, v+1)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		values = append(values, rng.Int64N(histHighest+1))
	}
	h := newHDR()
	for _, v := range values {
		if v > histHighest {
			continue
		}
		h.Reset()
		if err := h.RecordValue(v); err != nil {
			t.Fatalf("%d: %v", v, err)
		}
		counts := h.Export().Counts
		want := -1
		for i, c := range counts {
			if c != 0 {
				want = i
				break
			}
		}
		if got := countsIndex(v); int(got) != want {
			t.Fatalf("countsIndex(%d) = %d, hdrhistogram puts it at %d", v, got, want)
		}
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
	b.Run("sparse, pooled best speed", func(b *testing.B) {
		p := newPacked()
		p.MergeFrom(h)
		b.ReportAllocs()
		for b.Loop() {
			_, _ = encodePacked(p)
		}
	})
	b.Run("hdrhistogram Encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
		}
	})
}

// TestEncoderKeptAcrossCollections: the histogram encoder and its zlib writer are kept across
// garbage collections (a worker collects more often than it encodes): an encoding after a
// collection allocates its output, not a new writer.
func TestEncoderKeptAcrossCollections(t *testing.T) {
	h := newPacked()
	for v := int64(1); v < 1e6; v *= 3 {
		_ = h.RecordValue(v)
	}
	if _, err := encodePacked(h); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 5 {
		runtime.GC()
		if _, err := encodePacked(h); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if perCall := (after.TotalAlloc - before.TotalAlloc) / 5; perCall > 64<<10 {
		t.Fatalf("an encoding after a collection allocated %d bytes: the encoder was not kept", perCall)
	}
}
