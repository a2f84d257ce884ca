package refserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/squall-dev/squall/refserver/protocol"
)

// Acceptance: two users in a room see each other's presence, broadcasts arrive at every member with
// consecutive roomSeq, and the sender gets acks.
func TestRoomPresenceBroadcastAck(t *testing.T) {
	ts := startServer(t, testConfig())
	alice, w := connect(t, ts, "alice", dialOpts{})
	if w.UserID != "alice" || w.Session == "" || w.ConnID == "" || w.HeartbeatInterval != 200 || w.HeartbeatTimeout != 600 {
		t.Fatalf("welcome = %+v", w)
	}
	j := alice.join("r1")
	if joinStrings(j.Members) != "alice" || j.HeadSeq != 0 {
		t.Fatalf("room_joined = %+v", j)
	}
	alice.expectMatch(time.Second, "ack 1", func(f protocol.Frame) bool { return f.Type == protocol.TypeAck && f.Seq == 1 })

	bob, _ := connect(t, ts, "bob", dialOpts{})
	j = bob.join("r1")
	if joinStrings(j.Members) != "alice,bob" {
		t.Fatalf("bob's room_joined members = %v", j.Members)
	}
	p := alice.expect(protocol.TypePresence, time.Second)
	if p.Event != protocol.PresenceJoin || p.UserID != "bob" || p.RoomID != "r1" || p.Reason != protocol.ReasonJoined {
		t.Fatalf("alice saw presence %+v", p)
	}

	const n = 20
	for i := 0; i < n; i++ {
		sender := alice
		if i%2 == 1 {
			sender = bob
		}
		sender.send(protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "r1", Seq: sender.nextSeq(), Data: json.RawMessage(`{"i":` + itoa(i) + `}`)})
	}
	for _, c := range []*client{alice, bob} {
		var want uint64 = 1
		acks := 0
		for want <= n || acks < n/2 {
			f, ok := c.next(2 * time.Second)
			if !ok {
				t.Fatalf("missing frames: roomSeq %d, acks %d", want, acks)
			}
			switch f.Type {
			case protocol.TypeBroadcast:
				if f.RoomSeq != want {
					t.Fatalf("roomSeq %d, want %d", f.RoomSeq, want)
				}
				if f.SentAt == 0 || (f.From != "alice" && f.From != "bob") {
					t.Fatalf("broadcast %+v", f)
				}
				want++
			case protocol.TypeAck:
				acks++
			}
		}
	}
	// Bob leaves explicitly: alice sees the leave with reason "left".
	bob.send(protocol.Frame{Type: protocol.TypeLeaveRoom, RoomID: "r1", Seq: bob.nextSeq()})
	bob.expect(protocol.TypeRoomLeft, time.Second)
	p = alice.expect(protocol.TypePresence, time.Second)
	if p.Event != protocol.PresenceLeave || p.UserID != "bob" || p.Reason != protocol.ReasonLeft {
		t.Fatalf("alice saw %+v", p)
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// Every metric name of the contract is exported on /metrics.
func TestMetricsEndpoint(t *testing.T) {
	ts := startServer(t, testConfig())
	c, _ := connect(t, ts, "alice", dialOpts{})
	c.join("r")
	body := httpGet(t, "http://"+ts.addr+protocol.PathMetrics, http.StatusOK)
	for _, name := range []string{
		protocol.MetricConnectionsActive, protocol.MetricConnectionsTotal, protocol.MetricDisconnectsTotal,
		protocol.MetricReconnectsTotal, protocol.MetricRoomSubscriptions, protocol.MetricOrphanedSubscriptions,
		protocol.MetricPresenceEntries, protocol.MetricMessagesInTotal, protocol.MetricMessagesOutTotal,
		protocol.MetricSendQueueDepth, protocol.MetricHeartbeatTimeouts, protocol.MetricConnRejectionsTotal,
		protocol.MetricShedTotal, protocol.MetricStormActive, protocol.MetricAuthRequestsTotal,
		protocol.MetricPoolUsageRatio, protocol.MetricProcessResidentMemory, protocol.MetricGoGoroutines,
		protocol.MetricProcessOpenFDs,
	} {
		if !strings.Contains(body, "\n"+name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	for _, line := range []string{
		protocol.MetricConnectionsActive + " 1", protocol.MetricRoomSubscriptions + " 1",
		protocol.MetricPresenceEntries + " 1", protocol.MetricOrphanedSubscriptions + " 0",
		protocol.MetricAuthRequestsTotal + `{cached="false",result="ok"} 1`,
	} {
		if !strings.Contains(body, "\n"+line+"\n") {
			t.Errorf("/metrics lacks the line %q", line)
		}
	}
}

func TestHealthReadyAndPprof(t *testing.T) {
	cfg := testConfig()
	cfg.Pprof = true
	ts := startServer(t, cfg)
	base := "http://" + ts.addr
	httpGet(t, base+protocol.PathHealthz, http.StatusOK)
	httpGet(t, base+protocol.PathReadyz, http.StatusOK)
	httpGet(t, base+"/debug/pprof/", http.StatusOK)
	httpGet(t, base+protocol.PathWS, http.StatusUpgradeRequired)

	noPprof := startServer(t, testConfig())
	httpGet(t, "http://"+noPprof.addr+"/debug/pprof/", http.StatusNotFound)
}

// Shutdown closes every connection with 1001 and a retry hint, cleans up, and refuses new ones.
func TestShutdownClosesEveryone(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConnsPerIP = -1
	srv, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler()) // mounted on someone else's HTTP server
	defer hs.Close()
	ts := &testServer{Server: srv, addr: strings.TrimPrefix(hs.URL, "http://")}
	var clients []*client
	for i := 0; i < 5; i++ {
		c, _ := connect(t, ts, fmt.Sprint("u", i), dialOpts{})
		c.join("r")
		clients = append(clients, c)
	}
	pending := dialClient(t, ts, "", dialOpts{}) // not yet authenticated
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, c := range append(clients, pending) {
		code, reason := c.expectClose(time.Second)
		hint, ok := protocol.ParseRetryAfter(reason)
		if code != int(protocol.CloseDraining) || protocol.ReasonWord(reason) != protocol.ReasonDrain || !ok ||
			hint <= 0 || hint > cfg.withDefaults().DrainSpread {
			t.Fatalf("closed with %d %q, want 1001 draining with a retry hint within the drain spread", code, reason)
		}
	}
	if st := srv.Stats(); st != (Stats{}) {
		t.Fatalf("stats after Shutdown: %+v", st)
	}
	httpGet(t, hs.URL+protocol.PathReadyz, http.StatusServiceUnavailable)
	if _, resp, err := dialRaw(ts, mintToken(t, "late"), dialOpts{}); err == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("upgrade after Shutdown: %v %v", err, resp)
	}
}

func TestReconnectsCounted(t *testing.T) {
	ts := startServer(t, testConfig())
	c, _ := connect(t, ts, "alice", dialOpts{})
	_ = c.ws.Close()
	waitFor(t, time.Second, "cleanup", func() bool { return ts.Stats().ActiveConns == 0 })
	connect(t, ts, "alice", dialOpts{})
	connect(t, ts, "bob", dialOpts{})
	if v := counterValue(t, ts.Server, protocol.MetricReconnectsTotal, nil); v != 1 {
		t.Fatalf("reconnects %v, want 1", v)
	}
}

func httpGet(t *testing.T, url string, want int) string {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d, want %d: %s", url, resp.StatusCode, want, b)
	}
	return string(b)
}

// Shutdown with an already cancelled context drops every connection at once.
func TestShutdownWithoutGrace(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConnsPerIP = -1
	ts := startServer(t, cfg)
	var clients []*client
	for i := 0; i < 3; i++ {
		c, _ := connect(t, ts, fmt.Sprint("u", i), dialOpts{ignorePings: true})
		clients = append(clients, c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ts.Shutdown(ctx); err == nil {
		t.Fatal("Shutdown with a cancelled context returned nil")
	}
	for _, c := range clients {
		c.expectClose(time.Second) // dropped without waiting for close-grace
	}
	waitFor(t, time.Second, "cleanup", func() bool { return ts.Stats().ActiveConns == 0 })
}
