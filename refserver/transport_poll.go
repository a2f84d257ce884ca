package refserver

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/squall-dev/squall/refserver/protocol"
)

// pollTransport is the long-polling tier (GET /poll). It is a pull transport: queued frames wait in
// the connection's send queue (bounded as for every transport: a client that does not poll often
// enough for its traffic is closed with 1008 slow_consumer) until a poll request takes them. A poll
// answers at once when frames are queued, otherwise it holds until some are, the poll-hold passes,
// or the server's heartbeat comes due (the client's next poll is its answer). The connection's run
// goroutine only waits for the end. Client frames come up through POST /send.
type pollTransport struct {
	fallbackSide

	wake    chan struct{} // 1-buffered: something was queued
	ended   chan struct{} // closed when the connection ends (abort, or its close was delivered)
	closing chan struct{} // closed when a close is queued
	endOnce sync.Once
	clOnce  sync.Once

	mu     sync.Mutex
	waiter chan struct{} // closed to end the current poll's hold early (a newer poll supersedes it)

	// deliverMu makes one poll at a time take and answer the queue; out and closed are the answer
	// being built by write.
	deliverMu sync.Mutex
	out       []byte
	nframes   int
	closed    *protocol.FallbackClose
}

var _ fallbackTransport = (*pollTransport)(nil)

func newPollTransport(token string) *pollTransport {
	return &pollTransport{
		fallbackSide: fallbackSide{token: token},
		wake:         make(chan struct{}, 1),
		ended:        make(chan struct{}),
		closing:      make(chan struct{}),
	}
}

func (t *pollTransport) side() *fallbackSide { return &t.fallbackSide }
func (t *pollTransport) kind() string        { return "poll" }

func (t *pollTransport) awaitHello(*conn, time.Duration) {}

func (t *pollTransport) authenticated(c *conn) { c.s.fallbacks.add(c) }

func (t *pollTransport) end() { t.endOnce.Do(func() { close(t.ended) }) }

// receive waits for the end: an abort (heartbeat timeout, DELETE /send, shutdown), or a queued
// close that a poll delivered — or that no poll came for within close-grace.
func (t *pollTransport) receive(c *conn) {
	select {
	case <-t.ended:
		return
	case <-t.closing:
	}
	tm := time.NewTimer(c.s.cfg.CloseGrace)
	defer tm.Stop()
	select {
	case <-t.ended:
	case <-tm.C:
		c.setCause(causeReadError)
		t.end()
	}
}

func (t *pollTransport) queued(_ *conn, kind uint8, _ bool) {
	select {
	case t.wake <- struct{}{}:
	default:
	}
	if kind == itemClose {
		t.clOnce.Do(func() { close(t.closing) })
	}
}

// write adds one item to the poll answer being built (called under deliverMu).
func (t *pollTransport) write(c *conn, it outItem) error {
	switch it.kind {
	case itemPing:
		// The heartbeat: it ends the hold; the client's next poll shows it is alive.
	case itemClose:
		t.closed = &protocol.FallbackClose{Code: protocol.CloseCode(it.code), Reason: string(it.data)}
	default:
		if t.nframes > 0 {
			t.out = append(t.out, ',')
		}
		t.out = append(t.out, it.data...)
		t.nframes++
		c.s.metrics.messagesOut.Inc()
	}
	return nil
}

func (t *pollTransport) abort(*conn) { t.end() }

func (t *pollTransport) release(c *conn) {
	t.end()
	c.s.fallbacks.remove(c)
	t.recvMu.Lock()
	t.recvMu.Unlock() //nolint:staticcheck // an empty critical section: a barrier
	// No poll will take what is still queued (conn.gone refuses more): free it.
	t.deliverMu.Lock()
	defer t.deliverMu.Unlock()
	for batch, ok := c.nextBatch(); ok; batch, ok = c.nextBatch() {
		c.delivered(batch, nil)
	}
}

