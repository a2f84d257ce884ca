package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/squall-dev/squall/loadgen/stats"
)

const testToken = "s3cret"

// fakeJob is the plan of the fake runner: record Values latencies per worker, spread over Ticks
// ticks of 100 ms, then return; Crash makes worker Crash-1 exit the process after its first tick
// (only in a spawned helper), Block makes the run wait for ctx.
type fakeJob struct {
	Values int  `json:"values"`
	Ticks  int  `json:"ticks"`
	Crash  int  `json:"crash"` // 1 + index of the worker that dies; 0 = none
	Block  bool `json:"block"`
}

// fakeRun records deterministic values derived from the worker index.
func fakeRun(ctx context.Context, job Job, rec *stats.Recorder, emit func(Event)) (json.RawMessage, error) {
	var fj fakeJob
	if err := json.Unmarshal(job.Plan, &fj); err != nil {
		return nil, err
	}
	select {
	case <-time.After(time.Until(job.StartAt)):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	emit(Event{Kind: "phase", Name: "hold"})
	for t := range fj.Ticks {
		for i := range fj.Values / max(fj.Ticks, 1) {
			rec.Record(stats.HistFanout, time.Duration(job.Worker*1000+t*100+i)*time.Microsecond)
			rec.Add(stats.CtrMessagesReceived, 1)
		}
		rec.SetGauge(stats.GaugeConnections, int64(10+job.Worker))
		if fj.Crash == job.Worker+1 && t == 1 && os.Getenv(helperEnv) != "" {
			os.Exit(3)
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			rec.Add("stopped", 1)
			return json.RawMessage(`{"stopped":true}`), nil
		}
	}
	if fj.Block {
		<-ctx.Done()
		rec.Add("stopped", 1)
	}
	return json.RawMessage(fmt.Sprintf(`{"worker":%d}`, job.Worker)), nil
}

const helperEnv = "AGENT_TEST_HELPER"

// TestMain lets the test binary act as a spawned agent process.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperMain())
	}
	goleak.VerifyTestMain(m)
}

func helperMain() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	done := make(chan struct{})
	a := New(os.Getenv(TokenEnv), fakeRun, nil, Options{TickEvery: 100 * time.Millisecond, OnShutdown: func() { close(done) }})
	srv := &http.Server{Handler: a.Handler()}
	go func() { _ = srv.Serve(ln) }()
	fmt.Println(ListenPrefix + ln.Addr().String())
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	select {
	case <-done:
		a.Close()
		_ = srv.Close()
	case <-term: // as a worker does: the job ends cleanly and its stream delivers the end
		a.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
	return 0
}

func startAgent(t *testing.T) (*Agent, *httptest.Server) {
	t.Helper()
	a := New(testToken, fakeRun, nil, Options{TickEvery: 100 * time.Millisecond, Keepalive: 200 * time.Millisecond})
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close(); a.Close() })
	return a, srv
}

func addr(srv *httptest.Server) string { return strings.TrimPrefix(srv.URL, "http://") }

func jobs(n int, fj fakeJob) []Job {
	b, _ := json.Marshal(fj)
	start := time.Now().Add(200 * time.Millisecond)
	out := make([]Job, n)
	for i := range out {
		out[i] = Job{ID: "j" + strconv.Itoa(i), Worker: i, Workers: n, StartAt: start, Plan: b}
	}
	return out
}

// union records what every worker records into one recorder.
func union(n int, fj fakeJob) stats.Snapshot {
	rec := stats.NewRecorder(time.Now())
	for w := range n {
		for t := range fj.Ticks {
			for i := range fj.Values / fj.Ticks {
				rec.Record(stats.HistFanout, time.Duration(w*1000+t*100+i)*time.Microsecond)
				rec.Add(stats.CtrMessagesReceived, 1)
			}
		}
		rec.AddGauge(stats.GaugeConnections, int64(10+w))
	}
	return rec.Snapshot()
}

