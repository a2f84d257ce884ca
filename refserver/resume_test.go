package refserver

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/squall-dev/squall/refserver/protocol"
)

// broadcastN sends n broadcasts to room from c, one at a time (each waits for its ack, so that the
// sender's own small send queue never overflows on a loaded machine).
func broadcastN(t *testing.T, c *client, room string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		seq := c.nextSeq()
		c.send(protocol.Frame{Type: protocol.TypeBroadcast, RoomID: room, Seq: seq, Data: json.RawMessage(itoa(int(seq)))})
		c.expectMatch(5*time.Second, fmt.Sprint("ack ", seq), func(f protocol.Frame) bool { return f.Type == protocol.TypeAck && f.Seq == seq })
	}
}

// waitRoomSeq reads c's frames until the broadcast with roomSeq want of room arrives.
func waitRoomSeq(t *testing.T, c *client, room string, want uint64) {
	t.Helper()
	c.expectMatch(5*time.Second, fmt.Sprint("roomSeq ", want), func(f protocol.Frame) bool {
		return f.Type == protocol.TypeBroadcast && f.RoomID == room && f.RoomSeq == want
	})
}

// dropAndWait closes c's TCP connection without a close frame and waits until the server cleaned
// it up and kept its session.
func dropAndWait(t *testing.T, ts *testServer, c *client, detached int) {
	t.Helper()
	_ = c.ws.NetConn().Close()
	waitFor(t, 2*time.Second, "session detached", func() bool { return ts.Stats().DetachedSessions == detached })
}

// collectUntil returns the frames of c up to and including the first that matches stop.
func collectUntil(t *testing.T, c *client, what string, stop func(protocol.Frame) bool) []protocol.Frame {
	t.Helper()
	var out []protocol.Frame
	for {
		f, ok := c.next(5 * time.Second)
		if !ok {
			t.Fatalf("no %s: connection ended or timed out after %d frames: %v", what, len(out), c.readErr())
		}
		out = append(out, f)
		if stop(f) {
			return out
		}
	}
}

// isResumeAnswer matches resumed and resume_failed.
func isResumeAnswer(f protocol.Frame) bool {
	return f.Type == protocol.TypeResumed || f.Type == protocol.TypeResumeFailed
}

// Acceptance: a client that drops and resumes within the window receives every broadcast it
// missed, in order, with no duplicates, and then the live ones; the replay may be larger than the
// send queue.
func TestResumeWithinWindow(t *testing.T) {
	cfg := testConfig()
	cfg.SendQueue = 16 // the replay (40) is larger: it must not count as a slow consumer
	ts := startServer(t, cfg)
	alice, w := connect(t, ts, "alice", dialOpts{})
	alice.join("r")
	alice.join("quiet")
	bob, _ := connect(t, ts, "bob", dialOpts{})
	bob.join("r")
	broadcastN(t, bob, "r", 3)
	waitRoomSeq(t, alice, "r", 3)

	dropAndWait(t, ts, alice, 1)
	bob.expectMatch(2*time.Second, "alice's leave", isLeaveOf("alice"))
	broadcastN(t, bob, "r", 40) // roomSeq 4..43 while alice is away

	again, w2 := connect(t, ts, "alice", dialOpts{})
	if w2.Session == w.Session {
		t.Fatalf("a new connection got the old session %s", w.Session)
	}
	again.send(protocol.Frame{Type: protocol.TypeResume, Session: w.Session, Rooms: map[string]uint64{"r": 3, "quiet": 0}})
	frames := collectUntil(t, again, "resumed", isResumeAnswer)
	want := uint64(4)
	for _, f := range frames[:len(frames)-1] {
		if f.Type != protocol.TypeBroadcast {
			t.Fatalf("unexpected %s frame during the replay: %+v", f.Type, f)
		}
		if f.RoomSeq != want || f.RoomID != "r" {
			t.Fatalf("replayed roomSeq %d of %s, want %d of r", f.RoomSeq, f.RoomID, want)
		}
		want++
	}
	res := frames[len(frames)-1]
	if res.Type != protocol.TypeResumed || res.Rooms["r"] != 40 || res.Rooms["quiet"] != 0 || len(res.Rooms) != 2 {
		t.Fatalf("got %+v after %d replayed, want resumed {r:40 quiet:0}", res, want-4)
	}
	p := bob.expectMatch(2*time.Second, "alice's join", func(f protocol.Frame) bool {
		return f.Type == protocol.TypePresence && f.UserID == "alice"
	})
	if p.Event != protocol.PresenceJoin {
		t.Fatalf("bob saw %+v, want alice's join", p)
	}
	// Live broadcasts follow the replay, without duplicates.
	broadcastN(t, bob, "r", 2)
	for _, seq := range []uint64{44, 45} {
		f := again.expect(protocol.TypeBroadcast, 2*time.Second)
		if f.RoomSeq != seq {
			t.Fatalf("live roomSeq %d, want %d", f.RoomSeq, seq)
		}
	}
	// The resumed connection is a member: its own broadcasts are acked and delivered.
	again.send(protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "r", Seq: again.nextSeq(), Data: json.RawMessage(`"back"`)})
	waitRoomSeq(t, bob, "r", 46)
	if v := counterValue(t, ts.Server, protocol.MetricResumesTotal, map[string]string{"result": "ok"}); v != 1 {
		t.Fatalf("%s{result=ok} = %v, want 1", protocol.MetricResumesTotal, v)
	}
	// The old session was consumed: resuming it again fails, once.
	again.send(protocol.Frame{Type: protocol.TypeResume, Session: w.Session, Rooms: map[string]uint64{"r": 46}})
	if f := again.expect(protocol.TypeResumeFailed, 2*time.Second); f.Reason != protocol.ResumeSessionUnknown {
		t.Fatalf("second resume: %+v", f)
	}
	// The new session carries the resumed rooms: drop again and resume it.
	dropAndWait(t, ts, again, 1)
	broadcastN(t, bob, "r", 1) // 47
	third, _ := connect(t, ts, "alice", dialOpts{})
	third.send(protocol.Frame{Type: protocol.TypeResume, Session: w2.Session, Rooms: map[string]uint64{"r": 46}})
	waitRoomSeq(t, third, "r", 47)
	if f := third.expect(protocol.TypeResumed, 2*time.Second); f.Rooms["r"] != 1 {
		t.Fatalf("third resume: %+v", f)
	}
}

