// Package gctarget sets a process's garbage-collector target for a heap that is mostly long-lived
// connection state: a low percentage (little headroom per connection) once the heap is large, and
// at least a fixed headroom while it is small.
//
// Go's collector runs once the heap has grown by GOGC percent of the live heap, and at least
// 4 MB × GOGC/100 above it. A low GOGC keeps a large heap's headroom small, which is what holding
// many idle connections needs, but it also makes a small heap collect after every megabyte: a
// process holding a few hundred connections while it ramps (one of many nodes or workers of a
// large run) then spends its CPU collecting. Set keeps the percentage at or above what gives
// MinHeadroom bytes of headroom (up to 100, Go's default), re-reading the live heap after every
// collection.
//
// Concurrency: Set is process-wide (runtime/debug.SetGCPercent); call it once, from main. The
// adjustment runs on the runtime's finalizer goroutine after each collection.
package gctarget

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// MinHeadroom is the headroom a small heap keeps (the percentage rises, up to 100, to give it).
const MinHeadroom = 8 << 20

// liveHeap is the runtime metric of the heap marked live by the last collection.
const liveHeap = "/gc/heap/live:bytes"

var (
	floor   atomic.Int64 // the percentage asked for; 0 before Set
	current atomic.Int64 // the percentage in force
)

// Set makes percent the collector's target for large heaps (see the package comment); 0 or less
// leaves the runtime's target alone.
func Set(percent int) {
	if percent <= 0 {
		return
	}
	first := floor.Swap(int64(percent)) == 0
	apply(Percent(percent, readLive()))
	if first {
		arm()
	}
}

// Percent is the target for a live heap of live bytes: percent, or more (up to 100) so that the
// headroom is at least MinHeadroom.
func Percent(percent int, live uint64) int {
	if percent >= 100 {
		return percent
	}
	need := 100
	if live > 0 {
		need = int((MinHeadroom*100 + live - 1) / live)
	}
	return max(percent, min(need, 100))
}

func apply(p int) {
	if current.Swap(int64(p)) != int64(p) {
		debug.SetGCPercent(p)
	}
}

func readLive() uint64 {
	s := []metrics.Sample{{Name: liveHeap}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// sentinel is garbage whose finalizer runs after the collection that finds it unreachable, and
// re-arms with a new one. It holds a pointer so that it is not a tiny allocation (the finalizers
// of those may never run).
type sentinel struct{ _ *int }

func arm() {
	runtime.SetFinalizer(&sentinel{}, func(*sentinel) {
		apply(Percent(int(floor.Load()), readLive()))
		arm()
	})
}
