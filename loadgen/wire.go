package loadgen

import (
	"time"

	"github.com/gorilla/websocket"
)

// wireConn is a client's connection as the client uses it once open, whatever the tier and I/O: a
// WebSocket read by its own goroutine (gorillaConn), a WebSocket on the run's poller (epollConn,
// conn_epoll.go) or a fallback connection over plain HTTP (SSE or long polling,
// transport_fallback.go). Writes are serialised by the client's wmu; reading belongs to the
// connection's reader (serve's goroutine, or the poller).
type wireConn interface {
	// WriteMessage sends one frame (websocket.TextMessage or BinaryMessage).
	WriteMessage(messageType int, data []byte) error
	// WriteControl sends a close, ping or pong (a fallback connection closes, or ignores pings).
	WriteControl(messageType int, data []byte, deadline time.Time) error
	SetWriteDeadline(t time.Time) error
	// SetReadDeadline bounds reading; a deadline in the past stops the reader (a vanish exit).
	SetReadDeadline(t time.Time) error
	// Cut ends the connection at once, without a close frame (a tab closed, a read timeout, a
	// failed write).
	Cut() error
	Close() error
}

// gorillaConn is a WebSocket read by its own goroutine (ClientIO goroutine, and wss:// targets).
type gorillaConn struct{ *websocket.Conn }

func (g gorillaConn) Cut() error { return g.NetConn().Close() }

var _ wireConn = gorillaConn{}
