package loadgen

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestSchedulerRunsInTimeOrder schedules entries out of order on one shard and checks they run in
// intended-time order, none early.
func TestSchedulerRunsInTimeOrder(t *testing.T) {
	var mu sync.Mutex
	var ran []int64
	var early int
	done := make(chan struct{})
	const n = 50
	var s *scheduler
	s = newScheduler(1, func(e entry, now time.Time) {
		mu.Lock()
		defer mu.Unlock()
		ran = append(ran, e.at)
		if now.Before(s.time(e.at)) {
			early++
		}
		if len(ran) == n {
			close(done)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); s.wait() }()
	s.start(ctx)
	c := &client{}
	base := s.ns(time.Now())
	for i := range n {
		// 0, 49, 2, 47, ... milliseconds ahead.
		k := i
		if i%2 == 1 {
			k = n - i
		}
		s.add(entry{at: base + int64(k)*int64(2*time.Millisecond), c: c, kind: taskSend})
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("entries did not run")
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(ran); i++ {
		if ran[i] < ran[i-1] {
			t.Fatalf("entry at %d ran after %d", ran[i], ran[i-1])
		}
	}
	if early > 0 {
		t.Errorf("%d entries ran before their time", early)
	}
}

// TestHeartbeatPhase arms the periodic tasks of many tabs that connect at the same instant: with
// the connect phase every first heartbeat is one interval away (on the periodic grid: one instant,
// less than a step later); with the random phase they spread over the first interval.
func TestHeartbeatPhase(t *testing.T) {
	const every = 30 * time.Second
	for _, phase := range []string{"", HeartbeatPhaseConnect, HeartbeatPhaseRandom} {
		t.Run("phase="+phase, func(t *testing.T) {
			s := newScheduler(4, func(entry, time.Time) {})
			env := &runEnv{sched: s}
			b := &Behaviour{HeartbeatInterval: every, HeartbeatPhase: phase}
			const now = int64(time.Hour)
			for i := range 200 {
				c := &client{env: env, index: int32(i), hbEvery: every}
				c.rng = *rand.NewPCG(1, uint64(i))
				c.mu.Lock()
				c.armLocked(0, b, now)
				c.mu.Unlock()
			}
			lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
			n := 0
			for _, sh := range s.shards {
				for _, e := range sh.h {
					if e.kind != taskHeartbeat {
						continue
					}
					n++
					d := time.Duration(e.at - now)
					lo, hi = min(lo, d), max(hi, d)
				}
			}
			if n != 200 {
				t.Fatalf("%d heartbeats armed, want 200", n)
			}
			// Intended times are on the periodic grid: up to one step later than asked.
			step := periodicGrid(every)
			if phase == HeartbeatPhaseRandom {
				if lo <= 0 || hi >= every+step || lo > every/6 || hi < every*5/6 {
					t.Errorf("first heartbeats from %v to %v after connecting, want spread over (0, %v]", lo, hi, every)
				}
			} else if lo != hi || lo < every || lo >= every+step {
				t.Errorf("first heartbeats from %v to %v after connecting, want all at one instant in [%v, %v)", lo, hi, every, every+step)
			}
		})
	}
}

// TestPeriodicGrid: a periodic action's intended time is rounded up, by less than its step, to a
// multiple of the step on the wall clock — the same instants for schedulers started at different
// times (the processes of a run) — and a round period's repetitions stay on the grid exactly.
func TestPeriodicGrid(t *testing.T) {
	for _, tc := range []struct {
		period, step time.Duration
	}{
		{30 * time.Second, maxPeriodicGrid},
		{5 * time.Minute, maxPeriodicGrid},
		{time.Second, time.Second / periodGridDivisor},
		{100 * time.Millisecond, 100 * time.Millisecond / periodGridDivisor},
		{0, 0},
	} {
		if got := periodicGrid(tc.period); got != tc.step {
			t.Errorf("periodicGrid(%v) = %v, want %v", tc.period, got, tc.step)
		}
	}

	rng := rand.New(rand.NewPCG(7, 7))
	a := newScheduler(1, func(entry, time.Time) {})
	b := newScheduler(1, func(entry, time.Time) {})
	b.epoch = b.epoch.Add(time.Duration(rng.Int64N(int64(time.Second)))) // another process, started later
	b.epochWall = b.epoch.UnixNano()
	for _, period := range []time.Duration{30 * time.Second, time.Second, 100 * time.Millisecond, 7 * time.Millisecond} {
		step := periodicGrid(period)
		for range 1000 {
			wall := a.epochWall + rng.Int64N(int64(time.Hour))
			atA := a.onGrid(wall-a.epochWall, step)
			atB := b.onGrid(wall-b.epochWall, step)
			gotA, gotB := atA+a.epochWall, atB+b.epochWall
			if gotA != gotB {
				t.Fatalf("period %v: wall %d rounds to %d in one scheduler and %d in the other", period, wall, gotA, gotB)
			}
			if gotA < wall || gotA-wall >= int64(step) || gotA%int64(step) != 0 {
				t.Fatalf("period %v: wall %d rounds to %d (step %v)", period, wall, gotA, step)
			}
		}
		// Repetitions planned one period after the last rounded time.
		at := a.onGrid(rng.Int64N(int64(time.Hour)), step)
		first := at
		for range 100 {
			at = a.onGrid(at+int64(period), step)
		}
		stretch := time.Duration(at-first) - 100*period
		if period%step == 0 && stretch != 0 {
			t.Errorf("period %v (a multiple of its step %v): 100 repetitions drifted by %v", period, step, stretch)
		}
		if stretch < 0 || stretch >= 100*step {
			t.Errorf("period %v: 100 repetitions stretched by %v, want under %v", period, stretch, 100*step)
		}
	}
}
