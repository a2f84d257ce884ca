package refserver

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/refserver/protocol"
)

// TestTooLargeCleansUpBeforeLinger: after a 1009 close the connection leaves its rooms (and its
// peers see it leave) at once, not after the ~5 s the socket lingers to swallow the oversized frame.
func TestTooLargeCleansUpBeforeLinger(t *testing.T) {
	cfg := testConfig()
	ts := startServer(t, cfg)
	alice, _ := connect(t, ts, "alice", dialOpts{})
	alice.join("r")
	bob, _ := connect(t, ts, "bob", dialOpts{})
	bob.join("r")
	alice.expectMatch(2*time.Second, "bob's join", func(f protocol.Frame) bool {
		return f.Type == protocol.TypePresence && f.Event == protocol.PresenceJoin && f.UserID == "bob"
	})

	start := time.Now()
	// bob sends a frame above max-frame-bytes and keeps the socket open (it reads on).
	bob.sendRaw(websocket.TextMessage, []byte(`{"type":"ping","pad":"`+strings.Repeat("x", int(cfg.MaxFrameBytes))+`"}`))
	leave := alice.expectMatch(4*time.Second, "bob's leave", func(f protocol.Frame) bool {
		return f.Type == protocol.TypePresence && f.Event == protocol.PresenceLeave && f.UserID == "bob"
	})
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("bob's leave announced %s after the 1009 close; the cleanup waited for the linger", took)
	}
	if leave.Reason != protocol.ReasonError {
		t.Errorf("leave reason %q, want %q", leave.Reason, protocol.ReasonError)
	}
	if code, _ := bob.expectClose(2 * time.Second); code != int(protocol.CloseTooLarge) {
		t.Errorf("bob's close %d, want 1009", code)
	}
}

// TestResetAnnouncedAsClosed: a client that closes its socket with frames still unread (a tab
// closing while presence events arrive) resets the connection; its leave is announced as closed,
// as a plain close is, not as an error.
func TestResetAnnouncedAsClosed(t *testing.T) {
	ts := startServer(t, testConfig())
	alice, _ := connect(t, ts, "alice", dialOpts{})
	alice.join("r")
	bob, _ := connect(t, ts, "bob", dialOpts{noReader: true})
	if err := bob.ws.WriteJSON(protocol.Frame{Type: protocol.TypeJoinRoom, RoomID: "r", Seq: 1}); err != nil {
		t.Fatal(err)
	}
	alice.expectMatch(2*time.Second, "bob's join", func(f protocol.Frame) bool {
		return f.Type == protocol.TypePresence && f.Event == protocol.PresenceJoin && f.UserID == "bob"
	})
	// bob never read its welcome and room_joined: with no linger, the close sends a reset.
	tc := bob.ws.NetConn().(*net.TCPConn)
	_ = tc.SetLinger(0)
	_ = tc.Close()
	leave := alice.expectMatch(2*time.Second, "bob's leave", func(f protocol.Frame) bool {
		return f.Type == protocol.TypePresence && f.Event == protocol.PresenceLeave && f.UserID == "bob"
	})
	if leave.Reason != protocol.ReasonClosed {
		t.Fatalf("leave reason %q after a reset, want %q", leave.Reason, protocol.ReasonClosed)
	}
}

// TestHelloTimeoutSendsUnauthorized: a connection that sends no hello within hello-timeout gets the
// documented error unauthorized frame, then close 4001.
func TestHelloTimeoutSendsUnauthorized(t *testing.T) {
	ts := startServer(t, testConfig())
	c := dialClient(t, ts, "", dialOpts{})
	f := c.expect(protocol.TypeError, 3*time.Second)
	if f.Code != protocol.ErrCodeUnauthorized {
		t.Errorf("error frame %+v, want code %q", f, protocol.ErrCodeUnauthorized)
	}
	if code, _ := c.expectClose(2 * time.Second); code != int(protocol.CloseUnauthorized) {
		t.Errorf("close %d, want 4001", code)
	}
}

// TestPipelinedRequestsArePaced: a client that pipelines 1000 requests while reading at full speed
// gets every reply: its reader is paused while its own send queue is full, instead of the client
// being closed as a slow consumer.
func TestPipelinedRequestsArePaced(t *testing.T) {
	cfg := testConfig()
	cfg.SendQueue = 16
	cfg.HeartbeatInterval = 2 * time.Second
	cfg.HeartbeatTimeout = 10 * time.Second
	ts := startServer(t, cfg)
	c, _ := connect(t, ts, "piper", dialOpts{})
	const n = 1000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= n; i++ {
			b, _ := protocol.Encode(&protocol.Frame{Type: protocol.TypePing, Timestamp: int64(i)})
			if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
				t.Errorf("write %d: %v", i, err)
				return
			}
		}
	}()
	for i := 1; i <= n; i++ {
		f, ok := c.next(5 * time.Second)
		if !ok {
			t.Fatalf("after %d pongs: connection ended (%v)", i-1, c.readErr())
		}
		if f.Type != protocol.TypePong || f.Timestamp != int64(i) {
			t.Fatalf("reply %d: %+v", i, f)
		}
	}
	wg.Wait()
}

// TestTokenSubjectAndLifetime: a token whose sub is too long or holds control characters, or whose
// exp lies beyond max-token-lifetime, is refused with 4001.
func TestTokenSubjectAndLifetime(t *testing.T) {
	cfg := testConfig()
	cfg.MaxTokenLifetime = 48 * time.Hour
	ts := startServer(t, cfg)
	sign := func(sub string, exp time.Duration) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
			Subject: sub, ExpiresAt: jwt.NewNumericDate(time.Now().Add(exp))}).SignedString([]byte(testSecret))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, tc := range []struct {
		name  string
		token string
		ok    bool
	}{
		{"ordinary", sign("alice", time.Hour), true},
		{"a day", sign("bob", 24*time.Hour), true},
		{"10 KB subject", sign(strings.Repeat("x", 10<<10), time.Hour), false},
		{"control characters", sign("eve\n\x1b[31mroot", time.Hour), false},
		{"ten years", sign("mallory", 10*365*24*time.Hour), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialClient(t, ts, tc.token, dialOpts{})
			f := c.expectMatch(3*time.Second, "welcome or error", func(f protocol.Frame) bool {
				return f.Type == protocol.TypeWelcome || f.Type == protocol.TypeError
			})
			if got := f.Type == protocol.TypeWelcome; got != tc.ok {
				t.Fatalf("got %+v, want welcome %v", f, tc.ok)
			}
			if !tc.ok {
				if code, _ := c.expectClose(2 * time.Second); code != int(protocol.CloseUnauthorized) {
					t.Errorf("close %d, want 4001", code)
				}
			}
		})
	}
}
