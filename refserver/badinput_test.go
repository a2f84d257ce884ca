package refserver

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/refserver/protocol"
)

// Acceptance: bad input gets the documented answer and the server keeps serving everyone else.
func TestBadInput(t *testing.T) {
	cfg := testConfig()
	cfg.HelloTimeout = 300 * time.Millisecond
	ts := startServer(t, cfg)

	// A bystander in a room, and a second member that broadcasts to it after every case.
	bystander, _ := connect(t, ts, "bystander", dialOpts{})
	bystander.join("lobby")
	speaker, _ := connect(t, ts, "speaker", dialOpts{})
	speaker.join("lobby")
	var roomSeq uint64
	stillServing := func(t *testing.T) {
		t.Helper()
		speaker.send(protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "lobby", Seq: speaker.nextSeq(), Data: []byte(`"still here"`)})
		roomSeq++
		bystander.expectMatch(2*time.Second, "broadcast", func(f protocol.Frame) bool {
			return f.Type == protocol.TypeBroadcast && f.RoomSeq == roomSeq
		})
	}
	expired, err := protocol.SignToken([]byte(testSecret), "late", time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	forged, err := protocol.SignToken([]byte("not-the-secret"), "mallory", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}

	// Cases that get an error frame and keep the connection open.
	errorCases := []struct {
		name string
		mt   int
		data []byte
		code string
	}{
		{"malformed JSON", websocket.TextMessage, []byte(`{"type":"join_room",`), protocol.ErrCodeMalformed},
		{"not an object", websocket.TextMessage, []byte(`[1,2,3]`), protocol.ErrCodeMalformed},
		{"wrong field type", websocket.TextMessage, []byte(`{"type":"join_room","roomId":7,"seq":1}`), protocol.ErrCodeMalformed},
		{"binary frame", websocket.BinaryMessage, []byte{0, 1, 2}, protocol.ErrCodeBinary},
		{"invalid UTF-8", websocket.TextMessage, []byte("{\"type\":\"ping\",\"x\":\"\xff\xfe\"}"), protocol.ErrCodeInvalidUTF8},
		{"unknown type", websocket.TextMessage, []byte(`{"type":"teleport"}`), protocol.ErrCodeUnknownType},
		{"server-only type", websocket.TextMessage, []byte(`{"type":"welcome"}`), protocol.ErrCodeUnknownType},
		{"missing field", websocket.TextMessage, []byte(`{"type":"join_room","seq":1}`), protocol.ErrCodeMissingField},
		{"second hello", websocket.TextMessage, []byte(`{"type":"hello","token":"x"}`), protocol.ErrCodeAlreadyHello},
		{"broadcast outside room", websocket.TextMessage, []byte(`{"type":"broadcast","roomId":"nope","seq":1,"data":1}`), protocol.ErrCodeNotMember},
	}
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := connect(t, ts, "tester", dialOpts{})
			c.sendRaw(tc.mt, tc.data)
			e := c.expect(protocol.TypeError, 2*time.Second)
			if e.Code != tc.code {
				t.Fatalf("error code %q, want %q (%s)", e.Code, tc.code, e.Message)
			}
			c.send(protocol.Frame{Type: protocol.TypePing, Timestamp: 7})
			c.expect(protocol.TypePong, time.Second) // the connection carries on
			stillServing(t)
		})
	}

	// Cases that end the connection with a close code.
	closeCases := []struct {
		name   string
		token  string
		header http.Header
		send   func(c *client)
		code   protocol.CloseCode
		errTyp string // error frame code expected before the close, if any
	}{
		{name: "10 MB frame", token: mintToken(t, "big"), code: protocol.CloseTooLarge, send: func(c *client) {
			_ = c.ws.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("x"), 10<<20))
		}},
		{name: "frame before hello without token", code: protocol.CloseUnauthorized, errTyp: protocol.ErrCodeUnauthorized, send: func(c *client) {
			c.send(protocol.Frame{Type: protocol.TypeJoinRoom, RoomID: "lobby", Seq: 1})
		}},
		{name: "garbage before hello", code: protocol.CloseUnauthorized, errTyp: protocol.ErrCodeUnauthorized, send: func(c *client) {
			c.sendRaw(websocket.TextMessage, []byte("hello?"))
		}},
		{name: "no hello at all", code: protocol.CloseUnauthorized, send: func(*client) {}},
		{name: "forged token in URL", token: forged, code: protocol.CloseUnauthorized, errTyp: protocol.ErrCodeUnauthorized},
		{name: "expired token in URL", token: expired, code: protocol.CloseUnauthorized, errTyp: protocol.ErrCodeUnauthorized},
		{name: "forged token in hello", code: protocol.CloseUnauthorized, errTyp: protocol.ErrCodeUnauthorized, send: func(c *client) {
			c.send(protocol.Frame{Type: protocol.TypeHello, Token: forged})
		}},
	}
	for _, tc := range closeCases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialClient(t, ts, tc.token, dialOpts{header: tc.header})
			if tc.send != nil {
				tc.send(c)
			}
			if tc.errTyp != "" {
				e := c.expect(protocol.TypeError, 2*time.Second)
				if e.Code != tc.errTyp {
					t.Fatalf("error code %q, want %q", e.Code, tc.errTyp)
				}
			}
			if code, reason := c.expectClose(3 * time.Second); code != int(tc.code) {
				t.Fatalf("closed with %d %q, want %d", code, reason, tc.code)
			}
			stillServing(t)
		})
	}

	t.Run("hello with a valid token", func(t *testing.T) {
		c := dialClient(t, ts, "", dialOpts{})
		c.send(protocol.Frame{Type: protocol.TypeHello, Token: mintToken(t, "late-hello")})
		if w := c.expect(protocol.TypeWelcome, 2*time.Second); w.UserID != "late-hello" {
			t.Fatalf("welcome %+v", w)
		}
	})

	t.Run("bad origin", func(t *testing.T) {
		_, resp, err := dialRaw(ts, mintToken(t, "o"), dialOpts{header: http.Header{"Origin": {"https://evil.example"}}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("err %v resp %v, want 403", err, resp)
		}
		stillServing(t)
	})

	if got := counterValue(t, ts.Server, protocol.MetricConnRejectionsTotal, map[string]string{"reason": "origin"}); got != 1 {
		t.Fatalf("origin rejections = %v", got)
	}
	waitFor(t, 2*time.Second, "only the two members left", func() bool {
		st := ts.Stats()
		return st.ActiveConns == 2 && st.Subscriptions == 2 && st.OrphanedSubscriptions == 0
	})
}

