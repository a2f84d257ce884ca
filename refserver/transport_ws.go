package refserver

import (
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/refserver/protocol"
)

// wsTransport is the WebSocket transport. It is the gorilla/websocket connection itself, converted,
// so that a WebSocket connection costs no allocation beyond the library's own.
type wsTransport websocket.Conn

var _ transport = (*wsTransport)(nil)

func newWSTransport(ws *websocket.Conn) *wsTransport { return (*wsTransport)(ws) }

func (t *wsTransport) ws() *websocket.Conn { return (*websocket.Conn)(t) }

func (t *wsTransport) kind() string { return "ws" }

func (t *wsTransport) awaitHello(c *conn, d time.Duration) {
	var deadline time.Time
	if d > 0 {
		deadline = time.Now().Add(d)
	}
	_ = t.ws().SetReadDeadline(deadline)
}

func (t *wsTransport) authenticated(*conn) {}

// receive sets up the control-frame handlers and runs the read loop.
func (t *wsTransport) receive(c *conn) {
	ws := t.ws()
	setSendLowWater(ws.NetConn(), sendLowWater) // see slowconsumer.go
	ws.SetReadLimit(c.s.cfg.MaxFrameBytes)
	ws.SetPongHandler(func(string) error { c.touch(); return nil })
	ws.SetPingHandler(func(data string) error {
		c.touch()
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(c.s.cfg.WriteTimeout))
		if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil
			}
			return err
		}
		return nil
	})
	ws.SetCloseHandler(func(code int, text string) error {
		c.code.CompareAndSwap(0, int32(code))
		c.setCause(causeClientClose)
		msg := websocket.FormatCloseMessage(code, "")
		if code == websocket.CloseNoStatusReceived {
			msg = websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
		}
		_ = ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(c.s.cfg.WriteTimeout))
		return nil
	})
	t.readLoop(c)
}

func (t *wsTransport) readLoop(c *conn) {
	ws := t.ws()
	for {
		mt, r, err := ws.NextReader()
		if err != nil {
			t.noteReadError(c, err)
			return
		}
		c.touch()
		c.s.metrics.messagesIn.Inc()
		if c.closing() {
			if _, err := io.Copy(io.Discard, r); err != nil {
				t.noteReadError(c, err)
				return
			}
			continue
		}
		if mt != websocket.TextMessage {
			if _, err := io.Copy(io.Discard, r); err != nil {
				t.noteReadError(c, err)
				return
			}
			c.s.workers.do(func() { c.sendError(protocol.ErrCodeBinary, "only text frames are accepted", 0) })
			continue
		}
		data, err := io.ReadAll(r)
		if err != nil {
			t.noteReadError(c, err)
			return
		}
		c.awaitSendRoom() // a client's own replies pace its requests (conn.go)
		if !utf8.Valid(data) {
			c.s.workers.do(func() { c.sendError(protocol.ErrCodeInvalidUTF8, "text frame is not valid UTF-8", 0) })
			continue
		}
		c.s.workers.do(func() { c.handle(data) })
	}
}

// noteReadError records why the read loop ended.
func (t *wsTransport) noteReadError(c *conn, err error) {
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce):
		if ce.Code == websocket.CloseAbnormalClosure {
			c.setCause(causeDropped)
		} else {
			c.code.CompareAndSwap(0, int32(ce.Code))
			c.setCause(causeClientClose)
		}
	case errors.Is(err, websocket.ErrReadLimit):
		c.code.CompareAndSwap(0, int32(protocol.CloseTooLarge))
		c.setCause(causeReadError)
		t.swallowInput(c)
		t.resendClose(c, int(protocol.CloseTooLarge), "")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		// ECONNRESET: the client closed its socket with frames still unread (a closing tab).
		c.setCause(causeDropped)
	case isProtocolError(err):
		// gorilla/websocket answered a malformed frame with close 1002 itself.
		c.code.CompareAndSwap(0, int32(websocket.CloseProtocolError))
		c.setCause(causeReadError)
		t.resendClose(c, websocket.CloseProtocolError, strings.TrimPrefix(err.Error(), "websocket: "))
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && !c.authed && !c.closing() {
			// No hello within hello-timeout: the documented answer, error unauthorized then 4001
			// (queued like any other; the cleanup lets them go out before the socket closes).
			c.unauthorized("no hello within hello-timeout")
			return
		}
		c.setCause(causeReadError)
	}
}

// swallowInput discards what the client sends from now on, in the background, until it closes or
// the close handshake and the linger are over (release's lingerClose then takes the socket over).
// A client writing an oversized frame reads nothing until its write is done; unread, the frame
// would stall it and, through it, this side's writes (its peers' presence, then the close frame)
// until a write timed out and the socket was dropped with a reset: 1006 instead of 1009.
func (t *wsTransport) swallowInput(c *conn) {
	nc := t.ws().NetConn()
	_ = nc.SetReadDeadline(time.Now().Add(c.s.cfg.WriteTimeout + c.s.cfg.CloseGrace + max(c.s.cfg.CloseGrace, 5*time.Second)))
	c.s.wg.Add(1)
	go func() {
		defer c.s.wg.Done()
		_, _ = io.CopyN(io.Discard, nc, 64<<20)
	}()
}

