package refserver

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// Plain-HTTP connections must not pin the gateway. A WebSocket or SSE connection is bounded by its
// heartbeat, a long poll by its hold; plain HTTP requests are bounded here:
//
//   - an idle keep-alive connection is closed after Config.HTTPIdleTimeout (http.Server.IdleTimeout);
//   - a request's headers have 10 s (ReadHeaderTimeout), its body Config.HTTPReadTimeout
//     (boundReads; a long poll its hold plus that; hijacked connections clear the deadline and set
//     their own);
//   - one remote IP holds at most Config.MaxTCPConnsPerIP TCP connections of any kind, counted when
//     Serve accepts them (ipCapListener), so that one address cannot take the file descriptors every
//     other client, /healthz and /metrics need.

// headerTimeout bounds the reading of a request's headers.
const headerTimeout = 10 * time.Second

// boundReads sets the read deadline of every request's connection to HTTPReadTimeout from now: a
// body that stalls ends the request (and its connection) instead of holding it forever.
func (s *Server) boundReads(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := s.cfg.HTTPReadTimeout; d > 0 {
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
		}
		next.ServeHTTP(w, r)
	})
}

// tcpCapRefusal is written to a connection refused at accept, before anything is read from it.
const tcpCapRefusal = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nConnection: close\r\n" +
	"Retry-After: 1\r\nContent-Length: 11\r\n\r\nconn_limit\n"

// ipCapListener caps the open connections per remote IP of the connections it accepts. A refused
// connection gets tcpCapRefusal and is closed at once; Accept goes on with the next one. The count
// of an accepted connection is released when it is closed (by whoever holds it: the HTTP server,
// or a transport that hijacked it). Safe for concurrent use.
type ipCapListener struct {
	net.Listener
	max     int
	exempt  func(ip net.IP) bool // peers that are not capped (trusted proxies); may be nil
	refused func(ip string)      // called for each refused connection; may be nil

	mu   sync.Mutex
	byIP map[string]int
}

func newIPCapListener(ln net.Listener, max int, exempt func(net.IP) bool, refused func(string)) *ipCapListener {
	return &ipCapListener{Listener: ln, max: max, exempt: exempt, refused: refused, byIP: map[string]int{}}
}

func (l *ipCapListener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(nc.RemoteAddr())
		if l.exempt != nil && l.exempt(net.ParseIP(ip)) {
			return nc, nil
		}
		l.mu.Lock()
		ok := l.byIP[ip] < l.max
		if ok {
			l.byIP[ip]++
		}
		l.mu.Unlock()
		if ok {
			return &cappedConn{Conn: nc, release: func() { l.release(ip) }}, nil
		}
		// The socket's send buffer is empty: this write does not block.
		_ = nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		_, _ = nc.Write([]byte(tcpCapRefusal))
		_ = nc.Close()
		if l.refused != nil {
			l.refused(ip)
		}
	}
}

func (l *ipCapListener) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.byIP[ip] - 1; n > 0 {
		l.byIP[ip] = n
	} else {
		delete(l.byIP, ip)
	}
}

// open returns the connections held by ip.
func (l *ipCapListener) open(ip string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byIP[ip]
}

// cappedConn is an accepted connection that returns its per-IP count when closed (once).
type cappedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *cappedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// NetConn returns the wrapped connection (tcpConn unwraps through it: socket options, half-close).
func (c *cappedConn) NetConn() net.Conn { return c.Conn }

// remoteIP is the IP of a connection's remote address, as text (the address itself when it has no
// port).
func remoteIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}