func TestControllerMergesWorkers(t *testing.T) {
	const n = 3
	fj := fakeJob{Values: 300, Ticks: 3}
	var remotes []*Remote
	for range n {
		_, srv := startAgent(t)
		r, err := Dial(context.Background(), addr(srv), testToken)
		if err != nil {
			t.Fatal(err)
		}
		remotes = append(remotes, r)
	}
	var updates int
	c := &Controller{UpdateEvery: 50 * time.Millisecond, OnUpdate: func(Update) { updates++ }}
	out, err := c.Run(context.Background(), remotes, jobs(n, fj))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range out.Workers {
		if w.Status != StatusOK || w.Err != "" {
			t.Errorf("worker %d: %s %s", w.Index, w.Status, w.Err)
		}
		if want := fmt.Sprintf(`{"worker":%d}`, w.Index); string(w.Summary) != want {
			t.Errorf("worker %d summary %s, want %s", w.Index, w.Summary, want)
		}
	}
	if want := union(n, fj); !out.Merged.Equal(want) {
		t.Errorf("merged differs from the union: %v vs %v", out.Merged.Counters, want.Counters)
	}
	var perWorker []stats.Snapshot
	for _, w := range out.Workers {
		perWorker = append(perWorker, w.Snapshot)
	}
	if !stats.MergeAll(perWorker...).Equal(out.Merged) {
		t.Errorf("merged differs from the merge of the workers' snapshots")
	}
	var inSeries int64
	for _, iv := range out.Series {
		inSeries += iv.Counters[stats.CtrMessagesReceived]
	}
	if inSeries != n*300 {
		t.Errorf("series holds %d messages, want %d", inSeries, n*300)
	}
	if len(out.Events) != n {
		t.Errorf("%d events, want %d phase events", len(out.Events), n)
	}
	if updates == 0 {
		t.Errorf("no progress updates")
	}
}

func TestWrongToken(t *testing.T) {
	_, srv := startAgent(t)
	_, err := Dial(context.Background(), addr(srv), "wrong")
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("err %v, want ErrUnauthorized", err)
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, addr(srv)) {
		t.Errorf("error %q should be one line naming the agent", msg)
	}
}

func TestStopOnCancel(t *testing.T) {
	_, srv := startAgent(t)
	r, err := Dial(context.Background(), addr(srv), testToken)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Controller{UpdateEvery: 50 * time.Millisecond, OnUpdate: func(u Update) {
		if u.Merged.Counter(stats.CtrMessagesReceived) > 0 {
			cancel() // stop once something was measured
		}
	}}
	out, err := c.Run(ctx, []*Remote{r}, jobs(1, fakeJob{Values: 100, Ticks: 2, Block: true}))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	w := out.Workers[0]
	if w.Status != StatusOK || w.Snapshot.Counter("stopped") != 1 {
		t.Errorf("status %s stopped=%d; want ok with the final snapshot after the stop", w.Status, w.Snapshot.Counter("stopped"))
	}
}

func TestLostAgentKeepsTheRest(t *testing.T) {
	_, good := startAgent(t)
	_, bad := startAgent(t)
	var remotes []*Remote
	for _, s := range []*httptest.Server{good, bad} {
		r, err := Dial(context.Background(), addr(s), testToken)
		if err != nil {
			t.Fatal(err)
		}
		remotes = append(remotes, r)
	}
	killed := false
	c := &Controller{UpdateEvery: 50 * time.Millisecond, LostAfter: time.Second, OnUpdate: func(u Update) {
		if !killed && u.Merged.Counter(stats.CtrMessagesReceived) > 0 {
			killed = true
			bad.CloseClientConnections() // the agent vanishes mid-run
			bad.Config.SetKeepAlivesEnabled(false)
			bad.Listener.Close()
		}
	}}
	out, err := c.Run(context.Background(), remotes, jobs(2, fakeJob{Values: 600, Ticks: 6}))
	if err != nil {
		t.Fatal(err)
	}
	if out.Workers[0].Status != StatusOK {
		t.Errorf("good worker: %s %s", out.Workers[0].Status, out.Workers[0].Err)
	}
	if out.Workers[1].Status != StatusLost || !strings.Contains(out.Workers[1].Err, "lost") {
		t.Errorf("bad worker: %q %q, want lost", out.Workers[1].Status, out.Workers[1].Err)
	}
	if got := out.Merged.Counter(stats.CtrMessagesReceived); got < 600 {
		t.Errorf("merged %d messages, want the good worker's 600 and the lost one's partial count", got)
	}
}