// Acceptance: outside the window (session expired, or history trimmed past the client's last
// roomSeq) the client gets resume_failed with the reason and every room, and re-joins.
func TestResumeOutsideWindow(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(*Config)
		missed int
		wait   func(t *testing.T, ts *testServer)
		reason string
	}{
		{"session expired", func(c *Config) { c.SessionTTL = 300 * time.Millisecond }, 2,
			func(t *testing.T, ts *testServer) {
				waitFor(t, 3*time.Second, "session forgotten", func() bool { return ts.Stats().DetachedSessions == 0 })
			}, protocol.ResumeSessionUnknown},
		{"history trimmed by count", func(c *Config) { c.HistorySize = 5 }, 20, nil, protocol.ResumeHistoryGap},
		{"history trimmed by age", func(c *Config) { c.HistoryTTL = 200 * time.Millisecond }, 3,
			func(*testing.T, *testServer) { time.Sleep(400 * time.Millisecond) }, // let the history age out
			protocol.ResumeHistoryGap},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			tt.setup(&cfg)
			ts := startServer(t, cfg)
			alice, w := connect(t, ts, "alice", dialOpts{})
			alice.join("r")
			bob, _ := connect(t, ts, "bob", dialOpts{})
			bob.join("r")
			broadcastN(t, bob, "r", 1)
			waitRoomSeq(t, alice, "r", 1)
			dropAndWait(t, ts, alice, 1)
			broadcastN(t, bob, "r", tt.missed)
			if tt.wait != nil {
				tt.wait(t, ts)
			}
			again, _ := connect(t, ts, "alice", dialOpts{})
			again.send(protocol.Frame{Type: protocol.TypeResume, Session: w.Session, Rooms: map[string]uint64{"r": 1}})
			f := again.expect(protocol.TypeResumeFailed, 2*time.Second)
			if f.Reason != tt.reason || len(f.Rooms) != 1 || f.Rooms["r"] != 0 {
				t.Fatalf("resume_failed = %+v, want reason %s and rooms {r:0}", f, tt.reason)
			}
			if ts.Stats().Subscriptions != 1 {
				t.Fatalf("a failed resume joined something: %+v", ts.Stats())
			}
			// The client re-joins fresh and gets the live stream from headSeq on.
			j := again.join("r")
			if j.HeadSeq != uint64(1+tt.missed) || joinStrings(j.Members) != "alice,bob" {
				t.Fatalf("room_joined after the failed resume: %+v", j)
			}
			broadcastN(t, bob, "r", 1)
			waitRoomSeq(t, again, "r", uint64(2+tt.missed))
			if v := counterValue(t, ts.Server, protocol.MetricResumesTotal, map[string]string{"result": tt.reason}); v != 1 {
				t.Fatalf("%s{result=%s} = %v, want 1", protocol.MetricResumesTotal, tt.reason, v)
			}
		})
	}
}

