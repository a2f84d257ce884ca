package refserver

import (
	"sync"
	"sync/atomic"
	"time"
)

// workers runs the deep work of connections (decoding, authentication, room operations, encoding)
// on a set of shared goroutines, so that each connection's own reader goroutine stays shallow and
// its stack small: an idle connection's goroutine is then little more than a blocked read. A reader
// hands one frame at a time and waits for it to be done, so a connection's frames are still
// processed in order. Workers are started on demand up to max and exit after idle of idling; the
// Server's WaitGroup owns them.
type workers struct {
	wg   *sync.WaitGroup
	work chan func() // unbuffered: a send succeeds only when a worker is idle
	quit chan struct{}
	max  int32
	idle time.Duration
	n    atomic.Int32

	quitOnce sync.Once
}

func newWorkers(wg *sync.WaitGroup, max int, idle time.Duration) *workers {
	return &workers{wg: wg, work: make(chan func()), quit: make(chan struct{}), max: int32(max), idle: idle}
}

var donePool = sync.Pool{New: func() any { return make(chan struct{}, 1) }}

// do runs fn on a worker and returns when it has run. The caller must hold a reference in wg (a
// connection goroutine does) so that starting a worker never races with the final Wait.
func (p *workers) do(fn func()) {
	done := donePool.Get().(chan struct{})
	task := func() {
		fn()
		done <- struct{}{}
	}
	select {
	case p.work <- task:
	default:
		if p.n.Add(1) <= p.max {
			p.wg.Add(1)
			go p.worker(task)
		} else {
			p.n.Add(-1)
			select {
			case p.work <- task:
			case <-p.quit:
				task() // shutting down: run it here
			}
		}
	}
	<-done
	donePool.Put(done)
}

func (p *workers) worker(first func()) {
	defer p.wg.Done()
	defer p.n.Add(-1)
	first()
	t := time.NewTimer(p.idle)
	defer t.Stop()
	for {
		select {
		case f := <-p.work:
			f()
			t.Reset(p.idle)
		case <-t.C:
			return
		case <-p.quit:
			return
		}
	}
}

// stop makes idle workers exit at once (Shutdown); later calls to do still complete.
func (p *workers) stop() { p.quitOnce.Do(func() { close(p.quit) }) }