// spawnHelpers spawns n agents from this test binary (TestMain's helper), released at the end.
func spawnHelpers(t *testing.T, n int) []*Remote {
	t.Helper()
	if testing.Short() {
		t.Skip("spawns processes")
	}
	remotes, err := Spawn(context.Background(), n, SpawnOptions{
		Exe:   os.Args[0],
		Args:  []string{"-test.run=^$"},
		Env:   []string{helperEnv + "=1"},
		Token: testToken,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Release(context.Background(), remotes...) })
	return remotes
}

func TestSpawnedWorkerDies(t *testing.T) {
	remotes := spawnHelpers(t, 2)
	for _, r := range remotes {
		if !r.Spawned() || r.PID() == os.Getpid() || r.PID() == 0 {
			t.Fatalf("remote %s pid %d not a spawned process", r.Addr, r.PID())
		}
	}
	out, err := (&Controller{}).Run(context.Background(), remotes, jobs(2, fakeJob{Values: 400, Ticks: 4, Crash: 2}))
	if err != nil {
		t.Fatal(err)
	}
	if out.Workers[0].Status != StatusOK {
		t.Errorf("worker 0: %s %s", out.Workers[0].Status, out.Workers[0].Err)
	}
	if w := out.Workers[1]; w.Status != StatusLost || !strings.Contains(w.Err, "exit status 3") {
		t.Errorf("worker 1: %q %q, want lost with its exit status", w.Status, w.Err)
	}
	if out.Merged.Counter(stats.CtrMessagesReceived) < 400 {
		t.Errorf("merged lost the surviving worker's data")
	}
}

// failStops fails every stop request, as on a machine where no new connection can be made.
type failStops struct{ http.RoundTripper }

func (f failStops) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/stop") {
		return nil, errors.New("no new connection can be made")
	}
	return f.RoundTripper.RoundTrip(req)
}

// TestStopBySignal: a spawned worker that cannot be asked to stop over HTTP is sent SIGTERM,
// stops its job cleanly and reports its end on its stream.
func TestStopBySignal(t *testing.T) {
	remotes := spawnHelpers(t, 1)
	remotes[0].http.Transport = failStops{remotes[0].http.Transport}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &Controller{UpdateEvery: 50 * time.Millisecond, StopGrace: 20 * time.Second, OnUpdate: func(u Update) {
		if u.Merged.Counter(stats.CtrMessagesReceived) > 0 {
			cancel()
		}
	}}
	out, err := c.Run(ctx, remotes, jobs(1, fakeJob{Values: 100, Ticks: 2, Block: true}))
	if err != nil {
		t.Fatal(err)
	}
	if w := out.Workers[0]; w.Status != StatusOK || w.Snapshot.Counter("stopped") != 1 {
		t.Errorf("worker %s %q stopped=%d; want ok with the final snapshot after the signal", w.Status, w.Err, w.Snapshot.Counter("stopped"))
	}
}

func TestSpawnBadBinary(t *testing.T) {
	_, err := Spawn(context.Background(), 1, SpawnOptions{Exe: "/bin/false", Args: []string{}, Token: "x", StartTimeout: 5 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "exited before listening") {
		t.Fatalf("err %v", err)
	}
}

func TestAgentRejectsSecondJob(t *testing.T) {
	_, srv := startAgent(t)
	r, err := Dial(context.Background(), addr(srv), testToken)
	if err != nil {
		t.Fatal(err)
	}
	js := jobs(2, fakeJob{Values: 10, Ticks: 1, Block: true})
	if err := r.Start(context.Background(), js[0]); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background(), js[1]); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("second job: %v, want 409 busy", err)
	}
	if err := r.Stop(context.Background(), js[0].ID); err != nil {
		t.Fatal(err)
	}
}

