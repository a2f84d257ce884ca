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
// the connect phase every first heartbeat is one interval away; with the random phase they spread
// over the first interval and none comes later.
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
			if phase == HeartbeatPhaseRandom {
				if lo <= 0 || hi > every || lo > every/6 || hi < every*5/6 {
					t.Errorf("first heartbeats from %v to %v after connecting, want spread over (0, %v]", lo, hi, every)
				}
			} else if lo != every || hi != every {
				t.Errorf("first heartbeats from %v to %v after connecting, want all at %v", lo, hi, every)
			}
		})
	}
}
