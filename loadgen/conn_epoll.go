package loadgen

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/internal/netpoll"
	"github.com/squall-dev/squall/internal/wsframe"
	"github.com/squall-dev/squall/loadgen/stats"
)

// Client I/O models (Plan.ClientIO).
const (
	// ClientIOEpoll puts every ws:// WebSocket on the run's epoll loops (internal/netpoll), which
	// open it themselves when the host is an IP address (dial_poller.go), or take it over once
	// upgraded (dialUpgrade; both handshakes allocate next to nothing): an idle client holds no
	// goroutine and no read buffer, and its frames are parsed as they arrive (internal/wsframe).
	// wss:// targets keep ClientIOGoroutine (TLS state lives in crypto/tls's connection, which
	// only a blocking reader can drive).
	ClientIOEpoll = "epoll"
	// ClientIOGoroutine parks one reader goroutine per connection in a blocking read
	// (gorilla/websocket).
	ClientIOGoroutine = "goroutine"
)

// ClientIOs lists the valid Plan.ClientIO values (the first is the default).
var ClientIOs = []string{ClientIOEpoll, ClientIOGoroutine}

// readLimit bounds one message a client reads (a larger one is answered with 1009).
const readLimit = 1 << 20

// epollConn is a client's WebSocket on the run's poller. No goroutine reads it: the poller hands
// its bytes to the frame reader, and each message to the client, on the poller's goroutine.
// Writes build a masked frame and hand it to the socket without blocking (the poller's queue
// bounds what a gateway that does not read can hold; a full queue is a failed write).
type epollConn struct {
	cl   *client
	nc   *netpoll.Conn
	emit func(wsframe.Event)
	dial *pollerDial // an attempt on the poller, until its upgrade is answered (readMu)

	// readMu serialises the handling of frames and of the socket's end; the dialer holds it while
	// it hands the connection over and delivers what came with the upgrade.
	readMu    sync.Mutex
	fr        wsframe.Reader
	rc        readCtx
	cs        connState
	live      bool  // handed over: its end is the client's to handle
	ended     bool  // reading is over (close frame, error, read deadline or the socket's end)
	sockEnd   error // how the socket ended (nil while open)
	sockEndAt time.Time
	zombie    func(peerClosed bool, at time.Time) // a vanished tab's watch of the socket

	dlMu  sync.Mutex
	dl    *time.Timer // the read deadline
	dlGen uint32

	closeSent bool // guarded by the client's wmu, as every write
}

var _ wireConn = (*epollConn)(nil)

// frameBufs are the buffers frames are built in before the socket takes them.
var frameBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (pc *epollConn) write(op byte, payload []byte) error {
	bp := frameBufs.Get().(*[]byte)
	key := rand.Uint32()
	b := wsframe.AppendClientFrame((*bp)[:0], op, payload, [4]byte{byte(key), byte(key >> 8), byte(key >> 16), byte(key >> 24)})
	err := pc.nc.Write(b)
	if cap(b) <= 64<<10 {
		*bp = b[:0]
		frameBufs.Put(bp)
	}
	return err
}

// WriteMessage sends a text or binary message (websocket.TextMessage or BinaryMessage).
func (pc *epollConn) WriteMessage(mt int, data []byte) error {
	if pc.closeSent {
		return websocket.ErrCloseSent
	}
	return pc.write(byte(mt), data)
}

// WriteControl sends a close, ping or pong; writes never block, so the deadline is not needed.
func (pc *epollConn) WriteControl(mt int, data []byte, _ time.Time) error {
	if mt == websocket.CloseMessage {
		if pc.closeSent {
			return websocket.ErrCloseSent
		}
		pc.closeSent = true
	}
	return pc.write(byte(mt), data)
}

// SetWriteDeadline does nothing: writes never block (the socket's queue is bounded instead).
func (pc *epollConn) SetWriteDeadline(time.Time) error { return nil }

// SetReadDeadline ends reading at t (a time passed ends it at once): the socket stays open, so
// that a vanished tab's connection is held, or a closing tab's is closed after its wait.
func (pc *epollConn) SetReadDeadline(t time.Time) error {
	pc.dlMu.Lock()
	defer pc.dlMu.Unlock()
	pc.dlGen++
	if pc.dl != nil {
		pc.dl.Stop()
		pc.dl = nil
	}
	if t.IsZero() {
		return nil
	}
	gen := pc.dlGen
	// On a goroutine of its own even when already past: the caller may be handling a frame.
	pc.dl = time.AfterFunc(time.Until(t), func() { pc.deadlineReached(gen) })
	return nil
}

func (pc *epollConn) deadlineReached(gen uint32) {
	pc.dlMu.Lock()
	current := pc.dlGen == gen
	pc.dlMu.Unlock()
	if !current {
		return
	}
	pc.readMu.Lock()
	defer pc.readMu.Unlock()
	if !pc.ended {
		pc.end(0, "", os.ErrDeadlineExceeded)
	}
}

// Cut and Close end the connection at once, without a close frame.
func (pc *epollConn) Cut() error   { return pc.nc.Close() }
func (pc *epollConn) Close() error { return pc.nc.Close() }

// Data is the poller's: bytes read from the socket.
func (pc *epollConn) Data(_ *netpoll.Conn, b []byte) {
	pc.readMu.Lock()
	defer pc.readMu.Unlock()
	if pc.dial != nil {
		pc.dialData(b)
		return
	}
	pc.feed(b)
}

