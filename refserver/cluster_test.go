package refserver

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/squall-dev/squall/internal/redistest"
	"github.com/squall-dev/squall/refserver/protocol"
)

func clusterConfig(rs *redistest.Server, node string) Config {
	cfg := testConfig()
	cfg.Broker = rs.URL(0)
	cfg.NodeID = node
	cfg.RegistryTTL = time.Second
	// Heartbeat timeouts are not under test here: the 600 ms of testConfig could cut a client of a
	// loaded machine in the middle of a cluster test.
	cfg.HeartbeatInterval = time.Second
	cfg.HeartbeatTimeout = 10 * time.Second
	return cfg
}

// Two in-process nodes on one Redis: a room spans both, presence and member lists are the
// cluster's, every member sees the same gap-free roomSeq order, and the per-user limit counts the
// user's connections on both nodes.
func TestClusterTwoNodesShareRoomsPresenceAndLimits(t *testing.T) {
	rs := redistest.Start(t)
	a := startServer(t, clusterConfig(rs, "node-a"))
	b := startServer(t, clusterConfig(rs, "node-b"))

	alice, w := connect(t, a, "alice", dialOpts{})
	if w.ConnID == "" || a.NodeID() != "node-a" {
		t.Fatalf("welcome %+v, node %q", w, a.NodeID())
	}
	if j := alice.join("lobby"); joinStrings(j.Members) != "alice" {
		t.Fatalf("alice's room_joined members %v", j.Members)
	}
	bob, _ := connect(t, b, "bob", dialOpts{})
	if j := bob.join("lobby"); joinStrings(j.Members) != "alice,bob" {
		t.Fatalf("bob's room_joined members %v (alice is on the other node)", j.Members)
	}
	p := alice.expect(protocol.TypePresence, 10*time.Second)
	if p.Event != protocol.PresenceJoin || p.UserID != "bob" {
		t.Fatalf("alice saw %+v", p)
	}

	const each = 20
	for i := range each {
		for _, c := range []*client{alice, bob} {
			c.send(protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "lobby", Seq: c.nextSeq(), Data: json.RawMessage(fmt.Sprint(i))})
		}
	}
	var seen [2][]string
	for k, c := range []*client{alice, bob} {
		for n := 1; n <= 2*each; n++ {
			f := c.expect(protocol.TypeBroadcast, 5*time.Second)
			if f.RoomSeq != uint64(n) {
				t.Fatalf("client %d: broadcast %d has roomSeq %d", k, n, f.RoomSeq)
			}
			seen[k] = append(seen[k], f.From+":"+string(f.Data))
		}
	}
	if joinStrings(seen[0]) != joinStrings(seen[1]) {
		t.Fatalf("the two nodes delivered different orders:\n%v\n%v", seen[0], seen[1])
	}

	// carol may hold 5 connections in the whole cluster: 3 on a and 2 on b, then the 6th is refused.
	for i := range 5 {
		node := a
		if i >= 3 {
			node = b
		}
		connect(t, node, "carol", dialOpts{localIP: fmt.Sprintf("127.0.0.%d", 10+i)})
	}
	extra := dialClient(t, b, mintToken(t, "carol"), dialOpts{localIP: "127.0.0.20"})
	if code, reason := extra.expectClose(10 * time.Second); code != int(protocol.ClosePolicy) || reason != protocol.ReasonConnLimit {
		t.Fatalf("6th connection of carol across the cluster closed with %d %q, want 1008 conn_limit", code, reason)
	}

	// bob leaves the cluster: alice, on the other node, is told.
	_ = bob.ws.Close()
	p = alice.expectMatch(10*time.Second, "bob's leave", func(f protocol.Frame) bool {
		return f.Type == protocol.TypePresence && f.Event == protocol.PresenceLeave
	})
	if p.UserID != "bob" || p.Reason != protocol.ReasonClosed {
		t.Fatalf("alice saw %+v", p)
	}
	if j := alice.join("lobby"); joinStrings(j.Members) != "alice" || j.HeadSeq != 2*each {
		t.Fatalf("after bob left: members %v headSeq %d", j.Members, j.HeadSeq)
	}
	body := clusterMetricsText(t, a)
	for _, want := range []string{"ws_cluster_lost_broadcasts_total 0", "ws_cluster_subscribed_rooms 1", "ws_cluster_gap_fills_total 0"} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics of a cluster node lacks %q", want)
		}
	}
}

func TestClusterConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"memory", func(c *Config) { c.Broker = "memory" }, ""},
		{"redis", func(c *Config) {
			c.Broker = "redis://127.0.0.1:6379/0"
			c.NodeID = "n1"
			c.RegistryTTL = 5 * time.Second
		}, ""},
		{"bad scheme", func(c *Config) { c.Broker = "kafka://x" }, "broker: want memory or redis://"},
		{"short ttl", func(c *Config) { c.RegistryTTL = time.Millisecond }, "registry-ttl: must be at least 100ms"},
		{"negative ttl", func(c *Config) { c.RegistryTTL = -time.Second }, "registry-ttl: must not be negative"},
		{"node id with a bar", func(c *Config) { c.NodeID = "a|b" }, "node-id:"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.AuthSecret = "s"
			tt.mod(&cfg)
			err := cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// A client that resumes on its node in cluster mode is announced present again to the other nodes
// (through the cluster presence, so that its later leave is announced too), gets what it missed —
// from the history in Redis, as its node had dropped the room meanwhile — and then receives the
// room live.
func TestClusterResumeAnnouncesPresenceAcrossNodes(t *testing.T) {
	rs := redistest.Start(t)
	a := startServer(t, clusterConfig(rs, "node-a"))
	b := startServer(t, clusterConfig(rs, "node-b"))
	bob, _ := connect(t, b, "bob", dialOpts{})
	bob.join("lobby")
	alice, w := connect(t, a, "alice", dialOpts{})
	alice.join("lobby")
	bob.expectMatch(10*time.Second, "alice's join", func(f protocol.Frame) bool {
		return f.Type == protocol.TypePresence && f.Event == protocol.PresenceJoin && f.UserID == "alice"
	})
	_ = alice.ws.Close()
	bob.expectMatch(10*time.Second, "alice's leave", func(f protocol.Frame) bool {
		return f.Type == protocol.TypePresence && f.Event == protocol.PresenceLeave && f.UserID == "alice"
	})
	// Node a reaps the room (no local member, nothing in its history): what bob sends now never
	// reaches node a, and alice's resume there must take it from the history in Redis.
	waitFor(t, 5*time.Second, "node a to drop the empty room", func() bool { return a.Stats().Rooms == 0 })
	bob.send(protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "lobby", Seq: bob.nextSeq(), Data: json.RawMessage(`"missed"`)})
	bob.expect(protocol.TypeBroadcast, 10*time.Second)

	again, _ := connect(t, a, "alice", dialOpts{})
	again.send(protocol.Frame{Type: protocol.TypeResume, Session: w.Session, Rooms: map[string]uint64{"lobby": 0}})
	if f := again.expect(protocol.TypeBroadcast, 10*time.Second); string(f.Data) != `"missed"` || f.RoomSeq != 1 {
		t.Fatalf("replayed %+v", f)
	}
	if f := again.expect(protocol.TypeResumed, 10*time.Second); f.Rooms["lobby"] != 1 {
		t.Fatalf("resumed %+v", f)
	}
	bob.expectMatch(10*time.Second, "alice's join after the resume", func(f protocol.Frame) bool {
		return f.Type == protocol.TypePresence && f.Event == protocol.PresenceJoin && f.UserID == "alice"
	})
	bob.send(protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "lobby", Seq: bob.nextSeq(), Data: json.RawMessage(`"live"`)})
	if f := again.expect(protocol.TypeBroadcast, 10*time.Second); string(f.Data) != `"live"` || f.RoomSeq != 2 {
		t.Fatalf("live after resume %+v", f)
	}
	_ = again.ws.Close()
	bob.expectMatch(10*time.Second, "alice's leave after the resume", func(f protocol.Frame) bool {
		return f.Type == protocol.TypePresence && f.Event == protocol.PresenceLeave && f.UserID == "alice"
	})
}

