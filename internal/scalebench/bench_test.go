package scalebench

import (
	"bytes"
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

// TestAwaitConntrack: the wait ends once the table has room (the entries of an earlier run
// expire), is bounded, says when the table can never hold the plan, and ends with its context.
func TestAwaitConntrack(t *testing.T) {
	draining := func(counts ...int64) func() (int64, int64) {
		i := 0
		return func() (int64, int64) {
			c := counts[min(i, len(counts)-1)]
			i++
			return c, 1000
		}
	}
	cases := []struct {
		name  string
		read  func() (int64, int64)
		need  int64
		bound time.Duration
		reads int // at least this many reads before returning
		said  string
	}{
		{name: "room at once", read: draining(100), need: 500, bound: time.Minute, reads: 1},
		{name: "an earlier run's entries expire", read: draining(900, 800, 400), need: 500, bound: time.Minute, reads: 3, said: "waiting for room"},
		{name: "never drains: bounded", read: draining(900), need: 500, bound: 1500 * time.Millisecond, reads: 2, said: "going on"},
		{name: "table smaller than the plan", read: draining(0), need: 5000, bound: time.Minute, reads: 1, said: "smaller than the 5000 connections"},
		{name: "no netfilter", read: func() (int64, int64) { return 0, 0 }, need: 5000, bound: time.Minute, reads: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			n := 0
			read := func() (int64, int64) { n++; return tc.read() }
			if err := awaitConntrack(context.Background(), &log, read, tc.need, tc.bound); err != nil {
				t.Fatal(err)
			}
			if n < tc.reads {
				t.Errorf("read %d times, want at least %d", n, tc.reads)
			}
			if tc.said == "" && log.Len() > 0 || !strings.Contains(log.String(), tc.said) {
				t.Errorf("log %q, want %q", log.String(), tc.said)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := awaitConntrack(ctx, io.Discard, draining(900), 500, time.Minute); err == nil {
		t.Error("a cancelled wait returned no error")
	}
}