func TestAllowedOrigins(t *testing.T) {
	cfg := testConfig()
	cfg.AllowedOrigins = []string{"https://app.example"}
	ts := startServer(t, cfg)
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"https://app.example", true},
		{"https://APP.example", true},
		{"https://evil.example", false},
		{"", true},
	} {
		h := http.Header{}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		ws, resp, err := dialRaw(ts, mintToken(t, "u"), dialOpts{header: h})
		if tc.ok != (err == nil) {
			t.Fatalf("origin %q: err %v resp %v", tc.origin, err, resp)
		}
		if ws != nil {
			_ = ws.Close()
		}
	}
}

func TestRoomLimit(t *testing.T) {
	cfg := testConfig()
	cfg.MaxRoomsPerConn = 2
	ts := startServer(t, cfg)
	c, _ := connect(t, ts, "alice", dialOpts{})
	c.join("a")
	c.join("b")
	c.send(protocol.Frame{Type: protocol.TypeJoinRoom, RoomID: "c", Seq: c.nextSeq()})
	if e := c.expect(protocol.TypeError, time.Second); e.Code != protocol.ErrCodeRoomLimit || e.Seq != 3 {
		t.Fatalf("error %+v, want room_limit for seq 3", e)
	}
	c.join("a") // re-joining a room already joined is fine
	if st := ts.Stats(); st.Subscriptions != 2 {
		t.Fatalf("subscriptions %d", st.Subscriptions)
	}
}

func TestDisconnectCodeLabelsBounded(t *testing.T) {
	for code, want := range map[int]string{1000: "1000", 1006: "1006", 1013: "1013", 4001: "4001", 4003: "4003", 4999: "other", 3000: "other"} {
		if got := codeLabel(code); got != want {
			t.Errorf("codeLabel(%d) = %q, want %q", code, got, want)
		}
	}
}
