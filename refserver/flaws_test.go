package refserver

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/squall-dev/squall/refserver/protocol"
)

func TestParseFlaws(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{"", "", ""},
		{"none", "", ""},
		{"no-server-ping", "no-server-ping", ""},
		{" leak-on-error , no-seq-order ", "leak-on-error,no-seq-order", ""},
		{"no-auth-cache,no-drain", "no-auth-cache,no-drain", ""},
		{"no-conn-limit,no-conn-limit", "no-conn-limit", ""},
		{"no-such-flaw", "", "unknown flaw no-such-flaw"},
		{"unbounded-history,bogus", "", "unknown flaw bogus"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseFlaws(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
	if n := len(AllFlaws()); n != 8 {
		t.Fatalf("AllFlaws lists %d flaws, want 8", n)
	}
	for _, fi := range AllFlaws() {
		if _, err := ParseFlaws(string(fi.Flaw)); err != nil || fi.Description == "" {
			t.Fatalf("flaw %q: %v", fi.Flaw, err)
		}
	}
}

func withFlaws(cfg Config, flaws ...Flaw) Config {
	cfg.Flaws = Flaws{}
	for _, f := range flaws {
		cfg.Flaws[f] = true
	}
	return cfg
}

// noFrame asserts that no frame matching match arrives within d.
func noFrame(t *testing.T, c *client, d time.Duration, what string, match func(protocol.Frame) bool) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				return
			}
			if match(f) {
				t.Fatalf("unexpected %s: %+v", what, f)
			}
		case <-deadline:
			return
		}
	}
}

// keepAlive sends an application ping every period from a goroutine until the test ends; the
// client must not be written to by anyone else afterwards.
func keepAlive(t *testing.T, c *client, period time.Duration) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(period)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				b, _ := protocol.Encode(&protocol.Frame{Type: protocol.TypePing, Timestamp: time.Now().UnixMilli()})
				if err := c.ws.WriteMessage(1, b); err != nil {
					return
				}
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
}

func isLeaveOf(user string) func(protocol.Frame) bool {
	return func(f protocol.Frame) bool {
		return f.Type == protocol.TypePresence && f.Event == protocol.PresenceLeave && f.UserID == user
	}
}

// no-server-ping: the server never pings, so a client that is alive but quiet (it would answer
// pings) is cut at the slow sweep, a false disconnect; and a silent one outlives timeout + interval.
func TestFlawNoServerPing(t *testing.T) {
	cfg := withFlaws(testConfig(), FlawNoServerPing)
	cfg.FlawSweepInterval = 1500 * time.Millisecond
	ts := startServer(t, cfg)
	watcher, _ := connect(t, ts, "watcher", dialOpts{})
	watcher.join("room")
	keepAlive(t, watcher, cfg.HeartbeatInterval) // the watcher sends application pings
	var pings atomic.Int32
	quiet, _ := connect(t, ts, "quiet", dialOpts{onPing: func() { pings.Add(1) }})
	quiet.join("room")
	start := time.Now()

	bound := cfg.HeartbeatTimeout + cfg.HeartbeatInterval
	noFrame(t, watcher, bound+200*time.Millisecond, "leave before the sweep", isLeaveOf("quiet"))
	p := watcher.expectMatch(cfg.FlawSweepInterval+cfg.HeartbeatTimeout+time.Second, "leave of quiet at the sweep", isLeaveOf("quiet"))
	took := time.Since(start)
	if p.Reason != protocol.ReasonTimeout {
		t.Fatalf("reason %q, want timeout", p.Reason)
	}
	if n := pings.Load(); n != 0 {
		t.Fatalf("the quiet client received %d server pings, want 0", n)
	}
	if took <= bound {
		t.Fatalf("cut after %s, within the clean bound %s", took, bound)
	}
	t.Logf("quiet-but-alive client cut after %s by the sweep (clean server: never)", took)
}

// leak-on-error: a connection that drops without a close frame leaves its subscriptions, presence
// and session behind; nobody is told it left. A clean close still cleans up.
func TestFlawLeakOnError(t *testing.T) {
	ts := startServer(t, withFlaws(testConfig(), FlawLeakOnError))
	watcher, _ := connect(t, ts, "watcher", dialOpts{})
	watcher.join("room")
	for i := 0; i < 3; i++ {
		c, _ := connect(t, ts, fmt.Sprint("dropper-", i), dialOpts{})
		c.join("room")
		c.join("other")
		_ = c.ws.NetConn().Close()
	}
	clean, _ := connect(t, ts, "clean", dialOpts{})
	clean.join("room")
	_ = clean.ws.WriteControl(8, []byte{0x03, 0xe8}, time.Now().Add(time.Second))
	clean.expectClose(2 * time.Second)

	waitFor(t, 2*time.Second, "only the watcher active", func() bool { return ts.Stats().ActiveConns == 1 })
	waitFor(t, 2*time.Second, "clean close cleaned", func() bool { return ts.Stats().Subscriptions == 7 })
	st := ts.Stats()
	// 3 droppers × 2 rooms orphaned; presence: watcher + 3 ghosts in room, 3 ghosts in other;
	// sessions: watcher's and the 3 droppers'.
	if st.OrphanedSubscriptions != 6 || st.PresenceEntries != 7 || st.Sessions != 4 {
		t.Fatalf("stats %+v; want 6 orphaned subscriptions, 7 presence entries, 4 sessions", st)
	}
	if v := counterValue(t, ts.Server, protocol.MetricOrphanedSubscriptions, nil); v != 6 {
		t.Fatalf("%s = %v, want 6", protocol.MetricOrphanedSubscriptions, v)
	}
	if n := scanOrphaned(ts.Server); n != 6 {
		t.Fatalf("%d memberships of gone connections in the rooms, want the 6 counted", n)
	}
	noFrame(t, watcher, 300*time.Millisecond, "leave of a dropper", func(f protocol.Frame) bool {
		return f.Type == protocol.TypePresence && f.Event == protocol.PresenceLeave && strings.HasPrefix(f.UserID, "dropper-")
	})
	late, _ := connect(t, ts, "late", dialOpts{})
	if j := late.join("room"); joinStrings(j.Members) != "dropper-0,dropper-1,dropper-2,late,watcher" {
		t.Fatalf("members %v: the droppers should haunt the room", j.Members)
	}
}

