package refserver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/refserver/protocol"
)

// TestNbioChurnCutsNoHealthyConnection opens and closes many short-lived connections concurrently
// on the nbio transport, ending them in the ways that make the gateway close a socket while the
// poller may still hold an event of it (the client's close frame followed at once by its FIN, or
// by a reset; a frame that breaks the protocol), so that descriptor numbers are reused at a high
// rate. Every connection must get its welcome and the answer to its ping before it ends itself: a
// healthy connection cut by the stale event of the descriptor's previous owner fails the test.
func TestNbioChurnCutsNoHealthyConnection(t *testing.T) {
	cfg := testConfig()
	cfg.IO = IONbio
	cfg.MaxConnsPerIP = -1
	cfg.AcceptRate = -1
	cfg.CloseGrace = 200 * time.Millisecond
	ts := startServer(t, cfg)

	const workers, perWorker = 20, 250 // 5 000 connections
	deadline := time.Now().Add(90 * time.Second)
	var wg sync.WaitGroup
	var done atomic.Int64
	var mu sync.Mutex
	var cut []string
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				if time.Now().After(deadline) {
					return
				}
				if err := churnOnce(ts, fmt.Sprintf("churn-%d-%d", w, i), (w+i)%3); err != nil {
					mu.Lock()
					cut = append(cut, err.Error())
					mu.Unlock()
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := done.Load(); n < workers*perWorker/2 {
		t.Errorf("only %d of %d connections ran before the deadline", n, workers*perWorker)
	}
	if len(cut) > 0 {
		t.Errorf("%d of %d healthy connections were cut; first: %s", len(cut), done.Load(), strings.Join(cut[:min(3, len(cut))], "; "))
	}
	waitFor(t, 10*time.Second, "every connection cleaned up", func() bool {
		st := ts.Stats()
		return st.ActiveConns == 0 && st.RegisteredConns == 0
	})
}

// churnOnce runs one connection: welcome, a ping answered, then it ends the way given by ending
// (0: close frame then FIN at once; 1: close frame then a reset; 2: a malformed frame, answered
// with an error frame, then a close frame and FIN).
func churnOnce(ts *testServer, user string, ending int) error {
	tok, err := protocol.SignToken([]byte(testSecret), user, time.Now().Add(time.Hour))
	if err != nil {
		return err
	}
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.Dial(ts.wsURL(tok), nil)
	if err != nil {
		return fmt.Errorf("%s: dial: %w", user, err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := readUntil(ws, protocol.TypeWelcome); err != nil {
		return fmt.Errorf("%s: before welcome: %w", user, err)
	}
	ping, _ := protocol.Encode(&protocol.Frame{Type: protocol.TypePing, Timestamp: 1})
	if err := ws.WriteMessage(websocket.TextMessage, ping); err != nil {
		return fmt.Errorf("%s: write ping: %w", user, err)
	}
	if err := readUntil(ws, protocol.TypePong); err != nil {
		return fmt.Errorf("%s: before pong: %w", user, err)
	}
	switch ending {
	case 0:
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	case 1:
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		if tc, ok := ws.NetConn().(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a reset instead of a FIN
		}
	default:
		_ = ws.WriteMessage(websocket.TextMessage, []byte("{not json")) // answered with an error frame
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""), time.Now().Add(time.Second))
	}
	return nil
}

// readUntil reads frames until one of type typ, or fails with what ended the connection.
func readUntil(ws *websocket.Conn, typ protocol.Type) error {
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return err
		}
		f, err := protocol.Decode(data, protocol.ServerToClient)
		if err != nil {
			return err
		}
		if f.Type == typ {
			return nil
		}
	}
}

// TestNbioFloodingClientSlowedByTCP: a client that sends requests as fast as it can and reads
// nothing is slowed down by TCP on the nbio transport — its replies fill the send queue, frame
// handling pauses, reading stops and its writes block — instead of being read on and closed as a
// slow consumer of its own replies. Once it reads, it gets its replies and the connection lives.
func TestNbioFloodingClientSlowedByTCP(t *testing.T) {
	cfg := testConfig()
	cfg.IO = IONbio
	cfg.SendQueue = 16
	cfg.SocketBuffer = 32 << 10
	cfg.HeartbeatInterval = 5 * time.Second
	cfg.HeartbeatTimeout = 30 * time.Second
	cfg.WriteTimeout = 10 * time.Second
	ts := startServer(t, cfg)

	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, NetDialContext: (&net.Dialer{
		Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) {
				_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 32<<10)
				_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 32<<10)
			})
		},
	}).DialContext}
	ws, _, err := d.Dial(ts.wsURL(mintToken(t, "flooder")), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := readUntil(ws, protocol.TypeWelcome); err != nil {
		t.Fatal(err)
	}

	ping, _ := protocol.Encode(&protocol.Frame{Type: protocol.TypePing, Timestamp: 1})
	const most = 400000 // ~20 MB of frames: far more than every buffer on the way holds
	sent := 0
	var werr error
	for ; sent < most; sent++ {
		_ = ws.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if werr = ws.WriteMessage(websocket.TextMessage, ping); werr != nil {
			break
		}
	}
	var ne net.Error
	if !errors.As(werr, &ne) || !ne.Timeout() {
		t.Fatalf("after %d requests the client's write ended with %v, want a timeout (the gateway stopped reading)", sent, werr)
	}
	// The client reads now: replies come, and no close.
	_ = ws.SetReadDeadline(time.Now().Add(time.Second))
	pongs := 0
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				t.Fatalf("closed with %d %q after %d replies, want the connection to live", ce.Code, ce.Text, pongs)
			}
			break // the read deadline: what the gateway had queued is read
		}
		if f, err := protocol.Decode(data, protocol.ServerToClient); err == nil && f.Type == protocol.TypePong {
			pongs++
		}
	}
	if pongs == 0 {
		t.Errorf("no reply read after %d requests", sent)
	}
	t.Logf("%d requests written before the write blocked, %d replies read", sent, pongs)
}

// TestNbioCarries: the engine takes plain TCP sockets over (under the per-IP cap's wrapper too);
// TLS connections and other wrappers stay on the goroutine transport.
func TestNbioCarries(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	pipe, other := net.Pipe()
	defer pipe.Close()
	defer other.Close()
	for _, tc := range []struct {
		name string
		nc   net.Conn
		want bool
	}{
		{"tcp", server, true},
		{"tcp under the per-IP cap", &cappedConn{Conn: server, release: func() {}}, true},
		{"tls", tls.Server(server, &tls.Config{}), false},
		{"not a socket", pipe, false},
	} {
		if got := nbioCarries(tc.nc); got != tc.want {
			t.Errorf("%s: nbioCarries = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestJobRunners: lists run on the runners, a list that finds every runner busy still runs (on a
// goroutine of its own), stop waits for the runners, and lists given after stop still run.
func TestJobRunners(t *testing.T) {
	r := newJobRunners(2)
	release := make(chan struct{})
	started := make(chan int, 3)
	for i := range 3 { // two occupy the runners (or goroutines), the third must not wait for them
		r.execute(func() { started <- i; <-release })
	}
	seen := map[int]bool{}
	for range 3 {
		select {
		case i := <-started:
			seen[i] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("only %v started: a list waited for a busy runner", seen)
		}
	}
	close(release)
	r.stop()
	ran := make(chan struct{})
	r.execute(func() { close(ran) })
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("a list given after stop did not run")
	}
}