func TestMergeRemoteHistory(t *testing.T) {
	ev := func(seq uint64) RoomEvent {
		return RoomEvent{RoomID: "r", Frame: protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "r", RoomSeq: seq, SentAt: 1}}
	}
	local := func(seqs ...uint64) *history {
		h := newHistory(100, time.Hour, false)
		for _, s := range seqs {
			h.add(historyEntry{seq: s, at: time.Now(), payload: []byte("x")})
		}
		return h
	}
	for _, tt := range []struct {
		name        string
		remote      []RoomEvent
		local       *history
		after, head uint64
		want        []uint64
		ok          bool
	}{
		{"remote covers", []RoomEvent{ev(3), ev(4), ev(5)}, local(), 2, 5, []uint64{3, 4, 5}, true},
		{"remote beyond head is left to live delivery", []RoomEvent{ev(3), ev(4), ev(5)}, local(), 2, 4, []uint64{3, 4}, true},
		{"local completes", []RoomEvent{ev(3)}, local(4, 5), 2, 5, []uint64{3, 4, 5}, true},
		{"remote starts late", []RoomEvent{ev(4)}, local(), 2, 4, nil, false},
		{"hole between remote and local", []RoomEvent{ev(3)}, local(5), 2, 5, nil, false},
		{"nothing missed", nil, local(), 5, 5, nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := mergeRemoteHistory(tt.remote, tt.local, tt.after, tt.head)
			var seqs []uint64
			for _, e := range got {
				seqs = append(seqs, e.seq)
			}
			if ok != tt.ok || fmt.Sprint(seqs) != fmt.Sprint(tt.want) {
				t.Fatalf("got %v %v, want %v %v", seqs, ok, tt.want, tt.ok)
			}
		})
	}
}

// A session detached on one node is resumed on another (the reconnect landed elsewhere): the
// client gets what it missed and the room live, and the session cannot be resumed a second time on
// its old node.
func TestClusterResumeOnAnotherNode(t *testing.T) {
	rs := redistest.Start(t)
	a := startServer(t, clusterConfig(rs, "node-a"))
	b := startServer(t, clusterConfig(rs, "node-b"))
	bob, _ := connect(t, b, "bob", dialOpts{})
	bob.join("lobby")
	alice, w := connect(t, a, "alice", dialOpts{})
	alice.join("lobby")
	bob.send(protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "lobby", Seq: bob.nextSeq(), Data: json.RawMessage(`"seen"`)})
	if f := alice.expect(protocol.TypeBroadcast, 10*time.Second); f.RoomSeq != 1 {
		t.Fatalf("alice got %+v", f)
	}
	_ = alice.ws.Close()
	bob.expectMatch(10*time.Second, "alice's leave", func(f protocol.Frame) bool {
		return f.Type == protocol.TypePresence && f.Event == protocol.PresenceLeave && f.UserID == "alice"
	})
	for _, d := range []string{`"missed-1"`, `"missed-2"`} {
		bob.send(protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "lobby", Seq: bob.nextSeq(), Data: json.RawMessage(d)})
	}
	// Both are published (and in the room's history) once bob has his own copy of the second: a
	// resume that overtook it would rightly get it live after "resumed", not in the replay.
	bob.expectMatch(10*time.Second, "bob's own missed-2", func(f protocol.Frame) bool {
		return f.Type == protocol.TypeBroadcast && f.RoomSeq == 3
	})

	moved, _ := connect(t, b, "alice", dialOpts{}) // the reconnect lands on node b
	moved.send(protocol.Frame{Type: protocol.TypeResume, Session: w.Session, Rooms: map[string]uint64{"lobby": 1}})
	for i, want := range []string{`"missed-1"`, `"missed-2"`} {
		if f := moved.expect(protocol.TypeBroadcast, 10*time.Second); string(f.Data) != want || f.RoomSeq != uint64(i+2) {
			t.Fatalf("replay %d: %+v", i, f)
		}
	}
	if f := moved.expect(protocol.TypeResumed, 10*time.Second); f.Rooms["lobby"] != 2 {
		t.Fatalf("resumed %+v", f)
	}
	bob.expectMatch(10*time.Second, "alice's join after the resume", func(f protocol.Frame) bool {
		return f.Type == protocol.TypePresence && f.Event == protocol.PresenceJoin && f.UserID == "alice"
	})
	bob.send(protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "lobby", Seq: bob.nextSeq(), Data: json.RawMessage(`"live"`)})
	if f := moved.expect(protocol.TypeBroadcast, 10*time.Second); string(f.Data) != `"live"` || f.RoomSeq != 4 {
		t.Fatalf("live after resume %+v", f)
	}

	// The same session again, on its old node: it was consumed on node b.
	back, _ := connect(t, a, "alice", dialOpts{})
	back.send(protocol.Frame{Type: protocol.TypeResume, Session: w.Session, Rooms: map[string]uint64{"lobby": 1}})
	if f := back.expect(protocol.TypeResumeFailed, 10*time.Second); f.Reason != protocol.ResumeSessionUnknown {
		t.Fatalf("second resume of one session: %+v", f)
	}
}

// clusterMetricsText returns the node's /metrics text.
func clusterMetricsText(t *testing.T, ts *testServer) string {
	t.Helper()
	resp, err := http.Get("http://" + ts.addr + protocol.PathMetrics)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