// A resume that cannot be honoured fails whole, whatever the reason.
func TestResumeRefusals(t *testing.T) {
	ts := startServer(t, testConfig())
	alice, w := connect(t, ts, "alice", dialOpts{})
	alice.join("r")
	dropAndWait(t, ts, alice, 1)

	mallory, _ := connect(t, ts, "mallory", dialOpts{})
	again, _ := connect(t, ts, "alice", dialOpts{})
	again.join("mine")
	tests := []struct {
		name   string
		c      *client
		rooms  map[string]uint64
		reason string
	}{
		{"another user's session", mallory, map[string]uint64{"r": 0}, protocol.ResumeSessionUnknown},
		{"unknown session", again, map[string]uint64{"r": 0}, protocol.ResumeSessionUnknown},
		{"room the session never joined", again, map[string]uint64{"r": 0, "other": 0}, protocol.ResumeNotMember},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sess := w.Session
			if tt.name == "unknown session" {
				sess = "0123456789abcdef"
			}
			tt.c.send(protocol.Frame{Type: protocol.TypeResume, Session: sess, Rooms: tt.rooms})
			f := tt.c.expect(protocol.TypeResumeFailed, 2*time.Second)
			if f.Reason != tt.reason || len(f.Rooms) != len(tt.rooms) {
				t.Fatalf("resume_failed = %+v, want reason %s", f, tt.reason)
			}
		})
	}
	// The refusal by mallory did not consume alice's session; the not_member one did.
	if st := ts.Stats(); st.DetachedSessions != 0 {
		t.Fatalf("stats %+v: the refused resume should have consumed the session", st)
	}
}

// hello with a session continues it: welcome names it, and resume with it replays; an unknown
// session is closed with 4002; a connection still holding the session is closed with 4002
// session_taken.
func TestHelloWithSession(t *testing.T) {
	ts := startServer(t, testConfig())
	alice, w := connect(t, ts, "alice", dialOpts{})
	alice.join("r")
	bob, _ := connect(t, ts, "bob", dialOpts{})
	bob.join("r")
	dropAndWait(t, ts, alice, 1)
	broadcastN(t, bob, "r", 3)

	hello := func(user, session string) *client {
		c := dialClient(t, ts, "", dialOpts{})
		c.send(protocol.Frame{Type: protocol.TypeHello, Token: mintToken(t, user), Session: session})
		return c
	}
	back := hello("alice", w.Session)
	if f := back.expect(protocol.TypeWelcome, 2*time.Second); f.Session != w.Session {
		t.Fatalf("welcome session %s, want the continued %s", f.Session, w.Session)
	}
	if st := ts.Stats(); st.DetachedSessions != 0 || st.Sessions != 2 {
		t.Fatalf("stats %+v: the session should be held again", st)
	}
	back.send(protocol.Frame{Type: protocol.TypeResume, Session: w.Session, Rooms: map[string]uint64{"r": 0}})
	for seq := uint64(1); seq <= 3; seq++ {
		waitRoomSeq(t, back, "r", seq)
	}
	if f := back.expect(protocol.TypeResumed, 2*time.Second); f.Rooms["r"] != 3 {
		t.Fatalf("resumed %+v", f)
	}

	// A second connection continuing the same session takes it over: the first is closed.
	dup := hello("alice", w.Session)
	dup.expect(protocol.TypeWelcome, 2*time.Second)
	if code, reason := back.expectClose(3 * time.Second); code != int(protocol.CloseSessionUnknown) || reason != protocol.ReasonSessionTaken {
		t.Fatalf("the displaced connection closed with %d %q", code, reason)
	}

	for _, tc := range []struct{ name, user, session string }{
		{"unknown session", "alice", "0123456789abcdef"},
		{"another user's session", "mallory", w.Session},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := hello(tc.user, tc.session)
			if f := c.expect(protocol.TypeError, 2*time.Second); f.Code != protocol.ErrCodeSessionInvalid {
				t.Fatalf("error %+v", f)
			}
			if code, _ := c.expectClose(3 * time.Second); code != int(protocol.CloseSessionUnknown) {
				t.Fatalf("closed with %d, want 4002", code)
			}
		})
	}
	waitFor(t, 2*time.Second, "limits released", func() bool { return ts.Stats().ActiveConns == 2 })
}

// Detached sessions are capped at max-conns: a churn of connections forgets the oldest early.
func TestDetachedSessionsCapped(t *testing.T) {
	var wg sync.WaitGroup
	quit := make(chan struct{})
	ss := newSessions(time.Hour, 3, &wg, quit)
	defer func() { close(quit); wg.Wait() }()
	now := time.Now()
	var all []*session
	for i := 0; i < 5; i++ {
		c := &conn{}
		s := ss.create(fmt.Sprint("u", i), c, now)
		ss.detach(s, c, now)
		all = append(all, s)
	}
	if held, detached := ss.counts(); held != 0 || detached != 3 {
		t.Fatalf("held %d, detached %d; want 0 and 3", held, detached)
	}
	for i, s := range all {
		got := ss.lookup(s.id, s.user, now) != nil
		if want := i >= 2; got != want {
			t.Errorf("session %d kept = %v, want %v (the oldest go first)", i, got, want)
		}
	}
}
