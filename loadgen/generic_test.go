package loadgen

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/loadgen/stats"
)

// relayFaults are defects a test relay can have, each every Nth publish it relays (0: never).
type relayFaults struct {
	drop, dup, swap int
	batch           bool // join queued messages with newlines, as gorilla's chat example does
}

// relayServer is a small rooms relay: {"op":"sub","room":R} subscribes, {"op":"pub","room":R,
// "data":D} sends {"type":"msg","room":R,"seq":N,"data":D} to every subscriber of R (its sender
// too), {"op":"ping"} answers {"type":"pong"}; with faults it drops, duplicates or swaps messages.
func relayServer(t *testing.T, f relayFaults) string {
	var mu, pubMu sync.Mutex
	subs := map[string]map[*websocket.Conn]*sync.Mutex{}
	seqs := map[string]int{}
	var held map[*websocket.Conn][]byte
	n := 0
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		wmu := &sync.Mutex{}
		defer func() {
			mu.Lock()
			for _, s := range subs {
				delete(s, ws)
			}
			mu.Unlock()
			ws.Close()
		}()
		send := func(c *websocket.Conn, m *sync.Mutex, b []byte) {
			m.Lock()
			_ = c.WriteMessage(websocket.TextMessage, b)
			m.Unlock()
		}
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var m struct {
				Op, Room string
				Data     json.RawMessage
			}
			if json.Unmarshal(b, &m) != nil {
				continue
			}
			switch m.Op {
			case "sub":
				mu.Lock()
				if subs[m.Room] == nil {
					subs[m.Room] = map[*websocket.Conn]*sync.Mutex{}
				}
				subs[m.Room][ws] = wmu
				mu.Unlock()
			case "ping":
				send(ws, wmu, []byte(`{"type":"pong"}`))
			case "pub":
				// One publish at a time, sent in full before the next: the room's seq order is its
				// delivery order.
				pubMu.Lock()
				mu.Lock()
				n++
				seqs[m.Room]++
				out, _ := json.Marshal(map[string]any{"type": "msg", "room": m.Room, "seq": seqs[m.Room], "data": m.Data})
				k := n
				targets := map[*websocket.Conn]*sync.Mutex{}
				for c, cm := range subs[m.Room] {
					targets[c] = cm
				}
				mu.Unlock()
				if f.drop > 0 && k%f.drop == 0 {
					pubMu.Unlock()
					continue
				}
				for c, cm := range targets {
					switch {
					case f.swap > 0 && k%f.swap == 0:
						mu.Lock()
						if held == nil {
							held = map[*websocket.Conn][]byte{}
						}
						held[c] = out
						mu.Unlock()
						continue
					case f.batch:
						mu.Lock()
						h := held[c]
						delete(held, c)
						mu.Unlock()
						if h != nil {
							send(c, cm, append(append(out, '\n'), h...))
							continue
						}
					}
					mu.Lock()
					h := held[c]
					delete(held, c)
					mu.Unlock()
					send(c, cm, out)
					if h != nil {
						send(c, cm, h)
					}
					if f.dup > 0 && k%f.dup == 0 {
						send(c, cm, out)
					}
				}
				pubMu.Unlock()
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/socket"
}

// relaySpec is the generic profile of relayServer.
func relaySpec() *GenericSpec {
	return &GenericSpec{
		Subscribe: `{"op":"sub","room":"{{.Room}}"}`,
		Publish:   `{"op":"pub","room":"{{.Room}}","data":{{.Payload}}}`,
		Ping:      `{"op":"ping"}`,
		Delivery:  GenericMatch{Match: map[string]string{"type": "msg"}, Room: "room", Payload: "data", Seq: "seq"},
		Pong:      GenericMatch{Match: map[string]string{"$.type": "pong"}},
		Batch:     "newline",
	}
}

func runRelay(t *testing.T, url string, spec *GenericSpec) stats.Snapshot {
	t.Helper()
	g := Target{Endpoints: []Endpoint{{URL: url}}, Protocol: ProtocolSpec{Name: ProtocolGeneric, Generic: spec}}
	p := Plan{Name: "generic", Seed: 1,
		Cohorts: []Cohort{{Name: "g", Count: 20, Behaviour: Behaviour{RoomsPerClient: 1, RoomCount: 2,
			SendInterval: 50 * time.Millisecond, HeartbeatInterval: 200 * time.Millisecond}}},
		Phases:           []Phase{{Kind: PhaseRamp}, {Kind: PhaseHold, Duration: time.Second}, {Kind: PhaseRampDown}},
		ScheduleLagBound: 5 * time.Second,
	}
	rec := stats.NewRecorder(time.Now())
	if _, err := RunLocal(context.Background(), p, g, rec, RunOptions{}); err != nil {
		t.Fatal(err)
	}
	snap := rec.Snapshot()
	t.Logf("counters %v; fan-out p50 %v p99 %v", snap.Counters, snap.Percentile(stats.HistFanout, 50), snap.Percentile(stats.HistFanout, 99))
	return snap
}

// TestGenericRelay drives a clean relay: every published message comes back to its sender, every
// receipt is in order, fan-out latency is measured for every member of the room.
func TestGenericRelay(t *testing.T) {
	snap := runRelay(t, relayServer(t, relayFaults{}), relaySpec())
	sent := snap.Counter(stats.CtrMessagesSent)
	if sent < 200 {
		t.Fatalf("only %d messages sent", sent)
	}
	if got := snap.Counter(CtrDelivered); got != sent {
		t.Errorf("%d delivered of %d sent (lost %d, late %d, unconfirmed %d)", got, sent, snap.Counter(CtrLost), snap.Counter(CtrLate), snap.Counter(CtrUnconfirmed))
	}
	for _, c := range []string{stats.CtrOrderViolations, stats.CtrDuplicates, stats.CtrGaps, CtrLost} {
		if n := snap.Counter(c); n != 0 {
			t.Errorf("%s = %d on a clean relay", c, n)
		}
	}
	// 10 members per room: each message reaches 10 receivers (fewer at the start, while the
	// room's members are still subscribing).
	if got := snap.Count(stats.HistFanout); got > 10*sent || got < 9*sent {
		t.Errorf("%d fan-out receipts for %d messages to rooms of 10", got, sent)
	}
	if snap.Count(stats.HistAppPingRTT) == 0 {
		t.Error("no application ping answered")
	}
}

// TestGenericRelayFaults checks that each defect of a relay shows in its own figure.
func TestGenericRelayFaults(t *testing.T) {
	tests := []struct {
		name   string
		faults relayFaults
		want   []string // counters that must be above 0
	}{
		{"drops", relayFaults{drop: 10}, []string{CtrLost, stats.CtrGaps}},
		{"duplicates", relayFaults{dup: 7}, []string{stats.CtrDuplicates}},
		{"swaps", relayFaults{swap: 9}, []string{stats.CtrOrderViolations}},
		{"swaps batched", relayFaults{swap: 9, batch: true}, []string{stats.CtrOrderViolations}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := runRelay(t, relayServer(t, tt.faults), relaySpec())
			for _, c := range tt.want {
				if snap.Counter(c) == 0 {
					t.Errorf("%s = 0", c)
				}
			}
			sent := snap.Counter(stats.CtrMessagesSent)
			accounted := snap.Counter(CtrDelivered) + snap.Counter(CtrLate) + snap.Counter(CtrLost) + snap.Counter(CtrUnconfirmed)
			if accounted != sent {
				t.Errorf("%d messages accounted for (delivered, late, lost, unconfirmed) of %d sent", accounted, sent)
			}
		})
	}
}

