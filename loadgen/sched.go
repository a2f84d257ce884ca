package loadgen

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// The scheduler replaces per-client timers: every timed action of every client (sends, heartbeats,
// reconnect delays, exits) is an entry in one of a few heaps, each served by one goroutine and one
// timer. An entry carries its intended time, so the action knows how late it runs (schedule lag).
//
// Periodic actions (sends, heartbeats, pings) are planned on a grid of the wall clock
// (addPeriodic): their intended times are rounded up to a multiple of a grid step of at most
// maxPeriodicGrid, the same instants in every process of a run. A held population's tens of
// thousands of timers then wake each process, and the gateway's nodes they write to, once per
// step for many actions instead of once per action: each wake-up of an idle process costs more
// than the write it serves (a cross-CPU wake-up on a virtual machine). The rounding moves an
// intended time, not the measurement: lag and latencies count from the rounded time.

// task is something a client does at a time.
type task uint8

const (
	taskSend task = iota + 1
	taskHeartbeat
	taskPing
	taskReconnect
	taskExit
	taskConnect
)

type entry struct {
	at   int64 // intended time, ns since the scheduler's epoch
	c    *client
	gen  uint32 // the client's connection generation when scheduled; stale entries are skipped
	arm  uint16 // periodic tasks: the client's timer arming (a behaviour switch re-arms them)
	kind task
}

type entryHeap []entry

func (h entryHeap) Len() int           { return len(h) }
func (h entryHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h entryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *entryHeap) Push(x any)        { *h = append(*h, x.(entry)) }
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = entry{}
	*h = old[:len(old)-1]
	return e
}

type shard struct {
	mu   sync.Mutex
	h    entryHeap
	wake chan struct{}
	due  []entry // reused by the shard's goroutine
}

// scheduler runs entries at their time on a few goroutines.
type scheduler struct {
	epoch     time.Time
	epochWall int64 // epoch in Unix nanoseconds: the periodic grid's origin
	shards    []*shard
	run       func(e entry, now time.Time) // called on a scheduler goroutine
	stall     chan time.Duration           // test hook: every shard sleeps for the duration received
	wg        sync.WaitGroup
}

func newScheduler(n int, run func(entry, time.Time)) *scheduler {
	now := time.Now()
	s := &scheduler{epoch: now, epochWall: now.UnixNano(), run: run, stall: make(chan time.Duration)}
	for range max(n, 1) {
		s.shards = append(s.shards, &shard{wake: make(chan struct{}, 1)})
	}
	return s
}

// start runs the shard goroutines until ctx ends; wait waits for them.
func (s *scheduler) start(ctx context.Context) {
	for _, sh := range s.shards {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.loop(ctx, sh)
		}()
	}
}

func (s *scheduler) wait() { s.wg.Wait() }

// ns converts a time to the scheduler's clock.
func (s *scheduler) ns(t time.Time) int64 { return int64(t.Sub(s.epoch)) }

// time converts back.
func (s *scheduler) time(ns int64) time.Time { return s.epoch.Add(time.Duration(ns)) }

// maxPeriodicGrid is the largest grid step of periodic actions; periodGridDivisor makes the step
// of a short period smaller (period/256). Each repetition is planned one period after the last
// one's rounded time: a period that is a multiple of its step (30 s, 1 s, 100 ms: any round period
// of 100 ms or more) stays exactly on the grid, another is stretched by less than a step (0.4 %).
const (
	maxPeriodicGrid   = 20 * time.Millisecond
	periodGridDivisor = 256
)

// periodicGrid is the grid step of an action repeated every period.
func periodicGrid(period time.Duration) time.Duration {
	return min(period/periodGridDivisor, maxPeriodicGrid)
}

// onGrid rounds at (scheduler time) up to the next multiple of step on the wall clock.
func (s *scheduler) onGrid(at int64, step time.Duration) int64 {
	g := int64(step)
	if g <= 1 {
		return at
	}
	wall := at + s.epochWall
	r := wall % g
	if r < 0 {
		r += g
	}
	if r == 0 {
		return at
	}
	return at + g - r
}

// addPeriodic schedules e, an action repeated every period, at its intended time rounded up to
// the periodic grid (see the top of this file).
func (s *scheduler) addPeriodic(e entry, period time.Duration) {
	e.at = s.onGrid(e.at, periodicGrid(period))
	s.add(e)
}

// add schedules e; the shard is chosen by client so one client's entries stay in order.
func (s *scheduler) add(e entry) {
	sh := s.shards[int(e.c.index)%len(s.shards)]
	sh.mu.Lock()
	heap.Push(&sh.h, e)
	first := sh.h[0].at == e.at
	sh.mu.Unlock()
	if first {
		select {
		case sh.wake <- struct{}{}:
		default:
		}
	}
}

// pause stalls every shard for d (used by tests to show that a stalled generator shows up as latency).
func (s *scheduler) pause(ctx context.Context, d time.Duration) {
	for range s.shards {
		select {
		case s.stall <- d:
		case <-ctx.Done():
			return
		}
	}
}

func (s *scheduler) loop(ctx context.Context, sh *shard) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		nowNS := s.ns(now)
		sh.mu.Lock()
		due := sh.due[:0]
		for len(sh.h) > 0 && sh.h[0].at <= nowNS && len(due) < 256 {
			due = append(due, heap.Pop(&sh.h).(entry))
		}
		next := int64(-1)
		if len(sh.h) > 0 {
			next = sh.h[0].at
		}
		sh.mu.Unlock()
		for _, e := range due {
			s.run(e, now)
		}
		clear(due)
		sh.due = due[:0]
		if len(due) > 0 {
			continue
		}
		wait := time.Hour
		if next >= 0 {
			wait = time.Duration(next - nowNS)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-sh.wake:
		case <-timer.C:
		case d := <-s.stall:
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return
			}
		}
	}
}