// servePoll is GET /poll: without a conn parameter it opens a connection (the answer carries its
// welcome); with one it polls that connection.
func (s *Server) servePoll(w http.ResponseWriter, r *http.Request) {
	if !s.cors(w, r, "GET") {
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "GET", http.StatusMethodNotAllowed)
		return
	}
	var c *conn
	if r.URL.Query().Get(protocol.ConnQueryParam) == "" {
		if !s.admitHTTP(w, r) {
			return
		}
		token, ok := s.openToken(w, r)
		if !ok {
			return
		}
		if c = s.startConn(newPollTransport(token), r); c == nil {
			// Shutdown began meanwhile: the same close and retry hint as a drained WebSocket.
			writePoll(w, http.StatusServiceUnavailable, nil, &protocol.FallbackClose{Code: protocol.CloseDraining, Reason: s.drainReason()})
			return
		}
	} else {
		if c, _ = s.lookupFallback(w, r); c == nil {
			return
		}
		if _, ok := c.t.(*pollTransport); !ok {
			writeErrorFrame(w, http.StatusBadRequest, protocol.ErrCodeUnknownConn, "connection "+c.id+" is not a long-poll connection")
			return
		}
		c.touch()
	}
	s.poll(w, r, c, c.t.(*pollTransport))
}

// poll answers one poll of c: what is queued, or what comes within the hold.
func (s *Server) poll(w http.ResponseWriter, r *http.Request, c *conn, t *pollTransport) {
	mine := make(chan struct{})
	t.mu.Lock()
	if t.waiter != nil {
		close(t.waiter) // the newer poll takes over; the older one answers empty
	}
	t.waiter = mine
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		if t.waiter == mine {
			t.waiter = nil
		}
		t.mu.Unlock()
	}()

	// The request's read bound (boundReads) covers the hold: the HTTP server's background read
	// would otherwise end the request when it passes.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.PollHold + s.cfg.HTTPReadTimeout))
	hold := time.NewTimer(s.cfg.PollHold)
	defer hold.Stop()
	for {
		if t.deliver(w, c) {
			return
		}
		select {
		case <-t.wake:
			continue
		case <-t.ended:
			// Ended without a delivered close (heartbeat timeout, DELETE, shutdown drop).
			code := protocol.CloseCode(c.code.Load())
			if code == 0 {
				code = protocol.CloseAbnormal
			}
			writePoll(w, http.StatusGone, nil, &protocol.FallbackClose{Code: code, Reason: cause(c.why.Load()).presenceReason()})
			return
		case <-hold.C:
		case <-mine:
		case <-s.pollStop:
		case <-r.Context().Done():
			return
		}
		writePoll(w, http.StatusOK, nil, nil)
		return
	}
}

// deliver answers the poll with what is queued, if anything is, and reports whether it did.
func (t *pollTransport) deliver(w http.ResponseWriter, c *conn) bool {
	t.deliverMu.Lock()
	defer t.deliverMu.Unlock()
	batch, ok := c.nextBatch()
	if !ok {
		return false
	}
	t.out, t.nframes, t.closed = t.out[:0], 0, nil
	_ = c.writeBatch(batch) // write builds the answer; it does not fail
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
	err := writePoll(w, http.StatusOK, t.out, t.closed)
	c.delivered(batch, err)
	if t.closed != nil && err == nil {
		c.nextBatch() // nothing follows a close: releases a cleanup waiting for it
		t.end()
	}
	if cap(t.out) > 64<<10 {
		t.out = nil // do not keep a large answer's buffer for an idle connection
	}
	return true
}

// writePoll writes a poll answer: {"frames":[...],"close":{...}}. frames is the comma-separated
// encoded frames.
func writePoll(w http.ResponseWriter, status int, frames []byte, cl *protocol.FallbackClose) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	buf := make([]byte, 0, len(frames)+64)
	buf = append(buf, `{"frames":[`...)
	buf = append(buf, frames...)
	buf = append(buf, ']')
	if cl != nil {
		b, err := json.Marshal(cl)
		if err != nil {
			return err
		}
		buf = append(buf, `,"close":`...)
		buf = append(buf, b...)
	}
	buf = append(buf, "}\n"...)
	_, err := w.Write(buf)
	return err
}
