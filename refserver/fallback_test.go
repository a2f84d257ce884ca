package refserver

import (
	"bufio"
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/squall-dev/squall/refserver/protocol"
)

var fallbackKinds = []string{"sse", "poll"}

// TestFallbackInteropWithWebSocket is the acceptance test of the fallback tiers: SSE and long-poll
// clients join rooms, see presence and broadcasts from WebSocket clients, and vice versa; acks,
// pongs and seq order work as on the WebSocket; leaving is announced and cleans up.
func TestFallbackInteropWithWebSocket(t *testing.T) {
	for _, kind := range fallbackKinds {
		t.Run(kind, func(t *testing.T) {
			ts := startServer(t, testConfig())
			alice, _ := connect(t, ts, "alice", dialOpts{})
			alice.join("lobby")

			bob, w := openFallback(t, ts, kind, "bob", fbOpts{keepalive: true})
			if w.UserID != "bob" || w.ConnID == "" || w.Session == "" || w.HeartbeatInterval != 200 {
				t.Fatalf("welcome = %+v", w)
			}
			joined := bob.join("lobby")
			if got := joinStrings(joined.Members); got != "alice,bob" {
				t.Fatalf("bob's room_joined members = %q, want alice,bob", got)
			}
			bob.expectMatch(time.Second, "ack 1", func(f protocol.Frame) bool { return f.Type == protocol.TypeAck && f.Seq == 1 })
			p := alice.expect(protocol.TypePresence, 2*time.Second)
			if p.Event != protocol.PresenceJoin || p.UserID != "bob" {
				t.Fatalf("alice saw %+v, want bob's join", p)
			}

			// Fallback → WebSocket and back to the sender.
			bob.send(protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "lobby", Data: []byte(`{"n":1}`), Seq: bob.nextSeq()})
			for _, who := range []interface {
				expectMatch(time.Duration, string, func(protocol.Frame) bool) protocol.Frame
			}{alice, bob} {
				b := who.expectMatch(2*time.Second, "bob's broadcast", func(f protocol.Frame) bool { return f.Type == protocol.TypeBroadcast })
				if b.From != "bob" || string(b.Data) != `{"n":1}` || b.RoomSeq != 1 {
					t.Fatalf("broadcast = %+v", b)
				}
			}
			bob.expectMatch(time.Second, "ack 2", func(f protocol.Frame) bool { return f.Type == protocol.TypeAck && f.Seq == 2 })

			// WebSocket → fallback.
			alice.send(protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "lobby", Data: []byte(`"hi"`), Seq: alice.nextSeq()})
			b := bob.expectMatch(2*time.Second, "alice's broadcast", func(f protocol.Frame) bool {
				return f.Type == protocol.TypeBroadcast && f.From == "alice"
			})
			if b.RoomSeq != 2 || string(b.Data) != `"hi"` {
				t.Fatalf("broadcast = %+v", b)
			}
			alice.expectMatch(2*time.Second, "her own broadcast", func(f protocol.Frame) bool { return f.Type == protocol.TypeBroadcast && f.RoomSeq == 2 })

			// Application ping, and two frames in one body applied in seq order (4 before 3).
			bob.send(protocol.Frame{Type: protocol.TypePing, Timestamp: 42})
			if f := bob.expect(protocol.TypePong, time.Second); f.Timestamp != 42 {
				t.Fatalf("pong = %+v", f)
			}
			f4, _ := protocol.Encode(&protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "lobby", Data: []byte(`4`), Seq: 4})
			f3, _ := protocol.Encode(&protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "lobby", Data: []byte(`3`), Seq: 3})
			if st := bob.post(append(append(f4, '\n'), f3...)); st != http.StatusNoContent {
				t.Fatalf("POST two frames: %d", st)
			}
			var order []string
			for len(order) < 2 {
				f := alice.expect(protocol.TypeBroadcast, 2*time.Second)
				order = append(order, string(f.Data))
			}
			if !slices.Equal(order, []string{"3", "4"}) {
				t.Fatalf("alice received %v, want [3 4]", order)
			}

			for tr, want := range map[string]float64{"ws": 1, kind: 1} {
				if v := counterValue(t, ts.Server, metricTransportConnections, map[string]string{"transport": tr}); v != want {
					t.Fatalf("%s{transport=%s} = %v, want %v", metricTransportConnections, tr, v, want)
				}
			}

			// A second fallback user sees the WebSocket user's leave.
			carol, _ := openFallback(t, ts, kind, "carol", fbOpts{keepalive: true})
			carol.join("lobby")
			alice.ws.Close()
			leave := carol.expectMatch(2*time.Second, "alice's leave", func(f protocol.Frame) bool {
				return f.Type == protocol.TypePresence && f.Event == protocol.PresenceLeave && f.UserID == "alice"
			})
			if leave.Reason != protocol.ReasonClosed {
				t.Fatalf("leave reason = %q, want closed", leave.Reason)
			}

			// Clean close of a fallback connection (DELETE /send), announced to the others.
			resp, err := bob.hc.Do(bob.request(context.Background(), http.MethodDelete, protocol.PathSend, nil, false))
			if err != nil || resp.StatusCode != http.StatusNoContent {
				t.Fatalf("DELETE /send: %v %v", resp, err)
			}
			resp.Body.Close()
			leave = carol.expectMatch(2*time.Second, "bob's leave", func(f protocol.Frame) bool {
				return f.Type == protocol.TypePresence && f.Event == protocol.PresenceLeave && f.UserID == "bob"
			})
			if leave.Reason != protocol.ReasonClosed {
				t.Fatalf("bob's leave reason = %q, want closed", leave.Reason)
			}
			if kind == "poll" {
				// A holding poll is answered with the close; a poll after the cleanup finds no
				// connection (the client closed it itself, so either is fine).
				cl := bob.expectClose(2 * time.Second)
				bob.mu.Lock()
				status := bob.status
				bob.mu.Unlock()
				if cl.Code != protocol.CloseNormal && status != http.StatusNotFound {
					t.Fatalf("bob's close = %+v (status %d), want 1000 or 404", cl, status)
				}
			}
			waitFor(t, 2*time.Second, "one connection left", func() bool {
				st := ts.Stats()
				return st.ActiveConns == 1 && st.FallbackConns == 1 && st.Subscriptions == 1 && st.PresenceEntries == 1 && st.OrphanedSubscriptions == 0
			})
			// The cleanup forgets the connection (and counts it out of its transport) last.
			waitFor(t, 2*time.Second, metricTransportConnections+" = 1 (carol)", func() bool {
				return counterValue(t, ts.Server, metricTransportConnections, map[string]string{"transport": kind}) == 1
			})
			if st := bob.post(nil); st != http.StatusNotFound {
				t.Fatalf("POST /send after close: %d, want 404", st)
			}
		})
	}
}