// TestStreamResumes cuts the stream connection mid-run while the agent lives on: the controller
// reopens it after the last message it got, so nothing is lost or counted twice.
func TestStreamResumes(t *testing.T) {
	_, srv := startAgent(t)
	r, err := Dial(context.Background(), addr(srv), testToken)
	if err != nil {
		t.Fatal(err)
	}
	fj := fakeJob{Values: 600, Ticks: 6}
	cuts := 0
	c := &Controller{UpdateEvery: 50 * time.Millisecond, OnUpdate: func(u Update) {
		if cuts < 2 && u.Merged.Counter(stats.CtrMessagesReceived) > int64(cuts*200) {
			cuts++
			srv.CloseClientConnections()
		}
	}}
	out, err := c.Run(context.Background(), []*Remote{r}, jobs(1, fj))
	if err != nil {
		t.Fatal(err)
	}
	if cuts == 0 {
		t.Fatal("the stream was never cut")
	}
	if w := out.Workers[0]; w.Status != StatusOK {
		t.Fatalf("worker %s %s after %d cuts", w.Status, w.Err, cuts)
	}
	if !out.Merged.Equal(union(1, fj)) {
		t.Errorf("merged differs from what the worker recorded")
	}
	var sum int64
	for _, iv := range out.Series {
		sum += iv.Counters[stats.CtrMessagesReceived]
	}
	if sum != 600 {
		t.Errorf("series sums to %d messages after %d cuts, want 600 (no interval lost or repeated)", sum, cuts)
	}
}

// TestAgentRunsOnlyItsShard: an agent given a shard (an Indexed Job's completion index) refuses a
// job for another shard and takes its own.
func TestAgentRunsOnlyItsShard(t *testing.T) {
	shard := 1
	a := New(testToken, fakeRun, nil, Options{TickEvery: 100 * time.Millisecond, Shard: &shard})
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close(); a.Close() })
	r, err := Dial(context.Background(), addr(srv), testToken)
	if err != nil {
		t.Fatal(err)
	}
	js := jobs(2, fakeJob{Values: 10, Ticks: 1})
	if err := r.Start(context.Background(), js[0]); err == nil || !strings.Contains(err.Error(), "this agent runs shard 1, the job is shard 0 of 2") {
		t.Errorf("job of shard 0: %v, want refused", err)
	}
	if err := r.Start(context.Background(), js[1]); err != nil {
		t.Errorf("job of its own shard: %v", err)
	}
}

// TestUpdateLostConnections: a lost worker's last connections gauge is reported apart, so that the
// progress line stops counting its clients as connected (Merged keeps its counters).
func TestUpdateLostConnections(t *testing.T) {
	snap := func(conns int64) *stats.Snapshot {
		return &stats.Snapshot{Gauges: map[string]int64{stats.GaugeConnections: conns}}
	}
	ws := []*workerState{
		{running: true, snap: snap(100)},
		{status: StatusLost, snap: snap(40)},
		{status: StatusLost},
	}
	u := (&Controller{}).update(ws, time.Now())
	if u.Lost != 2 || u.LostConnections != 40 || u.Merged.Gauge(stats.GaugeConnections) != 140 {
		t.Fatalf("update: lost %d, lost connections %d, merged gauge %d; want 2, 40, 140",
			u.Lost, u.LostConnections, u.Merged.Gauge(stats.GaugeConnections))
	}
}

// TestJobStateKeepsNewestSnapshots: of the snapshots appended, a late reader still finds the
// newest one and the newest one with histograms; older ones are dropped.
func TestJobStateKeepsNewestSnapshots(t *testing.T) {
	js := &jobState{lastTick: -1, lastHists: -1, changed: make(chan struct{})}
	full := func() *stats.Snapshot { return &stats.Snapshot{Hists: map[string]*stats.Hist{}} }
	counts := func() *stats.Snapshot { return &stats.Snapshot{} }
	for _, s := range []*stats.Snapshot{full(), counts(), counts(), full(), counts(), counts()} {
		js.append(Message{Type: MsgTick, Snapshot: s})
	}
	var kept []int
	for i, m := range js.msgs {
		if m.Snapshot != nil {
			kept = append(kept, i)
		}
	}
	if want := []int{3, 5}; !slices.Equal(kept, want) {
		t.Fatalf("snapshots kept at %v, want %v (the newest with histograms, the newest)", kept, want)
	}
	js.append(Message{Type: MsgTick, Snapshot: full()})
	kept = kept[:0]
	for i, m := range js.msgs {
		if m.Snapshot != nil {
			kept = append(kept, i)
		}
	}
	if want := []int{6}; !slices.Equal(kept, want) {
		t.Fatalf("snapshots kept at %v, want %v", kept, want)
	}
}