// feed parses b and handles its frames (readMu held).
func (pc *epollConn) feed(b []byte) {
	if pc.ended {
		return
	}
	if err := pc.fr.Feed(b, readLimit, pc.emit); err != nil && !pc.ended {
		// As gorilla's reader: a malformed frame is answered with 1002, a message over the limit
		// with 1009; the connection ends with the error and no close code of the gateway's.
		code := websocket.CloseProtocolError
		if errors.Is(err, wsframe.ErrTooLarge) {
			code, err = websocket.CloseMessageTooBig, websocket.ErrReadLimit
		}
		pc.cl.wmu.Lock()
		_ = pc.WriteControl(websocket.CloseMessage, wsframe.ClosePayload(code, err.Error()), time.Time{})
		pc.cl.wmu.Unlock()
		pc.end(0, "", err)
	}
}

// event handles one message or control frame (readMu held).
func (pc *epollConn) event(ev wsframe.Event) {
	if pc.ended {
		return
	}
	c := pc.cl
	switch ev.Op {
	case wsframe.OpText, wsframe.OpBinary:
		c.deliver(ev.Payload, &pc.rc)
		pc.rc.first = false
	case wsframe.OpPing:
		// As gorilla's default handler (client.wsHandlers): heard, and answered unless the tab
		// ignores pings on purpose.
		now := time.Now()
		c.mu.Lock()
		c.lastRecv = c.env.sched.ns(now)
		c.mu.Unlock()
		if !c.behaviour().Misbehave.IgnorePings {
			c.wmu.Lock()
			_ = pc.WriteControl(websocket.PongMessage, ev.Payload, time.Time{})
			c.wmu.Unlock()
		}
	case wsframe.OpPong:
		c.pong()
	case wsframe.OpClose:
		code, reason, err := wsframe.ParseClose(ev.Payload)
		c.wmu.Lock()
		if err != nil {
			_ = pc.WriteControl(websocket.CloseMessage, wsframe.ClosePayload(websocket.CloseProtocolError, err.Error()), time.Time{})
			c.wmu.Unlock()
			pc.end(0, "", err)
			return
		}
		// Answered with the same code, as gorilla's default close handler.
		_ = pc.WriteControl(websocket.CloseMessage, wsframe.ClosePayload(code, ""), time.Time{})
		c.wmu.Unlock()
		pc.end(code, reason, &websocket.CloseError{Code: code, Text: reason})
	}
}

// end stops reading and hands the connection's end to the client on a goroutine of its own
// (readMu held). The socket stays open until the client closes it.
func (pc *epollConn) end(code int, reason string, err error) {
	pc.ended = true
	_ = pc.nc.PauseReading()
	pc.dlMu.Lock()
	pc.dlGen++
	if pc.dl != nil {
		pc.dl.Stop()
		pc.dl = nil
	}
	pc.dlMu.Unlock()
	c, rc := pc.cl, pc.rc
	go func() {
		defer c.env.wg.Done()
		c.ended(pc, rc.gen, rc.upgraded, &pc.cs, code, reason, err)
	}()
}

// Closed is the poller's: the socket is over.
func (pc *epollConn) Closed(_ *netpoll.Conn, err error) {
	at := time.Now()
	pc.readMu.Lock()
	if pc.dial != nil {
		pc.dialClosed(err)
		pc.readMu.Unlock()
		return
	}
	if !pc.live {
		pc.readMu.Unlock()
		return
	}
	pc.sockEnd, pc.sockEndAt = err, at
	if !pc.ended {
		// As gorilla's reader: the end of the stream without a close frame is 1006.
		if err == io.EOF {
			pc.end(websocket.CloseAbnormalClosure, io.ErrUnexpectedEOF.Error(), &websocket.CloseError{Code: websocket.CloseAbnormalClosure, Text: io.ErrUnexpectedEOF.Error()})
		} else {
			pc.end(0, "", err)
		}
		pc.readMu.Unlock()
		return
	}
	report := pc.zombie
	pc.zombie = nil
	pc.readMu.Unlock()
	if report != nil {
		report(!errors.Is(err, netpoll.ErrClosed), at)
	}
}

// watchClose calls report once the socket ends: peerClosed says the gateway closed or reset it
// (false: this side closed it, at the end of the run).
func (pc *epollConn) watchClose(report func(peerClosed bool, at time.Time)) {
	pc.readMu.Lock()
	if end := pc.sockEnd; end != nil {
		at := pc.sockEndAt
		pc.readMu.Unlock()
		report(!errors.Is(end, netpoll.ErrClosed), at)
		return
	}
	pc.zombie = report
	pc.readMu.Unlock()
}

// adopt hands nc, a WebSocket upgraded by dialUpgrade, to the run's poller and opens it as the
// client's connection of generation gen; rest are the bytes the gateway sent right after the 101,
// parsed before anything the poller reads.
func (c *client) adopt(nc net.Conn, rest []byte, gen uint32, upgraded time.Time, reconnect bool) {
	env := c.env
	pc := &epollConn{cl: c, rc: readCtx{gen: gen, upgraded: upgraded, reconnect: reconnect, first: true}}
	pc.rc.cs = &pc.cs
	pc.emit = pc.event
	pc.readMu.Lock()
	defer pc.readMu.Unlock()
	pn, err := env.poller.Add(nc, pc)
	if err != nil {
		nc.Close()
		if env.ctx.Err() == nil {
			env.logger.Error("client connection not adopted by the poller", "user_id", c.userID, "err", err)
			c.add(stats.ErrorCounter("poller"), 1)
		}
		c.dropped(gen, false, 0, 0)
		return
	}
	pc.nc = pn
	if !c.open(pc, gen, upgraded) {
		return
	}
	pc.live = true
	env.wg.Add(1) // until the connection's end is handled (end)
	env.proto.opened(c, gen, upgraded)
	if len(rest) > 0 {
		pc.feed(rest)
	}
}
