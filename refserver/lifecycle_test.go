package refserver

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/refserver/protocol"
)

// rawClient is a minimal client for tests that run many connections from goroutines: it returns
// errors instead of failing the test.
type rawClient struct {
	ws  *websocket.Conn
	seq uint64
}

func rawDial(ts *testServer, token string, localIP string) (*rawClient, error) {
	ws, _, err := dialRaw(ts, token, dialOpts{localIP: localIP})
	if err != nil {
		return nil, err
	}
	return &rawClient{ws: ws}, nil
}

func (c *rawClient) send(f protocol.Frame) error {
	b, err := protocol.Encode(&f)
	if err != nil {
		return err
	}
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

// until reads frames until match returns true.
func (c *rawClient) until(timeout time.Duration, match func(protocol.Frame) bool) error {
	_ = c.ws.SetReadDeadline(time.Now().Add(timeout))
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return err
		}
		f, err := protocol.Decode(data, protocol.ServerToClient)
		if err != nil {
			return err
		}
		if match(f) {
			return nil
		}
	}
}

// closeCode reads until the connection ends and returns the close code (1006 without a frame) and
// the error that ended the read.
func (c *rawClient) closeCode(timeout time.Duration) (int, error) {
	timeout += 5 * time.Second // heartbeat timeouts take up to 4 s in this test
	_ = c.ws.SetReadDeadline(time.Now().Add(timeout))
	for {
		if _, _, err := c.ws.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code, err
			}
			return int(protocol.CloseAbnormal), err
		}
	}
}

// hello connects user, waits for welcome and joins the given rooms.
func hello(ts *testServer, user, localIP string, rooms ...string) (*rawClient, error) {
	tok, err := protocol.SignToken([]byte(testSecret), user, time.Now().Add(time.Hour))
	if err != nil {
		return nil, err
	}
	c, err := rawDial(ts, tok, localIP)
	if err != nil {
		return nil, err
	}
	if err := c.until(5*time.Second, func(f protocol.Frame) bool { return f.Type == protocol.TypeWelcome }); err != nil {
		c.ws.Close()
		return nil, fmt.Errorf("welcome: %w", err)
	}
	for _, r := range rooms {
		c.seq++
		if err := c.send(protocol.Frame{Type: protocol.TypeJoinRoom, RoomID: r, Seq: c.seq}); err != nil {
			c.ws.Close()
			return nil, err
		}
	}
	last := c.seq
	if err := c.until(5*time.Second, func(f protocol.Frame) bool { return f.Type == protocol.TypeAck && f.Seq == last }); err != nil {
		c.ws.Close()
		return nil, fmt.Errorf("joins: %w", err)
	}
	return c, nil
}

type ending struct {
	name  string
	count int
	run   func(ts *testServer, i int) error
}

func twoRooms(i int) []string {
	return []string{fmt.Sprint("room-", i%10), fmt.Sprint("room-", (i+3)%10)}
}