// TestFallbackSilentClientTimedOut: an SSE client that stops sending, or a poll client that stops
// polling, is dropped within heartbeat-timeout + one interval and announced with reason timeout, as
// a silent WebSocket client is. An SSE client that sends keeps its connection.
func TestFallbackSilentClientTimedOut(t *testing.T) {
	for _, kind := range fallbackKinds {
		t.Run(kind, func(t *testing.T) {
			cfg := testConfig()
			ts := startServer(t, cfg)
			alice, _ := connect(t, ts, "alice", dialOpts{})
			alice.join("lobby")
			bob, _ := openFallback(t, ts, kind, "bob", fbOpts{keepalive: true})
			bob.join("lobby")
			alice.expect(protocol.TypePresence, 2*time.Second)

			// Alive for three timeouts while it polls or sends.
			time.Sleep(3 * cfg.HeartbeatTimeout) // the span being checked, not a synchronisation
			if st := ts.Stats(); st.FallbackConns != 1 {
				t.Fatalf("live %s client dropped: %+v", kind, st)
			}
			if kind == "sse" {
				bob.mu.Lock()
				pings := bob.pings
				bob.mu.Unlock()
				if pings < 3 {
					t.Fatalf("saw %d heartbeat comments in %s, want >= 3", pings, 3*cfg.HeartbeatTimeout)
				}
			}

			silent := time.Now()
			if kind == "sse" {
				bob.stopKeepalive() // the stream stays open: a sleeping laptop
			} else {
				bob.stop() // stops polling
			}
			leave := alice.expectMatch(5*time.Second, "bob's leave", func(f protocol.Frame) bool {
				return f.Type == protocol.TypePresence && f.Event == protocol.PresenceLeave && f.UserID == "bob"
			})
			took := time.Since(silent)
			if leave.Reason != protocol.ReasonTimeout {
				t.Fatalf("leave reason = %q, want timeout", leave.Reason)
			}
			t.Logf("silent %s client announced gone (timeout) %s after it went silent", kind, took)
			if bound := cfg.HeartbeatTimeout + cfg.HeartbeatInterval + 300*time.Millisecond; took > bound {
				t.Fatalf("silent %s client dropped after %s, want <= %s", kind, took, bound)
			}
			waitFor(t, 2*time.Second, "cleanup", func() bool {
				st := ts.Stats()
				return st.FallbackConns == 0 && st.ActiveConns == 1 && st.OrphanedSubscriptions == 0 && st.PresenceEntries == 1
			})
		})
	}
}

