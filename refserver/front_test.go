package refserver

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/refserver/protocol"
)

// frontFixture is a gateway whose listener is a wsFront, with the HTTP server behind it counting
// the requests it serves (those the front did not take).
type frontFixture struct {
	srv     *Server
	addr    string
	viaHTTP atomic.Int64
}

func startFront(t *testing.T) *frontFixture {
	t.Helper()
	cfg := testConfig()
	cfg.IO = IONbio
	srv, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fx := &frontFixture{srv: srv, addr: ln.Addr().String()}
	f := newWSFront(srv, ln)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fx.viaHTTP.Add(1)
		srv.handler.ServeHTTP(w, r)
	}), ReadHeaderTimeout: headerTimeout}
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(f) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = hs.Close()
		<-done
	})
	return fx
}

// dialTCP opens a plain TCP connection to the gateway, closed with the test, every read and write
// bounded by 5 s.
func (fx *frontFixture) dialTCP(t *testing.T) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", fx.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	return nc
}

func (fx *frontFixture) wsURL(token string) string {
	return "ws://" + fx.addr + protocol.PathWS + "?" + protocol.TokenQueryParam + "=" + token
}

// TestFrontServesUpgrades: an upgrade of /ws is served by the front (the HTTP server never sees
// it) and the connection works; one the front cannot take whole (a head over its bound) still
// upgrades through the HTTP server.
func TestFrontServesUpgrades(t *testing.T) {
	fx := startFront(t)
	for _, tc := range []struct {
		name    string
		header  http.Header
		viaHTTP int64
	}{
		{name: "plain upgrade", viaHTTP: 0},
		{name: "head over the front's bound", header: http.Header{"X-Pad": {strings.Repeat("p", maxFrontHead)}}, viaHTTP: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := fx.viaHTTP.Load()
			ws, resp, err := websocket.DefaultDialer.Dial(fx.wsURL(mintToken(t, "u-"+strings.ReplaceAll(tc.name, " ", "-"))), tc.header)
			if err != nil {
				t.Fatalf("dial: %v (response %v)", err, resp)
			}
			defer ws.Close()
			_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, msg, err := ws.ReadMessage()
			if err != nil {
				t.Fatalf("read welcome: %v", err)
			}
			if !strings.Contains(string(msg), `"welcome"`) {
				t.Fatalf("first frame %s, want welcome", msg)
			}
			if got := fx.viaHTTP.Load() - before; got != tc.viaHTTP {
				t.Errorf("requests through the HTTP server: %d, want %d", got, tc.viaHTTP)
			}
		})
	}
}

// TestFrontSendsUpgradeWithWelcome: with the token in the URL, the 101 is held and goes out in one
// write with the welcome, so the client's first read holds both; without a token the 101 goes out
// at once (the client's hello follows it) and the welcome answers the hello.
func TestFrontSendsUpgradeWithWelcome(t *testing.T) {
	fx := startFront(t)
	const request = "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

	nc := fx.dialTCP(t)
	path := protocol.PathWS + "?" + protocol.TokenQueryParam + "=" + mintToken(t, "held")
	if _, err := io.WriteString(nc, fmt.Sprintf(request, path)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := nc.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	head, rest, ok := strings.Cut(string(buf[:n]), "\r\n\r\n")
	if !ok || !strings.HasPrefix(head, "HTTP/1.1 101 ") {
		t.Fatalf("first read %q: want the 101's head", buf[:n])
	}
	if !strings.Contains(rest, `"type":"welcome"`) {
		t.Fatalf("first read holds the 101 and %q: want the welcome in the same write", rest)
	}

	nc = fx.dialTCP(t)
	if _, err := io.WriteString(nc, fmt.Sprintf(request, protocol.PathWS)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade without a token: %v, %v", resp, err)
	}
	if br.Buffered() != 0 {
		t.Fatalf("%d bytes after the 101 before the hello", br.Buffered())
	}
}

// TestFrontHandsOtherRequestsToHTTP: other requests reach the HTTP server with the bytes the front
// read, and keep-alive works.
func TestFrontHandsOtherRequestsToHTTP(t *testing.T) {
	fx := startFront(t)
	nc := fx.dialTCP(t)
	br := bufio.NewReader(nc)
	for i := range 2 {
		if _, err := io.WriteString(nc, "GET "+protocol.PathHealthz+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "ok\n" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if got := fx.viaHTTP.Load(); got != 2 {
		t.Errorf("requests through the HTTP server: %d, want 2", got)
	}
}

// TestFrontAnswersRefusals: an upgrade the gateway refuses is answered by the front as the HTTP
// server would (status, headers, body), then the connection is closed.
func TestFrontAnswersRefusals(t *testing.T) {
	fx := startFront(t)
	nc := fx.dialTCP(t)
	req := "GET " + protocol.PathWS + " HTTP/1.1\r\nHost: " + fx.addr + "\r\nOrigin: https://elsewhere.example\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || strings.TrimSpace(string(body)) != protocol.ReasonOrigin {
		t.Fatalf("got %d %q, want 403 %q", resp.StatusCode, body, protocol.ReasonOrigin)
	}
	if resp.Header.Get("Content-Type") == "" || !resp.Close {
		t.Errorf("headers %v, close %v: want a content type and the connection closed", resp.Header, resp.Close)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after the answer: %v, want EOF", err)
	}
	if got := fx.viaHTTP.Load(); got != 0 {
		t.Errorf("requests through the HTTP server: %d, want 0", got)
	}
}

// TestFrontDropsIncompleteHeads: a connection that goes before its head is whole is closed, and one
// that sends nothing is closed with the gateway (the leak check of TestMain sees no reader left).
func TestFrontDropsIncompleteHeads(t *testing.T) {
	var silent net.Conn
	t.Cleanup(func() { // after the gateway's cleanup, which is what must end the silent one's reader
		if silent != nil {
			silent.Close()
		}
	})
	fx := startFront(t)
	partial, err := net.Dial("tcp", fx.addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(partial, "GET /ws HTTP/1.1\r\nHost: x\r\n")
	_ = partial.(*net.TCPConn).CloseWrite()
	_ = partial.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := partial.Read(make([]byte, 64)); n != 0 || err != io.EOF {
		t.Errorf("partial head: read %d, %v; want the connection closed without an answer", n, err)
	}
	partial.Close()
	if silent, err = net.Dial("tcp", fx.addr); err != nil {
		t.Fatal(err)
	}
}