// endings are the ways a connection can end, each with how many of the 1 000 connections take it.
func endings() []ending {
	expectCode := func(c *rawClient, want protocol.CloseCode) error {
		if got, err := c.closeCode(5 * time.Second); got != int(want) {
			return fmt.Errorf("closed with %d, want %d (%v)", got, want, err)
		}
		return nil
	}
	return []ending{
		{"close frame", 199, func(ts *testServer, i int) error {
			c, err := hello(ts, fmt.Sprint("cf-", i), "", twoRooms(i)...)
			if err != nil {
				return err
			}
			defer c.ws.Close()
			_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "bye"), time.Now().Add(time.Second))
			return expectCode(c, protocol.CloseNormal)
		}},
		{"TCP close without close frame", 200, func(ts *testServer, i int) error {
			c, err := hello(ts, fmt.Sprint("tcp-", i), "", twoRooms(i)...)
			if err != nil {
				return err
			}
			return c.ws.Close()
		}},
		{"TCP reset (read error)", 150, func(ts *testServer, i int) error {
			c, err := hello(ts, fmt.Sprint("rst-", i), "", twoRooms(i)...)
			if err != nil {
				return err
			}
			tcp := c.ws.NetConn().(*net.TCPConn)
			_ = tcp.SetLinger(0)
			return tcp.Close()
		}},
		{"protocol error (read error)", 100, func(ts *testServer, i int) error {
			c, err := hello(ts, fmt.Sprint("proto-", i), "", twoRooms(i)...)
			if err != nil {
				return err
			}
			defer c.ws.Close()
			// A masked frame with a reserved opcode.
			if _, err := c.ws.NetConn().Write([]byte{0x83, 0x80, 1, 2, 3, 4}); err != nil {
				return err
			}
			return expectCode(c, websocket.CloseProtocolError)
		}},
		{"frame too large", 50, func(ts *testServer, i int) error {
			c, err := hello(ts, fmt.Sprint("big-", i), "", twoRooms(i)...)
			if err != nil {
				return err
			}
			defer c.ws.Close()
			_ = c.ws.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("y"), 100<<10))
			return expectCode(c, protocol.CloseTooLarge)
		}},
		{"heartbeat timeout", 100, func(ts *testServer, i int) error {
			c, err := hello(ts, fmt.Sprint("silent-", i), "", twoRooms(i)...)
			if err != nil {
				return err
			}
			defer c.ws.Close()
			c.ws.SetPingHandler(func(string) error { return nil }) // never answer
			return expectCode(c, protocol.CloseAbnormal)
		}},
		{"seq violation", 100, func(ts *testServer, i int) error {
			c, err := hello(ts, fmt.Sprint("gap-", i), "", twoRooms(i)...)
			if err != nil {
				return err
			}
			defer c.ws.Close()
			if err := c.send(protocol.Frame{Type: protocol.TypeBroadcast, RoomID: twoRooms(i)[0], Seq: c.seq + 2, Data: []byte("1")}); err != nil {
				return err
			}
			return expectCode(c, protocol.CloseSeqViolation)
		}},
		{"conn limit kick (6 per user)", 96, func(ts *testServer, i int) error {
			if i%6 != 0 {
				return nil // one runner per group of six
			}
			user := fmt.Sprint("multi-", i)
			var group []*rawClient
			defer func() {
				for _, c := range group {
					c.ws.Close()
				}
			}()
			for k := 0; k < 5; k++ {
				c, err := hello(ts, user, "", twoRooms(i+k)...)
				if err != nil {
					return err
				}
				group = append(group, c)
			}
			tok, _ := protocol.SignToken([]byte(testSecret), user, time.Now().Add(time.Hour))
			c, err := rawDial(ts, tok, "")
			if err != nil {
				return err
			}
			defer c.ws.Close()
			if err := expectCode(c, protocol.ClosePolicy); err != nil {
				return err
			}
			for _, g := range group[:2] { // some leave with a close frame, the rest just drop
				_ = g.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
				_, _ = g.closeCode(5 * time.Second)
			}
			return nil
		}},
		{"slow consumer (write path)", 5, func(ts *testServer, i int) error {
			if i != 0 {
				return nil
			}
			var slow []*rawClient
			defer func() {
				for _, c := range slow {
					c.ws.Close()
				}
			}()
			for k := 0; k < 4; k++ {
				c, err := hello(ts, fmt.Sprint("slow-", k), "", "flood")
				if err != nil {
					return err
				}
				slow = append(slow, c) // never read again
			}
			sender, err := hello(ts, "flooder", "", "flood")
			if err != nil {
				return err
			}
			defer sender.ws.Close()
			readErr := make(chan error, 1)
			go func() { // the sender drains its own copy
				readErr <- sender.until(30*time.Second, func(f protocol.Frame) bool {
					return f.Type == protocol.TypePresence && f.Event == protocol.PresenceLeave && f.UserID == "slow-3"
				})
			}()
			payload := []byte(`"` + strings.Repeat("z", 50<<10) + `"`)
			for k := 0; k < 400; k++ {
				sender.seq++
				if err := sender.send(protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "flood", Seq: sender.seq, Data: payload}); err != nil {
					return fmt.Errorf("flooder's broadcast %d: %w (its reader: %v)", k, err, <-readErr)
				}
				select {
				case err := <-readErr:
					if err != nil {
						return fmt.Errorf("flooder: %w", err)
					}
					return nil
				default:
				}
			}
			if err := <-readErr; err != nil {
				return fmt.Errorf("slow consumers not cut: %w", err)
			}
			return nil
		}},
	}
}

