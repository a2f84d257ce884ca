package refserver

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/squall-dev/squall/internal/redistest"
	"github.com/squall-dev/squall/refserver/protocol"
)

// recorder is a BrokerHandler that keeps every event it sees.
type recorder struct {
	mu     sync.Mutex
	events []RoomEvent
	notify chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) handle(ev *RoomEvent) {
	r.mu.Lock()
	r.events = append(r.events, *ev)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) snapshot() []RoomEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]RoomEvent(nil), r.events...)
}

// waitCount waits until the recorder holds at least n events matching keep.
func (r *recorder) waitCount(t *testing.T, n int, timeout time.Duration, keep func(RoomEvent) bool) []RoomEvent {
	t.Helper()
	deadline := time.After(timeout)
	for {
		var got []RoomEvent
		for _, ev := range r.snapshot() {
			if keep(ev) {
				got = append(got, ev)
			}
		}
		if len(got) >= n {
			return got
		}
		select {
		case <-r.notify:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%d of %d events within %s", len(got), n, timeout)
		}
	}
}

func newTestRedisBroker(t *testing.T, rs *redistest.Server, node string, ttl time.Duration) (*RedisBroker, *recorder) {
	t.Helper()
	b, err := NewRedisBroker(RedisOptions{URL: rs.URL(0), NodeID: node, RegistryTTL: ttl, HistorySize: 100})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	b.Bind(rec.handle)
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close broker %s: %v", node, err)
		}
	})
	return b, rec
}

func isBroadcast(ev RoomEvent) bool { return ev.Frame.Type == protocol.TypeBroadcast }

// Two nodes publish into one room at the same time: every node sees roomSeq 1..N once each, in
// order, and both see the same sequence of payloads.
func TestRedisBrokerOrderedGapFreeAcrossNodes(t *testing.T) {
	rs := redistest.Start(t)
	ctx := t.Context()
	a, recA := newTestRedisBroker(t, rs, "a", time.Minute)
	b, recB := newTestRedisBroker(t, rs, "b", time.Minute)
	for _, br := range []*RedisBroker{a, b} {
		if err := br.Subscribe(ctx, "r1"); err != nil {
			t.Fatal(err)
		}
	}
	const perNode = 200
	var wg sync.WaitGroup
	for i, br := range []*RedisBroker{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range perNode {
				data, _ := json.Marshal(fmt.Sprintf("n%d-%d", i, k))
				ev := &RoomEvent{RoomID: "r1", Frame: protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "r1", From: "u", Data: data}}
				if err := br.Publish(ctx, ev); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
				if ev.Frame.RoomSeq == 0 || ev.Frame.SentAt == 0 {
					t.Errorf("publish did not stamp the event: %+v", ev.Frame)
					return
				}
			}
		}()
	}
	wg.Wait()
	ga := recA.waitCount(t, 2*perNode, 10*time.Second, isBroadcast)
	gb := recB.waitCount(t, 2*perNode, 10*time.Second, isBroadcast)
	for name, got := range map[string][]RoomEvent{"a": ga, "b": gb} {
		if len(got) != 2*perNode {
			t.Fatalf("node %s: %d broadcasts, want %d", name, len(got), 2*perNode)
		}
		var lastSent int64
		for i, ev := range got {
			if ev.Frame.RoomSeq != uint64(i+1) {
				t.Fatalf("node %s: event %d has roomSeq %d", name, i, ev.Frame.RoomSeq)
			}
			if ev.Frame.SentAt < lastSent {
				t.Fatalf("node %s: sentAt went back at roomSeq %d", name, ev.Frame.RoomSeq)
			}
			lastSent = ev.Frame.SentAt
		}
	}
	for i := range ga {
		if string(ga[i].Frame.Data) != string(gb[i].Frame.Data) {
			t.Fatalf("roomSeq %d: node a saw %s, node b %s", i+1, ga[i].Frame.Data, gb[i].Frame.Data)
		}
	}
	if h, err := a.HeadSeq(ctx, "r1"); err != nil || h != 2*perNode {
		t.Fatalf("HeadSeq = %d, %v", h, err)
	}
	evs, covered, err := b.History(ctx, "r1", 2*perNode-10)
	if err != nil || !covered || len(evs) != 10 || evs[0].Frame.RoomSeq != 2*perNode-9 {
		t.Fatalf("History: %d events, covered %v, err %v", len(evs), covered, err)
	}
	if _, covered, _ := b.History(ctx, "r1", 0); covered {
		t.Fatal("History claims to cover roomSeq 1 although only 100 entries are kept")
	}
}

