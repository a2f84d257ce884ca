package refserver

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/squall-dev/squall/refserver/protocol"
)

// roomSeqs collects the roomSeq of the broadcasts of room a fallback client receives until it has
// seen want (or the timeout passes), and the other frame types in order.
func roomSeqs(c *fbClient, room string, want uint64, timeout time.Duration) (seqs []uint64, types []protocol.Type) {
	deadline := time.After(timeout)
	for len(seqs) == 0 || seqs[len(seqs)-1] < want {
		select {
		case f, ok := <-c.frames:
			if !ok {
				return seqs, types
			}
			types = append(types, f.Type)
			if f.Type == protocol.TypeBroadcast && f.RoomID == room {
				seqs = append(seqs, f.RoomSeq)
			}
		case <-deadline:
			return seqs, types
		}
	}
	return seqs, types
}

// TestSSEResumeLastEventID: an SSE stream cut by a proxy resumes with Last-Event-ID: the same
// session, the events written after that id replayed from the stream log, the broadcasts sent while
// it was away replayed from the room's history, then live delivery — each broadcast once, in order.
func TestSSEResumeLastEventID(t *testing.T) {
	ts := startServer(t, testConfig())
	bob, _ := connect(t, ts, "bob", dialOpts{})
	bob.join("lobby")
	alice, welcome := openFallback(t, ts, "sse", "alice", fbOpts{keepalive: true})
	alice.join("lobby")

	broadcastN(t, bob, "lobby", 5)
	if seqs, _ := roomSeqs(alice, "lobby", 5, 3*time.Second); len(seqs) != 5 {
		t.Fatalf("before the cut alice got roomSeqs %v, want 1..5", seqs)
	}
	alice.mu.Lock()
	lastSeen := alice.ids[3] // the cut lost the events of roomSeq 4 and 5
	alice.mu.Unlock()
	if !strings.HasPrefix(lastSeen, welcome.Session+":") {
		t.Fatalf("event id %q does not name the session %q", lastSeen, welcome.Session)
	}

	// The proxy cuts the stream; bob goes on broadcasting meanwhile.
	alice.stopKeepalive()
	alice.stop()
	<-alice.done
	waitFor(t, 3*time.Second, "alice's stream gone", func() bool { return ts.Stats().FallbackConns == 0 })
	broadcastN(t, bob, "lobby", 3)

	again, w2 := openFallbackToken(t, ts, "sse", alice.token, fbOpts{keepalive: true, lastEvent: lastSeen})
	if w2.Session != welcome.Session {
		t.Fatalf("resumed stream has session %q, want %q", w2.Session, welcome.Session)
	}
	seqs, types := roomSeqs(again, "lobby", 8, 3*time.Second)
	if want := []uint64{4, 5, 6, 7, 8}; !equalSeqs(seqs, want) {
		t.Fatalf("after the resume alice got roomSeqs %v (frames %v), want %v", seqs, types, want)
	}
	again.expect(protocol.TypeResumed, 2*time.Second)
	broadcastN(t, bob, "lobby", 1)
	if seqs, _ := roomSeqs(again, "lobby", 9, 3*time.Second); !equalSeqs(seqs, []uint64{9}) {
		t.Fatalf("live after the resume: roomSeqs %v, want [9]", seqs)
	}
	if st := ts.Stats(); st.OrphanedSubscriptions != 0 || st.Subscriptions != 2 {
		t.Errorf("stats after the resume: %+v", st)
	}
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSSEResumeUnknownStartsFresh: a Last-Event-ID naming an unknown session (expired, another
// node's, forged) opens a new session instead of closing, which would make EventSource retry the
// same id forever.
func TestSSEResumeUnknownStartsFresh(t *testing.T) {
	ts := startServer(t, testConfig())
	for _, id := range []string{"deadbeef:7", "garbage", "a:0", strings.Repeat("x", 300) + ":1"} {
		c, w := openFallback(t, ts, "sse", "carol", fbOpts{lastEvent: id})
		if w.Type != protocol.TypeWelcome || w.Session == "" || strings.HasPrefix(id, w.Session) {
			t.Errorf("Last-Event-ID %q: welcome %+v", id, w)
		}
		c.stop()
		<-c.done
	}
}

func TestParseLastEventID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		sess string
		n    uint64
		ok   bool
	}{
		{"abc123:7", "abc123", 7, true},
		{sseEventID("f00d", 42), "f00d", 42, true},
		{"abc:0", "", 0, false},
		{":5", "", 0, false},
		{"abc", "", 0, false},
		{"a b:1", "", 0, false},
		{"abc:-1", "", 0, false},
		{"abc:18446744073709551616", "", 0, false},
	} {
		sess, n, ok := parseLastEventID(tc.in)
		if sess != tc.sess || n != tc.n || ok != tc.ok {
			t.Errorf("parseLastEventID(%q) = %q, %d, %v; want %q, %d, %v", tc.in, sess, n, ok, tc.sess, tc.n, tc.ok)
		}
	}
}

