package reports

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzReadJSON feeds ParseJSON arbitrary bytes, from the seed corpus under
// testdata/fuzz/FuzzReadJSON (small results of both schemas, whole and cut short, and edge cases;
// small, so that minimising an input stays quick). It must never panic; an error that locates its
// cause must point inside the input; and a result it accepts must be whole: every histogram
// decodes, and it writes out and reads back into the same JSON.
func FuzzReadJSON(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseJSON(data)
		if err != nil {
			var de *DecodeError
			if errors.As(err, &de) && (de.Line < 1 || de.Column < 1 || de.Offset < 0 || de.Offset > int64(len(data))) {
				t.Fatalf("error located outside the input (%d bytes): %+v", len(data), de)
			}
			return
		}
		if r.Schema != SchemaVersion {
			t.Fatalf("read as schema %d", r.Schema)
		}
		check := func(where string, hs map[string]Histogram) {
			for n, h := range hs {
				d, err := h.Hist()
				if err != nil {
					t.Fatalf("%s histogram %s accepted but does not decode: %v", where, n, err)
				}
				if d.Count() != h.Count {
					t.Fatalf("%s histogram %s: %d values, summary says %d", where, n, d.Count(), h.Count)
				}
			}
		}
		check("stats", r.Stats.Histograms)
		for _, iv := range r.Series {
			check("series", iv.Histograms)
		}
		for _, w := range r.Workers {
			if w.Stats != nil {
				check("worker", w.Stats.Histograms)
			}
		}
		out, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("accepted but does not write: %v", err)
		}
		r2, err := ParseJSON(out)
		if err != nil {
			t.Fatalf("what was written does not read back: %v\n%s", err, out)
		}
		out2, err := json.Marshal(r2)
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("read back differently (%v):\n%s\n%s", err, out, out2)
		}
	})
}