// When a node's pub/sub connection is killed, go-redis reconnects and re-subscribes; what was
// published meanwhile is read from the history, so the node still sees every roomSeq in order.
func TestRedisBrokerFillsGapAfterPubSubReconnect(t *testing.T) {
	rs := redistest.Start(t)
	ctx := t.Context()
	a, recA := newTestRedisBroker(t, rs, "a", time.Minute)
	pub, _ := newTestRedisBroker(t, rs, "pub", time.Minute)
	if err := a.Subscribe(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	publish := func(n int) {
		for range n {
			ev := &RoomEvent{RoomID: "r", Frame: protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "r", Data: json.RawMessage(`1`)}}
			if err := pub.Publish(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(5)
	recA.waitCount(t, 5, 5*time.Second, isBroadcast)
	if _, err := rs.Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
		t.Fatal(err)
	}
	publish(20) // some of these go out while node a is not subscribed
	got := recA.waitCount(t, 25, 10*time.Second, isBroadcast)
	for i, ev := range got {
		if ev.Frame.RoomSeq != uint64(i+1) {
			t.Fatalf("event %d has roomSeq %d after the reconnect", i, ev.Frame.RoomSeq)
		}
	}
	a.mu.Lock()
	catchUps := a.catchUps
	a.mu.Unlock()
	if catchUps == 0 {
		t.Fatal("no catch-up from history happened: the test did not open a gap")
	}
	if n := a.LostBroadcasts(); n != 0 {
		t.Fatalf("%d broadcasts lost", n)
	}
}

// The registry is the cluster-wide per-user limit, and a dead node's entries stop counting once
// they lapse.
func TestRedisRegistryLimitAndExpiry(t *testing.T) {
	rs := redistest.Start(t)
	ctx := t.Context()
	// Entries lapse when a refresh round (every ttl/3) is two rounds late: with 400 ms a loaded
	// machine's scheduling stalls alone let live entries lapse.
	const ttl = 2 * time.Second
	a, _ := newTestRedisBroker(t, rs, "a", ttl)
	b, _ := newTestRedisBroker(t, rs, "b", ttl)
	reg := func(br *RedisBroker, conn string) bool {
		t.Helper()
		ok, err := br.Register(ctx, RegistryEntry{UserID: "alice", ConnID: conn}, 3)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !reg(a, "1") || !reg(b, "2") || !reg(a, "3") {
		t.Fatal("first three connections refused")
	}
	if reg(b, "4") {
		t.Fatal("fourth connection accepted with a limit of 3 across two nodes")
	}
	if err := a.Unregister(ctx, RegistryEntry{UserID: "alice", ConnID: "1"}); err != nil {
		t.Fatal(err)
	}
	if !reg(b, "4") {
		t.Fatal("connection refused after one was released")
	}
	conns, err := b.UserConnections(ctx, "alice")
	if err != nil || len(conns) != 3 {
		t.Fatalf("UserConnections = %v, %v", conns, err)
	}
	// Entries stay alive while their node refreshes them.
	time.Sleep(3 * ttl) // several TTLs must pass for the test to mean anything
	if conns, _ := b.UserConnections(ctx, "alice"); len(conns) != 3 {
		t.Fatalf("refreshed entries lapsed: %v", conns)
	}
	// Node a dies without cleaning up: its entry stops counting after the TTL.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*ttl, "node a's registry entry to lapse", func() bool {
		conns, _ := b.UserConnections(ctx, "alice")
		return len(conns) == 2
	})
	if !reg(b, "5") {
		t.Fatal("a lapsed entry still counts towards the limit")
	}
}

// Presence is announced once per cluster-wide change, and a dead node's users are announced gone
// (reason timeout) by a survivor after the TTL.
func TestRedisPresenceAcrossNodes(t *testing.T) {
	rs := redistest.Start(t)
	ctx := t.Context()
	const ttl = 500 * time.Millisecond
	a, recA := newTestRedisBroker(t, rs, "a", ttl)
	b, _ := newTestRedisBroker(t, rs, "b", ttl)
	if err := a.Subscribe(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	isPresence := func(ev RoomEvent) bool { return ev.Frame.Type == protocol.TypePresence }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.PresenceJoin(ctx, "r", "alice"))
	must(b.PresenceJoin(ctx, "r", "alice")) // alice on a second node: no new event
	must(b.PresenceJoin(ctx, "r", "bob"))
	must(a.PresenceLeave(ctx, "r", "alice", protocol.ReasonLeft)) // still on node b: no event
	members, err := a.PresenceMembers(ctx, "r")
	must(err)
	if joinStrings(members) != "alice,bob" {
		t.Fatalf("members %v", members)
	}
	got := recA.waitCount(t, 2, 5*time.Second, isPresence)
	want := []string{"join alice joined", "join bob joined"}
	for i, w := range want {
		f := got[i].Frame
		if s := f.Event + " " + f.UserID + " " + f.Reason; s != w {
			t.Fatalf("presence event %d = %q, want %q", i, s, w)
		}
	}
	// Node b dies: its users lapse and node a announces them gone once each.
	killed := time.Now()
	must(b.Close())
	got = recA.waitCount(t, 4, 10*ttl, isPresence)
	elapsed := time.Since(killed)
	var leaves []string
	for _, ev := range got[2:] {
		f := ev.Frame
		if f.Event != protocol.PresenceLeave || f.Reason != protocol.ReasonTimeout {
			t.Fatalf("unexpected event %+v", f)
		}
		leaves = append(leaves, f.UserID)
	}
	if joinStrings(leaves) != "alice,bob" && joinStrings(leaves) != "bob,alice" {
		t.Fatalf("leaves %v", leaves)
	}
	t.Logf("dead node's users announced gone %s after it stopped (TTL %s)", elapsed.Round(time.Millisecond), ttl)
	if elapsed > ttl+time.Second { // generous: the machine is shared
		t.Fatalf("leaves announced %s after the node died; TTL %s", elapsed, ttl)
	}
	time.Sleep(2 * a.opt.ReapInterval)
	if n := len(recA.snapshot()); n != 4 {
		t.Fatalf("%d presence events, want 4 (a leave announced twice?)", n)
	}
	if members, _ := a.PresenceMembers(ctx, "r"); len(members) != 0 {
		t.Fatalf("members after the TTL: %v", members)
	}
}

func TestParseBrokerURL(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"", "", false}, {"memory", "", false}, {"redis://127.0.0.1:6379/2", "redis://127.0.0.1:6379/2", false},
		{"http://x", "", true}, {"redis://127.0.0.1:6379/notadb", "", true},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseBrokerURL(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("ParseBrokerURL(%q) = %q, %v", tt.in, got, err)
			}
		})
	}
}

// Redis restarted without persistence (FLUSHALL stands for it): the room's counter is gone, but the
// next broadcast continues after what the nodes delivered instead of restarting at 1.
func TestRedisBrokerRoomSeqSurvivesLostCounter(t *testing.T) {
	rs := redistest.Start(t)
	ctx := t.Context()
	a, recA := newTestRedisBroker(t, rs, "a", time.Minute)
	if err := a.Subscribe(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	publish := func() {
		ev := &RoomEvent{RoomID: "r", Frame: protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "r", Data: json.RawMessage(`1`)}}
		if err := a.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 {
		publish()
	}
	recA.waitCount(t, 5, 5*time.Second, isBroadcast)
	if line, err := rs.Do("FLUSHALL"); err != nil || line != "+OK" {
		t.Fatalf("FLUSHALL: %q %v", line, err)
	}
	publish()
	got := recA.waitCount(t, 6, 5*time.Second, isBroadcast)
	if got[5].Frame.RoomSeq != 6 {
		t.Fatalf("after the counter was lost the room went on with roomSeq %d, want 6", got[5].Frame.RoomSeq)
	}
}
