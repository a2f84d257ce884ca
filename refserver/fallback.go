package refserver

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/squall-dev/squall/refserver/protocol"
)

// The fallback tiers — Server-Sent Events (GET /sse, transport_sse.go) and long polling
// (GET /poll, transport_poll.go) — carry the server's frames down, and POST /send carries the
// client's frames up. A fallback connection is a conn like any WebSocket connection: same admission,
// auth, limits, rooms, presence, acks, seq order, send queue, heartbeat timeout and cleanup. What
// differs is only the network side:
//
//   - The token is required with the request that opens the connection (token query parameter or
//     Authorization bearer header); there is no hello. Every later /poll and /send request names the
//     connection (conn query parameter = welcome's connId) and presents the same token.
//   - Liveness is the client's requests: a poll, or a POST /send (an app ping frame, or an empty
//     body). A client that stops polling or sending for heartbeat-timeout is dropped and announced
//     with reason timeout, as a silent WebSocket client is. The server's heartbeat is an SSE comment
//     line on the stream, and ends a long poll's hold early.
//   - A close (code and reason, as in a WebSocket close frame) is an SSE "close" event, or the
//     "close" member of a poll response. DELETE /send closes the connection cleanly (1000).

// CORS. A page may use the fallback tiers from another origin (a CDN-hosted app talking to the
// gateway's host) when that origin is allowed, by the same rule as the WebSocket's Origin check
// (Config.AllowedOrigins; empty: same host). An allowed Origin is echoed in
// Access-Control-Allow-Origin; a preflight (OPTIONS) is answered 204 with the methods and the
// headers the tiers use (Authorization for the bearer token, Content-Type, Last-Event-ID); a refused
// Origin gets 403 and a log line.

// corsAllowHeaders are the request headers a cross-origin fallback client may send.
const corsAllowHeaders = "Authorization, Content-Type, Last-Event-ID"

// cors handles the CORS side of a fallback request (methods: those of the path) and reports whether
// the handler goes on: false when it answered (a preflight, or a refused Origin).
func (s *Server) cors(w http.ResponseWriter, r *http.Request, methods string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		if r.Method == http.MethodOptions {
			w.Header().Set("Allow", methods+", OPTIONS")
			w.WriteHeader(http.StatusNoContent)
			return false
		}
		return true
	}
	if !s.originAllowed(r) || strings.ContainsFunc(origin, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
		s.refuseOrigin(w, r)
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	if r.Method != http.MethodOptions {
		return true
	}
	h.Set("Access-Control-Allow-Methods", methods)
	h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return false
}

// fallbackSide is the part of a fallback transport that POST /send needs.
type fallbackSide struct {
	token string // the token the connection was opened with; later requests must present it
	// recvMu serialises the handling of client frames (conn.handle owns the protocol state) and
	// keeps the cleanup from running while a request is inside handle.
	recvMu sync.Mutex
}

// fallbackTransport is implemented by the SSE and long-poll transports.
type fallbackTransport interface {
	transport
	side() *fallbackSide
}

// tokenMatches reports whether r presents the connection's token.
func (f *fallbackSide) tokenMatches(r *http.Request) bool {
	tok := requestToken(r)
	return tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(f.token)) == 1
}

// fallbackConns maps connection ids to the authenticated fallback connections, for /poll and /send.
// Safe for concurrent use.
type fallbackConns struct {
	mu   sync.Mutex
	byID map[string]*conn
}

func newFallbackConns() *fallbackConns { return &fallbackConns{byID: map[string]*conn{}} }

func (fc *fallbackConns) add(c *conn) {
	fc.mu.Lock()
	fc.byID[c.id] = c
	fc.mu.Unlock()
}

func (fc *fallbackConns) remove(c *conn) {
	fc.mu.Lock()
	if fc.byID[c.id] == c {
		delete(fc.byID, c.id)
	}
	fc.mu.Unlock()
}

func (fc *fallbackConns) get(id string) *conn {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.byID[id]
}

func (fc *fallbackConns) len() int {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return len(fc.byID)
}

// maxSendFrames bounds the frames of one POST /send body (one per line).
const maxSendFrames = 64

