package loadgen

// What a tab does on its own: sending broadcasts (with the misbehaviours that break the seq
// contract on purpose), and leaving (exits).

import (
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/refserver/protocol"
)

// exitsEarly reports whether this client is among the Exit.Share of its cohort that exits at
// Exit.After: the first clients of the cohort (by number), so the choice is deterministic.
func (c *client) exitsEarly() bool {
	s := c.behaviour().Exit.Share
	if s <= 0 || s >= 1 {
		return true
	}
	local := int(c.index) - c.coh.IndexOffset
	return float64(local) < s*float64(c.coh.Count)
}

// sendBufs recycles the buffers hand-encoded broadcasts are built in.
var sendBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// writeSeq assigns the next seq to a frame built by build (a *protocol.Frame, or raw bytes appended to
// a pooled buffer that is reused once the write is done) and sends it, applying the seq
// misbehaviours. It returns the number of frames built (a swap may build two).
//
// The swap misbehaviour holds frame N back and sends it right after N+1. A raw-bytes builder (a
// broadcast) can build another frame, so N+1 is built at once and the pair goes out back to back: the
// gateway's reorder buffer sees the gap for the time of one write, not for a schedule slot (on a
// loaded machine a late slot outlasted the reorder timeout and the gateway closed with 4003, which
// is what a dropped frame does, not a swapped one). A *protocol.Frame builder (a join) is held until
// the client's next sequenced frame.
func (c *client) writeSeq(gen uint32, build any) int {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	mb := &c.behaviour().Misbehave
	seq, conn, ok := c.nextSeq(gen)
	if !ok {
		return 0
	}
	b, done, ok := buildSeq(build, seq)
	if !ok {
		return 0
	}
	defer done()
	if mb.DropEvery > 0 && seq%uint64(mb.DropEvery) == 0 {
		return 1
	}
	if mb.SwapEvery > 0 && seq%uint64(mb.SwapEvery) == 0 {
		if _, raw := build.(func(uint64, []byte) []byte); !raw {
			c.held = append(c.held[:0], b...)
			return 1
		}
		next, conn2, ok := c.nextSeq(gen)
		if !ok {
			return 1
		}
		b2, done2, ok := buildSeq(build, next)
		if !ok {
			return 1
		}
		defer done2()
		c.writeLocked(conn2, b2)
		c.writeLocked(conn2, b)
		return 2
	}
	c.writeLocked(conn, b)
	if mb.DupeEvery > 0 && seq%uint64(mb.DupeEvery) == 0 {
		c.writeLocked(conn, b)
	}
	if c.held != nil {
		h := c.held
		c.held = nil
		c.writeLocked(conn, h)
	}
	return 1
}

// nextSeq takes the next seq of connection generation gen; ok is false once that connection is gone.
func (c *client) nextSeq(gen uint32) (seq uint64, conn wireConn, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen || c.conn == nil || c.exiting {
		return 0, nil, false
	}
	c.seq++
	return c.seq, c.conn, true
}

// buildSeq builds writeSeq's frame for seq; done returns a pooled buffer once the frame is written.
func buildSeq(build any, seq uint64) (b []byte, done func(), ok bool) {
	switch fn := build.(type) {
	case func(uint64) *protocol.Frame:
		b, err := protocol.Encode(fn(seq))
		return b, func() {}, err == nil
	case func(uint64, []byte) []byte:
		sb := sendBufs.Get().(*[]byte)
		b = fn(seq, (*sb)[:0])
		return b, func() {
			if cap(b) <= 64<<10 {
				*sb = b[:0]
				sendBufs.Put(sb)
			}
		}, true
	}
	return nil, nil, false
}

func (c *client) writeRaw(gen uint32, b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	conn := c.conn
	ok := c.gen == gen && conn != nil && !c.exiting
	c.mu.Unlock()
	if ok {
		c.writeLocked(conn, b)
	}
}

// writeLocked writes one text frame; c.wmu is held. A failed write closes the TCP connection so that
// the reader notices the drop.
func (c *client) writeLocked(conn wireConn, b []byte) {
	c.writeLockedType(conn, websocket.TextMessage, b)
}

// writeRawType sends one frame of type mt (websocket.TextMessage or BinaryMessage) as it is.
func (c *client) writeRawType(gen uint32, mt int, b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	conn := c.conn
	ok := c.gen == gen && conn != nil && !c.exiting
	c.mu.Unlock()
	if ok {
		c.writeLockedType(conn, mt, b)
	}
}

// writeLockedType writes one frame of type mt; c.wmu is held.
func (c *client) writeLockedType(conn wireConn, mt int, b []byte) {
	_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := conn.WriteMessage(mt, b); err != nil {
		c.mu.Lock()
		exiting := c.exiting || c.conn != conn
		if !exiting {
			c.cut, c.cutGen, c.readTimedOut = true, c.gen, false
		}
		c.mu.Unlock()
		if !exiting {
			c.add(stats.ErrorCounter(stats.ErrWrite), 1)
		}
		conn.Cut()
	}
}

// exit makes the tab leave with kind (default close).
func (c *client) exit(kind ExitKind) {
	env := c.env
	now := time.Now()
	c.mu.Lock()
	if c.exiting || c.state == stDone {
		c.mu.Unlock()
		return
	}
	if kind == ExitNavigate {
		if c.state != stOpen || c.navOld != nil {
			c.mu.Unlock()
			return
		}
		c.navOld = c.conn
		c.conn = nil
		c.gen++
		c.state = stConnecting
		gen := c.gen
		mem := c.mem
		c.mem = nil
		c.mu.Unlock()
		c.add(CtrExits, 1)
		// The old memberships end without a ghost: the user stays through the new connection, which
		// closes the old one (1001) once it has joined.
		for _, m := range mem {
			m.room.leave(m, time.Time{})
		}
		env.goConnect(c, gen, false, false)
		return
	}
	c.exiting = true
	state := c.state
	conn := c.conn
	mem := c.mem
	c.mem = nil
	if kind == ExitVanish {
		c.vanished = true
		c.vanishAt = now
	}
	if state != stOpen {
		c.state = stDone
		c.gen++
	}
	c.mu.Unlock()
	c.add(CtrExits, 1)
	for _, m := range mem {
		m.room.leave(m, now)
	}
	if state != stOpen {
		c.finish()
		return
	}
	switch kind {
	case ExitTabClose:
		conn.Cut()
	case ExitVanish:
		// Stop reading: the reader returns on the deadline and leaves the socket open.
		_ = conn.SetReadDeadline(now)
	default:
		c.wmu.Lock()
		if l, ok := env.proto.(leaver); ok {
			mt, frames := l.leaveFrames(c)
			for _, f := range frames {
				_ = conn.SetWriteDeadline(now.Add(time.Second))
				_ = conn.WriteMessage(mt, f)
			}
		}
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(int(protocol.CloseNormal), ""), now.Add(time.Second))
		c.wmu.Unlock()
		_ = conn.SetReadDeadline(now.Add(2 * time.Second))
	}
}