// resendClose sends the close frame gorilla/websocket sends itself on an oversized or malformed
// frame, in case its attempt failed: gorilla gives that write a fixed second, and waits for the
// writer's lock meanwhile, which a writer stalled by the send low-water mark (a client busy writing
// its oversized frame reads nothing) can hold longer (the client then saw 1006 instead of 1009).
// As for a slow consumer, the low-water mark is lifted so that the stalled write completes. When
// gorilla's frame went out, this is a no-op (ErrCloseSent).
func (t *wsTransport) resendClose(c *conn, code int, text string) {
	msg := websocket.FormatCloseMessage(code, text)
	if len(msg) > 125 {
		msg = msg[:125]
	}
	setSendLowWater(t.ws().NetConn(), 0)
	_ = t.ws().WriteControl(websocket.CloseMessage, msg, time.Now().Add(c.s.cfg.WriteTimeout))
}

// isProtocolError reports whether err is one of gorilla/websocket's framing errors (plain errors
// prefixed "websocket: ", after which it has sent close 1002), as opposed to a network error.
func isProtocolError(err error) bool {
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &ne) || errors.As(err, &oe) {
		return false
	}
	return strings.HasPrefix(err.Error(), "websocket: ")
}

// queued starts the writer goroutine when none runs.
func (t *wsTransport) queued(c *conn, _ uint8, start bool) {
	if start {
		c.s.wg.Add(1)
		go c.writeLoop()
	}
}

func (t *wsTransport) write(c *conn, it outItem) error {
	ws := t.ws()
	deadline := time.Now().Add(c.s.cfg.WriteTimeout)
	switch it.kind {
	case itemPing:
		return closeSentIsNoFailure(ws.WriteControl(websocket.PingMessage, nil, deadline))
	case itemClose:
		if c.slow.Load() {
			deadline = time.Now().Add(c.s.slowCloseGrace())
		}
		err := ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(it.code, string(it.data)), deadline)
		if errors.Is(err, websocket.ErrCloseSent) {
			err = nil
		}
		if err == nil {
			// Wait close-grace for the client's answer, then the read loop ends.
			_ = ws.SetReadDeadline(time.Now().Add(c.s.cfg.CloseGrace))
		}
		return err
	default:
		if err := ws.SetWriteDeadline(deadline); err != nil {
			return err
		}
		if err := ws.WriteMessage(websocket.TextMessage, it.data); err != nil {
			return closeSentIsNoFailure(err)
		}
		c.s.metrics.messagesOut.Inc()
		return nil
	}
}

// closeSentIsNoFailure drops ErrCloseSent from a write: gorilla/websocket sent a close frame of
// its own (1009 on an oversized frame, 1002 on a malformed one, the echo of the client's close) and
// the read loop ends the connection with it; what was still queued is not sent. Taken for a write
// failure, it would close the socket at once (abort), and the client, still sending, would get a
// reset that discards the close frame: 1006 instead of 1009.
func closeSentIsNoFailure(err error) error {
	if errors.Is(err, websocket.ErrCloseSent) {
		return nil
	}
	return err
}

func (t *wsTransport) abort(*conn) { _ = t.ws().NetConn().Close() }

func (t *wsTransport) release(c *conn) {
	nc := t.ws().NetConn()
	tooLarge := cause(c.why.Load()) == causeReadError && protocol.CloseCode(c.code.Load()) == protocol.CloseTooLarge
	switch {
	case tooLarge || c.slow.Load():
		// The client may still be sending an oversized frame, or a slow consumer's socket may still
		// hold frames it has not read, with the close frame behind them. A plain close would turn
		// what the client sends next into a TCP reset that discards the close frame; instead the
		// tail and a FIN go out while what the client sends is swallowed for a moment — in the
		// background, so that the cleanup (rooms left, presence announced, limits released) runs
		// now rather than after the linger. A writer still running (frames queued before the
		// connection was gone, such as its peers' presence leaves) finishes first: a write after
		// the half-close would fail and drop the connection with a reset.
		c.s.wg.Add(1)
		go func() {
			defer c.s.wg.Done()
			c.waitWriter(c.s.cfg.CloseGrace + c.s.cfg.WriteTimeout)
			lingerClose(nc, max(c.s.cfg.CloseGrace, 5*time.Second))
		}()
	default:
		_ = nc.Close()
	}
}

// lingerClose half-closes nc (what is queued goes out, then a FIN), discards what the peer sends
// until it closes too or d passes (at most 64 MiB), then closes nc.
func lingerClose(nc net.Conn, d time.Duration) {
	closeWrite(nc)
	_ = nc.SetReadDeadline(time.Now().Add(d))
	_, _ = io.CopyN(io.Discard, nc, 64<<20)
	_ = nc.Close()
}
