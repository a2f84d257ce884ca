package refserver

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/squall-dev/squall/refserver/protocol"
)

// Acceptance: a client that closes TCP without a close frame is announced as leave within 1 s.
func TestTCPCloseAnnouncedWithinOneSecond(t *testing.T) {
	cfg := testConfig()
	// The heartbeat is not under test: with the 600 ms test timeout a loaded machine could time bob
	// out (reason "timeout") before his TCP close was noticed.
	cfg.HeartbeatInterval = time.Second
	cfg.HeartbeatTimeout = 10 * time.Second
	ts := startServer(t, cfg)
	alice, _ := connect(t, ts, "alice", dialOpts{})
	alice.join("room")
	bob, _ := connect(t, ts, "bob", dialOpts{})
	bob.join("room")
	alice.expect(protocol.TypePresence, 10*time.Second)

	start := time.Now()
	_ = bob.ws.NetConn().Close() // no close frame
	p := alice.expectMatch(time.Second, "presence leave of bob", func(f protocol.Frame) bool {
		return f.Type == protocol.TypePresence && f.Event == protocol.PresenceLeave && f.UserID == "bob"
	})
	if p.Reason != protocol.ReasonClosed {
		t.Fatalf("leave reason %q, want %q", p.Reason, protocol.ReasonClosed)
	}
	t.Logf("leave announced %s after the TCP close", time.Since(start))
	waitFor(t, 10*time.Second, "stats back to one connection", func() bool {
		st := ts.Stats()
		return st.ActiveConns == 1 && st.Subscriptions == 1 && st.PresenceEntries == 1 && st.OrphanedSubscriptions == 0
	})
}

// Acceptance: a client that goes silent with TCP open (no pongs) is closed and announced within
// heartbeat-timeout + heartbeat-interval.
func TestSilentClientClosedWithinTimeoutPlusInterval(t *testing.T) {
	cfg := testConfig() // 200 ms interval, 600 ms timeout
	ts := startServer(t, cfg)
	alice, _ := connect(t, ts, "alice", dialOpts{})
	alice.join("room")
	silent, _ := connect(t, ts, "zombie", dialOpts{ignorePings: true})
	silent.join("room")
	lastSent := time.Now()
	alice.expect(protocol.TypePresence, time.Second)

	p := alice.expectMatch(3*time.Second, "presence leave of zombie", func(f protocol.Frame) bool {
		return f.Type == protocol.TypePresence && f.Event == protocol.PresenceLeave && f.UserID == "zombie"
	})
	took := time.Since(lastSent)
	if p.Reason != protocol.ReasonTimeout {
		t.Fatalf("leave reason %q, want %q", p.Reason, protocol.ReasonTimeout)
	}
	bound := cfg.HeartbeatTimeout + cfg.HeartbeatInterval
	if took < cfg.HeartbeatTimeout-50*time.Millisecond || took > bound+400*time.Millisecond {
		t.Fatalf("silent client announced after %s; want between %s and %s (+400ms scheduling margin)", took, cfg.HeartbeatTimeout, bound)
	}
	t.Logf("silent client announced %s after its last frame (bound %s)", took, bound)
	if code, _ := silent.expectClose(time.Second); code != int(protocol.CloseAbnormal) {
		t.Fatalf("silent client saw close %d, want the TCP drop (1006)", code)
	}
	if got := counterValue(t, ts.Server, protocol.MetricHeartbeatTimeouts, nil); got != 1 {
		t.Fatalf("%s = %v, want 1", protocol.MetricHeartbeatTimeouts, got)
	}
}

// A client that answers pings but sends nothing is never cut (no false disconnects), and the server
// pings it every interval.
func TestServerPingsKeepQuietClientAlive(t *testing.T) {
	cfg := testConfig()
	ts := startServer(t, cfg)
	var pings atomic.Int32
	quiet, _ := connect(t, ts, "quiet", dialOpts{onPing: func() { pings.Add(1) }})
	hold := 3 * cfg.HeartbeatTimeout
	if f, ok := quiet.next(hold); ok {
		t.Fatalf("unexpected frame %+v", f)
	}
	if n := pings.Load(); n < int32(hold/cfg.HeartbeatInterval)-3 {
		t.Fatalf("%d server pings in %s, want about %d", n, hold, hold/cfg.HeartbeatInterval)
	}
	quiet.send(protocol.Frame{Type: protocol.TypePing, Timestamp: 42})
	if f := quiet.expect(protocol.TypePong, time.Second); f.Timestamp != 42 {
		t.Fatalf("pong %+v", f)
	}
}

func TestWheelFirstPingJittered(t *testing.T) {
	cfg := testConfig().withDefaults()
	cfg.HeartbeatInterval = time.Second
	cfg.HeartbeatTimeout = 2 * time.Second
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := s.wheel
	now := time.Now()
	seen := map[int64]bool{}
	for i := 0; i < 50; i++ {
		c := &conn{s: s}
		c.touch()
		w.add(c, now)
		d := time.Duration(c.hbNextPing - now.UnixNano())
		if d < cfg.HeartbeatInterval/2 || d > cfg.HeartbeatInterval {
			t.Fatalf("first ping after %s, want within [%s, %s]", d, cfg.HeartbeatInterval/2, cfg.HeartbeatInterval)
		}
		seen[int64(d/(10*time.Millisecond))] = true
		c.gone.Store(true)
		w.remove(c)
	}
	if len(seen) < 10 {
		t.Fatalf("first pings not spread: %d distinct 10ms buckets of 50", len(seen))
	}
	w.stop()
	s.wg.Wait()
}

// Each way a connection ends maps to its presence leave reason, and only the ones without a close
// handshake count as abnormal (what leak-on-error fails to clean up).
func TestCauseMapping(t *testing.T) {
	tests := []struct {
		cause    cause
		reason   string
		abnormal bool
	}{
		{causeClientClose, protocol.ReasonClosed, false},
		{causeDropped, protocol.ReasonClosed, true},
		{causeReadError, protocol.ReasonError, true},
		{causeWriteError, protocol.ReasonError, true},
		{causeTimeout, protocol.ReasonTimeout, true},
		{causeKicked, protocol.ReasonKicked, false},
		{causeViolation, protocol.ReasonError, false},
	}
	for _, tt := range tests {
		if got := tt.cause.presenceReason(); got != tt.reason {
			t.Errorf("cause %d: reason %q, want %q", tt.cause, got, tt.reason)
		}
		if got := tt.cause.abnormal(); got != tt.abnormal {
			t.Errorf("cause %d: abnormal %v, want %v", tt.cause, got, tt.abnormal)
		}
	}
}
