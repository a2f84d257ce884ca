package agent

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/squall-dev/squall/loadgen/stats"
)

// RunFunc runs one job in this process: it waits for job.StartAt, records into rec, calls emit
// for events, and returns when the job ends or ctx is cancelled (then it stops the ramp and closes
// its clients cleanly first). The summary is passed through to the controller as it is.
type RunFunc func(ctx context.Context, job Job, rec *stats.Recorder, emit func(Event)) (summary json.RawMessage, err error)

// Options configure an Agent.
type Options struct {
	Version string
	// OnShutdown is called (once, in its own goroutine) when a controller asks the agent to exit.
	OnShutdown func()
	// Keepalive is how often an idle stream gets a keepalive line; zero means 2 s.
	Keepalive time.Duration
	// TickEvery is the interval length; zero means one second. Tests shorten it.
	TickEvery time.Duration
	// SnapshotEvery is how many ticks apart a tick's cumulative snapshot carries the histograms
	// (zero means 5; the other ticks carry the counters and gauges only, and the last message
	// carries everything); worker i's turn comes i ticks later than worker 0's. Encoding every
	// histogram of a run costs a worker more CPU each second than thousands of idle clients.
	SnapshotEvery int
	// Shard, when set, is the only shard (Job.Worker) this agent runs: a job for another is
	// refused (an agent of a Kubernetes Indexed Job runs its completion index).
	Shard *int
	// TLS and Insecure are reported in Info: the agent serves TLS, or plain HTTP off loopback
	// because it was told to. The caller owns the listener; these only describe it.
	TLS, Insecure bool
	// OnSent, when set, sees every tick and done message once it has been written to a controller's
	// stream and flushed (tests end a worker right after a report it is known to have sent).
	OnSent func(Message)
}

// Agent runs jobs for controllers. Create it with New, serve Handler, and Close it when done.
type Agent struct {
	token  []byte
	run    RunFunc
	logger *slog.Logger
	opts   Options

	mu       sync.Mutex
	job      *jobState // the current or last job
	closed   bool
	wg       sync.WaitGroup // job goroutines
	shutOnce sync.Once
}

// jobState is one job: its message log and its cancel function.
type jobState struct {
	job    Job
	cancel context.CancelFunc

	mu        sync.Mutex
	msgs      []Message
	lastTick  int // index in msgs of the last snapshot (the only one kept, with lastHists)
	lastHists int // index in msgs of the last snapshot with histograms
	done      bool
	changed   chan struct{} // closed and replaced on every append
}

// New returns an agent that accepts requests carrying token and runs jobs with run. A nil logger
// discards.
func New(token string, run RunFunc, logger *slog.Logger, opts Options) *Agent {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.Keepalive <= 0 {
		opts.Keepalive = 2 * time.Second
	}
	if opts.SnapshotEvery <= 0 {
		opts.SnapshotEvery = 5
	}
	if opts.TickEvery <= 0 {
		opts.TickEvery = time.Second
	}
	return &Agent{token: []byte(token), run: run, logger: logger, opts: opts}
}

// Handler serves the protocol.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/info", a.info)
	mux.HandleFunc("POST /v1/jobs", a.start)
	mux.HandleFunc("GET /v1/jobs/{id}/stream", a.stream)
	mux.HandleFunc("POST /v1/jobs/{id}/stop", a.stop)
	mux.HandleFunc("POST /v1/shutdown", a.shutdown)
	return a.auth(mux)
}

