package harness

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/reports"
)

// TestFiftyThousandClients runs 50 000 clients on this machine, where
// one process may hold only 20 000 open files. The run must split across worker processes by
// itself (3 workers of ~16 700 clients), the embedded gateway must run as 3 child-process nodes
// (50 000 connections need 50 000 server sockets too), every client must connect, and the merged
// histograms must equal the union of the workers' histograms.
//
// It builds the binary without the race detector (a race-enabled process may not run 50 000
// goroutines) and runs it as a user would. A long test: `go test -short` skips it, `make test`
// runs it; it takes about a minute on an idle 2-core machine.
func TestFiftyThousandClients(t *testing.T) {
	if testing.Short() {
		t.Skip("long: 50 000 clients across worker processes")
	}
	const clients = 50000
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := buildLoadgen(ctx, t)

	out := filepath.Join(dir, "out")
	start := time.Now()
	run := exec.CommandContext(ctx, bin, "run",
		"--clients", "50000", "--rooms", "5000", // rooms of 10
		"--ramp", "2500", "--hold", "10s", "--send-interval", "20s",
		// The built-in plan grades generator health too. Ramping 2 500 clients a second on two
		// cores lags the schedule by up to a second: what this test is about is that 50 000 clients
		// are held and merged, so its bound is wide; a lag beyond it still fails the run.
		"--lag-bound", "10s",
		"--progress", "plain", "--out", out)
	var stdout, stderr bytes.Buffer
	run.Stdout, run.Stderr = &stdout, &stderr
	err := run.Run()
	t.Logf("run took %v", time.Since(start).Round(100*time.Millisecond))
	if err != nil {
		t.Fatalf("loadgen run: %v\nstdout (tail):\n%s\nstderr:\n%s", err, tail(stdout.String(), 3000), tail(stderr.String(), 3000))
	}
	t.Logf("summary:\n%s", tail(stdout.String(), 600))

	res, err := reports.ReadJSON(filepath.Join(out, reports.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if res.StopReason != reports.StopCompleted {
		t.Errorf("stop reason %q", res.StopReason)
	}
	if res.Target.Kind != "embedded" || res.Target.Nodes < 3 {
		t.Errorf("target %s with %d nodes, want the embedded gateway on at least 3 nodes", res.Target.Kind, res.Target.Nodes)
	}
	checkMergedIsUnion(t, res, 3, clients)
	// Every client was connected at once at some second of the run (the clients' own gauge,
	// summed over the workers by second); the gateway's scrape is logged beside it.
	var peak int64
	for _, iv := range res.Series {
		peak = max(peak, iv.Gauges[stats.GaugeConnections])
	}
	if peak != clients {
		t.Errorf("at most %d clients were connected at once, want %d; counters: %v", peak, clients, res.Stats.Counters)
	}
	t.Logf("peak connections: clients %d, gateway nodes (scraped each second) %.0f", peak, res.Telemetry.Summary.PeakConnections)
	if got := res.Stats.Counter(stats.CtrConnectErrors); got != 0 {
		t.Logf("%d connect errors (retried by the clients' reconnect policy)", got)
	}
	if !res.Reliable {
		t.Logf("the run is marked unreliable (shared machine): %s", res.UnreliableReason)
	}
	t.Logf("gateway memory per connection at peak %.0f B; schedule-lag p99 %v", res.Telemetry.Summary.MemoryPerConnAtPeak, res.Stats.Percentile(stats.HistScheduleLag, 99))
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