// TestSSEStreamClosedAnnounced: a client that closes its event stream is announced at once with
// reason closed.
func TestSSEStreamClosedAnnounced(t *testing.T) {
	ts := startServer(t, testConfig())
	alice, _ := connect(t, ts, "alice", dialOpts{})
	alice.join("lobby")
	bob, _ := openFallback(t, ts, "sse", "bob", fbOpts{keepalive: true})
	bob.join("lobby")
	alice.expect(protocol.TypePresence, 2*time.Second)
	start := time.Now()
	bob.stop()
	leave := alice.expectMatch(2*time.Second, "bob's leave", func(f protocol.Frame) bool {
		return f.Type == protocol.TypePresence && f.Event == protocol.PresenceLeave
	})
	t.Logf("closed stream announced after %s", time.Since(start))
	if leave.Reason != protocol.ReasonClosed || time.Since(start) > time.Second {
		t.Fatalf("leave %+v after %s, want closed within 1s", leave, time.Since(start))
	}
}

// TestFallbackAuth: the same tokens as the WebSocket, in the query or a bearer header; none, a bad
// one, another connection's id or a foreign token are refused.
func TestFallbackAuth(t *testing.T) {
	ts := startServer(t, testConfig())
	for _, kind := range fallbackKinds {
		t.Run(kind+"/bearer", func(t *testing.T) {
			c, w := openFallback(t, ts, kind, "dora", fbOpts{bearer: true, keepalive: true})
			if w.UserID != "dora" {
				t.Fatalf("welcome %+v", w)
			}
			c.stop()
		})
		t.Run(kind+"/no-token", func(t *testing.T) {
			resp, err := http.Get(ts.url("/"+kind, nil))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", resp.StatusCode)
			}
		})
		t.Run(kind+"/bad-token", func(t *testing.T) {
			c, _ := openFallbackToken(t, ts, kind, "not-a-jwt", fbOpts{noWelcome: true})
			e := c.expect(protocol.TypeError, 2*time.Second)
			if e.Code != protocol.ErrCodeUnauthorized {
				t.Fatalf("error %+v", e)
			}
			if cl := c.expectClose(3 * time.Second); cl.Code != protocol.CloseUnauthorized {
				t.Fatalf("close %+v, want 4001", cl)
			}
		})
	}
	t.Run("send", func(t *testing.T) {
		a, _ := openFallback(t, ts, "sse", "erin", fbOpts{keepalive: true})
		other := &fbClient{t: t, ts: ts, hc: a.hc, connID: a.id()}
		other.token = mintToken(t, "mallory") // a valid token, but not this connection's
		if st := other.post(nil); st != http.StatusUnauthorized {
			t.Fatalf("foreign token: %d, want 401", st)
		}
		other.connID = "nope"
		if st := other.post(nil); st != http.StatusNotFound {
			t.Fatalf("unknown conn: %d, want 404", st)
		}
		// An SSE connection id is not pollable.
		resp, err := http.Get(ts.url(protocol.PathPoll, map[string][]string{protocol.ConnQueryParam: {a.id()}, protocol.TokenQueryParam: {a.token}}))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("poll of an SSE conn: %d, want 400", resp.StatusCode)
		}
	})
}

