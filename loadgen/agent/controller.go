package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/squall-dev/squall/loadgen/stats"
)

// Worker statuses in an Outcome.
const (
	StatusOK     = "ok"     // the job ran to its end (or stopped when asked)
	StatusLost   = "lost"   // the worker died or stopped answering
	StatusFailed = "failed" // the job could not start or returned an error
)

// WorkerOutcome is what one worker contributed.
type WorkerOutcome struct {
	Index    int
	Addr     string
	PID      int
	Status   string
	Err      string
	Snapshot stats.Snapshot // the last snapshot received (final when the worker finished)
	Series   stats.Series
	Summary  json.RawMessage
}

// Outcome is a whole run across workers.
type Outcome struct {
	Workers []WorkerOutcome
	Merged  stats.Snapshot // union of every worker's last snapshot, lost ones included
	Series  stats.Series   // merged by second
	Events  []Event
}

// Update is what the controller knows at one moment; Run calls OnUpdate with it once a second.
type Update struct {
	// Merged is the workers' counters and gauges added up (stats.MergeCounts): its histograms are
	// left out, as merging every worker's every second would cost the controller more than the
	// display that reads it is worth; Latest has the newest second's, the Outcome the whole run's.
	Merged stats.Snapshot
	Latest stats.Interval // the newest second any worker has reported, merged over the workers that reported it
	Live   int            // workers still running
	Lost   int
	// LostConnections is the connections gauge of the lost workers' last reports: their clients are
	// no longer connected, though Merged (which keeps their counters) still counts them.
	LostConnections int64
	Elapsed         time.Duration
	Events          []Event // events since the previous update
}

// Controller runs jobs on agents and merges what they report.
type Controller struct {
	// Idle bounds the silence of one stream connection before the controller drops it and
	// reconnects (resuming after the last message it got); zero means 10 s.
	Idle time.Duration
	// LostAfter is how long a worker may stay unheard (no message, no stream) before it counts as
	// lost; zero means 45 s. A spawned worker whose process exits is lost at once.
	LostAfter time.Duration
	// StopGrace bounds how long stopped workers may take to report their end; zero means 30 s.
	StopGrace time.Duration
	// OnUpdate, when set, is called about once a second and when something happens.
	OnUpdate func(Update)
	// UpdateEvery is the update interval; zero means one second.
	UpdateEvery time.Duration
	Logger      *slog.Logger
}

type workerState struct {
	remote  *Remote
	job     Job
	status  string
	err     string
	snap    *stats.Snapshot
	series  stats.Series
	summary json.RawMessage
	running bool
}

