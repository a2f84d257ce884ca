package refserver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/refserver/protocol"
)

// A wsFront stands between the gateway's listener and its HTTP server while the nbio engine
// carries the WebSocket connections (IO nbio, plain TCP, no trusted proxies). It reads the head of
// each new connection's first request itself, and a WebSocket upgrade of the /ws path (the head
// complete, nothing sent behind it) is served at once on the connection, through the same handler
// chain (read bound, admission, upgrade, hand-over to the engine) with a minimal response writer;
// every other connection goes to the HTTP server with the bytes read replayed. What that saves
// per upgrade is the HTTP server's connection: two 4 KB buffers that a hijack never returns to
// their pools, its context and its deep goroutine stack. A refused upgrade is answered as the HTTP
// server would, and the connection is then closed.
//
// Concurrency: one goroutine accepts from the listener; each accepted connection is read on its
// own goroutine until its head is in. Accept and Close are safe for concurrent use; Close closes the
// listener and every connection whose head is still being read.
type wsFront struct {
	ln      net.Listener
	s       *Server
	handoff chan accepted // connections (or the listener's error) for the HTTP server
	done    chan struct{} // closed by Close
	once    sync.Once

	mu       sync.Mutex
	sniffing map[net.Conn]struct{} // connections whose head is being read
}

type accepted struct {
	nc  net.Conn
	err error
}

// maxFrontHead bounds the head the front reads; a longer one goes to the HTTP server.
const maxFrontHead = 4 << 10

// frontEligible reports whether the front serves s's listener: the nbio engine carries plain TCP
// connections only, and a PROXY header or TLS comes before the request.
func (s *Server) frontEligible() bool {
	return s.cfg.IO == IONbio && len(s.trusted) == 0 && s.cfg.TLSCert == "" && s.cfg.TLSKey == ""
}

func newWSFront(s *Server, ln net.Listener) *wsFront {
	f := &wsFront{ln: ln, s: s, handoff: make(chan accepted), done: make(chan struct{}), sniffing: map[net.Conn]struct{}{}}
	go f.acceptLoop()
	return f
}

func (f *wsFront) acceptLoop() {
	for {
		nc, err := f.ln.Accept()
		if err != nil {
			// The HTTP server decides: it retries a temporary error (after its back-off, which
			// holds this loop here) and stops on any other.
			select {
			case f.handoff <- accepted{err: err}:
			case <-f.done:
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				continue
			}
			return
		}
		if !f.track(nc) {
			_ = nc.Close()
			return
		}
		go f.sniff(nc)
	}
}

// isTemporary reports the accept errors the HTTP server retries (EMFILE and the like).
func isTemporary(err error) bool {
	var te interface{ Temporary() bool }
	return errors.As(err, &te) && te.Temporary()
}

// track notes a connection whose head is being read (false once the front is closed).
func (f *wsFront) track(nc net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sniffing == nil {
		return false
	}
	f.sniffing[nc] = struct{}{}
	return true
}

func (f *wsFront) untrack(nc net.Conn) {
	f.mu.Lock()
	delete(f.sniffing, nc)
	f.mu.Unlock()
}

// Accept returns the next connection for the HTTP server.
func (f *wsFront) Accept() (net.Conn, error) {
	select {
	case a := <-f.handoff:
		return a.nc, a.err
	case <-f.done:
		return nil, net.ErrClosed
	}
}

// Close closes the listener and the connections whose head is still being read.
func (f *wsFront) Close() error {
	var err error
	f.once.Do(func() {
		close(f.done)
		err = f.ln.Close()
		f.mu.Lock()
		for nc := range f.sniffing {
			_ = nc.Close()
		}
		f.sniffing = nil
		f.mu.Unlock()
	})
	return err
}

func (f *wsFront) Addr() net.Addr { return f.ln.Addr() }

// headBufs holds the buffers heads are read into.
var headBufs = sync.Pool{New: func() any { b := make([]byte, maxFrontHead); return &b }}

// headReaders holds the readers heads are parsed with.
var headReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, maxFrontHead) }}

// sniff reads the head of nc's first request and serves it (a WebSocket upgrade) or hands nc to
// the HTTP server.
func (f *wsFront) sniff(nc net.Conn) {
	bp := headBufs.Get().(*[]byte)
	buf := *bp
	defer headBufs.Put(bp)
	_ = nc.SetReadDeadline(time.Now().Add(headerTimeout))
	n, end := 0, -1
	for end < 0 && n < len(buf) {
		m, err := nc.Read(buf[n:])
		if m > 0 {
			from := max(0, n-3)
			n += m
			if i := bytes.Index(buf[from:n], []byte("\r\n\r\n")); i >= 0 {
				end = from + i + 4
			}
		}
		if err != nil && end < 0 {
			// Gone or silent before a whole head: what the HTTP server does with it (close it,
			// without an answer) is done here.
			f.untrack(nc)
			_ = nc.Close()
			return
		}
	}
	f.untrack(nc)
	if end == n {
		if r := parseUpgrade(buf[:n], nc); r != nil {
			f.serve(nc, r)
			return
		}
	}
	f.toHTTP(nc, bytes.Clone(buf[:n]))
}

// toHTTP hands nc to the HTTP server, which reads prefix first.
func (f *wsFront) toHTTP(nc net.Conn, prefix []byte) {
	_ = nc.SetReadDeadline(time.Time{})
	select {
	case f.handoff <- accepted{nc: &prefixConn{Conn: nc, prefix: prefix}}:
	case <-f.done:
		_ = nc.Close()
	}
}

