package stats

import (
	"encoding/json"
	"testing"
	"time"
)

// FuzzHistJSON feeds arbitrary bytes to the histogram decoder: it must not panic, and whatever it
// accepts must encode and decode again to the same histogram.
func FuzzHistJSON(f *testing.F) {
	h := NewHist()
	for _, v := range []int64{0, 1, 999, int64(time.Millisecond), int64(time.Hour)} {
		h.RecordValue(v)
	}
	good, _ := json.Marshal(h)
	f.Add(good)
	f.Add([]byte(`{"hdr":""}`))
	f.Add([]byte(`{"hdr":"HISTFAAAACR42pNpmSzMwMDAyAABzFCaEUoz2X+AsQA"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var h Hist
		if err := json.Unmarshal(b, &h); err != nil {
			return
		}
		again, err := json.Marshal(&h)
		if err != nil {
			return // a decoded geometry the encoder refuses is an error, not a panic
		}
		var h2 Hist
		if err := json.Unmarshal(again, &h2); err != nil {
			t.Fatalf("re-decoding our own encoding: %v", err)
		}
		if h2.Count() != h.Count() {
			t.Fatalf("count %d after a round trip, want %d", h2.Count(), h.Count())
		}
	})
}
