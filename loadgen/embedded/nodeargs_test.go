package embedded

import (
	"context"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/refserver"
)

// TestNodeArgsRoundTrip checks that a child node reads back what NodeArgs writes (the settings and
// the log level); refserver's TestArgsRoundTrip covers every field.
func TestNodeArgsRoundTrip(t *testing.T) {
	cfg := refserver.Config{HeartbeatInterval: 1234 * time.Millisecond, Flaws: refserver.Flaws{refserver.FlawNoDrain: true}, AllowedOrigins: []string{"http://a"}}
	got, level, format, err := parseNodeArgs(NodeArgs(cfg), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got.HeartbeatInterval != cfg.HeartbeatInterval || !got.Flaws.Has(refserver.FlawNoDrain) || len(got.AllowedOrigins) != 1 ||
		got.AcceptBurst != refserver.DefaultConfig().AcceptBurst || level != "warn" || format != "text" {
		t.Errorf("read back %+v at %s/%s", got, level, format)
	}
}

// TestChildNodeTakesAdmissionSettings starts a child-process node with a two-token admission
// bucket that hardly refills: the third attempt is shed (503), which a node running on the default
// bucket (1 000 tokens) would not do.
func TestChildNodeTakesAdmissionSettings(t *testing.T) {
	cfg := refserver.Config{AcceptRate: 0.001, AcceptBurst: 2, AuthLatency: 10 * time.Millisecond, SessionTTL: 3 * time.Second}
	e := startEmbedded(t, Options{Process: true, Config: cfg})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var codes []int
	for range 3 {
		ws, resp, err := websocket.DefaultDialer.DialContext(ctx, e.Nodes()[0].URL(), nil)
		if ws != nil {
			ws.Close()
		}
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		codes = append(codes, resp.StatusCode)
	}
	want := []int{http.StatusSwitchingProtocols, http.StatusSwitchingProtocols, http.StatusServiceUnavailable}
	if !slices.Equal(codes, want) {
		t.Errorf("three upgrades: %v, want %v (admitted, admitted, shed)", codes, want)
	}
}