// no-presence-leave: leaves are never announced and departed users stay present (ghosts), while
// their subscriptions are released.
func TestFlawNoPresenceLeave(t *testing.T) {
	ts := startServer(t, withFlaws(testConfig(), FlawNoPresenceLeave))
	watcher, _ := connect(t, ts, "watcher", dialOpts{})
	watcher.join("room")
	ghost, _ := connect(t, ts, "ghost", dialOpts{})
	ghost.join("room")
	watcher.expect(protocol.TypePresence, time.Second)
	_ = ghost.ws.NetConn().Close()
	waitFor(t, 2*time.Second, "ghost's connection cleaned up", func() bool {
		st := ts.Stats()
		return st.ActiveConns == 1 && st.Subscriptions == 1
	})
	noFrame(t, watcher, time.Second, "leave of ghost", isLeaveOf("ghost"))
	if st := ts.Stats(); st.PresenceEntries != 2 || st.OrphanedSubscriptions != 0 {
		t.Fatalf("stats %+v: want the ghost's presence entry kept and no orphaned subscription", st)
	}
	late, _ := connect(t, ts, "late", dialOpts{})
	if j := late.join("room"); joinStrings(j.Members) != "ghost,late,watcher" {
		t.Fatalf("members %v, want the ghost listed", j.Members)
	}
}

// no-seq-order: frames are applied in arrival order and duplicates are applied again.
func TestFlawNoSeqOrder(t *testing.T) {
	ts := startServer(t, withFlaws(testConfig(), FlawNoSeqOrder))
	c, _ := connect(t, ts, "alice", dialOpts{})
	c.send(protocol.Frame{Type: protocol.TypeJoinRoom, RoomID: "r", Seq: 1})
	c.expect(protocol.TypeRoomJoined, time.Second)
	for _, seq := range []uint64{2, 4, 3, 3} {
		c.send(protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "r", Seq: seq, Data: []byte(fmt.Sprint(seq))})
	}
	data, acks := collect(t, c, 4, 5)
	if fmt.Sprint(data) != "[2 4 3 3]" {
		t.Fatalf("applied %v, want arrival order with the duplicate [2 4 3 3]", data)
	}
	if fmt.Sprint(acks) != "[1 2 4 3 3]" {
		t.Fatalf("acks %v", acks)
	}
}

// no-conn-limit: neither the per-user, the per-IP nor the per-node limit applies.
func TestFlawNoConnLimit(t *testing.T) {
	cfg := withFlaws(testConfig(), FlawNoConnLimit)
	cfg.MaxConns = 3
	ts := startServer(t, cfg)
	for i := 0; i < 8; i++ { // one user, one IP, beyond every limit
		connect(t, ts, "alice", dialOpts{})
	}
	if n := ts.Stats().ActiveConns; n != 8 {
		t.Fatalf("active %d, want 8", n)
	}
}

// unbounded-history: room history grows past history-size and history-ttl.
func TestFlawUnboundedHistory(t *testing.T) {
	for _, tc := range []struct {
		flawed bool
		want   int
	}{{false, 5}, {true, 30}} {
		t.Run(fmt.Sprint("flawed=", tc.flawed), func(t *testing.T) {
			cfg := testConfig()
			if tc.flawed {
				cfg = withFlaws(cfg, FlawUnboundedHistory)
			}
			cfg.HistorySize = 5
			ts := startServer(t, cfg)
			c, _ := connect(t, ts, "alice", dialOpts{})
			c.join("r")
			for i := 0; i < 30; i++ {
				c.send(protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "r", Seq: c.nextSeq(), Data: []byte("1")})
			}
			c.expectMatch(2*time.Second, "last ack", func(f protocol.Frame) bool { return f.Type == protocol.TypeAck && f.Seq == 31 })
			if got := ts.Stats().HistoryEntries; got != tc.want {
				t.Fatalf("history entries %d, want %d", got, tc.want)
			}
		})
	}
}
