package scalebench

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStuckRunIsAbandoned: a loadgen that ignores the interrupt is made to exit (SIGQUIT) once the
// grace has passed, and the bench ends with an error saying so instead of waiting for ever.
func TestStuckRunIsAbandoned(t *testing.T) {
	dir := t.TempDir()
	stuck := filepath.Join(dir, "loadgen")
	// Ignores SIGINT; SIGQUIT's default action ends it.
	if err := os.WriteFile(stuck, []byte("#!/bin/sh\ntrap '' INT\nwhile :; do sleep 0.05; done\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, _, err := runScenario(context.Background(), Options{Loadgen: stuck, Scenario: "x.yaml", Out: filepath.Join(dir, "out"),
		Log: io.Discard, Interval: 50 * time.Millisecond, MaxDuration: 100 * time.Millisecond, StopGrace: 200 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "did not stop within 200ms of the interrupt") {
		t.Fatalf("err %v, want the run abandoned", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %v to give up", d)
	}
}