// Run starts jobs[i] on remotes[i] and follows them until every one has finished or been lost.
// When ctx ends it asks every running worker to stop and waits (up to StopGrace) for their final
// reports. Run returns an error only when no worker could start at all; lost or failed workers are
// reported in the Outcome.
func (c *Controller) Run(ctx context.Context, remotes []*Remote, jobs []Job) (Outcome, error) {
	if len(remotes) != len(jobs) {
		return Outcome{}, fmt.Errorf("agent: %d remotes for %d jobs", len(remotes), len(jobs))
	}
	idle, grace, every, lostAfter := c.Idle, c.StopGrace, c.UpdateEvery, c.LostAfter
	if idle <= 0 {
		idle = 10 * time.Second
	}
	if lostAfter <= 0 {
		lostAfter = 45 * time.Second
	}
	if grace <= 0 {
		grace = 30 * time.Second
	}
	if every <= 0 {
		every = time.Second
	}
	logger := c.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	var mu sync.Mutex
	ws := make([]*workerState, len(remotes))
	var events, pending []Event
	for i := range remotes {
		ws[i] = &workerState{remote: remotes[i], job: jobs[i], status: StatusFailed}
	}

	// Start every job.
	var startErrs []error
	for i, w := range ws {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := w.remote.Start(sctx, jobs[i])
		cancel()
		if err != nil {
			w.err = err.Error()
			startErrs = append(startErrs, err)
			logger.Warn("agent: job did not start", "agent", w.remote.Addr, "err", err)
			continue
		}
		w.running = true
	}
	if len(startErrs) == len(ws) {
		return c.outcome(ws, nil), fmt.Errorf("agent: no worker started: %w", errors.Join(startErrs...))
	}

	// Follow the streams. Stream contexts outlive ctx by StopGrace so that stopped workers can
	// deliver their final report.
	streamCtx, cancelStreams := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelStreams()
	var wg sync.WaitGroup
	finished := make(chan int, len(ws))
	remaining := 0
	for i, w := range ws {
		if !w.running {
			continue
		}
		remaining++
		wg.Add(1)
		go func() { // ends when the stream ends; streamCtx bounds it
			defer wg.Done()
			defer func() { finished <- i }()
			handle := func(m Message) {
				mu.Lock()
				defer mu.Unlock()
				switch m.Type {
				case MsgTick, MsgDone:
					if m.Interval != nil {
						w.series = append(w.series, *m.Interval)
					}
					if m.Snapshot != nil {
						if m.Snapshot.Hists == nil && w.snap != nil {
							// Counters and gauges only: the histograms of the last full one stand.
							m.Snapshot.Hists = w.snap.Hists
						}
						w.snap = m.Snapshot
					}
					if m.Type == MsgDone {
						w.summary = m.Summary
						w.running = false
						w.status = StatusOK
						if m.Error != "" {
							w.status, w.err = StatusFailed, m.Error
						}
					}
				case MsgEvent:
					if m.Event != nil {
						events = append(events, *m.Event)
						pending = append(pending, *m.Event)
					}
				}
			}
			err := c.follow(streamCtx, w.remote, w.job.ID, idle, lostAfter, handle, logger)
			mu.Lock()
			defer mu.Unlock()
			if w.running { // the stream ended without a done message
				w.running = false
				w.status = StatusLost
				why := err
				if ex := w.remote.exitedWith(); ex != "" {
					why = fmt.Errorf("%s (%v)", ex, err)
				} else if w.remote.proc != nil {
					// Give a dying process a moment to be reaped so the report names the exit.
					mu.Unlock()
					select {
					case <-w.remote.proc.exited:
					case <-time.After(500 * time.Millisecond):
					}
					mu.Lock()
					if ex := w.remote.exitedWith(); ex != "" {
						why = fmt.Errorf("%s (%v)", ex, err)
					}
				}
				w.err = fmt.Sprintf("worker %d lost: %v", w.job.Worker, why)
				ev := Event{At: time.Now(), Kind: "worker_lost", Name: fmt.Sprintf("worker %d", w.job.Worker), Detail: w.err, Worker: w.job.Worker}
				events = append(events, ev)
				pending = append(pending, ev)
				logger.Warn("agent: worker lost", "worker", w.job.Worker, "agent", w.remote.Addr, "err", why)
			}
		}()
	}

	start := time.Now()
	tick := time.NewTicker(every)
	defer tick.Stop()
	var graceC <-chan time.Time
	update := func() {
		if c.OnUpdate == nil {
			return
		}
		mu.Lock()
		u := c.update(ws, start)
		u.Events, pending = pending, nil
		mu.Unlock()
		c.OnUpdate(u)
	}
	ctxDone := ctx.Done()
	for remaining > 0 {
		select {
		case <-finished:
			remaining--
		case <-tick.C:
			update()
		case <-ctxDone:
			ctxDone = nil
			logger.Info("agent: stopping workers", "cause", context.Cause(ctx))
			mu.Lock()
			var live []*workerState
			for _, w := range ws {
				if w.running {
					live = append(live, w)
				}
			}
			mu.Unlock()
			var stops sync.WaitGroup
			for _, w := range live {
				stops.Add(1)
				go func() { // bounded by its timeout; waited for below
					defer stops.Done()
					sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
					defer cancel()
					if err := w.remote.Stop(sctx, w.job.ID); err != nil {
						// A worker this controller spawned is stopped by a signal instead (no
						// new connection can be made, say), and reports its end on its stream.
						signalled := w.remote.terminate()
						logger.Warn("agent: stop failed", "agent", w.remote.Addr, "err", err, "sigterm", signalled)
					}
				}()
			}
			stops.Wait()
			graceC = time.After(grace)
		case <-graceC:
			logger.Warn("agent: workers did not report their end in time", "grace", grace)
			cancelStreams()
			graceC = nil
		}
	}
	wg.Wait()
	update()
	mu.Lock()
	defer mu.Unlock()
	return c.outcome(ws, events), nil
}

