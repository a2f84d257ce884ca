package loadgen

// What a tab does on its own: sending broadcasts (with the misbehaviours that break the seq
// contract on purpose), and leaving (exits).

import (
	"strconv"
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

// sendBroadcast sends one broadcast to the client's next room, intended at the scheduler time at.
func (c *client) sendBroadcast(gen uint32, at int64) {
	env := c.env
	if env.generic != nil {
		c.sendGeneric(gen, at)
		return
	}
	c.mu.Lock()
	if len(c.mem) == 0 {
		c.mu.Unlock()
		return
	}
	ri := int(c.seq) % len(c.mem)
	room := c.mem[ri].room
	c.mu.Unlock()
	intended := env.sched.time(at).UnixNano()
	pad := c.behaviour().PayloadSize
	c.writeSeq(gen, func(seq uint64, w []byte) []byte {
		w = append(w, `{"type":"broadcast","roomId":`...)
		w = append(w, room.quoted...)
		w = append(w, `,"seq":`...)
		w = strconv.AppendUint(w, seq, 10)
		w = append(w, `,"data":{"c":`...)
		w = strconv.AppendInt(w, int64(c.index), 10)
		w = append(w, `,"g":`...)
		w = strconv.AppendUint(w, uint64(gen), 10)
		w = append(w, `,"s":`...)
		w = strconv.AppendUint(w, seq, 10)
		w = append(w, `,"t":`...)
		w = strconv.AppendInt(w, intended, 10)
		if pad > 0 {
			w = append(w, `,"p":"`...)
			for range pad {
				w = append(w, 'x')
			}
			w = append(w, '"')
		}
		w = append(w, "}}"...)
		c.mu.Lock()
		c.pend = append(c.pend, pendingSend{seq: seq, room: room})
		if len(c.pend) > 4096 { // a server that never acks: keep memory bounded
			c.pend = c.pend[1:]
		}
		c.mu.Unlock()
		return w
	})
	c.add(stats.CtrMessagesSent, 1)
}

// writeFrame sends an unsequenced frame.
func (c *client) writeFrame(gen uint32, f *protocol.Frame) {
	b, err := protocol.Encode(f)
	if err != nil {
		return
	}
	c.writeRaw(gen, b)
}

// sendBufs recycles the buffers hand-encoded broadcasts are built in.
var sendBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// writeSeq assigns the next seq to a frame built by build (a *protocol.Frame, or raw bytes appended to
// a pooled buffer that is reused once the write is done) and sends
// it, applying the seq misbehaviours.
func (c *client) writeSeq(gen uint32, build any) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	if c.gen != gen || c.conn == nil || c.exiting {
		c.mu.Unlock()
		return
	}
	c.seq++
	seq := c.seq
	conn := c.conn
	c.mu.Unlock()
	var b []byte
	switch fn := build.(type) {
	case func(uint64) *protocol.Frame:
		var err error
		if b, err = protocol.Encode(fn(seq)); err != nil {
			return
		}
	case func(uint64, []byte) []byte:
		sb := sendBufs.Get().(*[]byte)
		b = fn(seq, (*sb)[:0])
		defer func() {
			if cap(b) <= 64<<10 {
				*sb = b[:0]
				sendBufs.Put(sb)
			}
		}()
	}
	mb := &c.behaviour().Misbehave
	if mb.DropEvery > 0 && seq%uint64(mb.DropEvery) == 0 {
		return
	}
	if mb.SwapEvery > 0 && seq%uint64(mb.SwapEvery) == 0 {
		c.held = append(c.held[:0], b...)
		return
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
func (c *client) writeLocked(conn *websocket.Conn, b []byte) {
	_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
		c.mu.Lock()
		exiting := c.exiting || c.conn != conn
		if !exiting {
			c.cut, c.cutGen, c.readTimedOut = true, c.gen, false
		}
		c.mu.Unlock()
		if !exiting {
			c.add(stats.ErrorCounter(stats.ErrWrite), 1)
		}
		conn.NetConn().Close()
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
		env.goConnect(c, gen, false)
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
		conn.NetConn().Close()
	case ExitVanish:
		// Stop reading: the reader returns on the deadline and leaves the socket open.
		_ = conn.SetReadDeadline(now)
	default:
		c.wmu.Lock()
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(int(protocol.CloseNormal), ""), now.Add(time.Second))
		c.wmu.Unlock()
		_ = conn.SetReadDeadline(now.Add(2 * time.Second))
	}
}