// TestFallbackLimits: fallback connections count against the same per-user limit as WebSockets,
// and a frame above max-frame-bytes closes with 1009.
func TestFallbackLimits(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConnsPerClient = 2
	cfg.MaxConnsPerIP = -1
	ts := startServer(t, cfg)
	connect(t, ts, "frank", dialOpts{})
	openFallback(t, ts, "sse", "frank", fbOpts{keepalive: true})
	for _, kind := range fallbackKinds {
		c, _ := openFallback(t, ts, kind, "frank", fbOpts{noWelcome: true})
		if cl := c.expectClose(3 * time.Second); cl.Code != protocol.ClosePolicy || cl.Reason != protocol.ReasonConnLimit {
			t.Fatalf("%s: close %+v, want 1008 conn_limit", kind, cl)
		}
	}

	for _, kind := range fallbackKinds {
		g, _ := openFallback(t, ts, kind, "gina-"+kind, fbOpts{keepalive: true})
		big := `{"type":"ping","timestamp":1,"pad":"` + strings.Repeat("x", int(DefaultConfig().MaxFrameBytes)) + `"}`
		if st := g.post([]byte(big)); st != http.StatusRequestEntityTooLarge {
			t.Fatalf("%s: oversized frame: %d, want 413", kind, st)
		}
		if cl := g.expectClose(3 * time.Second); cl.Code != protocol.CloseTooLarge {
			t.Fatalf("%s: close %+v, want 1009", kind, cl)
		}
	}
}

// TestPollSlowConsumer: a poll client that does not poll while its room is busy overflows its send
// queue and is closed with 1008 slow_consumer, delivered by its next poll.
func TestPollSlowConsumer(t *testing.T) {
	cfg := testConfig()
	cfg.SendQueue = 32
	ts := startServer(t, cfg)
	alice, _ := connect(t, ts, "alice", dialOpts{})
	alice.join("busy")
	bob, _ := openFallback(t, ts, "poll", "bob", fbOpts{manual: true})
	bob.send(protocol.Frame{Type: protocol.TypeJoinRoom, RoomID: "busy", Seq: bob.nextSeq()})
	// Alice sends in steps of 4 and waits for her acks, so that only bob's queue fills.
	for i := 0; i < 2*cfg.SendQueue; i++ {
		seq := alice.nextSeq()
		alice.send(protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "busy", Data: []byte(itoa(i)), Seq: seq})
		if i%4 == 3 {
			alice.expectMatch(2*time.Second, "ack", func(f protocol.Frame) bool { return f.Type == protocol.TypeAck && f.Seq == seq })
		}
	}
	// Every broadcast was delivered to the room (alice has her acks): bob's queue overflowed.
	if bob.pollOnce() {
		t.Fatal("the poll after the overflow did not end the connection")
	}
	if cl := bob.closeSeen(); cl == nil || cl.Code != protocol.ClosePolicy || cl.Reason != protocol.ReasonSlowConsumer {
		t.Fatalf("close %+v, want 1008 slow_consumer", cl)
	}
	alice.expectMatch(2*time.Second, "bob's leave", func(f protocol.Frame) bool {
		return f.Type == protocol.TypePresence && f.Event == protocol.PresenceLeave && f.Reason == protocol.ReasonKicked
	})
	waitFor(t, 2*time.Second, "empty queues after the slow consumer left", func() bool {
		st := ts.Stats()
		return st.QueueDepth == 0 && st.FallbackConns == 0 && st.OrphanedSubscriptions == 0
	})
}

// TestShutdownClosesFallbacks: Shutdown closes SSE and long-poll clients with 1001 like WebSocket
// clients, promptly, and cleans them up.
func TestShutdownClosesFallbacks(t *testing.T) {
	ts := startServer(t, testConfig())
	var clients []*fbClient
	for _, kind := range fallbackKinds {
		c, _ := openFallback(t, ts, kind, "hal-"+kind, fbOpts{keepalive: true})
		c.join("lobby")
		clients = append(clients, c)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Shutdown took %s", took)
	}
	for _, c := range clients {
		if cl := c.expectClose(2 * time.Second); cl.Code != protocol.CloseDraining {
			t.Fatalf("%s: close %+v, want 1001", c.kind, cl)
		}
	}
	if st := ts.Stats(); st.ActiveConns != 0 || st.FallbackConns != 0 || st.Subscriptions != 0 {
		t.Fatalf("after Shutdown: %+v", st)
	}
}

