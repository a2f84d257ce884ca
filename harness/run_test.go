package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/squall-dev/squall/chaos"
	"github.com/squall-dev/squall/internal/wstest"
	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/agent"
	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/reports"
	"github.com/squall-dev/squall/scenarios"
)

// planSpec is the built-in plan's shape: clients in rooms, ramping at 400/s, one broadcast a second
// each for hold, against the embedded gateway.
func planSpec(clients, rooms int, hold time.Duration) Spec {
	return Spec{Plan: loadgen.Plan{Name: "test", Seed: 1,
		Cohorts: []loadgen.Cohort{{Name: "tabs", Count: clients, Behaviour: loadgen.Behaviour{
			RoomsPerClient: 1, RoomCount: rooms, SendInterval: time.Second, PayloadSize: 64}}},
		Phases: []loadgen.Phase{
			{Name: "ramp", Kind: loadgen.PhaseRamp, Rate: 400},
			{Name: "hold", Kind: loadgen.PhaseHold, Duration: hold},
			{Name: "ramp-down", Kind: loadgen.PhaseRampDown},
		},
	}}
}

// runScenario loads file with opts and runs it.
func runScenario(t *testing.T, file string, opts ...scenarios.Option) (*reports.Result, error) {
	t.Helper()
	s, err := scenarios.Load(file, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return Run(ctx, Spec{Scenario: s, File: file}, Options{})
}

func TestSpecsRefused(t *testing.T) {
	s, err := scenarios.Load(filepath.Join(scenarioDir, "smoke.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	bad := planSpec(10, 1, time.Second)
	bad.Plan.Phases = nil
	url := planSpec(10, 1, time.Second)
	url.Target.URL = "http://127.0.0.1:1/ws"
	tests := []struct {
		name string
		spec Spec
		opts Options
		want string
	}{
		{"nothing", Spec{}, Options{}, "nothing to run"},
		{"scenario and plan", Spec{Scenario: s, Plan: planSpec(1, 1, time.Second).Plan}, Options{}, "sets its own plan"},
		{"invalid plan", bad, Options{}, "phase"},
		{"agents without token", planSpec(10, 1, time.Second), Options{Agents: []string{"127.0.0.1:1"}}, "need their shared token"},
		{"agents and workers", planSpec(10, 1, time.Second), Options{Agents: []string{"127.0.0.1:1"}, Token: "t", Workers: 2}, "exclude each other"},
		{"not a WebSocket URL", url, Options{}, "unknown target"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Run(context.Background(), tt.spec, tt.opts)
			if res != nil || !IsUsage(err) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("result %v, err %v: want a usage error saying %q", res != nil, err, tt.want)
			}
		})
	}
}

// TestInterrupted stops a run in its hold phase, as Ctrl-C does: the run returns ErrInterrupted
// with a result in which every client was connected and then closed cleanly.
func TestInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	var mu sync.Mutex
	var conns int64
	var phase string
	opts := Options{OnUpdate: func(u agent.Update) {
		mu.Lock()
		defer mu.Unlock()
		conns = u.Merged.Gauge(stats.GaugeConnections)
		for _, ev := range u.Events {
			if ev.Kind == reports.EventPhase {
				phase = ev.Name
			}
		}
	}}
	done := make(chan struct{})
	var res *reports.Result
	var err error
	go func() {
		defer close(done)
		res, err = Run(ctx, planSpec(40, 2, 5*time.Minute), opts)
	}()
	wstest.WaitFor(t, 30*time.Second, "the hold phase with every client connected", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return phase == "hold" && conns == 40
	})
	start := time.Now()
	cancel(errors.New("test interrupt"))
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop within 30 s of the interrupt")
	}
	t.Logf("stopped %v after the interrupt", time.Since(start).Round(time.Millisecond))
	if !errors.Is(err, ErrInterrupted) || !strings.Contains(err.Error(), "test interrupt") {
		t.Fatalf("err %v, want ErrInterrupted with its cause", err)
	}
	if res == nil || res.StopReason != reports.StopInterrupted {
		t.Fatalf("result %+v", res)
	}
	if got := res.Stats.Counter(stats.CtrConnects); got != 40 {
		t.Errorf("%d connects, want 40", got)
	}
	if got := res.Stats.Gauge(stats.GaugeConnections); got != 0 {
		t.Errorf("%d connections still open after the stop, want 0", got)
	}
	for k, v := range res.Stats.Counters {
		if (strings.HasPrefix(k, stats.PrefixCloseCode) && k != stats.CloseCodeCounter(1000)) || strings.HasPrefix(k, stats.PrefixError) {
			t.Errorf("%s = %d after the stop, want only normal closes", k, v)
		}
	}
}

