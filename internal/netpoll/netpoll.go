// Package netpoll is a readiness-driven loop over many TCP connections (Linux epoll): a connection
// handed to a Poller costs no goroutine and no read buffer while it is idle. Each of the Poller's
// loops owns an epoll instance and one read buffer; when a connection's socket is readable the
// loop reads into that buffer and calls its Handler. Writes never block: what the kernel does not
// take at once is queued on the connection (bounded) and written by the loop when the socket is
// writable again.
//
// A Poller also opens connections itself (Dial): the connect runs without blocking, and the loop
// tells the Handler when it is established, so that no goroutine waits for it either.
//
// Concurrency: Handler methods run on the connection's loop goroutine, one at a time per
// connection (and per loop). Write, Close and PauseReading may be called from any goroutine,
// including from inside a Handler. A connection's descriptor is closed only by its loop, after it
// left the epoll set, so its number can never be reused under an event still pending for it.
package netpoll

import (
	"errors"
	"net"
)

// Handler receives a connection's events on its loop goroutine.
type Handler interface {
	// Data is called with bytes read from the connection; b is the loop's buffer, valid only
	// during the call (the handler may modify it).
	Data(c *Conn, b []byte)
	// Closed is called once, when the connection is over: err is io.EOF when the peer closed it,
	// ErrClosed when Close ended it, or the socket's error.
	Closed(c *Conn, err error)
}

// Connector is what a Handler of a connection opened by Dial adds: Connected is called on the
// loop once the connection is established, before any Data. A connect that fails ends the
// connection instead: Closed is called with the connect's error (a *os.SyscallError).
type Connector interface {
	Handler
	Connected(c *Conn)
}

// ErrClosed is the end of a connection closed on this side (Close, or the Poller's Close).
var ErrClosed = net.ErrClosed

// ErrQueueFull is returned by Write when the connection's queue of unsent bytes is over the
// Poller's bound: the peer does not read.
var ErrQueueFull = errors.New("netpoll: write queue full (the peer does not read)")

// Config sizes a Poller.
type Config struct {
	// Loops is the number of epoll loops (goroutines), at least 1.
	Loops int
	// ReadBuffer is each loop's read buffer (default 64 KiB).
	ReadBuffer int
	// MaxQueued bounds the bytes queued on one connection waiting for the socket (default 1 MiB).
	MaxQueued int
}
