package refserver

import "time"

// transport is the network side of a connection: how frames reach the client, how frames from the
// client arrive, and how the connection is torn down. Everything else — admission, authentication,
// rooms, presence, acks, seq order, limits, the bounded send queue, heartbeats and the one cleanup
// path — lives in conn and is the same for every transport. Three implement it: the WebSocket
// (transport_ws.go), Server-Sent Events and long polling (the fallback tiers).
//
// Calls and their goroutines:
//   - receive runs on the connection's run goroutine and blocks for the connection's life; when it
//     returns, that goroutine runs the cleanup (conn.finish).
//   - queued is called with conn.qmu held each time an item is queued; start is true when no
//     delivery was running (conn.writing has just been set). A push transport then starts
//     conn.writeLoop; a pull transport (long polling) wakes the request waiting for frames, which
//     takes the queue with conn.nextBatch.
//   - write is called by whoever delivers the queue (one at a time) with items taken from it.
//   - abort may be called from any goroutine, more than once.
//   - release is called once, by the cleanup, after any queued close has gone out (or close-grace
//     passed) and after conn.gone is set.
type transport interface {
	// kind names the transport in logs and metrics: "ws", "sse" or "poll".
	kind() string
	// awaitHello bounds the wait for a hello frame (d > 0) or lifts the bound (d == 0) once
	// authenticated. Transports that take the token only with the request ignore it.
	awaitHello(c *conn, d time.Duration)
	// authenticated is called once, after a successful authentication, before welcome is queued.
	authenticated(c *conn)
	// receive takes frames from the client and hands each to conn.handle until the connection
	// ends, then records why (conn.setCause) and returns.
	receive(c *conn)
	// queued reacts to an item being queued (see above); kind is the item's kind.
	queued(c *conn, kind uint8, start bool)
	// write delivers one item within the write timeout. An error ends the connection as a write
	// error.
	write(c *conn, it outItem) error
	// abort drops the network side at once (heartbeat timeout, write error, shutdown): receive
	// returns soon after.
	abort(c *conn)
	// release frees the network side for good.
	release(c *conn)
}