// TestSplitAcrossWorkers runs a small plan with a low per-process file budget so that it is split
// across spawned worker processes, and checks that the merged histograms equal the union of the
// workers' histograms. The 50 000-client version is TestFiftyThousandClients.
func TestSplitAcrossWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns worker processes")
	}
	res, err := Run(context.Background(), planSpec(120, 4, time.Second), Options{FDsPerProcess: 100})
	if err != nil {
		t.Fatal(err)
	}
	checkMergedIsUnion(t, res, 2, 120)
}

// TestSplitAcrossLeanWorkers is TestSplitAcrossWorkers with the workers started from the lean
// cmd/loadgen-worker binary (loadgen run --worker-binary): each worker process runs that binary,
// and the split run's result is the same union.
func TestSplitAcrossLeanWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/loadgen-worker and spawns worker processes")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "loadgen-worker")
	if out, err := exec.Command(goBin, "build", "-o", bin, "../cmd/loadgen-worker").CombinedOutput(); err != nil {
		t.Fatalf("build loadgen-worker: %v\n%s", err, out)
	}
	exes := map[int]string{}
	opts := Options{FDsPerProcess: 100, WorkerCommand: []string{bin, "agent", "--listen", "127.0.0.1:0"},
		OnStart: func(Start) { exes = childExecutables(t) }}
	res, err := Run(context.Background(), planSpec(120, 4, time.Second), opts)
	if err != nil {
		t.Fatal(err)
	}
	checkMergedIsUnion(t, res, 2, 120)
	for _, w := range res.Workers {
		if exes[w.PID] != bin {
			t.Errorf("worker %d (pid %d) runs %q, want %s", w.Index, w.PID, exes[w.PID], bin)
		}
	}
}

