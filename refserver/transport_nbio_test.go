package refserver

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
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
