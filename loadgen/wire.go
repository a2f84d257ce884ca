package loadgen

import (
	"net"
	"time"

	"github.com/gorilla/websocket"
)

// wireConn is a client's connection as the client uses it once open, whatever the tier: a
// WebSocket (*websocket.Conn) or a fallback connection over plain HTTP (SSE or long polling,
// transport_fallback.go). Writes are serialised by the client's wmu; reading belongs to the
// connection's reader goroutine (serve).
type wireConn interface {
	// WriteMessage sends one frame (websocket.TextMessage or BinaryMessage).
	WriteMessage(messageType int, data []byte) error
	// WriteControl sends a close, ping or pong (a fallback connection closes, or ignores pings).
	WriteControl(messageType int, data []byte, deadline time.Time) error
	SetWriteDeadline(t time.Time) error
	// SetReadDeadline bounds reading; a deadline in the past stops the reader (a vanish exit).
	SetReadDeadline(t time.Time) error
	// NetConn is the TCP connection underneath (closing it cuts the connection).
	NetConn() net.Conn
	Close() error
}

var _ wireConn = (*websocket.Conn)(nil)
