package loadgen

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/loadgen/stats"
)

// echoServer answers every text frame with {"type":"echo","id":<the frame's id>} and counts the
// subscribe frames it saw.
func echoServer(t *testing.T) (url string, subscribes *atomic.Int64) {
	subscribes = new(atomic.Int64)
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var m struct {
				Op, ID string
			}
			if json.Unmarshal(b, &m) != nil {
				continue
			}
			if m.Op == "subscribe" {
				subscribes.Add(1)
				continue
			}
			out, _ := json.Marshal(map[string]string{"type": "echo", "id": m.ID})
			if ws.WriteMessage(websocket.TextMessage, out) != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/socket", subscribes
}

func TestGenericAdapter(t *testing.T) {
	url, subscribes := echoServer(t)
	g := Target{Endpoints: []Endpoint{{URL: url}}, Protocol: ProtocolSpec{Name: ProtocolGeneric, Generic: &GenericSpec{
		OnConnect: []string{`{"op":"subscribe","channel":"{{.Room}}","user":"{{.User}}"}`},
		Send:      `{"op":"publish","id":"{{.ID}}","at":{{.Time}}}`,
	}}}
	p := Plan{Name: "generic", Seed: 1,
		Cohorts:          []Cohort{{Name: "g", Count: 20, Behaviour: Behaviour{SendInterval: 50 * time.Millisecond}}},
		Phases:           []Phase{{Kind: PhaseRamp}, {Kind: PhaseHold, Duration: time.Second}, {Kind: PhaseRampDown}},
		ScheduleLagBound: 5 * time.Second,
	}
	rec := stats.NewRecorder(time.Now())
	if _, err := RunLocal(context.Background(), p, g, rec, RunOptions{}); err != nil {
		t.Fatal(err)
	}
	snap := rec.Snapshot()
	t.Logf("counters %v; echo p50 %v p99 %v", snap.Counters, snap.Percentile(HistEcho, 50), snap.Percentile(HistEcho, 99))
	if got := subscribes.Load(); got != 20 {
		t.Errorf("server saw %d subscribe frames, want 20", got)
	}
	sent := snap.Counter(stats.CtrMessagesSent)
	if sent < 200 {
		t.Errorf("only %d messages sent", sent)
	}
	// Messages still in flight when the clients closed are not echoed.
	if got := snap.Count(HistEcho); got < sent-40 || got > sent {
		t.Errorf("%d echoes correlated for %d sent", got, sent)
	}
}

func TestProtocolSpecsRejected(t *testing.T) {
	tests := []struct {
		name string
		spec ProtocolSpec
		want string
	}{
		{"no correlation id", ProtocolSpec{Name: ProtocolGeneric, Generic: &GenericSpec{Send: `{"op":"publish"}`}}, "must contain {{.ID}}"},
		{"bad template", ProtocolSpec{Name: ProtocolGeneric, Generic: &GenericSpec{Send: `{"id":"{{.ID}"}`}}, "send template"},
		{"bad connect template", ProtocolSpec{Name: ProtocolGeneric, Generic: &GenericSpec{Send: `{{.ID}}`, OnConnect: []string{"{{.Nope"}}}, "on_connect[0]"},
		{"generic without settings", ProtocolSpec{Name: ProtocolGeneric}, "no settings"},
		{"squall with generic settings", ProtocolSpec{Generic: &GenericSpec{Send: `{{.ID}}`}}, "takes no generic settings"},
		{"unknown", ProtocolSpec{Name: "mqtt"}, `protocol "mqtt": unknown (want generic or squall)`},
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