// childExecutables maps the pid of each child process of this one to its executable.
func childExecutables(t *testing.T) map[int]string {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", os.Getpid()))
	if err != nil || len(tasks) == 0 {
		t.Skipf("no /proc here: %v", err)
	}
	out := map[int]string{}
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread has exited
		}
		for _, field := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(field)
			if err != nil {
				continue
			}
			if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil {
				out[pid] = exe
			}
		}
	}
	return out
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
	t.Setenv(dieWorker, "1")
	res, err := Run(context.Background(), planSpec(120, 4, 4*time.Second), Options{FDsPerProcess: 100})
	if err != nil {
		t.Fatalf("%v, want the rest of the run to stand", err)
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

// TestRunScenarioToxic routes a cohort through the embedded Toxiproxy and adds a latency toxic
// for one second: both steps are recorded as fault events in the result (and told as they happen),
// and the proxied receivers' fan-out latency shows the added 100 ms.
func TestRunScenarioToxic(t *testing.T) {
	file := filepath.Join("testdata", "scenarios", "toxic-latency.yaml")
	s, err := scenarios.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var notes []string
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, Spec{Scenario: s, File: file}, Options{OnNote: func(line string) {
		mu.Lock()
		notes = append(notes, line)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range res.SLOs {
		if !v.Pass {
			t.Errorf("SLO %s: %s", v.Name, v.Detail)
		}
	}
	var faults []*reports.Fault
	for _, ev := range res.Events {
		if ev.Kind == reports.EventFault {
			faults = append(faults, ev.Fault)
		}
	}
	if len(faults) != 2 {
		t.Fatalf("%d fault events, want 2 (add and remove): %+v", len(faults), res.Events)
	}
	add, rm := faults[0], faults[1]
	if add.Action != string(chaos.ActionAddToxic) || add.Target != "office-net" || add.Params["type"] != "latency" ||
		add.Params["latency"] != "100" || add.Error != "" || add.At != time.Second {
		t.Errorf("add event %+v", add)
	}
	if rm.Action != string(chaos.ActionRemoveToxic) || rm.Params["toxic"] != "lag" || rm.Error != "" || rm.At != 2*time.Second {
		t.Errorf("remove event %+v", rm)
	}
	if o := res.ProxyOverhead; o == nil || o.Proxied.N != 2000 || o.Proxied.P50 <= 0 {
		t.Errorf("proxy overhead not measured: %+v", o)
	}
	mu.Lock()
	told := strings.Join(notes, "\n")
	mu.Unlock()
	if !strings.Contains(told, "of the plan: add_toxic lag (latency) on office-net") {
		t.Errorf("the fault was not told as it happened:\n%s", told)
	}
	// The per-cohort figures of the merged result: the downstream toxic delays the proxied
	// cohort's receipts, not the direct one's (compared as shares of receipts at 100 ms or more,
	// which a loaded machine raises for both alike).
	slow := func(cohort string) float64 {
		h := res.Stats.Cohort(cohort).Hist(stats.HistFanout)
		if h.Count() == 0 {
			t.Fatalf("cohort %s: no fan-out figures in the merged result", cohort)
		}
		n := int64(0)
		for _, b := range h.HDR().Distribution() {
			if b.From >= int64(100*time.Millisecond) {
				n += b.Count
			}
		}
		return float64(n) / float64(h.Count())
	}
	if p, d := slow("proxied"), slow("direct"); p < d+0.1 {
		t.Errorf("receipts at 100 ms or more: proxied %.2f, direct %.2f; want the proxied cohort's well above", p, d)
	} else {
		t.Logf("receipts at 100 ms or more: proxied %.2f, direct %.2f", p, d)
	}
}

// TestRunScenarioBehaviourSwitch runs a scenario whose timeline switches a silent cohort to
// sending: the switch reaches the worker (messages are sent after it, none before) and is recorded
// among the result's events.
func TestRunScenarioBehaviourSwitch(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a scenario for 3 s")
	}
	res, err := runScenario(t, filepath.Join("testdata", "scenarios", "behaviour-switch.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// About 1 s of sending at 10/s for 2 tabs before ramp-down stops it.
	if n := res.Stats.Cohort("users").Counter(stats.CtrMessagesSent); n < 6 || n > 40 {
		t.Errorf("users sent %d after the switch, want about 20", n)
	}
	found := false
	for _, ev := range res.Events {
		found = found || (ev.Fault != nil && ev.Fault.Action == string(scenarios.ChaosBehaviour) && ev.Fault.Error == "")
	}
	if !found {
		t.Errorf("no behaviour switch among the events %+v", res.Events)
	}
}

// TestBuiltinPlanGraded runs a plan without a scenario: it is graded by the built-in plan's SLOs
// (every client connected, delivery, abnormal closes, generator health), diagnosed, and result.json
// names the builds of loadgen and of the gateway.
func TestBuiltinPlanGraded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, planSpec(20, 2, 2*time.Second), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range res.SLOs {
		names = append(names, v.Name)
		// The generator's health depends on the machine; a reliable run holds it like the rest.
		if !v.Pass && (v.Metric != "schedule_lag" || res.Reliable) {
			t.Errorf("SLO %s failed: %s", v.Name, v.Measured())
		}
	}
	want := "every client connected,lost_acked_messages count,unrecovered_gaps count,ordering_violations count,close_codes{1006} count,false_disconnects count,schedule_lag p99"
	if got := strings.Join(names, ","); got != want {
		t.Errorf("SLOs %s\nwant %s", got, want)
	}
	if res.Diagnosis == nil {
		t.Error("no diagnosis")
	}
	if b := res.Env.Loadgen; b.Name != "loadgen" || b.Version == "" || b.Commit == "" || b.GoVersion == "" {
		t.Errorf("loadgen build %+v", b)
	}
	if g := res.Env.Gateway; g == nil || !strings.HasPrefix(g.Name, "refserver") || g.Version != res.Env.Loadgen.Version {
		t.Errorf("gateway build %+v", g)
	}
}
