package telemetry

import (
	"bytes"
	"testing"
)

// FuzzParse feeds arbitrary exposition text to Parse: errors are fine, panics are not.
func FuzzParse(f *testing.F) {
	f.Add([]byte("# TYPE ws_connections_active gauge\nws_connections_active 3\n"))
	f.Add([]byte("ws_disconnects_total{code=\"1006\"} 2\nprocess_resident_memory_bytes 1e6\n"))
	f.Add([]byte("garbage {"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Parse(bytes.NewReader(b))
	})
}
