package refserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/refserver/protocol"
)

// POST /admin/drain drains like SIGTERM: /readyz and /ws answer 503 meanwhile, every client gets
// 1001 with a hint, and Serve returns.
func TestDrainAdminEndpoint(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConnsPerIP = -1
	cfg.DrainSpread = 2 * time.Second
	srv, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), ln) }()
	ts := &testServer{Server: srv, addr: ln.Addr().String()}
	base := "http://" + ts.addr

	var clients []*client
	for i := 0; i < 3; i++ {
		c, _ := connect(t, ts, fmt.Sprint("u", i), dialOpts{})
		c.join("r")
		clients = append(clients, c)
	}
	// A client that reads nothing never answers the close: the drain waits close-grace for it,
	// long enough to see the node refuse work meanwhile.
	connect(t, ts, "mute", dialOpts{noReader: true})
	waitFor(t, 2*time.Second, "4 connections", func() bool { return ts.Stats().ActiveConns == 4 })

	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	httpGet(t, base+protocol.PathDrain, http.StatusMethodNotAllowed)
	resp, err := hc.Post(base+protocol.PathDrain, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || !strings.Contains(body.String(), `"connections":4`) {
		t.Fatalf("POST %s: %d %s", protocol.PathDrain, resp.StatusCode, body.String())
	}
	httpGet(t, base+protocol.PathReadyz, http.StatusServiceUnavailable)
	if _, resp, err := dialRaw(ts, mintToken(t, "late"), dialOpts{}); err == nil || resp.StatusCode != http.StatusServiceUnavailable ||
		resp.Header.Get("Retry-After") == "" {
		t.Fatalf("upgrade while draining: %v %+v", err, resp)
	}
	for _, c := range clients {
		code, reason := c.expectClose(2 * time.Second)
		if hint, ok := protocol.ParseRetryAfter(reason); code != int(protocol.CloseDraining) || !ok || hint <= 0 || hint > cfg.DrainSpread {
			t.Fatalf("closed with %d %q, want 1001 with a hint within %s", code, reason, cfg.DrainSpread)
		}
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve after the drain: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the drain")
	}
	if st := srv.Stats(); st != (Stats{}) {
		t.Fatalf("stats after the drain: %+v", st)
	}
}

// The admin endpoint wants the admin token when one is configured, and a loopback peer otherwise.
func TestDrainAdminAuth(t *testing.T) {
	tests := []struct {
		name   string
		token  string // configured
		header string // sent
		remote string
		want   bool
		origin string // Origin sent (a browser page)
		site   string // Sec-Fetch-Site sent
	}{
		{"loopback without token", "", "", "127.0.0.1:5000", true, "", ""},
		{"remote without token", "", "", "10.1.2.3:5000", false, "", ""},
		{"token required and given", "s3cret", "Bearer s3cret", "10.1.2.3:5000", true, "", ""},
		{"wrong token", "s3cret", "Bearer nope", "127.0.0.1:5000", false, "", ""},
		{"token required, none given", "s3cret", "", "127.0.0.1:5000", false, "", ""},
		{"loopback page of another origin", "", "", "127.0.0.1:5000", false, "http://evil.example", ""},
		{"loopback page, no Origin but fetch metadata", "", "", "127.0.0.1:5000", false, "", "cross-site"},
		{"loopback, typed by hand in the browser", "", "", "127.0.0.1:5000", true, "", "none"},
		{"page with the admin token", "s3cret", "Bearer s3cret", "127.0.0.1:5000", true, "http://ops.example", "cross-site"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.AdminToken = tt.token
			srv, err := New(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			r, _ := http.NewRequest(http.MethodPost, protocol.PathDrain, nil)
			r.RemoteAddr = tt.remote
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			if tt.site != "" {
				r.Header.Set("Sec-Fetch-Site", tt.site)
			}
			if got := srv.adminAllowed(r); got != tt.want {
				t.Fatalf("adminAllowed = %v, want %v", got, tt.want)
			}
		})
	}
}

// refserverPackage is the gateway's command, named by import path so that the build works from this
// package's directory.
const refserverPackage = "github.com/squall-dev/squall/cmd/refserver"

// buildRefserver builds the refserver binary (without the race detector) into a temporary directory.
func buildRefserver(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "refserver")
	build := exec.Command(filepath.Join(goRoot(), "bin", "go"), "build", "-o", bin, refserverPackage)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// gatewayProcess is a refserver child process.
type gatewayProcess struct {
	cmd    *exec.Cmd
	addr   string
	stderr *bytes.Buffer
	exited chan struct{}
	err    error // Wait's result, once exited is closed
}

