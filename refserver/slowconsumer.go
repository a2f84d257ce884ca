package refserver

import (
	"net"
	"time"

	"github.com/squall-dev/squall/refserver/protocol"
)

// Slow consumers. Every connection has a bounded send queue (Config.SendQueue frames, replayed
// resume frames aside); broadcasts are encoded once and shared, so a queue holds references, not
// copies. A client that does not read lets its queue fill; the frame that would overflow it instead
// drops what is queued (the memory is free at once) and queues close 1008 slow_consumer.
//
// The close must go out promptly although the writer may be stuck in a write to a full socket. Two
// things make sure it does:
//
//   - A WebSocket's socket holds little unsent data: TCP_NOTSENT_LOWAT (sendLowWater, Linux) makes a
//     write wait while more than that is unsent, so a client that stops reading stalls the writer
//     with the kernel's send buffer still mostly free (and the kernel memory a slow client pins stays
//     small). When the connection is kicked the limit is lifted: the stalled write completes into
//     the free room and the close frame follows right behind it, so a client that reads again later
//     finds every frame it was sent, whole, and then the 1008 close.
//   - Wherever that is not enough (another OS, a transport without it), the stalled write and the
//     close get a short deadline (slowCloseGrace); if it passes, the TCP connection is dropped.
//
// Either way the connection is cleaned up within close-grace or so, and ws_disconnects_total counts
// code 1008.

// sendLowWater is the unsent byte count above which a WebSocket write waits (TCP_NOTSENT_LOWAT).
const sendLowWater = 16 << 10

// unsticker is implemented by transports whose writer can block on a full network buffer: unstick
// lets the blocked write (and the close frame queued after it) go out, or fail, by deadline. It is
// called with conn.qmu held and must not block.
type unsticker interface {
	unstick(c *conn, deadline time.Time)
}

// slowCloseGrace bounds the write of a slow consumer's close frame and of the write it waits behind.
func (s *Server) slowCloseGrace() time.Duration { return min(s.cfg.CloseGrace, s.cfg.WriteTimeout) }

// kickSlowLocked closes c as a slow consumer (enqueue found its queue full). Called with c.qmu held.
func (c *conn) kickSlowLocked() {
	c.dropQueuedLocked()
	c.setCause(causeKicked)
	c.slow.Store(true)
	c.queueCloseLocked(protocol.ClosePolicy, protocol.ReasonSlowConsumer)
	if u, ok := c.t.(unsticker); ok {
		u.unstick(c, time.Now().Add(c.s.slowCloseGrace()))
	}
	c.s.log.Debug("slow consumer closed", "conn_id", c.id, "user_id", c.user, "send_queue", c.s.cfg.SendQueue)
}

// unstick lifts the send low-water mark and bounds the stalled write by deadline.
func (t *wsTransport) unstick(_ *conn, deadline time.Time) {
	nc := t.ws().NetConn()
	setSendLowWater(nc, 0)
	_ = nc.SetWriteDeadline(deadline)
}

var _ unsticker = (*wsTransport)(nil)

// tcpConn returns the *net.TCPConn under nc, if any, unwrapping connections that wrap another
// (NetConn: the per-IP cap's, the PROXY protocol's).
func tcpConn(nc net.Conn) *net.TCPConn {
	for range 8 {
		switch c := nc.(type) {
		case *net.TCPConn:
			return c
		case interface{ NetConn() net.Conn }:
			nc = c.NetConn()
		case interface{ Raw() net.Conn }: // go-proxyproto
			nc = c.Raw()
		default:
			return nil
		}
	}
	return nil
}

// closeWrite half-closes nc's TCP connection (what is queued goes out, then a FIN), if it has one.
func closeWrite(nc net.Conn) {
	if tc := tcpConn(nc); tc != nil {
		_ = tc.CloseWrite()
	}
}
