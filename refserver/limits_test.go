package refserver

import (
	"net/http"
	"testing"
	"time"

	"github.com/squall-dev/squall/refserver/protocol"
)

// Acceptance: the 6th concurrent connection of one user is closed with 1008 conn_limit; closing one
// lets a new one in. Connections come from different source addresses so that only the per-user
// limit applies.
func TestPerUserConnLimit(t *testing.T) {
	ts := startServer(t, testConfig())
	var open []*client
	for i := 0; i < 5; i++ {
		c, _ := connect(t, ts, "alice", dialOpts{localIP: "127.0.0." + itoa(10+i)})
		open = append(open, c)
	}
	sixth := dialClient(t, ts, mintToken(t, "alice"), dialOpts{localIP: "127.0.0.20"})
	code, reason := sixth.expectClose(2 * time.Second)
	if code != int(protocol.ClosePolicy) || reason != protocol.ReasonConnLimit {
		t.Fatalf("6th connection closed with %d %q, want 1008 conn_limit", code, reason)
	}
	if got := counterValue(t, ts.Server, protocol.MetricConnRejectionsTotal, map[string]string{"reason": "conn_limit"}); got != 1 {
		t.Fatalf("rejections{conn_limit} = %v", got)
	}
	// Another user is not affected.
	connect(t, ts, "bob", dialOpts{localIP: "127.0.0.21"})

	if err := open[0].ws.WriteMessage(1, nil); err != nil { // keep the race detector honest about ws use
		t.Fatal(err)
	}
	open[0].expect(protocol.TypeError, time.Second) // the empty frame is malformed
	_ = open[0].ws.Close()
	// 4 of alice's + bob's; the kicked 6th and the closed one are gone.
	waitFor(t, 2*time.Second, "alice's first connection cleaned up", func() bool { return ts.Stats().ActiveConns == 5 })
	connect(t, ts, "alice", dialOpts{localIP: "127.0.0.22"})
}

func TestPerIPConnLimit(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConnsPerIP = 2
	ts := startServer(t, cfg)
	connect(t, ts, "u1", dialOpts{localIP: "127.0.0.30"})
	connect(t, ts, "u2", dialOpts{localIP: "127.0.0.30"})
	third := dialClient(t, ts, mintToken(t, "u3"), dialOpts{localIP: "127.0.0.30"})
	if code, reason := third.expectClose(2 * time.Second); code != int(protocol.ClosePolicy) || reason != protocol.ReasonConnLimit {
		t.Fatalf("3rd connection from one IP: %d %q", code, reason)
	}
	connect(t, ts, "u3", dialOpts{localIP: "127.0.0.31"})
}

func TestMaxConnsAnswers503BeforeUpgrade(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConns = 2
	cfg.MaxConnsPerIP = -1
	ts := startServer(t, cfg)
	connect(t, ts, "u1", dialOpts{})
	connect(t, ts, "u2", dialOpts{})
	_, resp, err := dialRaw(ts, mintToken(t, "u3"), dialOpts{})
	if err == nil {
		t.Fatal("third connection upgraded")
	}
	if resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("response %v, want 503 with Retry-After", resp)
	}
	if got := counterValue(t, ts.Server, protocol.MetricPoolUsageRatio, nil); got != 1 {
		t.Fatalf("pool usage %v, want 1", got)
	}
	if got := counterValue(t, ts.Server, "ws_pool_usage_alert", map[string]string{"threshold": "0.85"}); got != 1 {
		t.Fatalf("pool alert 0.85 = %v, want 1", got)
	}
}