// TestGenericProbe checks that the probe accepts the relay and refuses a server that speaks
// something else, naming target.protocol.
func TestGenericProbe(t *testing.T) {
	url := relayServer(t, relayFaults{})
	tgt := Target{Endpoints: []Endpoint{{URL: url}}, Protocol: ProtocolSpec{Name: ProtocolGeneric, Generic: relaySpec()}}
	if err := Probe(context.Background(), tgt, tgt.Endpoints[0]); err != nil {
		t.Fatalf("probe of the relay: %v", err)
	}
	wrong := relaySpec()
	wrong.Publish = `{"op":"publish","channel":"{{.Room}}","data":{{.Payload}}}`
	tgt.Protocol.Generic = wrong
	start := time.Now()
	err := Probe(context.Background(), tgt, tgt.Endpoints[0])
	if err == nil || !strings.Contains(err.Error(), "target.protocol") {
		t.Fatalf("probe with a publish the relay ignores: %v", err)
	}
	if d := time.Since(start); d > ProbeTimeout {
		t.Errorf("probe took %v", d)
	}
}

func TestProtocolSpecsRejected(t *testing.T) {
	pub := `{"room":"{{.Room}}","data":{{.Payload}}}`
	tests := []struct {
		name string
		spec ProtocolSpec
		want string
	}{
		{"no payload", ProtocolSpec{Name: ProtocolGeneric, Generic: &GenericSpec{Publish: `{"op":"publish"}`}}, "must place {{.Payload}}"},
		{"bad template", ProtocolSpec{Name: ProtocolGeneric, Generic: &GenericSpec{Publish: `{"d":{{.Payload}"}`}}, "publish template"},
		{"bad hello template", ProtocolSpec{Name: ProtocolGeneric, Generic: &GenericSpec{Publish: pub, Hello: []string{"{{.Nope"}}}, "hello[0] template"},
		{"bad path", ProtocolSpec{Name: ProtocolGeneric, Generic: &GenericSpec{Publish: pub, Delivery: GenericMatch{Payload: "a[x]"}}}, "delivery.payload"},
		{"ack without id", ProtocolSpec{Name: ProtocolGeneric, Generic: &GenericSpec{Publish: pub, Ack: GenericMatch{Match: map[string]string{"type": "ack"}}}}, "ack: match and id go together"},
		{"ping without pong", ProtocolSpec{Name: ProtocolGeneric, Generic: &GenericSpec{Publish: pub, Ping: "ping"}}, "needs a pong matcher"},
		{"bad batch", ProtocolSpec{Name: ProtocolGeneric, Generic: &GenericSpec{Publish: pub, Batch: "comma"}}, `batch "comma"`},
		{"generic without settings", ProtocolSpec{Name: ProtocolGeneric}, "no settings"},
		{"squall with generic settings", ProtocolSpec{Generic: &GenericSpec{Publish: pub}}, "protocol squall: takes no generic settings"},
		{"unknown", ProtocolSpec{Name: "mqtt"}, `protocol "mqtt": unknown`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewProtocol(tt.spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := URLTarget("http://127.0.0.1:1/x"); err == nil {
		t.Error("an http:// target was accepted")
	}
}
