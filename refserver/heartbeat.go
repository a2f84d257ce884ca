package refserver

import (
	"sync"
	"time"
)

// wheel is the node's one heartbeat driver: a hashed timing wheel that visits each registered
// connection when it is next due, sends the WebSocket ping every heartbeat-interval and closes a
// connection silent for heartbeat-timeout. Connections hold no timer of their own. Its goroutine runs
// only while connections are registered (and stops when the server closes); each visit also runs the
// hub's janitor and the reconnect table's sweep once per interval.
//
// Under FlawNoServerPing the wheel sends no pings, and every connection is checked only at the
// global sweep instants (multiples of flaw-sweep-interval), as the escalation's server did.
//
// A connection's hbDue and hbNextPing fields belong to the wheel goroutine once added.
type wheel struct {
	s        *Server
	tick     time.Duration
	interval time.Duration
	sseKeep  time.Duration // ping period of SSE streams (keep-alive comments), at most interval
	timeout  time.Duration
	sweep    time.Duration // > 0 under FlawNoServerPing
	epoch    time.Time

	mu        sync.Mutex
	slots     [][]*conn
	processed int64 // the last tick number whose slot was visited
	count     int   // live registered connections
	running   bool
	stopped   bool
	quit      chan struct{}
	lastJan   time.Time
}

func newWheel(s *Server) *wheel {
	cfg := s.cfg
	w := &wheel{s: s, interval: cfg.HeartbeatInterval, timeout: cfg.HeartbeatTimeout, quit: make(chan struct{}),
		sseKeep: min(cfg.HeartbeatInterval, cfg.SSEKeepalive)}
	span := max(cfg.HeartbeatInterval, cfg.HeartbeatTimeout)
	shortest := min(w.sseKeep, cfg.HeartbeatTimeout)
	if cfg.Flaws.Has(FlawNoServerPing) {
		w.sweep = cfg.FlawSweepInterval
		span = max(span, w.sweep)
		shortest = min(shortest, w.sweep)
	}
	w.tick = min(max(shortest/8, 5*time.Millisecond), time.Second)
	n := int(span/w.tick) + 3
	w.slots = make([][]*conn, n)
	w.epoch = time.Now()
	return w
}

// pingEvery is c's ping period: the heartbeat interval, or for an SSE stream the keep-alive period
// when shorter (its comments must beat the idle timeout of proxies on the way).
func (w *wheel) pingEvery(c *conn) time.Duration {
	if c.t != nil && c.t.kind() == "sse" {
		return w.sseKeep
	}
	return w.interval
}

func (w *wheel) tickOf(t time.Time) int64 { return int64(t.Sub(w.epoch) / w.tick) }

// add registers an authenticated connection; its first check is jittered.
func (w *wheel) add(c *conn, now time.Time) {
	var due time.Time
	if w.sweep > 0 {
		due = w.nextSweep(now)
	} else {
		first := now.Add(jitter(w.pingEvery(c), 0.5, 1))
		c.hbNextPing = first.UnixNano()
		due = first
	}
	c.hbDue = due.UnixNano()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	w.count++
	if !w.running {
		w.processed = w.tickOf(now) // the slots are empty while idle
	}
	w.placeLocked(c, due)
	if !w.running {
		w.running = true
		w.s.wg.Add(1)
		go w.loop()
	}
}

// remove unregisters a connection; the slot entry is dropped lazily when visited.
func (w *wheel) remove(c *conn) {
	w.mu.Lock()
	w.count--
	w.mu.Unlock()
}

func (w *wheel) nextSweep(now time.Time) time.Time {
	k := now.Sub(w.epoch)/w.sweep + 1
	return w.epoch.Add(k * w.sweep)
}

func (w *wheel) placeLocked(c *conn, due time.Time) {
	t := w.tickOf(due)
	if t <= w.processed {
		t = w.processed + 1
	}
	if limit := w.processed + int64(len(w.slots)) - 1; t > limit {
		t = limit // re-placed when visited early
	}
	i := t % int64(len(w.slots))
	w.slots[i] = append(w.slots[i], c)
}

// stop ends the goroutine for good (server closing).
func (w *wheel) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.stopped = true
		close(w.quit)
	}
}

func (w *wheel) loop() {
	defer w.s.wg.Done()
	tk := time.NewTicker(w.tick)
	defer tk.Stop()
	for {
		select {
		case <-w.quit:
			return
		case now := <-tk.C:
			if !w.advance(now) {
				return
			}
		}
	}
}

// advance visits every slot up to now; it returns false (and marks the wheel idle) when no
// connection is registered any more.
func (w *wheel) advance(now time.Time) bool {
	target := w.tickOf(now)
	var due []*conn
	w.mu.Lock()
	for w.processed < target {
		w.processed++
		i := w.processed % int64(len(w.slots))
		due = append(due, w.slots[i]...)
		w.slots[i] = nil
	}
	w.mu.Unlock()

	nowNs := now.UnixNano()
	var keep []*conn
	for _, c := range due {
		if c.isGone() {
			continue
		}
		if nowNs < c.hbDue {
			keep = append(keep, c)
			continue
		}
		last := c.lastSeen.Load()
		if nowNs-last >= int64(w.timeout) {
			c.abort(causeTimeout)
			continue
		}
		if w.sweep > 0 {
			c.hbDue = w.nextSweep(now).UnixNano()
		} else {
			if nowNs >= c.hbNextPing {
				c.ping()
				c.hbNextPing = nowNs + int64(w.pingEvery(c))
			}
			c.hbDue = min(c.hbNextPing, last+int64(w.timeout))
		}
		keep = append(keep, c)
	}

	if now.Sub(w.lastJan) >= min(w.interval, time.Second) {
		w.lastJan = now
		w.s.hub.janitor(now)
		w.s.recent.sweep(now)
	}

	w.mu.Lock()
	for _, c := range keep {
		w.placeLocked(c, time.Unix(0, c.hbDue))
	}
	if w.count > 0 {
		w.mu.Unlock()
		return true
	}
	w.running = false
	// Drop the lazily kept entries of gone connections so that nothing is retained.
	for i := range w.slots {
		w.slots[i] = nil
	}
	w.mu.Unlock()
	w.s.hub.janitor(now) // a last pass: rooms emptied by the last connections go now
	return false
}
