package refserver

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/squall-dev/squall/refserver/protocol"
)

// sseTransport is the Server-Sent Events tier (GET /sse). The HTTP connection is taken over from the
// HTTP server after the request (as the WebSocket upgrade does), so that the connection costs what a
// WebSocket costs: one run goroutine blocked in a read, which notices the client closing the stream,
// and a writer goroutine only while frames are queued. Frames go down as "data:" events; client
// frames come up through POST /send.
type sseTransport struct {
	fallbackSide
	nc net.Conn

	// resumeSession and resumeAfter are the request's Last-Event-ID (sse_resume.go), if any.
	resumeSession string
	resumeAfter   uint64
	// log is the session's stream log once authenticated; the writer numbers events with it.
	log     atomic.Pointer[sseLog]
	session string // the session id, set with log
}

var _ fallbackTransport = (*sseTransport)(nil)

func (t *sseTransport) side() *fallbackSide { return &t.fallbackSide }
func (t *sseTransport) kind() string        { return "sse" }

func (t *sseTransport) awaitHello(*conn, time.Duration) {}

func (t *sseTransport) authenticated(c *conn) {
	t.session = c.sess.id
	t.log.Store(c.s.sessions.sseLogOf(c.sess))
	c.s.fallbacks.add(c)
}

// sseResponseHeader opens the event stream (with the CORS header for an allowed Origin, cors). The
// body runs until the connection closes.
func sseResponseHeader(allowOrigin string) string {
	h := "HTTP/1.1 200 OK\r\n" +
		"Content-Type: text/event-stream\r\n" +
		"Cache-Control: no-cache\r\n" +
		"Connection: close\r\n" +
		"X-Accel-Buffering: no\r\n"
	if allowOrigin != "" {
		h += "Access-Control-Allow-Origin: " + allowOrigin + "\r\nVary: Origin\r\n"
	}
	return h + "\r\n: squall\n\n"
}

// serveSSE is GET /sse.
func (s *Server) serveSSE(w http.ResponseWriter, r *http.Request) {
	if !s.cors(w, r, "GET") {
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "GET", http.StatusMethodNotAllowed)
		return
	}
	if !s.admitHTTP(w, r) {
		return
	}
	token, ok := s.openToken(w, r)
	if !ok {
		return
	}
	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "the event stream needs an HTTP/1.x connection", http.StatusHTTPVersionNotSupported)
		return
	}
	if brw.Reader.Buffered() > 0 {
		// Bytes after a GET request (a pipelined request): not an event-stream client.
		_ = nc.Close()
		return
	}
	_ = nc.SetReadDeadline(time.Time{}) // the request's read bound (boundReads) ends with it
	_ = nc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	if _, err := io.WriteString(nc, sseResponseHeader(w.Header().Get("Access-Control-Allow-Origin"))); err != nil {
		_ = nc.Close()
		return
	}
	setSendLowWater(nc, sendLowWater) // as for a WebSocket (slowconsumer.go)
	t := &sseTransport{fallbackSide: fallbackSide{token: token}, nc: nc}
	t.resumeSession, t.resumeAfter, _ = parseLastEventID(lastEventID(r))
	if s.startConn(t, r) == nil {
		// Shutdown began meanwhile: the same close and retry hint as a drained WebSocket.
		data, _ := json.Marshal(protocol.FallbackClose{Code: protocol.CloseDraining, Reason: s.drainReason()})
		_, _ = (&net.Buffers{sseCloseEvt, data, sseEnd}).WriteTo(nc)
		_ = nc.Close()
	}
}

// receive waits for the client to close the stream. A client sends nothing on it after its request;
// stray bytes are ignored.
func (t *sseTransport) receive(c *conn) {
	var buf [64]byte
	for {
		_, err := t.nc.Read(buf[:])
		if err == nil {
			continue
		}
		var ne net.Error
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
			// The client closed its stream (EventSource.close, a closed tab). It has no other way to
			// close it, and closing a socket with unread data (a heartbeat in flight) resets it.
			c.setCause(causeDropped)
		case errors.As(err, &ne) && ne.Timeout():
			c.setCause(causeReadError) // after a close event: close-grace passed
		default:
			c.setCause(causeReadError)
		}
		return
	}
}

func (t *sseTransport) queued(c *conn, _ uint8, start bool) {
	if start {
		c.s.wg.Add(1)
		go c.writeLoop()
	}
}

// lastEventID is the Last-Event-ID of a request: the header EventSource sends on a reconnect, or
// the lastEventId query parameter (for clients that cannot set headers).
func lastEventID(r *http.Request) string {
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		return v
	}
	return r.URL.Query().Get("lastEventId")
}

var (
	sseData     = []byte("data: ")
	sseEnd      = []byte("\n\n")
	ssePing     = []byte(": ping\n\n")
	sseCloseEvt = []byte("event: " + protocol.SSECloseEvent + "\ndata: ")
)

func (t *sseTransport) write(c *conn, it outItem) (err error) {
	defer func() {
		if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
			// The client closed its stream while a frame was on its way: the same end as the
			// reader seeing it, whichever notices first.
			c.setCause(causeDropped)
		}
	}()
	if err := t.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout)); err != nil {
		return err
	}
	switch it.kind {
	case itemPing:
		_, err := t.nc.Write(ssePing)
		return err
	case itemClose:
		data, _ := json.Marshal(protocol.FallbackClose{Code: protocol.CloseCode(it.code), Reason: string(it.data)})
		bufs := net.Buffers{sseCloseEvt, data, sseEnd}
		if _, err := bufs.WriteTo(t.nc); err != nil {
			return err
		}
		// Nothing follows a close: end the stream (FIN) and give the client close-grace to close its
		// side, as a WebSocket client answers a close frame.
		closeWrite(t.nc)
		_ = t.nc.SetReadDeadline(time.Now().Add(c.s.cfg.CloseGrace))
		return nil
	default:
		// Encoded frames are single-line JSON, so one data line carries one frame. Once
		// authenticated, each event has an id for Last-Event-ID (sse_resume.go).
		bufs := net.Buffers{sseData, it.data, sseEnd}
		if log := t.log.Load(); log != nil {
			id := "id: " + sseEventID(t.session, log.append(it.data)) + "\n"
			bufs = net.Buffers{[]byte(id), sseData, it.data, sseEnd}
		}
		if _, err := bufs.WriteTo(t.nc); err != nil {
			return err
		}
		c.s.metrics.messagesOut.Inc()
		return nil
	}
}

func (t *sseTransport) abort(*conn) { _ = t.nc.Close() }

func (t *sseTransport) release(c *conn) {
	_ = t.nc.Close()
	c.s.fallbacks.remove(c)
	// Wait for a POST /send that is handling a frame; later ones see the connection gone.
	t.recvMu.Lock()
	t.recvMu.Unlock() //nolint:staticcheck // an empty critical section: a barrier
}

// unstick lifts the send low-water mark and bounds a write stalled on a full socket (a slow
// consumer being closed): it completes, and the close event follows, or it fails by deadline.
func (t *sseTransport) unstick(_ *conn, deadline time.Time) {
	setSendLowWater(t.nc, 0)
	_ = t.nc.SetWriteDeadline(deadline)
}

var _ unsticker = (*sseTransport)(nil)