// sealableListener stands for a machine on which new connections stop working (a full
// connection-tracking table, no ports left) while established ones carry on: once sealed, every
// new connection is closed as soon as it is accepted.
type sealableListener struct {
	net.Listener
	mu     sync.Mutex
	sealed bool
	conns  []net.Conn // accepted before the seal, in order
}

func (l *sealableListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		sealed := l.sealed
		if !sealed {
			l.conns = append(l.conns, c)
		}
		l.mu.Unlock()
		if !sealed {
			return c, nil
		}
		_ = c.Close()
	}
}

// seal stops new connections once n have been accepted, and reports whether it did.
func (l *sealableListener) seal(n int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.conns) < n {
		return false
	}
	l.sealed = true
	return true
}

func (l *sealableListener) conn(i int) net.Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns[i]
}

// TestStreamReopensOnSpare cuts the stream once no new connection can be made to the agent: the
// controller reopens it on the spare connection it keeps, and the worker is not lost.
func TestStreamReopensOnSpare(t *testing.T) {
	a := New(testToken, fakeRun, nil, Options{TickEvery: 100 * time.Millisecond, Keepalive: 200 * time.Millisecond})
	srv := httptest.NewUnstartedServer(a.Handler())
	ln := &sealableListener{Listener: srv.Listener}
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close(); a.Close() })

	r, err := Dial(context.Background(), addr(srv), testToken)
	if err != nil {
		t.Fatal(err)
	}
	// One worker's requests go one after the other on the first connection (the info asked by
	// Dial, the job, then its stream); the second is the spare.
	cut := false
	c := &Controller{UpdateEvery: 20 * time.Millisecond, LostAfter: 2 * time.Second, OnUpdate: func(u Update) {
		if !cut && u.Merged.Counter(stats.CtrMessagesReceived) > 0 && ln.seal(2) {
			cut = true
			_ = ln.conn(0).Close()
		}
	}}
	fj := fakeJob{Values: 900, Ticks: 9}
	out, err := c.Run(context.Background(), []*Remote{r}, jobs(1, fj))
	if err != nil {
		t.Fatal(err)
	}
	if !cut {
		t.Fatal("no spare connection was made while the job ran")
	}
	if w := out.Workers[0]; w.Status != StatusOK {
		t.Fatalf("worker %s %s: the stream was not reopened on the spare connection", w.Status, w.Err)
	}
	if !out.Merged.Equal(union(1, fj)) {
		t.Errorf("merged differs from what the worker recorded")
	}
}

func TestSilenceWatchDecide(t *testing.T) {
	const idle = 10 * time.Second
	tests := []struct {
		name       string
		now, due   time.Duration
		heard      time.Duration
		wantNext   time.Duration
		wantSilent bool
	}{
		{name: "silent for idle, checked on time", now: 30 * time.Second, due: 30 * time.Second, heard: 20 * time.Second, wantSilent: true},
		{name: "a line since the check was set", now: 30 * time.Second, due: 30 * time.Second, heard: 26 * time.Second, wantNext: 6 * time.Second},
		{name: "checked late: this process was held up", now: 60 * time.Second, due: 30 * time.Second, heard: 20 * time.Second, wantNext: idle},
		{name: "a little late is on time", now: 30*time.Second + stallLate/2, due: 30 * time.Second, heard: 20 * time.Second, wantSilent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &silenceWatch{idle: idle, due: tt.due}
			next, silent := w.decide(tt.now, tt.heard)
			if next != tt.wantNext || silent != tt.wantSilent {
				t.Errorf("decide = %v, %v; want %v, %v", next, silent, tt.wantNext, tt.wantSilent)
			}
		})
	}
}
