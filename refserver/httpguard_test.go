package refserver

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/squall-dev/squall/refserver/protocol"
)

// fdLimitListener stands for the process's open-file limit: it holds at most n accepted connections
// at once, and Accept waits while n are open.
type fdLimitListener struct {
	net.Listener
	slots chan struct{}
}

func (l *fdLimitListener) Accept() (net.Conn, error) {
	l.slots <- struct{}{}
	nc, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &fdSlotConn{Conn: nc, free: func() { <-l.slots }}, nil
}

type fdSlotConn struct {
	net.Conn
	once sync.Once
	free func()
}

func (c *fdSlotConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.free)
	return err
}

// startServerOn serves cfg on ln for one test.
func startServerOn(t *testing.T, cfg Config, ln net.Listener) *testServer {
	t.Helper()
	srv, err := New(cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return within 10s of cancel")
		}
	})
	return &testServer{Server: srv, addr: ln.Addr().String()}
}

// dialFrom opens a TCP connection to addr from the loopback address localIP.
func dialFrom(t *testing.T, localIP, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", localIP, err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return nc
}

// TestPlainHTTPCannotPinGateway: with the open files limited to 24, one address opening 40
// connections — idle keep-alive connections after one request, and requests whose body stalls —
// does not take /healthz, /metrics and new WebSockets from other addresses offline: the connections
// beyond the per-IP TCP cap are refused at accept (503), and the others are closed by the idle and
// body-read bounds.
func TestPlainHTTPCannotPinGateway(t *testing.T) {
	cfg := testConfig()
	cfg.HTTPIdleTimeout = 300 * time.Millisecond
	cfg.HTTPReadTimeout = 300 * time.Millisecond
	cfg.MaxTCPConnsPerIP = 8
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := startServerOn(t, cfg, &fdLimitListener{Listener: ln, slots: make(chan struct{}, 24)})

	const attacker = "127.0.0.2"
	var held []net.Conn
	refused := 0
	for i := range 40 {
		nc := dialFrom(t, attacker, ts.addr)
		var req string
		if i%2 == 0 {
			req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" // then idle, kept alive
		} else {
			req = "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc" // stalls
		}
		_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(nc, req); err != nil {
			t.Fatalf("conn %d: write: %v", i, err)
		}
		if i%2 == 0 || i >= cfg.MaxTCPConnsPerIP {
			resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
			var ne net.Error
			switch {
			case err == nil:
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusServiceUnavailable {
					refused++
				}
			case errors.As(err, &ne) && ne.Timeout():
				t.Fatalf("conn %d: no answer: %v", i, err)
			default:
				// Refused: the 503 was written, but the close of a socket holding the unread
				// request may reset the connection before the client reads it.
				refused++
			}
		}
		held = append(held, nc)
	}
	if want := 40 - cfg.MaxTCPConnsPerIP; refused != want {
		t.Errorf("refused %d connections of %s at accept, want %d (beyond max-tcp-conns-per-ip)", refused, attacker, want)
	}

	// Other addresses are served at once.
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}).DialContext}}
	for _, path := range []string{protocol.PathHealthz, protocol.PathMetrics} {
		resp, err := hc.Get("http://" + ts.addr + path)
		if err != nil {
			t.Fatalf("GET %s while %s holds connections: %v", path, attacker, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", path, resp.Status)
		}
	}
	c, welcome := connect(t, ts, "alice", dialOpts{localIP: "127.0.0.4"})
	if welcome.Type != protocol.TypeWelcome {
		t.Fatalf("WebSocket while %s holds connections: got %+v", attacker, welcome)
	}
	_ = c.ws.Close()

	// The attacker's held connections are closed by the server within the bounds.
	for i, nc := range held[:cfg.MaxTCPConnsPerIP] {
		_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := io.Copy(io.Discard, nc)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("conn %d (%s): still open after 5s", i, map[bool]string{true: "idle keep-alive", false: "stalled body"}[i%2 == 0])
		}
	}
}

// TestBoundReadsKeepsHijackedAndPolls: the body-read bound ends with the request: a WebSocket, an
// SSE stream and a long poll outlive it.
func TestBoundReadsKeepsHijackedAndPolls(t *testing.T) {
	cfg := testConfig()
	cfg.HTTPReadTimeout = 200 * time.Millisecond
	cfg.HeartbeatInterval = time.Second
	cfg.HeartbeatTimeout = 3 * time.Second
	cfg.PollHold = 600 * time.Millisecond
	ts := startServer(t, cfg)

	// A WebSocket: its first server ping comes after the read bound; a ping frame sent then is
	// still answered.
	pinged := make(chan struct{}, 8)
	c, _ := connect(t, ts, "ws-user", dialOpts{onPing: func() { pinged <- struct{}{} }})
	select {
	case <-pinged:
	case <-time.After(3 * time.Second):
		t.Fatal("no server ping within 3s")
	}
	c.send(protocol.Frame{Type: protocol.TypePing, Timestamp: 1})
	c.expect(protocol.TypePong, 2*time.Second)

	// An SSE stream carries heartbeats past the read bound.
	sse, _ := openFallback(t, ts, "sse", "sse-user", fbOpts{keepalive: true})
	waitFor(t, 5*time.Second, "two SSE heartbeats", func() bool {
		sse.mu.Lock()
		defer sse.mu.Unlock()
		return sse.pings >= 2
	})
	if err := sse.readErr(); err != nil {
		t.Fatalf("SSE stream ended: %v", err)
	}

	// A long poll holding past the read bound answers at the end of its hold.
	p, _ := openFallback(t, ts, "poll", "poll-user", fbOpts{manual: true})
	start := time.Now()
	if !p.pollOnce() {
		t.Fatalf("a poll holding past the read bound ended polling: %v", p.readErr())
	}
	if held := time.Since(start); held < cfg.PollHold/2 {
		t.Errorf("the poll answered after %s, before its hold", held)
	}
}
