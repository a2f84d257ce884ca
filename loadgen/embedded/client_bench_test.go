package embedded

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/refserver"
)

// rssBytes reads this process's resident set size from /proc/self/status.
func rssBytes(tb testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Skipf("no /proc/self/status: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := bytes.Fields(sc.Bytes()); len(f) >= 2 && string(f[0]) == "VmRSS:" {
			kb, _ := strconv.ParseInt(string(f[1]), 10, 64)
			return kb << 10
		}
	}
	tb.Fatal("VmRSS not found")
	return 0
}

// settledRSS collects garbage a few times (each cycle also halves idle goroutine stacks, as a long
// idle run's periodic collections would) and returns the RSS.
func settledRSS(tb testing.TB) int64 {
	for range 3 {
		runtime.GC()
	}
	debug.FreeOSMemory()
	return rssBytes(tb)
}

// BenchmarkIdleClientMemory holds 10 000 idle simulated clients (connected, one room each, no sends)
// against the embedded gateway running as a child process (so that neither process holds more than
// 10 000 sockets) and reports the generator's resident memory per client and its connection ramp
// rate. Per client: the RSS growth from before the run to 10 000 connected clients, divided by
// 10 000 (fixed costs such as histograms included); marginal: the growth from 2 000 to 10 000 clients
// divided by 8 000. The kernel's socket memory (≈3.6 KB per socket) is not in any RSS.
func BenchmarkIdleClientMemory(b *testing.B) {
	for _, io := range loadgen.ClientIOs {
		b.Run(io, func(b *testing.B) { benchIdleClientMemory(b, io) })
	}
}

// benchIdleClientMemory is BenchmarkIdleClientMemory with the clients' I/O model io.
func benchIdleClientMemory(b *testing.B, io string) {
	const n, first = 10000, 2000
	for range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		e, err := Start(ctx, Options{Process: true, Config: refserver.Config{MaxConns: 20000}})
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		rec := stats.NewRecorder(time.Now())
		p := loadgen.Plan{Name: "idle", Seed: 1, ClientIO: io,
			Cohorts: []loadgen.Cohort{{Name: "idle", Count: n, Behaviour: loadgen.Behaviour{RoomSize: 100}}},
			Phases: []loadgen.Phase{
				{Kind: loadgen.PhaseRamp, Rate: 2000, Target: first},
				{Kind: loadgen.PhaseHold, Duration: 3 * time.Second},
				{Kind: loadgen.PhaseRamp, Rate: 2000},
				{Kind: loadgen.PhaseHold, Duration: time.Minute},
			},
		}
		base := settledRSS(b)
		runCtx, stop := context.WithCancel(context.Background())
		phase := make(chan int, 8)
		at := make([]time.Time, 4)
		done := make(chan loadgen.RunSummary, 1)
		go func() {
			sum, err := loadgen.RunLocal(runCtx, p, e.Target(), rec, loadgen.RunOptions{OnPhase: func(i int, _ loadgen.Phase, t time.Time) {
				at[i] = t
				phase <- i
			}})
			if err != nil {
				b.Error(err)
			}
			done <- sum
		}()
		var rssFirst, rssAll int64
		for i := range phase {
			switch i {
			case 1:
				waitFor(b, 30*time.Second, "the first clients connected", func() bool { return rec.Gauge(stats.GaugeConnections) >= first })
				rssFirst = settledRSS(b)
			case 3:
				waitFor(b, 30*time.Second, "every client connected", func() bool { return rec.Gauge(stats.GaugeConnections) >= n })
				rssAll = settledRSS(b)
			}
			if i == 3 {
				break
			}
		}
		ramp := at[3].Sub(at[2])
		conns := rec.Gauge(stats.GaugeConnections)
		stop()
		sum := <-done
		ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
		_ = e.Close(ctx)
		cancel()
		if conns != n {
			b.Fatalf("%d connections open at the measurement, want %d (%s; counters %v)", conns, n, sum.StopReason, rec.Snapshot().Counters)
		}
		perClient := float64(rssAll-base) / n
		marginal := float64(rssAll-rssFirst) / (n - first)
		b.ReportMetric(perClient, "B/client")
		b.ReportMetric(marginal, "B/client-marginal")
		b.ReportMetric(float64(n-first)/ramp.Seconds(), "conns/s")
		b.ReportMetric(float64(rssAll)/(1<<20), "MiB-rss")
		b.Logf("rss before %d MiB, at %d clients %d MiB, at %d clients %d MiB; ramp %d→%d in %v; connect p99 %v",
			base>>20, first, rssFirst>>20, n, rssAll>>20, first, n, ramp.Round(time.Millisecond),
			rec.Snapshot().Percentile(stats.HistConnect, 99))
	}
}
