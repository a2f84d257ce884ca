package loadgen

import (
	"context"
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
