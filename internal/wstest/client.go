package wstest

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/refserver/protocol"
)

// DialOptions shapes one test connection.
type DialOptions struct {
	LocalIP     string      // 127.0.0.x source address; empty for the default
	Header      http.Header // extra handshake headers (Origin, Authorization)
	NoReader    bool        // never read (a client that stopped reading)
	IgnorePings bool        // read, but never answer server pings (a silent client)
	OnPing      func()      // called for each server ping (answered unless IgnorePings)
	Name        string      // names the client in failures (the user, say); optional
}

// Dial opens a WebSocket to url without a test attached: the caller owns the connection. It is the
// handshake of Connect, for tests that expect the upgrade to fail and read the response.
func Dial(url string, o DialOptions) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	if o.LocalIP != "" {
		nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(o.LocalIP)}}
		d.NetDialContext = nd.DialContext
	}
	return d.Dial(url, o.Header)
}

// Client is a test connection to the reference gateway whose incoming frames a goroutine decodes
// into a channel. Send may be called from several goroutines; the Expect methods and Next belong to
// one goroutine (the test's). The connection is closed, and its reader waited for, when the test
// ends.
type Client struct {
	WS     *websocket.Conn
	t      testing.TB
	name   string
	frames chan protocol.Frame
	done   chan struct{} // closed when the reader ends
	mu     sync.Mutex
	err    error // the read error that ended the reader
	wmu    sync.Mutex
	seq    uint64
}

// Connect dials url and starts reading frames; the test fails when the dial does.
func Connect(t testing.TB, url string, o DialOptions) *Client {
	t.Helper()
	ws, _, err := Dial(url, o)
	if err != nil {
		t.Fatalf("dial %s: %v", o.Name, err)
	}
	c := &Client{WS: ws, t: t, name: o.Name, frames: make(chan protocol.Frame, 4096), done: make(chan struct{})}
	if o.IgnorePings || o.OnPing != nil {
		ws.SetPingHandler(func(data string) error {
			if o.OnPing != nil {
				o.OnPing()
			}
			if o.IgnorePings {
				return nil
			}
			_ = ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
			return nil
		})
	}
	t.Cleanup(func() { _ = ws.Close(); <-c.done })
	if o.NoReader {
		close(c.done)
		return c
	}
	go c.read()
	return c
}

func (c *Client) read() {
	defer close(c.done)
	defer close(c.frames)
	for {
		_, data, err := c.WS.ReadMessage()
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		f, err := protocol.Decode(data, protocol.ServerToClient)
		if err != nil {
			c.t.Errorf("%sserver sent an invalid frame %q: %v", c.prefix(), data, err)
			continue
		}
		c.frames <- f
	}
}

func (c *Client) prefix() string {
	if c.name == "" {
		return ""
	}
	return c.name + ": "
}

// Next returns the next frame, or ok=false when the connection ended or the wait timed out.
func (c *Client) Next(timeout time.Duration) (protocol.Frame, bool) {
	select {
	case f, ok := <-c.frames:
		return f, ok
	case <-time.After(timeout):
		return protocol.Frame{}, false
	}
}

// Expect skips frames until one of type typ arrives; the test fails after timeout.
func (c *Client) Expect(typ protocol.Type, timeout time.Duration) protocol.Frame {
	c.t.Helper()
	return c.ExpectMatch(timeout, string(typ), func(f protocol.Frame) bool { return f.Type == typ })
}

// ExpectMatch skips frames until one satisfies match; the test fails after timeout or when the
// connection ends first.
func (c *Client) ExpectMatch(timeout time.Duration, what string, match func(protocol.Frame) bool) protocol.Frame {
	c.t.Helper()
	return ExpectFrame(c.t, c.frames, timeout, c.prefix()+what, match, func() string { return fmt.Sprint(c.ReadErr()) })
}

// ExpectFrame reads frames until one satisfies match; the test fails after timeout, or when frames
// is closed first (ended says how the connection ended). Clients of every transport share it.
func ExpectFrame(t testing.TB, frames <-chan protocol.Frame, timeout time.Duration, what string, match func(protocol.Frame) bool, ended func() string) protocol.Frame {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case f, ok := <-frames:
			if !ok {
				t.Fatalf("connection ended while waiting for %s: %s", what, ended())
			}
			if match(f) {
				return f
			}
		case <-deadline:
			t.Fatalf("no %s within %s", what, timeout)
		}
	}
}

// ReadErr is the error that ended the reader (nil while it runs).
func (c *Client) ReadErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// ExpectClose waits for the connection to end and returns the close code seen (1006 without a close
// frame) and reason.
func (c *Client) ExpectClose(timeout time.Duration) (int, string) {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(timeout):
		c.t.Fatalf("%sconnection not closed within %s", c.prefix(), timeout)
	}
	var ce *websocket.CloseError
	if errors.As(c.ReadErr(), &ce) {
		return ce.Code, ce.Text
	}
	return int(protocol.CloseAbnormal), fmt.Sprint(c.ReadErr())
}

// Send encodes f and writes it as a text frame; the test fails when either does.
func (c *Client) Send(f protocol.Frame) {
	c.t.Helper()
	b, err := protocol.Encode(&f)
	if err != nil {
		c.t.Fatal(err)
	}
	c.SendRaw(websocket.TextMessage, b)
}

// SendRaw writes one message of type mt as it is.
func (c *Client) SendRaw(mt int, b []byte) {
	c.t.Helper()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.WS.WriteMessage(mt, b); err != nil {
		c.t.Fatalf("%swrite: %v", c.prefix(), err)
	}
}

// NextSeq returns the client's next request seq.
func (c *Client) NextSeq() uint64 {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.seq++
	return c.seq
}

// Join sends join_room and waits up to timeout for room_joined of that room.
func (c *Client) Join(room string, timeout time.Duration) protocol.Frame {
	c.t.Helper()
	c.Send(protocol.Frame{Type: protocol.TypeJoinRoom, RoomID: room, Seq: c.NextSeq()})
	return c.ExpectMatch(timeout, "room_joined "+room, func(f protocol.Frame) bool {
		return f.Type == protocol.TypeRoomJoined && f.RoomID == room
	})
}
