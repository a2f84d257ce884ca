package refserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/internal/wstest"
	"github.com/squall-dev/squall/refserver/protocol"
)

const testSecret = "test-secret"

// testConfig is a Config with short timings for tests.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.AuthSecret = testSecret
	cfg.HeartbeatInterval = 200 * time.Millisecond
	cfg.HeartbeatTimeout = 600 * time.Millisecond
	cfg.CloseGrace = time.Second
	cfg.ReorderTimeout = 300 * time.Millisecond
	cfg.HelloTimeout = time.Second
	cfg.WriteTimeout = time.Second
	cfg.IO = testIO
	return cfg
}

// testIO is the WebSocket I/O model the tests' servers use: SQUALL_TEST_IO, else the default.
// TestIOModes runs the core lifecycle tests under each model.
var testIO = os.Getenv("SQUALL_TEST_IO")

// testServer is a Server serving on a loopback port for one test.
type testServer struct {
	*Server
	addr string // host:port
}

func startServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	srv, err := New(cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			var stacks strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
			t.Errorf("Serve did not return within 10s of cancel; goroutines:\n%s", stacks.String())
		}
	})
	return &testServer{Server: srv, addr: ln.Addr().String()}
}

func (ts *testServer) wsURL(token string) string {
	u := "ws://" + ts.addr + protocol.PathWS
	if token != "" {
		u += "?" + protocol.TokenQueryParam + "=" + url.QueryEscape(token)
	}
	return u
}

func mintToken(t testing.TB, user string) string {
	t.Helper()
	tok, err := protocol.SignToken([]byte(testSecret), user, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// client is a test WebSocket client whose frames are read by a goroutine into a channel.
type client struct {
	t      testing.TB
	ws     *websocket.Conn
	frames chan protocol.Frame
	done   chan struct{} // closed when the read goroutine ends
	mu     sync.Mutex
	err    error // the read error that ended the reader
	seq    uint64
}

type dialOpts struct {
	localIP     string // 127.0.0.x source address
	header      http.Header
	noReader    bool        // do not read at all
	ignorePings bool        // read, but never answer server pings (a silent client)
	onPing      func()      // called for each server ping (answered unless ignorePings)
	dialer      *net.Dialer // custom dialer
}

func dialRaw(ts *testServer, token string, o dialOpts) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	if o.localIP != "" {
		nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(o.localIP)}}
		d.NetDialContext = nd.DialContext
	}
	return d.Dial(ts.wsURL(token), o.header)
}

// connect dials with the token of user in the URL and waits for welcome.
func connect(t testing.TB, ts *testServer, user string, o dialOpts) (*client, protocol.Frame) {
	t.Helper()
	c := dialClient(t, ts, mintToken(t, user), o)
	if o.noReader {
		return c, protocol.Frame{}
	}
	w := c.expect(protocol.TypeWelcome, 2*time.Second)
	return c, w
}

func dialClient(t testing.TB, ts *testServer, token string, o dialOpts) *client {
	t.Helper()
	ws, _, err := dialRaw(ts, token, o)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c := &client{t: t, ws: ws, frames: make(chan protocol.Frame, 1024), done: make(chan struct{})}
	if o.ignorePings || o.onPing != nil {
		ws.SetPingHandler(func(data string) error {
			if o.onPing != nil {
				o.onPing()
			}
			if o.ignorePings {
				return nil
			}
			_ = ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
			return nil
		})
	}
	t.Cleanup(func() { _ = ws.Close(); <-c.done })
	if o.noReader {
		close(c.done)
		return c
	}
	go c.readLoop()
	return c
}

func (c *client) readLoop() {
	defer close(c.done)
	defer close(c.frames)
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		f, err := protocol.Decode(data, protocol.ServerToClient)
		if err != nil {
			c.t.Errorf("server sent an invalid frame %q: %v", data, err)
			continue
		}
		c.frames <- f
	}
}

// next returns the next frame, or ok=false when the connection ended or the wait timed out.
func (c *client) next(timeout time.Duration) (protocol.Frame, bool) {
	select {
	case f, ok := <-c.frames:
		return f, ok
	case <-time.After(timeout):
		return protocol.Frame{}, false
	}
}

// expect skips frames until one of type typ arrives.
func (c *client) expect(typ protocol.Type, timeout time.Duration) protocol.Frame {
	c.t.Helper()
	return c.expectMatch(timeout, string(typ), func(f protocol.Frame) bool { return f.Type == typ })
}

func (c *client) expectMatch(timeout time.Duration, what string, match func(protocol.Frame) bool) protocol.Frame {
	c.t.Helper()
	return wstest.ExpectFrame(c.t, c.frames, timeout, what, match, func() string { return fmt.Sprint(c.readErr()) })
}

func (c *client) readErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// expectClose waits for the connection to end and returns the close code seen (1006 without a close
// frame) and reason.
func (c *client) expectClose(timeout time.Duration) (int, string) {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(timeout):
		c.t.Fatalf("connection not closed within %s", timeout)
	}
	var ce *websocket.CloseError
	if errors.As(c.readErr(), &ce) {
		return ce.Code, ce.Text
	}
	return int(protocol.CloseAbnormal), fmt.Sprint(c.readErr())
}

func (c *client) send(f protocol.Frame) {
	c.t.Helper()
	b, err := protocol.Encode(&f)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(websocket.TextMessage, b)
}

func (c *client) sendRaw(mt int, b []byte) {
	c.t.Helper()
	if err := c.ws.WriteMessage(mt, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// nextSeq returns the client's next seq.
func (c *client) nextSeq() uint64 { c.seq++; return c.seq }

func (c *client) join(room string) protocol.Frame {
	c.t.Helper()
	c.send(protocol.Frame{Type: protocol.TypeJoinRoom, RoomID: room, Seq: c.nextSeq()})
	return c.expectMatch(2*time.Second, "room_joined "+room, func(f protocol.Frame) bool {
		return f.Type == protocol.TypeRoomJoined && f.RoomID == room
	})
}

// waitFor polls cond until it holds or the deadline passes.
var waitFor = wstest.WaitFor

func joinStrings(s []string) string { return strings.Join(s, ",") }

// scanOrphaned counts the memberships of gone connections by walking every room: what the hub's
// orphaned counter must equal once no connection is between going and its cleanup.
func scanOrphaned(s *Server) int {
	s.hub.mu.RLock()
	defer s.hub.mu.RUnlock()
	n := 0
	for _, r := range s.hub.rooms {
		r.mu.Lock()
		for c := range r.members {
			if c.isGone() {
				n++
			}
		}
		r.mu.Unlock()
	}
	return n
}