func startGateway(t testing.TB, bin string, args ...string) *gatewayProcess {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	g := &gatewayProcess{addr: addr, stderr: &bytes.Buffer{}, exited: make(chan struct{})}
	g.cmd = exec.Command(bin, append([]string{"--dev", "--addr", addr, "--log-level", "warn"}, args...)...)
	g.cmd.Stderr = g.stderr
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { g.err = g.cmd.Wait(); close(g.exited) }()
	t.Cleanup(func() {
		select {
		case <-g.exited:
		default:
			_ = g.cmd.Process.Kill()
			<-g.exited
		}
	})
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := hc.Get("http://" + addr + protocol.PathHealthz)
		if err == nil {
			resp.Body.Close()
			return g
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway did not start: %v\n%s", err, g.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// drainClient is one client of the SIGTERM test: what its connection ended with.
type drainClient struct {
	ws     *websocket.Conn
	code   int
	reason string
	at     time.Time
}

// Acceptance: SIGTERM with 5 000 clients (the gateway a child process, the clients spread over
// 127.0.0.2–201): every client gets 1001 with a retry hint, the hints spread evenly over the drain
// window, and the node exits 0; with no-drain every client drops without a close frame or a hint
// (and the node still exits 0).
func TestDrainSIGTERM5000Clients(t *testing.T) {
	if testing.Short() {
		t.Skip("5 000 clients and a child process; skipped with -short")
	}
	bin := buildRefserver(t)
	for _, flawed := range []bool{false, true} {
		t.Run(fmt.Sprint("no-drain=", flawed), func(t *testing.T) {
			const n = 5000
			const spread = 10 * time.Second
			// Admission control off: the clients connect as fast as they can (storm_test.go covers it).
			args := []string{"--max-conns-per-ip", "-1", "--accept-rate", "-1", "--drain-spread", spread.String()}
			if flawed {
				args = append(args, "--flaw", string(FlawNoDrain))
			}
			g := startGateway(t, bin, args...)
			clients := connectMany(t, g.addr, n)

			var wg sync.WaitGroup
			for _, c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_ = c.ws.SetReadDeadline(time.Now().Add(60 * time.Second))
					for {
						if _, _, err := c.ws.ReadMessage(); err != nil {
							c.at = time.Now()
							var ce *websocket.CloseError
							if errors.As(err, &ce) {
								c.code, c.reason = ce.Code, ce.Text
							} else {
								c.code, c.reason = -1, err.Error()
							}
							_ = c.ws.Close()
							return
						}
					}
				}()
			}
			sent := time.Now()
			if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			select {
			case <-g.exited:
			case <-time.After(30 * time.Second):
				t.Fatalf("the gateway did not exit within 30s of SIGTERM\n%s", g.stderr)
			}
			if g.err != nil {
				t.Fatalf("the gateway exited with %v, want 0\n%s", g.err, g.stderr)
			}
			var last time.Duration
			codes := map[int]int{}
			var hints []time.Duration
			for _, c := range clients {
				codes[c.code]++
				last = max(last, c.at.Sub(sent))
				if h, ok := protocol.ParseRetryAfter(c.reason); ok {
					hints = append(hints, h)
				}
			}
			t.Logf("%d clients: close codes %v, last close %s after SIGTERM, %d hints", n, codes, last.Round(time.Millisecond), len(hints))
			if flawed {
				if codes[int(protocol.CloseAbnormal)] != n || len(hints) != 0 {
					t.Fatalf("no-drain: close codes %v and %d hints, want every client dropped (1006) with no hint", codes, len(hints))
				}
				return
			}
			if codes[int(protocol.CloseDraining)] != n || len(hints) != n {
				t.Fatalf("close codes %v and %d hints, want 1001 with a hint for all %d", codes, len(hints), n)
			}
			if last > 5*time.Second {
				t.Errorf("the last client was closed %s after SIGTERM; a drain closes everyone promptly", last)
			}
			checkUniform(t, hints, spread)
		})
	}
}