// settledGoroutines returns the goroutine count once the server accepts and nothing else runs.
func settledGoroutines(t *testing.T, ts *testServer) int {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Get("http://" + ts.addr + protocol.PathHealthz)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	hc.CloseIdleConnections()
	n := runtime.NumGoroutine()
	for i := 0; i < 20; i++ {
		time.Sleep(5 * time.Millisecond)
		n = min(n, runtime.NumGoroutine())
	}
	return n
}

// Acceptance: after 1 000 connections that end in every way, ws_connections_active,
// ws_room_subscriptions and ws_orphaned_subscriptions return to 0 and the goroutine count returns to
// its baseline.
func TestThousandConnectionsEndingEveryWay(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConnsPerIP = -1
	cfg.SendQueue = 128
	// Generous heartbeats: clients that pause reading for a while on a loaded machine (the groups
	// of six below) must not be cut; the silent ones still end by timeout within a few seconds.
	cfg.HeartbeatInterval = time.Second
	cfg.HeartbeatTimeout = 3 * time.Second
	// Sessions outlive their connections for session-ttl (with one sweeper goroutine while any
	// waits); a short TTL lets the goroutine count return to its baseline at the end.
	cfg.SessionTTL = 500 * time.Millisecond
	ts := startServer(t, cfg)
	baseline := settledGoroutines(t, ts)

	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	var mu sync.Mutex
	failures := map[string][]string{}
	total := 0
	for _, e := range endings() {
		total += e.count
		for i := 0; i < e.count; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if err := e.run(ts, i); err != nil {
					mu.Lock()
					failures[e.name] = append(failures[e.name], err.Error())
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if total != 1000 {
		t.Fatalf("the endings add up to %d connections, want 1000", total)
	}
	for name, errs := range failures {
		t.Errorf("%s: %d failures, first: %s", name, len(errs), errs[0])
	}

	waitFor(t, 5*time.Second, "every connection cleaned up", func() bool {
		st := ts.Stats()
		return st.ActiveConns == 0 && st.Subscriptions == 0 && st.OrphanedSubscriptions == 0 &&
			st.PresenceEntries == 0 && st.Sessions == 0 && st.QueueDepth == 0 && st.RegisteredConns == 0 &&
			scanOrphaned(ts.Server) == 0
	})
	for _, name := range []string{protocol.MetricConnectionsActive, protocol.MetricRoomSubscriptions,
		protocol.MetricOrphanedSubscriptions, protocol.MetricPresenceEntries, protocol.MetricSendQueueDepth} {
		if v := counterValue(t, ts.Server, name, nil); v != 0 {
			t.Errorf("%s = %v, want 0", name, v)
		}
	}
	for _, code := range []string{"1000", "1002", "1006", "1008", "1009", "4003"} {
		if v := counterValue(t, ts.Server, protocol.MetricDisconnectsTotal, map[string]string{"code": code}); v == 0 {
			t.Errorf("%s{code=%s} = 0: that ending did not happen", protocol.MetricDisconnectsTotal, code)
		}
	}
	if v := counterValue(t, ts.Server, protocol.MetricHeartbeatTimeouts, nil); v < 100 {
		t.Errorf("heartbeat timeouts %v, want >= 100", v)
	}
	if v := counterValue(t, ts.Server, protocol.MetricConnectionsTotal, nil); v != 1000 {
		t.Errorf("%s = %v, want 1000", protocol.MetricConnectionsTotal, v)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines %d, baseline %d:\n%s", runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
