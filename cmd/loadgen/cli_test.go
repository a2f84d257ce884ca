package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/squall-dev/squall/loadgen/agent"
	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/reports"
)

var update = flag.Bool("update", false, "rewrite golden files")

// beMain makes the test binary act as loadgen, so that spawned workers run this package's code.
const beMain = "LOADGEN_TEST_BE_MAIN"

// dieWorker names the index of a worker that kills its own process mid-run (tests only).
const dieWorker = "LOADGEN_TEST_DIE_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(beMain) == "1" {
		if os.Getenv(dieWorker) != "" {
			// The worker process dies, with everything it holds, right after it has sent the
			// controller a report with connections in it (a fixed time into the run was sometimes
			// before the first such report on a loaded machine).
			testSentHook = func(m agent.Message) {
				if strconv.Itoa(m.Worker) == os.Getenv(dieWorker) && m.Type == agent.MsgTick &&
					m.Snapshot != nil && m.Snapshot.Counter(stats.CtrConnects) > 0 {
					os.Exit(7)
				}
			}
		}
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func runCLI(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var o, e syncBuffer
	code = run(ctx, args, &o, &e)
	return code, o.String(), e.String()
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

var portRE = regexp.MustCompile(`127\.0\.0\.1:\d+`)

// TestBadInput shows that each kind of bad input ends in one line naming the cause and the exit
// code DESIGN §6 gives it. The messages are kept in testdata/bad_input.golden (-update rewrites).
func TestBadInput(t *testing.T) {
	refuser := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "forbidden", http.StatusForbidden)
	}))
	defer refuser.Close()
	ag := agent.New("right-token", func(context.Context, agent.Job, *stats.Recorder, func(agent.Event)) (json.RawMessage, error) {
		return nil, nil
	}, nil, agent.Options{})
	agentSrv := httptest.NewServer(ag.Handler())
	defer agentSrv.Close()
	defer ag.Close()

	out := t.TempDir()
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"unknown target", []string{"run", "--target", "carrier-pigeon://gw", "--out", out}, exitUsage},
		{"unreachable target", []string{"run", "--target", "ws://" + closedPort(t) + "/ws", "--out", out}, exitHarness},
		{"refused upgrade", []string{"run", "--target", "ws://" + strings.TrimPrefix(refuser.URL, "http://") + "/ws", "--out", out}, exitHarness},
		{"agent with a wrong token", []string{"run", "--agents", strings.TrimPrefix(agentSrv.URL, "http://"), "--token", "wrong-token", "--target", "ws://" + strings.TrimPrefix(refuser.URL, "http://") + "/ws", "--out", out}, exitUsage},
		{"unreachable agent", []string{"run", "--agents", closedPort(t), "--token", "t", "--out", out, "--target", "embedded", "--clients", "10"}, exitHarness},
		{"bad flag value", []string{"run", "--clients", "many"}, exitUsage},
		{"invalid plan", []string{"run", "--clients", "0", "--hold", "0s"}, exitUsage},
		{"unknown command", []string{"attack"}, exitUsage},
		{"unknown help topic", []string{"help", "attack"}, exitUsage},
		{"agent without token", []string{"agent"}, exitUsage},
		{"agent on a public address", []string{"agent", "--token", "t", "--listen", "0.0.0.0:0"}, exitUsage},
	}
	var golden strings.Builder
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(agent.TokenEnv, "")
			code, _, stderr := runCLI(context.Background(), tc.args...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tc.code, stderr)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "loadgen: ") {
				t.Errorf("stderr is not one line starting with loadgen: %q", stderr)
			}
			golden.WriteString(tc.name + " => " + strings.TrimSpace(portRE.ReplaceAllString(stderr, "127.0.0.1:PORT")) + "\n")
		})
	}
	path := filepath.Join("testdata", "bad_input.golden")
	if *update {
		if err := os.WriteFile(path, []byte(golden.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if golden.String() != string(want) {
		t.Errorf("messages differ from %s (-update rewrites it):\ngot:\n%s\nwant:\n%s", path, golden.String(), want)
	}
}

func TestDoctor(t *testing.T) {
	code, stdout, stderr := runCLI(context.Background(), "doctor")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"open-file limit", "ephemeral ports", "somaxconn", "memory", "simulated clients"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestDiagnose(t *testing.T) {
	tests := []struct {
		name     string
		m        machine
		warn     string
		capacity int
	}{
		{"this project's machines", machine{fdSoft: 20000, fdHard: 20000, portLo: 32768, portHi: 60999, somaxconn: 4096, fileMax: 2466170, memTotal: 24 << 30, memAvl: 22 << 30, cores: 2}, "", 22 << 30 / (clientBytes + gatewayBytes + kernelBytes)},
		{"low limits", machine{fdSoft: 1024, fdHard: 1024, portLo: 50000, portHi: 51000, somaxconn: 128, fileMax: 100000, memTotal: 2 << 30, memAvl: 1 << 30, cores: 1}, "ulimit", 1 << 30 / (clientBytes + gatewayBytes + kernelBytes)},
		{"small file table", machine{fdSoft: 20000, fdHard: 20000, portLo: 1024, portHi: 65535, somaxconn: 4096, fileMax: 100000, memTotal: 24 << 30, memAvl: 22 << 30, cores: 2}, "file-max", 50000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checks, capacity, _ := diagnose(tc.m, fdsPerProcess)
			var fixes []string
			for _, c := range checks {
				if !c.OK {
					fixes = append(fixes, c.Fix)
				}
			}
			if tc.warn == "" && len(fixes) > 0 {
				t.Errorf("unexpected warnings: %v", fixes)
			}
			if tc.warn != "" && !strings.Contains(strings.Join(fixes, " "), tc.warn) {
				t.Errorf("fixes %v lack %q", fixes, tc.warn)
			}
			if capacity != tc.capacity {
				t.Errorf("capacity %d, want %d", capacity, tc.capacity)
			}
		})
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestInterruptWritesResult stops a run in its hold phase, as Ctrl-C does, and checks that the
// clients were closed and result.json was still written.
func TestInterruptWritesResult(t *testing.T) {
	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var o, e syncBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"run", "--clients", "40", "--rooms", "2", "--ramp", "200", "--hold", "5m", "--progress", "plain", "--out", out}, &o, &e)
	}()
	waitFor(t, 30*time.Second, "the hold phase with every client connected", func() bool {
		return strings.Contains(o.String(), "hold      conns 40/40")
	})
	start := time.Now()
	cancel()
	var code int
	select {
	case code = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop within 30 s of the interrupt")
	}
	t.Logf("stopped %v after the interrupt", time.Since(start).Round(time.Millisecond))
	if code != exitHarness || !strings.Contains(e.String(), "interrupted") {
		t.Errorf("exit %d stderr %q, want 1 and an interrupted line", code, e.String())
	}
	res, err := reports.ReadJSON(filepath.Join(out, reports.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if res.StopReason != reports.StopInterrupted {
		t.Errorf("stop reason %q", res.StopReason)
	}
	if got := res.Stats.Counter(stats.CtrConnects); got != 40 {
		t.Errorf("%d connects, want 40", got)
	}
	if got := res.Stats.Gauge(stats.GaugeConnections); got != 0 {
		t.Errorf("%d connections still open after the stop, want 0", got)
	}
	// Cleanly: every connection ended with a normal close, none by error.
	for k, v := range res.Stats.Counters {
		if (strings.HasPrefix(k, stats.PrefixCloseCode) && k != stats.CloseCodeCounter(1000)) || strings.HasPrefix(k, stats.PrefixError) {
			t.Errorf("%s = %d after the stop, want only normal closes", k, v)
		}
	}
	if got := res.Stats.Counter(stats.CloseCodeCounter(1000)); got != 40 {
		t.Errorf("%d connections closed with 1000, want 40", got)
	}
}

// TestSplitAcrossWorkers runs a small plan with a low per-process file budget so that it is split
// across spawned worker processes, and checks that the merged histograms equal the union of the
// workers' histograms. The 50 000-client version is TestFiftyThousandClients.
func TestSplitAcrossWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns worker processes")
	}
	t.Setenv(beMain, "1")
	out := t.TempDir()
	code, stdout, stderr := runCLI(context.Background(), "run", "--clients", "120", "--rooms", "4", "--ramp", "400", "--hold", "1s",
		"--fds-per-process", "100", "--progress", "plain", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	res, err := reports.ReadJSON(filepath.Join(out, reports.FileName))
	if err != nil {
		t.Fatal(err)
	}
	checkMergedIsUnion(t, res, 2, 120)
}

// checkMergedIsUnion checks a split run's result: the number of workers, that each ran in its own
// process and finished, that every client connected, and that the merged stats are the union of
// the workers' stats.
func checkMergedIsUnion(t *testing.T, res *reports.Result, wantWorkers, clients int) {
	t.Helper()
	if len(res.Workers) != wantWorkers {
		t.Fatalf("%d workers, want %d", len(res.Workers), wantWorkers)
	}
	var snaps []reports.Stats
	pids := map[int]bool{}
	total := 0
	for _, w := range res.Workers {
		if w.Status != reports.WorkerOK || w.Stats == nil {
			t.Fatalf("worker %d: %s %s", w.Index, w.Status, w.Error)
		}
		if w.PID == os.Getpid() || pids[w.PID] {
			t.Errorf("worker %d ran in pid %d, not a process of its own", w.Index, w.PID)
		}
		pids[w.PID] = true
		total += w.Clients
		snaps = append(snaps, *w.Stats)
	}
	if total != clients {
		t.Errorf("workers hold %d clients, want %d", total, clients)
	}
	union, err := reports.MergeStats(snaps...)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Stats.Equal(union) {
		t.Errorf("merged stats differ from the union of the workers' stats")
	}
	for _, h := range union.HistNames() {
		if !res.Stats.Hist(h).Equal(union.Hist(h)) {
			t.Errorf("histogram %s: merged %d values, union %d", h, res.Stats.Count(h), union.Count(h))
		}
	}
	// An independent path: the one-second interval histograms every worker streamed, merged by
	// second, add up to exactly the merged cumulative histograms.
	for _, h := range union.HistNames() {
		fromSeries := stats.NewHist()
		for _, iv := range res.Series {
			if p, ok := iv.Histograms[h]; ok {
				ph, err := p.Hist()
				if err != nil {
					t.Fatalf("second %d %s: %v", iv.Second, h, err)
				}
				fromSeries.Merge(ph)
			}
		}
		if !fromSeries.Equal(res.Stats.Hist(h)) {
			t.Errorf("histogram %s: the series holds %d values, the merged snapshot %d", h, fromSeries.Count(), res.Stats.Count(h))
		}
	}
	if got := res.Stats.Counter(stats.CtrConnects); got < int64(clients) {
		t.Errorf("%d connects, want at least %d", got, clients)
	}
	t.Logf("%d workers, %d connects, connect p99 %v, fanout p99 %v (%d values), %d messages received",
		len(res.Workers), res.Stats.Counter(stats.CtrConnects), res.Stats.Percentile(stats.HistConnect, 99),
		res.Stats.Percentile(stats.HistFanout, 99), res.Stats.Count(stats.HistFanout), res.Stats.Counter(stats.CtrMessagesReceived))
}

// TestWorkerDies kills one of two spawned worker processes in the middle of the run: the run
// completes on the other, the result reports the dead worker with its exit status and keeps what
// it sent, and the run is marked unreliable.
func TestWorkerDies(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns worker processes")
	}
	t.Setenv(beMain, "1")
	t.Setenv(dieWorker, "1")
	out := t.TempDir()
	code, stdout, stderr := runCLI(context.Background(), "run", "--clients", "120", "--rooms", "4", "--ramp", "400", "--hold", "4s",
		"--fds-per-process", "100", "--progress", "plain", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d, want 0 (the rest of the run stands)\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "1 of 2 workers lost") {
		t.Errorf("stderr %q lacks the lost-worker warning", stderr)
	}
	res, err := reports.ReadJSON(filepath.Join(out, reports.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if res.StopReason != reports.StopCompleted || len(res.Workers) != 2 {
		t.Fatalf("stop %q with %d workers", res.StopReason, len(res.Workers))
	}
	w0, w1 := res.Workers[0], res.Workers[1]
	if w0.Status != reports.WorkerOK {
		t.Errorf("worker 0: %s %s", w0.Status, w0.Error)
	}
	if w1.Status != reports.WorkerLost || !strings.Contains(w1.Error, "exit status 7") {
		t.Errorf("worker 1: %q %q, want lost with exit status 7", w1.Status, w1.Error)
	}
	if w1.Stats == nil || w1.Stats.Counter(stats.CtrConnects) == 0 {
		t.Errorf("the dead worker's last report was not kept")
	}
	if res.Reliable || !strings.Contains(res.UnreliableReason, "1 of 2 workers") {
		t.Errorf("reliable %v (%q), want unreliable because of the lost worker", res.Reliable, res.UnreliableReason)
	}
	lostEvent := false
	for _, ev := range res.Events {
		lostEvent = lostEvent || ev.Kind == "worker_lost"
	}
	if !lostEvent {
		t.Errorf("no worker_lost event in the result")
	}
	t.Logf("worker 1: %s", w1.Error)
}