// parseUpgrade parses head (one whole request head, nothing behind it) and returns the request
// when it is a WebSocket upgrade of the /ws path the front serves, else nil.
func parseUpgrade(head []byte, nc net.Conn) *http.Request {
	br := headReaders.Get().(*bufio.Reader)
	br.Reset(bytes.NewReader(head))
	r, err := http.ReadRequest(br)
	br.Reset(nil)
	headReaders.Put(br)
	if err != nil || r.Method != http.MethodGet || r.URL.Path != protocol.PathWS || r.Host == "" ||
		!r.ProtoAtLeast(1, 1) || r.ContentLength != 0 || len(r.TransferEncoding) > 0 ||
		!websocket.IsWebSocketUpgrade(r) {
		return nil
	}
	r.RemoteAddr = nc.RemoteAddr().String()
	return r
}

// serve runs the gateway's handler for an upgrade request read by the front.
func (f *wsFront) serve(nc net.Conn, r *http.Request) {
	w := &frontResponse{nc: nc}
	f.s.handler.ServeHTTP(w, r)
	if !w.hijacked {
		w.finish()
		return
	}
	w.releaseBuffers()
}

// prefixConn is a connection whose first bytes were already read: Read returns them first.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// NetConn is the connection underneath, for its socket options and half-close (tcpConn); reads
// go through c, which returns the prefix first.
func (c *prefixConn) NetConn() net.Conn { return c.Conn }

// upgradeConn holds what is written to it — the upgrade's 101 — so that it goes out with the
// connection's first frames in one write: a system call and a wake-up of the client fewer per
// connection. serveWS asks for it (frontResponse.holdUpgrade) only where the engine takes the socket
// over and a frame follows at once: the token came with the upgrade, so the welcome or the refusal
// is written next (and if nothing is queued when the connection's start is done, the 101 goes out
// alone: nbioTransport.sendHeldUpgrade).
type upgradeConn struct {
	net.Conn
	held     []byte
	released bool // writes go through
}

func (c *upgradeConn) Write(p []byte) (int, error) {
	if c.released {
		return c.Conn.Write(p)
	}
	c.held = append(c.held, p...)
	return len(p), nil
}

// NetConn is the connection underneath (tcpConn).
func (c *upgradeConn) NetConn() net.Conn { return c.Conn }

// release writes what is held, and lets later writes through, for a connection that stays on a
// goroutine transport (which writes through c). Not safe for concurrent use with Write.
func (c *upgradeConn) release() error {
	held := c.held
	c.held, c.released = nil, true
	_, err := c.Conn.Write(held)
	return err
}

// frontResponse is the response writer of an upgrade the front serves: Hijack hands the
// connection over (with small buffers the upgrader reuses); any other answer is sent whole, with
// its length, when the handler returns, and the connection is closed.
type frontResponse struct {
	nc          net.Conn
	header      http.Header
	status      int
	body        bytes.Buffer
	hijacked    bool
	holdUpgrade bool // Hijack returns an upgradeConn
	recycle     bool // the hijacked connection's buffers are free again when the handler returns
	br          *bufio.Reader
	bw          *bufio.Writer
}

// hijackReaders and hijackWriters hold the small buffers a hijacked connection is given, for the
// upgrades whose connection the engine took over (frontResponse.recycle): the upgrader's
// connection, which used them, is dropped then.
var (
	hijackReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, hijackBufSize) }}
	hijackWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, hijackBufSize) }}
)

// hijackBufSize is larger than the upgrader's thresholds for reusing the hijacked buffers (256
// bytes and a frame header more), so that it allocates none of its own for the 101.
const hijackBufSize = 512

// releaseBuffers returns the hijacked connection's buffers to their pools, if the handler said
// they are free.
func (w *frontResponse) releaseBuffers() {
	if !w.recycle || w.br == nil {
		return
	}
	w.br.Reset(nil)
	w.bw.Reset(nil)
	hijackReaders.Put(w.br)
	hijackWriters.Put(w.bw)
	w.br, w.bw = nil, nil
}

func (w *frontResponse) Header() http.Header {
	if w.header == nil {
		w.header = http.Header{}
	}
	return w.header
}

func (w *frontResponse) WriteHeader(code int) {
	if w.status == 0 && !w.hijacked {
		w.status = code
	}
}

func (w *frontResponse) Write(b []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}

// SetReadDeadline serves http.ResponseController (the handler's read bound).
func (w *frontResponse) SetReadDeadline(t time.Time) error { return w.nc.SetReadDeadline(t) }

// Hijack hands the connection to the upgrader.
func (w *frontResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.status != 0 {
		return nil, nil, errors.New("refserver: hijack after the response began")
	}
	w.hijacked = true
	nc := w.nc
	if w.holdUpgrade {
		nc = &upgradeConn{Conn: w.nc}
	}
	w.br = hijackReaders.Get().(*bufio.Reader)
	w.br.Reset(w.nc)
	w.bw = hijackWriters.Get().(*bufio.Writer)
	w.bw.Reset(w.nc)
	return nc, bufio.NewReadWriter(w.br, w.bw), nil
}

// finish sends the response the handler wrote and closes the connection.
func (w *frontResponse) finish() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %03d %s\r\n", w.status, http.StatusText(w.status))
	h := w.Header()
	h.Del("Transfer-Encoding")
	h.Set("Content-Length", strconv.Itoa(w.body.Len()))
	h.Set("Connection", "close")
	if h.Get("Date") == "" {
		h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	_ = h.Write(&b)
	b.WriteString("\r\n")
	b.Write(w.body.Bytes())
	_ = w.nc.SetWriteDeadline(time.Now().Add(headerTimeout))
	_, _ = w.nc.Write(b.Bytes())
	if tc, ok := w.nc.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite() // the answer goes out before the socket closes
	}
	_ = w.nc.Close()
}