// update merges the workers' latest state; mu is held.
func (c *Controller) update(ws []*workerState, start time.Time) Update {
	u := Update{Elapsed: time.Since(start)}
	var snaps []stats.Snapshot
	latest := -1
	for _, w := range ws {
		if w.snap != nil {
			snaps = append(snaps, *w.snap)
		}
		if w.running {
			u.Live++
		}
		if n := len(w.series); n > 0 && w.series[n-1].Second > latest {
			latest = w.series[n-1].Second
		}
		if w.status == StatusLost {
			u.Lost++
			if w.snap != nil {
				u.LostConnections += w.snap.Gauge(stats.GaugeConnections)
			}
		}
	}
	u.Merged = stats.MergeCounts(snaps...)
	if latest >= 0 {
		var parts stats.Series
		for _, w := range ws {
			for j := len(w.series) - 1; j >= 0; j-- {
				if w.series[j].Second == latest {
					parts = append(parts, w.series[j])
					break
				}
				if w.series[j].Second < latest {
					break
				}
			}
		}
		if m, err := stats.MergeSeries(parts); err == nil && len(m) == 1 {
			u.Latest = m[0]
		}
	}
	return u
}

func (c *Controller) outcome(ws []*workerState, events []Event) Outcome {
	var out Outcome
	var snaps []stats.Snapshot
	var series []stats.Series
	for _, w := range ws {
		wo := WorkerOutcome{
			Index:   w.job.Worker,
			Addr:    w.remote.Addr,
			PID:     w.remote.PID(),
			Status:  w.status,
			Err:     w.err,
			Series:  w.series,
			Summary: w.summary,
		}
		if w.snap != nil {
			wo.Snapshot = *w.snap
			snaps = append(snaps, *w.snap)
		}
		series = append(series, w.series)
		out.Workers = append(out.Workers, wo)
	}
	out.Merged = stats.MergeAll(snaps...)
	if m, err := stats.MergeSeries(series...); err == nil {
		out.Series = m
	} else if c.Logger != nil {
		c.Logger.Warn("agent: merging series failed", "err", err)
	}
	out.Events = events
	return out
}

// follow reads a job's stream until its done message. A stream that breaks or stays silent longer
// than idle is reopened after the last message received, so a worker that is only slow (a starved
// or paused process, a congested link) is not lost; it is lost when its process exits, or when
// nothing at all was heard from it for lostAfter.
func (c *Controller) follow(ctx context.Context, r *Remote, jobID string, idle, lostAfter time.Duration, handle func(Message), logger *slog.Logger) error {
	next := 0
	heard := time.Now()
	for {
		err := r.Stream(ctx, jobID, next, idle, func(m Message) {
			heard = time.Now()
			if m.Seq >= 0 {
				next = m.Seq + 1
			}
			if m.Type != MsgKeepalive {
				handle(m)
			}
		})
		if err == nil {
			return nil
		}
		switch {
		case ctx.Err() != nil:
			return err
		case r.exitedWith() != "":
			return err
		case time.Since(heard) > lostAfter:
			return fmt.Errorf("nothing heard for %v: %w", lostAfter.Round(time.Second), err)
		}
		logger.Warn("agent: stream interrupted, reopening", "agent", r.Addr, "next", next, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
		}
	}
}