func (a *Agent) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(bearer(r.Header.Get("Authorization")))
		if len(a.token) == 0 || subtle.ConstantTimeCompare(got, a.token) != 1 {
			a.logger.Warn("agent: request with a wrong or missing token", "remote", r.RemoteAddr, "path", r.URL.Path)
			writeErr(w, http.StatusUnauthorized, "wrong or missing token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func bearer(h string) string {
	const p = "Bearer "
	if len(h) > len(p) && h[:len(p)] == p {
		return h[len(p):]
	}
	return ""
}

func writeErr(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// FDLimit returns this process's soft open-file limit (0 when unknown).
func FDLimit() uint64 {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) != nil {
		return 0
	}
	return rl.Cur
}

func (a *Agent) info(w http.ResponseWriter, _ *http.Request) {
	a.mu.Lock()
	busy := a.job != nil && !a.job.isDone()
	a.mu.Unlock()
	writeJSON(w, http.StatusOK, Info{Version: a.opts.Version, PID: os.Getpid(), Cores: runtime.NumCPU(), FDLimit: FDLimit(), Busy: busy,
		TLS: a.opts.TLS, Insecure: a.opts.Insecure})
}

func (a *Agent) start(w http.ResponseWriter, r *http.Request) {
	job, err := DecodeJob(http.MaxBytesReader(w, r.Body, maxJobBytes))
	if err != nil {
		writeErr(w, http.StatusBadRequest, err.Error())
		return
	}
	if a.opts.Shard != nil && job.Worker != *a.opts.Shard {
		writeErr(w, http.StatusBadRequest, fmt.Sprintf("this agent runs shard %d, the job is shard %d of %d", *a.opts.Shard, job.Worker, job.Workers))
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		writeErr(w, http.StatusServiceUnavailable, "agent is shutting down")
		return
	}
	if a.job != nil && !a.job.isDone() {
		writeErr(w, http.StatusConflict, "busy with job "+a.job.job.ID)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	js := &jobState{job: job, cancel: cancel, lastTick: -1, lastHists: -1, changed: make(chan struct{})}
	a.job = js
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer cancel()
		a.runJob(ctx, js)
	}()
	a.logger.Info("agent: job started", "job", job.ID, "worker", job.Worker, "start_at", job.StartAt)
	writeJSON(w, http.StatusCreated, map[string]string{"id": job.ID})
}

// runJob runs the job and its ticker; it owns both goroutines.
func (a *Agent) runJob(ctx context.Context, js *jobState) {
	job := js.job
	start := job.StartAt
	if start.IsZero() {
		start = time.Now()
	}
	rec := stats.NewRecorder(start)
	emit := func(e Event) {
		e.Worker = job.Worker
		if e.At.IsZero() {
			e.At = time.Now()
		}
		js.append(Message{Type: MsgEvent, Worker: job.Worker, Event: &e})
	}

	tickCtx, stopTicks := context.WithCancel(ctx)
	var tickWG sync.WaitGroup
	tickWG.Add(1)
	go func() {
		defer tickWG.Done()
		a.tick(tickCtx, js, rec, start)
	}()

	summary, err := a.runSafely(ctx, job, rec, emit)
	stopTicks()
	tickWG.Wait()

	now := time.Now()
	iv := rec.Tick(now)
	snap := rec.Snapshot()
	done := Message{Type: MsgDone, Worker: job.Worker, Interval: &iv, Snapshot: &snap, Summary: summary}
	if err != nil {
		done.Error = err.Error()
	}
	js.append(done)
	a.logger.Info("agent: job ended", "job", job.ID, "worker", job.Worker, "err", err)
}

func (a *Agent) runSafely(ctx context.Context, job Job, rec *stats.Recorder, emit func(Event)) (summary json.RawMessage, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("agent: job %s panicked: %v", job.ID, p)
		}
	}()
	return a.run(ctx, job, rec, emit)
}

// tick closes an interval at every whole interval after start until ctx ends. A tick that fires
// late (a starved process) is not followed by a burst of catch-up ticks: missed ones are skipped,
// so that no two intervals of one worker end in the same second.
func (a *Agent) tick(ctx context.Context, js *jobState, rec *stats.Recorder, start time.Time) {
	every := a.opts.TickEvery
	nextK := func(now time.Time) int64 {
		if now.Before(start) {
			return 1
		}
		return int64(now.Sub(start)/every) + 1
	}
	k := nextK(time.Now())
	for {
		t := time.NewTimer(time.Until(start.Add(time.Duration(k) * every)))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case now := <-t.C:
			iv := rec.Tick(now)
			if every == time.Second {
				iv.Second = int(k) // the scheduled second, even when the tick fired late
			}
			var snap stats.Snapshot
			// Workers take their turns (offset by worker index): encoding every histogram is a
			// worker's largest burst of CPU, and workers sharing a machine would otherwise all
			// burst in the same second, delaying each other's clients.
			if (k+int64(js.job.Worker))%int64(a.opts.SnapshotEvery) == 0 {
				// Kept until the controller has it (and the next replaces it): encoded, not as counts.
				var err error
				if snap, err = rec.SnapshotCompact(); err != nil {
					snap = rec.SnapshotCounts()
				}
			} else {
				snap = rec.SnapshotCounts()
			}
			js.append(Message{Type: MsgTick, Worker: js.job.Worker, Interval: &iv, Snapshot: &snap})
			k = max(k+1, nextK(time.Now()))
		}
	}
}