// lookupFallback finds the connection a /poll or /send request names and checks its token. It
// answers the request itself (404 unknown connection, 401 wrong token) when it returns nil.
func (s *Server) lookupFallback(w http.ResponseWriter, r *http.Request) (*conn, *fallbackSide) {
	id := r.URL.Query().Get(protocol.ConnQueryParam)
	c := s.fallbacks.get(id)
	if c == nil {
		writeErrorFrame(w, http.StatusNotFound, protocol.ErrCodeUnknownConn, "no open connection "+strconv.Quote(id))
		return nil, nil
	}
	f := c.t.(fallbackTransport).side()
	if !f.tokenMatches(r) {
		s.metrics.rejections.WithLabelValues(rejectUnauthorized).Inc()
		writeErrorFrame(w, http.StatusUnauthorized, protocol.ErrCodeUnauthorized, "the token does not match the connection's")
		return nil, nil
	}
	return c, f
}

// openToken returns the token of a request that opens a fallback connection, answering 401 when
// there is none (the fallbacks have no hello frame).
func (s *Server) openToken(w http.ResponseWriter, r *http.Request) (string, bool) {
	tok := requestToken(r)
	if tok == "" {
		s.metrics.rejections.WithLabelValues(rejectUnauthorized).Inc()
		writeErrorFrame(w, http.StatusUnauthorized, protocol.ErrCodeUnauthorized,
			"a token is required (query parameter "+protocol.TokenQueryParam+" or Authorization: Bearer)")
		return "", false
	}
	return tok, true
}

// serveSend is POST /send (client frames, one JSON frame per line; an empty body only shows the
// client is alive) and DELETE /send (close the connection cleanly with 1000).
func (s *Server) serveSend(w http.ResponseWriter, r *http.Request) {
	if !s.cors(w, r, "POST, DELETE") {
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodDelete {
		w.Header().Set("Allow", "POST, DELETE")
		http.Error(w, "POST or DELETE", http.StatusMethodNotAllowed)
		return
	}
	c, f := s.lookupFallback(w, r)
	if c == nil {
		return
	}
	c.touch()
	if r.Method == http.MethodDelete {
		c.code.CompareAndSwap(0, int32(protocol.CloseNormal))
		c.setCause(causeClientClose)
		c.t.abort(c)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	limit := c.s.cfg.MaxFrameBytes * maxSendFrames
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit+1))
	tooLarge := int64(len(body)) > limit
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		tooLarge, err = true, nil
	}
	if err != nil {
		http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
		return
	}
	frames, over := splitSendBody(body, c.s.cfg.MaxFrameBytes)
	tooLarge = tooLarge || over

	f.recvMu.Lock()
	defer f.recvMu.Unlock()
	if c.isGone() || c.closing() {
		writeErrorFrame(w, http.StatusGone, protocol.ErrCodeUnknownConn, "the connection is closing")
		return
	}
	if tooLarge {
		// As a WebSocket frame above max-frame-bytes: close 1009.
		c.s.metrics.messagesIn.Inc()
		c.setCause(causeReadError)
		c.kick(protocol.CloseTooLarge, "frame too large", causeReadError)
		writeErrorFrame(w, http.StatusRequestEntityTooLarge, protocol.ErrCodeMalformed,
			"a frame is above max-frame-bytes or the body holds more than "+strconv.Itoa(maxSendFrames)+" frames")
		return
	}
	for _, data := range frames {
		c.touch()
		c.s.metrics.messagesIn.Inc()
		if c.closing() {
			continue // as the WebSocket reader does: frames after a close are read and dropped
		}
		if !utf8.Valid(data) {
			c.sendError(protocol.ErrCodeInvalidUTF8, "text frame is not valid UTF-8", 0)
			continue
		}
		c.handle(data)
	}
	w.WriteHeader(http.StatusNoContent)
}

// splitSendBody splits a POST /send body into its frames: one per line, blank lines skipped, each
// line trimmed of surrounding white space. tooLarge reports a line above maxFrame bytes or more than
// maxSendFrames frames; frames then holds those before it. The frames alias body.
func splitSendBody(body []byte, maxFrame int64) (frames [][]byte, tooLarge bool) {
	for line := range bytes.SplitSeq(body, []byte{'\n'}) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if int64(len(line)) > maxFrame || len(frames) == maxSendFrames {
			return frames, true
		}
		frames = append(frames, line)
	}
	return frames, false
}

// writeErrorFrame answers an HTTP request with status and an error frame as its JSON body.
func writeErrorFrame(w http.ResponseWriter, status int, code, msg string) {
	b, _ := protocol.Encode(&protocol.Frame{Type: protocol.TypeError, Code: code, Message: msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
