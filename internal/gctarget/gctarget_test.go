package gctarget

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestPercent(t *testing.T) {
	for _, tc := range []struct {
		percent int
		live    uint64
		want    int
	}{
		{25, 0, 100},              // nothing known yet: Go's default
		{25, 1 << 20, 100},        // 1 MB live: 8 MB of headroom would be 800 %
		{25, 16 << 20, 50},        // 16 MB: 8 MB is 50 %
		{25, 20 << 20, 40},        // rounded up
		{25, 32 << 20, 25},        // from 32 MB on, the percentage asked for
		{25, 1 << 30, 25},         // a large heap
		{150, 1 << 20, 150},       // above 100: as asked
		{100, 1 << 30, 100},       // Go's default stays
		{10, 64 << 20, 13},        // 8/64 = 12.5 %, rounded up
		{10, 200 << 20, 10},       // 4 %: the floor wins
		{50, 8<<20 + 1, 100},      // just above 8 MB: 100 (capped)
		{50, 12 << 20, 67},        // 66.7 % rounded up
		{25, MinHeadroom * 4, 25}, // exactly the point where the floor takes over
	} {
		if got := Percent(tc.percent, tc.live); got != tc.want {
			t.Errorf("Percent(%d, %d MB) = %d, want %d", tc.percent, tc.live>>20, got, tc.want)
		}
	}
}

// TestSetFollowsTheHeap: after Set, each collection re-reads the live heap and the target follows
// it: high while the heap is small, the percentage asked for once it has grown.
func TestSetFollowsTheHeap(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	defer floor.Store(0)
	Set(25)
	runtime.GC()
	if got := int(current.Load()); got != 100 {
		t.Fatalf("small heap: target %d, want 100", got)
	}
	hold := make([][]byte, 0, 64)
	for range 64 {
		hold = append(hold, make([]byte, 1<<20))
	}
	// The finalizer of the collection that saw the big heap runs after it: collect until it has.
	for i := 0; i < 100 && current.Load() != 25; i++ {
		runtime.GC()
		runtime.Gosched()
	}
	if got := int(current.Load()); got != 25 {
		t.Errorf("64 MB live: target %d, want 25", got)
	}
	runtime.KeepAlive(hold)
}