func (js *jobState) append(m Message) {
	js.mu.Lock()
	defer js.mu.Unlock()
	if js.done {
		return
	}
	m.Seq = len(js.msgs)
	if m.Snapshot != nil {
		// Snapshots are cumulative: only the newest is worth sending to a reader that is behind,
		// and the newest that carries histograms.
		if js.lastTick >= 0 && (js.lastTick != js.lastHists || m.Snapshot.Hists != nil) {
			js.msgs[js.lastTick].Snapshot = nil
		}
		if m.Snapshot.Hists != nil {
			if js.lastHists >= 0 && js.lastHists != js.lastTick {
				js.msgs[js.lastHists].Snapshot = nil
			}
			js.lastHists = len(js.msgs)
		}
		js.lastTick = len(js.msgs)
	}
	js.msgs = append(js.msgs, m)
	if m.Type == MsgDone {
		js.done = true
	}
	close(js.changed)
	js.changed = make(chan struct{})
}

func (js *jobState) isDone() bool {
	js.mu.Lock()
	defer js.mu.Unlock()
	return js.done
}

// since returns the messages from index from on, whether the job is done, and a channel closed
// at the next change.
func (js *jobState) since(from int) ([]Message, bool, <-chan struct{}) {
	js.mu.Lock()
	defer js.mu.Unlock()
	var out []Message
	if from < len(js.msgs) {
		out = append(out, js.msgs[from:]...)
	}
	return out, js.done, js.changed
}

func (a *Agent) jobByID(id string) *jobState {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.job != nil && a.job.job.ID == id {
		return a.job
	}
	return nil
}

func (a *Agent) stream(w http.ResponseWriter, r *http.Request) {
	js := a.jobByID(r.PathValue("id"))
	if js == nil {
		writeErr(w, http.StatusNotFound, "no such job")
		return
	}
	from, _ := strconv.Atoi(r.URL.Query().Get("from"))
	fl, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	keep := time.NewTicker(a.opts.Keepalive)
	defer keep.Stop()
	for {
		msgs, done, changed := js.since(from)
		for _, m := range msgs {
			if err := enc.Encode(m); err != nil {
				return
			}
			from = m.Seq + 1
		}
		if fl != nil && len(msgs) > 0 {
			fl.Flush()
		}
		if a.opts.OnSent != nil {
			for _, m := range msgs {
				if m.Type == MsgTick || m.Type == MsgDone {
					a.opts.OnSent(m)
				}
			}
		}
		if done && len(msgs) == 0 {
			return
		}
		if done {
			continue // send nothing more than what is there; loop ends above
		}
		select {
		case <-r.Context().Done():
			return
		case <-changed:
		case <-keep.C:
			if err := enc.Encode(Message{Type: MsgKeepalive, Seq: -1, Worker: js.job.Worker}); err != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
	}
}

func (a *Agent) stop(w http.ResponseWriter, r *http.Request) {
	js := a.jobByID(r.PathValue("id"))
	if js == nil {
		writeErr(w, http.StatusNotFound, "no such job")
		return
	}
	js.cancel()
	writeJSON(w, http.StatusAccepted, map[string]string{"id": js.job.ID})
}

func (a *Agent) shutdown(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusAccepted, map[string]string{})
	if a.opts.OnShutdown != nil {
		a.shutOnce.Do(func() { go a.opts.OnShutdown() })
	}
}

// Close stops a running job (cleanly, as a stop request does) and waits for it to end.
func (a *Agent) Close() {
	a.mu.Lock()
	a.closed = true
	if a.job != nil {
		a.job.cancel()
	}
	a.mu.Unlock()
	a.wg.Wait()
}
