package agent

import (
	"encoding/json"
	"testing"
)

// FuzzMessage decodes arbitrary stream lines as the controller does: no panic, and a decoded
// message encodes again.
func FuzzMessage(f *testing.F) {
	f.Add([]byte(`{"type":"keepalive","seq":-1,"worker":0}`))
	f.Add([]byte(`{"type":"event","seq":0,"worker":1,"event":{"at":"2026-01-01T00:00:00Z","kind":"phase","name":"ramp","worker":1}}`))
	f.Add([]byte(`{"type":"tick","seq":3,"interval":{"t":1,"counters":{"connects":5},"hists":{"connect":{"count":1,"hdr":"x"}}}}`))
	f.Add([]byte(`{"type":"done","seq":9,"snapshot":{"hists":{"fanout":{"hdr":""}},"counters":{"a":1}},"summary":{"x":1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Message
		if err := json.Unmarshal(b, &m); err != nil {
			return
		}
		if _, err := json.Marshal(m); err != nil {
			t.Fatalf("re-encoding a decoded message: %v", err)
		}
		if m.Interval != nil {
			for _, p := range m.Interval.Hists {
				_, _ = p.Hist() // garbage histograms are errors, not panics
			}
		}
	})
}