// TestFallbackDrainHint: a drain closes SSE and long-poll clients with 1001 and a retry hint within
// the drain spread, as it closes WebSocket clients; new fallback connections get 503.
func TestFallbackDrainHint(t *testing.T) {
	cfg := testConfig()
	cfg.DrainSpread = 3 * time.Second
	// The drain lasts while a WebSocket has not answered its close frame (up to close-grace): the
	// requests below are made while holdout keeps it going, and end it by closing.
	cfg.CloseGrace = 10 * time.Second
	ts := startServer(t, cfg)
	holdout, _ := connect(t, ts, "holdout", dialOpts{noReader: true})
	var clients []*fbClient
	for _, kind := range fallbackKinds {
		c, _ := openFallback(t, ts, kind, "ivy-"+kind, fbOpts{keepalive: true})
		clients = append(clients, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ts.Shutdown(ctx) }()
	for _, c := range clients {
		cl := c.expectClose(3 * time.Second)
		retry, ok := protocol.ParseRetryAfter(cl.Reason)
		if cl.Code != protocol.CloseDraining || !ok || retry <= 0 || retry > cfg.DrainSpread {
			t.Fatalf("%s: close %+v, want 1001 with a hint in (0, %s]", c.kind, cl, cfg.DrainSpread)
		}
	}
	for _, kind := range fallbackKinds {
		resp, err := http.Get(ts.url("/"+kind, map[string][]string{protocol.TokenQueryParam: {mintToken(t, "late")}}))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("%s while draining: %d (Retry-After %q), want 503 with Retry-After", kind, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	select {
	case err := <-done:
		t.Fatalf("the drain ended (%v) while a connection had not answered its close frame", err)
	default:
	}
	_ = holdout.ws.Close()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestFallbackResumesWebSocketSession: a browser whose WebSocket drops and that comes back over a
// fallback tier (a proxy now blocks upgrades) resumes its session there: the missed broadcasts are
// replayed in order, once.
func TestFallbackResumesWebSocketSession(t *testing.T) {
	for _, kind := range fallbackKinds {
		t.Run(kind, func(t *testing.T) {
			ts := startServer(t, testConfig())
			alice, w := connect(t, ts, "alice", dialOpts{})
			alice.join("r")
			bob, _ := connect(t, ts, "bob", dialOpts{})
			bob.join("r")
			broadcastN(t, bob, "r", 2)
			waitRoomSeq(t, alice, "r", 2)
			dropAndWait(t, ts, alice, 1)
			bob.expectMatch(2*time.Second, "alice's leave", isLeaveOf("alice"))
			broadcastN(t, bob, "r", 5) // 3..7 while alice is away

			fb, _ := openFallback(t, ts, kind, "alice", fbOpts{keepalive: true})
			fb.send(protocol.Frame{Type: protocol.TypeResume, Session: w.Session, Rooms: map[string]uint64{"r": 2}})
			want := uint64(3)
			for {
				f := fb.expectMatch(2*time.Second, "replay or resumed", func(f protocol.Frame) bool {
					return f.Type == protocol.TypeBroadcast || f.Type == protocol.TypeResumed || f.Type == protocol.TypeResumeFailed
				})
				if f.Type == protocol.TypeResumed {
					if f.Rooms["r"] != 5 || want != 8 {
						t.Fatalf("resumed %+v after roomSeq %d", f, want-1)
					}
					break
				}
				if f.Type != protocol.TypeBroadcast || f.RoomSeq != want {
					t.Fatalf("got %+v, want broadcast roomSeq %d", f, want)
				}
				want++
			}
			bob.expectMatch(2*time.Second, "alice's join", func(f protocol.Frame) bool {
				return f.Type == protocol.TypePresence && f.UserID == "alice" && f.Event == protocol.PresenceJoin
			})
			broadcastN(t, bob, "r", 1)
			if f := fb.expect(protocol.TypeBroadcast, 2*time.Second); f.RoomSeq != 8 {
				t.Fatalf("live broadcast roomSeq %d, want 8", f.RoomSeq)
			}
		})
	}
}

// TestFallbackBadInput: frames posted to /send get the same answers as on the WebSocket, and the
// connection carries on.
func TestFallbackBadInput(t *testing.T) {
	ts := startServer(t, testConfig())
	for _, kind := range fallbackKinds {
		c, _ := openFallback(t, ts, kind, "jay-"+kind, fbOpts{keepalive: true})
		for _, tc := range []struct {
			name, body, code string
		}{
			{"malformed", `{"type":`, protocol.ErrCodeMalformed},
			{"not an object", `[1,2]`, protocol.ErrCodeMalformed},
			{"unknown type", `{"type":"welcome"}`, protocol.ErrCodeUnknownType},
			{"missing field", `{"type":"join_room","seq":1}`, protocol.ErrCodeMissingField},
			{"invalid utf-8", "{\"type\":\"ping\",\"x\":\"\xff\"}", protocol.ErrCodeInvalidUTF8},
			{"second hello", `{"type":"hello","token":"x"}`, protocol.ErrCodeAlreadyHello},
			{"not a member", `{"type":"broadcast","roomId":"nope","data":1,"seq":1}`, protocol.ErrCodeNotMember},
		} {
			if st := c.post([]byte(tc.body)); st != http.StatusNoContent {
				t.Fatalf("%s/%s: status %d", kind, tc.name, st)
			}
			if e := c.expect(protocol.TypeError, 2*time.Second); e.Code != tc.code {
				t.Fatalf("%s/%s: error %+v, want %s", kind, tc.name, e, tc.code)
			}
		}
		c.send(protocol.Frame{Type: protocol.TypePing, Timestamp: 7})
		if f := c.expect(protocol.TypePong, 2*time.Second); f.Timestamp != 7 {
			t.Fatalf("%s: pong %+v", kind, f)
		}
	}
}

func TestConfigValidatePollHold(t *testing.T) {
	tests := []struct {
		name    string
		hold    time.Duration
		wantErr string
	}{
		{"default", 0, ""},
		{"short", 50 * time.Millisecond, ""},
		{"negative", -time.Second, "poll-hold: must not be negative"},
		{"too long", 11 * time.Minute, "poll-hold: must be at most 10m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Config{Dev: true, PollHold: tt.hold}.Validate()
			if (err == nil) != (tt.wantErr == "") || err != nil && !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if d := DefaultConfig(); d.PollHold != 15*time.Second {
		t.Fatalf("default poll-hold %s, want 15s", d.PollHold)
	}
}

// TestPollHoldBounded: with nothing to deliver and no heartbeat due, a poll answers empty after
// --poll-hold, and the connection stays open.
func TestPollHoldBounded(t *testing.T) {
	cfg := testConfig()
	cfg.HeartbeatInterval = 5 * time.Second // no heartbeat ends the hold
	cfg.HeartbeatTimeout = 10 * time.Second
	cfg.PollHold = 800 * time.Millisecond
	ts := startServer(t, cfg)
	c, _ := openFallback(t, ts, "poll", "kim", fbOpts{manual: true})
	for range 2 {
		start := time.Now()
		if !c.pollOnce() {
			t.Fatalf("poll ended the connection: %v", c.readErr())
		}
		if took := time.Since(start); took < cfg.PollHold-50*time.Millisecond || took > cfg.PollHold+time.Second {
			t.Fatalf("empty poll answered after %s, want about %s", took, cfg.PollHold)
		}
	}
	// A frame queued during the hold is answered at once.
	done := make(chan bool, 1)
	start := time.Now()
	go func() { done <- c.pollOnce() }()
	time.Sleep(50 * time.Millisecond) // let the poll start holding (either order must work)
	c.send(protocol.Frame{Type: protocol.TypePing, Timestamp: 9})
	if !<-done {
		t.Fatal("poll failed")
	}
	if took := time.Since(start); took >= cfg.PollHold {
		t.Fatalf("a queued frame waited %s, want less than the hold %s", took, cfg.PollHold)
	}
	if f := c.expect(protocol.TypePong, time.Second); f.Timestamp != 9 {
		t.Fatalf("pong %+v", f)
	}
}

// TestFallbackClientsEndingEveryWay: 80 SSE and long-poll clients share a room with a WebSocket
// client, receive its broadcasts in order, then end every way a fallback connection can end; each
// end is announced with its reason and the node is left with nothing but the WebSocket client.
func TestFallbackClientsEndingEveryWay(t *testing.T) {
	cfg := testConfig()
	cfg.HeartbeatInterval = time.Second
	cfg.HeartbeatTimeout = 3 * time.Second
	cfg.MaxConnsPerIP = -1
	ts := startServer(t, cfg)
	alice, _ := connect(t, ts, "alice", dialOpts{})
	alice.join("room")

	const n = 80
	var clients []*fbClient
	for i := range n {
		c, _ := openFallback(t, ts, fallbackKinds[i%2], "fb-"+itoa(i), fbOpts{keepalive: true})
		c.join("room")
		clients = append(clients, c)
	}
	for i := range 5 {
		alice.send(protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "room", Data: []byte(itoa(i)), Seq: alice.nextSeq()})
	}
	for _, c := range clients {
		for want := uint64(1); want <= 5; want++ {
			f := c.expect(protocol.TypeBroadcast, 3*time.Second)
			if f.RoomSeq != want || f.From != "alice" {
				t.Fatalf("%s client got %+v, want roomSeq %d from alice", c.kind, f, want)
			}
		}
	}

	// Endings, by i%8 (even i: SSE, odd i: long polling).
	want := map[string]string{} // user → leave reason
	timeouts := 0
	big := []byte(`{"type":"ping","pad":"` + strings.Repeat("x", int(DefaultConfig().MaxFrameBytes)) + `"}`)
	for i, c := range clients {
		user := "fb-" + itoa(i)
		if i%8 != 4 && i%8 != 5 { // the oversized frame needs the connection alive
			c.stopKeepalive()
		}
		switch i % 8 {
		case 0, 1: // DELETE /send
			resp, err := c.hc.Do(c.request(context.Background(), http.MethodDelete, protocol.PathSend, nil, false))
			if err != nil || resp.StatusCode != http.StatusNoContent {
				t.Fatalf("DELETE: %v %v", resp, err)
			}
			resp.Body.Close()
			want[user] = protocol.ReasonClosed
		case 2: // SSE: the client closes its stream
			c.stop()
			want[user] = protocol.ReasonClosed
		case 3: // poll: the client stops polling
			c.stop()
			want[user] = protocol.ReasonTimeout
			timeouts++
		case 4, 5: // a frame above max-frame-bytes: 1009
			if st := c.post(big); st != http.StatusRequestEntityTooLarge {
				t.Fatalf("oversized: %d", st)
			}
			c.stopKeepalive()
			want[user] = protocol.ReasonError
		case 6: // SSE: the stream stays open but the client goes silent
			want[user] = protocol.ReasonTimeout
			timeouts++
		case 7: // leave_room, then the client stops polling
			c.send(protocol.Frame{Type: protocol.TypeLeaveRoom, RoomID: "room", Seq: c.nextSeq()})
			c.expect(protocol.TypeRoomLeft, 2*time.Second)
			c.stop()
			want[user] = protocol.ReasonLeft
			timeouts++ // announced as left, then timed out
		}
	}
	got := map[string]string{}
	deadline := time.After(cfg.HeartbeatTimeout + cfg.HeartbeatInterval + 3*time.Second)
	for len(got) < n {
		select {
		case f, ok := <-alice.frames:
			if !ok {
				t.Fatalf("alice's connection ended: %v", alice.readErr())
			}
			if f.Type == protocol.TypePresence && f.Event == protocol.PresenceLeave {
				got[f.UserID] = f.Reason
			}
		case <-deadline:
			t.Fatalf("%d of %d leaves seen", len(got), n)
		}
	}
	for u, r := range want {
		if got[u] != r {
			i, _ := strconv.Atoi(strings.TrimPrefix(u, "fb-"))
			t.Errorf("%s (%s, ending %d): leave reason %q, want %q", u, clients[i].kind, i%8, got[u], r)
		}
	}
	for end := time.Now().Add(3 * time.Second); ; {
		st := ts.Stats()
		if st.ActiveConns == 1 && st.FallbackConns == 0 && st.Subscriptions == 1 &&
			st.PresenceEntries == 1 && st.OrphanedSubscriptions == 0 && st.QueueDepth == 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("stats %+v, want only alice's connection and membership", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, tr := range fallbackKinds {
		if v := counterValue(t, ts.Server, metricTransportConnections, map[string]string{"transport": tr}); v != 0 {
			t.Fatalf("%s{transport=%s} = %v, want 0", metricTransportConnections, tr, v)
		}
	}
	if v := counterValue(t, ts.Server, protocol.MetricHeartbeatTimeouts, nil); v != float64(timeouts) {
		t.Fatalf("%s = %v, want %d", protocol.MetricHeartbeatTimeouts, v, timeouts)
	}
}

// TestSSESlowConsumerClosedPromptly: an SSE client that stops reading its stream in a busy room is
// closed as a slow consumer (1008, announced as kicked) within about close-grace, although its
// writer is stalled on a full socket.
func TestSSESlowConsumerClosedPromptly(t *testing.T) {
	cfg := testConfig()
	cfg.SendQueue = 16
	cfg.HeartbeatInterval = 5 * time.Second
	cfg.HeartbeatTimeout = 15 * time.Second
	ts := startServer(t, cfg)
	alice, _ := connect(t, ts, "alice", dialOpts{})
	alice.join("busy")
	// A client that keeps its stream open without reading it: a raw GET, read up to its welcome.
	resp, err := http.Get(ts.url(protocol.PathSSE, map[string][]string{protocol.TokenQueryParam: {mintToken(t, "carol")}}))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	var id string
	for id == "" {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream before welcome: %v", err)
		}
		if i := strings.Index(line, `"connId":"`); i >= 0 {
			id = line[i+10:]
			id = id[:strings.IndexByte(id, '"')]
		}
	}
	carol := &fbClient{t: t, ts: ts, hc: &http.Client{}, connID: id, token: mintToken(t, "carol")}
	carol.send(protocol.Frame{Type: protocol.TypeJoinRoom, RoomID: "busy", Seq: 1})
	alice.expectMatch(2*time.Second, "carol's join", func(f protocol.Frame) bool {
		return f.Type == protocol.TypePresence && f.UserID == "carol" && f.Event == protocol.PresenceJoin
	})
	payload := []byte(`"` + strings.Repeat("x", 32<<10) + `"`)
	isLeave := func(f protocol.Frame) bool {
		return f.Type == protocol.TypePresence && f.UserID == "carol" && f.Event == protocol.PresenceLeave
	}
	start := time.Now()
	var leave protocol.Frame
	for leave.Type == "" {
		if time.Since(start) > 10*time.Second {
			t.Fatal("carol was never closed as a slow consumer")
		}
		seq := alice.nextSeq()
		alice.send(protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "busy", Data: payload, Seq: seq})
		f := alice.expectMatch(2*time.Second, "ack or carol's leave", func(f protocol.Frame) bool {
			return f.Type == protocol.TypeAck && f.Seq == seq || isLeave(f)
		})
		if isLeave(f) {
			leave = f
		}
	}
	took := time.Since(start)
	t.Logf("slow SSE consumer announced gone %s after the flood began", took)
	if took > 5*time.Second {
		t.Fatalf("slow SSE consumer closed after %s, want within a few seconds", took)
	}
	if leave.Reason != protocol.ReasonKicked {
		t.Fatalf("carol's leave reason %q, want kicked", leave.Reason)
	}
	if v := counterValue(t, ts.Server, protocol.MetricDisconnectsTotal, map[string]string{"code": "1008"}); v != 1 {
		t.Fatalf("%s{code=1008} = %v, want 1", protocol.MetricDisconnectsTotal, v)
	}
}
