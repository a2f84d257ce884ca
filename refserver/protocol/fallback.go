package protocol

import "encoding/json"

// The fallback tiers carry the same frames as the WebSocket, over plain HTTP:
//
//	GET    /sse?token=JWT            Server-Sent Events: one frame per event ("data: {frame}", with
//	                                 "id: <session>:<n>" once authenticated); the close is an event
//	                                 named "close" with a FallbackClose as data; ": ping" comment
//	                                 lines are the server's heartbeat and keep-alive. A reconnect
//	                                 with Last-Event-ID (header, or lastEventId query parameter)
//	                                 continues the session and replays what the stream missed
//	GET    /poll?token=JWT           long polling: opens a connection and returns its first frames
//	GET    /poll?conn=ID&token=JWT   returns what is queued, or holds until something is (bounded)
//	POST   /send?conn=ID&token=JWT   client frames, one JSON frame per line (an empty body only
//	                                 shows the client is alive)
//	DELETE /send?conn=ID&token=JWT   closes the connection cleanly (1000)
//
// The token may also be sent as "Authorization: Bearer JWT". ID is the connId of the welcome frame.
// A client must poll, or send something, at least every heartbeatInterval (from welcome): a client
// silent for heartbeatTimeout is dropped like a silent WebSocket client.

// ConnQueryParam names the fallback connection (welcome's connId) on /poll and /send.
const ConnQueryParam = "conn"

// ErrCodeUnknownConn answers a /poll or /send naming a connection that is not open (never was, or
// has ended: the client opens a new one). HTTP 404, or 410 while it is closing.
const ErrCodeUnknownConn = "unknown_conn"

// SSECloseEvent is the event name of the SSE event that carries the close.
const SSECloseEvent = "close"

// FallbackClose is how a fallback connection's close travels: the same code and reason a WebSocket
// close frame would carry.
type FallbackClose struct {
	Code   CloseCode `json:"code"`
	Reason string    `json:"reason,omitempty"`
}

// PollResponse is the JSON body of a GET /poll answer: the frames delivered (in order; empty when
// the hold ended with nothing to deliver), and Close when the connection has closed — the client
// then stops polling.
type PollResponse struct {
	Frames []json.RawMessage `json:"frames"`
	Close  *FallbackClose    `json:"close,omitempty"`
}