// checkUniform checks that hints lie in (0, spread] and spread evenly: each tenth of the window
// holds a tenth of them within generous bounds, and the chi-square statistic over the ten bins stays
// below 40 (9 degrees of freedom: p < 1e-5 for a uniform draw).
func checkUniform(t *testing.T, hints []time.Duration, spread time.Duration) {
	t.Helper()
	var bins [10]int
	for _, h := range hints {
		if h <= 0 || h > spread {
			t.Fatalf("hint %s outside (0, %s]", h, spread)
		}
		i := min(int(int64(h-1)*10/int64(spread)), 9)
		bins[i]++
	}
	want := float64(len(hints)) / 10
	chi2 := 0.0
	for _, b := range bins {
		chi2 += (float64(b) - want) * (float64(b) - want) / want
	}
	sorted := append([]time.Duration(nil), hints...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	t.Logf("hint deciles (count per tenth of %s): %v; chi-square %.1f; min %s, median %s, max %s",
		spread, bins, chi2, sorted[0], sorted[len(sorted)/2], sorted[len(sorted)-1])
	for i, b := range bins {
		if math.Abs(float64(b)-want) > 0.3*want {
			t.Errorf("tenth %d of the drain window holds %d hints, want %.0f ± 30%%", i, b, want)
		}
	}
	if chi2 > 40 {
		t.Errorf("chi-square %.1f over ten bins: the hints are not spread evenly", chi2)
	}
}

// connectMany connects n clients to the gateway at addr (dev secret), each from 127.0.0.(2 + i%200),
// waits for each welcome and joins it to one of n/10 rooms.
func connectMany(t *testing.T, addr string, n int) []*drainClient {
	t.Helper()
	clients := make([]*drainClient, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	var mu sync.Mutex
	var firstErr error
	failed := 0
	dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 512, WriteBufferSize: 512}
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ws, err := idleClientRoom(dialer, addr, i, fmt.Sprint("room-", i%(n/10)))
			if err != nil {
				mu.Lock()
				failed++
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				return
			}
			clients[i] = &drainClient{ws: ws}
		}()
	}
	wg.Wait()
	if failed > 0 {
		for _, c := range clients {
			if c != nil {
				c.ws.Close()
			}
		}
		t.Fatalf("%d of %d clients failed to connect, first: %v", failed, n, firstErr)
	}
	return clients
}

// idleClientRoom connects client i from 127.0.0.(2 + i%200), waits for welcome and joins room.
func idleClientRoom(d websocket.Dialer, addr string, i int, room string) (*websocket.Conn, error) {
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%200))}}
	d.NetDialContext = nd.DialContext
	tok, err := protocol.SignToken([]byte(protocol.DevSecret), fmt.Sprint("user-", i), time.Now().Add(time.Hour))
	if err != nil {
		return nil, err
	}
	ws, _, err := d.Dial("ws://"+addr+protocol.PathWS+"?token="+tok, nil)
	if err != nil {
		return nil, err
	}
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	join, _ := protocol.Encode(&protocol.Frame{Type: protocol.TypeJoinRoom, RoomID: room, Seq: 1})
	if err := ws.WriteMessage(websocket.TextMessage, join); err != nil {
		ws.Close()
		return nil, err
	}
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			ws.Close()
			return nil, err
		}
		if f, err := protocol.Decode(data, protocol.ServerToClient); err == nil && f.Type == protocol.TypeAck && f.Seq == 1 {
			return ws, nil
		}
	}
}

func TestConfigValidateSessionAndDrain(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"negative session-ttl", func(c *Config) { c.SessionTTL = -time.Second }, "session-ttl: must not be negative"},
		{"negative drain-spread", func(c *Config) { c.DrainSpread = -time.Second }, "drain-spread: must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Dev: true}
			tt.mod(&cfg)
			err := cfg.Validate()
			if (err == nil) != (tt.wantErr == "") || err != nil && !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if d := DefaultConfig(); d.SessionTTL != 2*time.Minute || d.DrainSpread != 10*time.Second {
		t.Fatalf("defaults: session-ttl %s, drain-spread %s", d.SessionTTL, d.DrainSpread)
	}
}

// no-drain: Shutdown drops every connection at once, without a close frame or a hint; no new
// connection gets in.
func TestFlawNoDrain(t *testing.T) {
	cfg := withFlaws(testConfig(), FlawNoDrain)
	cfg.MaxConnsPerIP = -1
	ts := startServer(t, cfg)
	var clients []*client
	for i := 0; i < 3; i++ {
		c, _ := connect(t, ts, fmt.Sprint("u", i), dialOpts{})
		c.join("r")
		clients = append(clients, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, c := range clients {
		if code, reason := c.expectClose(time.Second); code != int(protocol.CloseAbnormal) {
			t.Fatalf("closed with %d %q, want 1006 (no close frame)", code, reason)
		}
	}
	if _, _, err := dialRaw(ts, mintToken(t, "late"), dialOpts{}); err == nil {
		t.Fatal("a new connection was accepted after Shutdown")
	}
	if st := ts.Stats(); st.ActiveConns != 0 || st.Subscriptions != 0 || st.PresenceEntries != 0 {
		t.Fatalf("stats after Shutdown: %+v", st)
	}
}