// FuzzParseLastEventID checks the Last-Event-ID parser: what it accepts reads back from the id
// sseEventID writes.
func FuzzParseLastEventID(f *testing.F) {
	for _, s := range []string{"abc:1", "a:b:2", ":", "x:0", "\xff:1", "s:99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sess, n, ok := parseLastEventID(s)
		if !ok {
			return
		}
		if sess == "" || n == 0 {
			t.Fatalf("%q accepted as %q, %d", s, sess, n)
		}
		if s2, n2, ok2 := parseLastEventID(sseEventID(sess, n)); !ok2 || s2 != sess || n2 != n {
			t.Fatalf("%q parsed as %q, %d, which does not read back", s, sess, n)
		}
	})
}

func TestSSELog(t *testing.T) {
	l := newSSELog()
	for i := range sseLogMax + 10 {
		b, _ := protocol.Encode(&protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "r", RoomSeq: uint64(i + 1)})
		if n := l.append(b); n != uint64(i+1) {
			t.Fatalf("event %d numbered %d", i+1, n)
		}
	}
	if _, _, ok := l.since(5); ok {
		t.Error("since(5): the log no longer holds event 6, yet ok")
	}
	frames, last, ok := l.since(sseLogMax + 5)
	if !ok || len(frames) != 5 || last["r"] != sseLogMax+10 {
		t.Errorf("since(%d) = %d frames, %v, %v", sseLogMax+5, len(frames), last, ok)
	}
	if _, _, ok := l.since(sseLogMax + 11); ok {
		t.Error("an id from the future resumed")
	}
}

// TestFallbackCORS: the fallback tiers answer preflights and carry Access-Control-Allow-Origin for
// the origins the WebSocket accepts; other origins get 403.
func TestFallbackCORS(t *testing.T) {
	cfg := testConfig()
	cfg.AllowedOrigins = []string{"https://app.example.com"}
	ts := startServer(t, cfg)
	hc := &http.Client{Timeout: 5 * time.Second}
	do := func(method, path, origin string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+ts.addr+path, nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, path := range []string{protocol.PathSSE, protocol.PathPoll, protocol.PathSend} {
		resp := do(http.MethodOptions, path, "https://app.example.com")
		if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
			resp.Header.Get("Access-Control-Allow-Methods") == "" || !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Last-Event-ID") {
			t.Errorf("OPTIONS %s: %s %v", path, resp.Status, resp.Header)
		}
		if resp := do(http.MethodOptions, path, "https://evil.example.net"); resp.StatusCode != http.StatusForbidden {
			t.Errorf("OPTIONS %s from a refused origin: %s", path, resp.Status)
		}
	}
	// A poll opened cross-origin carries the header; so does the event stream.
	tok := mintToken(t, "dave")
	req, _ := http.NewRequest(http.MethodGet, "http://"+ts.addr+protocol.PathPoll+"?token="+tok, nil)
	req.Header.Set("Origin", "https://app.example.com")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("GET /poll cross-origin: %s %v", resp.Status, resp.Header)
	}
	req, _ = http.NewRequest(http.MethodGet, "http://"+ts.addr+protocol.PathSSE+"?token="+mintToken(t, "erin"), nil)
	req.Header.Set("Origin", "https://app.example.com")
	resp, err = (&http.Client{}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("GET /sse cross-origin: %s %v", resp.Status, resp.Header)
	}
}

// TestFallbackKeepaliveDefaults: the poll hold and the SSE keep-alive default below common proxy
// idle timeouts (nginx's proxy_read_timeout: 60s; many load balancers: 30s), and the SSE stream
// carries a comment every --sse-keepalive even when the heartbeat interval is longer.
func TestFallbackKeepaliveDefaults(t *testing.T) {
	d := DefaultConfig()
	if d.PollHold > 20*time.Second || d.SSEKeepalive > 20*time.Second {
		t.Errorf("defaults: poll-hold %s, sse-keepalive %s; want both at most 20s", d.PollHold, d.SSEKeepalive)
	}
	cfg := testConfig()
	cfg.HeartbeatInterval = 5 * time.Second
	cfg.HeartbeatTimeout = 10 * time.Second
	cfg.SSEKeepalive = 100 * time.Millisecond
	ts := startServer(t, cfg)
	c, _ := openFallback(t, ts, "sse", "frank", fbOpts{})
	waitFor(t, 3*time.Second, "5 keep-alive comments", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.pings >= 5
	})
}
