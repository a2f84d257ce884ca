package refserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/refserver/protocol"
)

// Acceptance tests behind real proxies: Debian's nginx and HAProxy (installed by `make deps`; the
// tests skip with the reason when they are missing).

// findProgram finds an external program on PATH or in /usr/sbin (where Debian puts nginx and
// haproxy, often outside a user's PATH), or skips the test.
func findProgram(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := filepath.Join("/usr/sbin", name); fileExists(p) {
		return p
	}
	t.Skipf("%s not installed (make deps installs it from Debian's packages)", name)
	return ""
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startProxy runs a proxy process in the foreground until the test ends and waits until addr
// accepts connections.
func startProxy(t *testing.T, name, addr string, args ...string) {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	waitFor(t, 10*time.Second, name+" listening on "+addr, func() bool {
		select {
		case <-exited:
			t.Fatalf("%s exited: %s", name, out.String())
		default:
		}
		nc, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return false
		}
		_ = nc.Close()
		return true
	})
}

// nginxConf is the proxy in front of the gateway: the common settings of a WebSocket site (Host
// without port, X-Forwarded-For, the upgrade headers, no buffering) and short read timeouts — 1 s on
// /sse, so that it cuts the event stream whenever it is idle that long.
const nginxConf = `
daemon off;
master_process off;
worker_processes 1;
pid {{dir}}/nginx.pid;
error_log {{dir}}/error.log warn;
events { worker_connections 512; }
http {
	access_log off;
	client_body_temp_path {{dir}}/body;
	proxy_temp_path {{dir}}/proxy;
	fastcgi_temp_path {{dir}}/fastcgi;
	uwsgi_temp_path {{dir}}/uwsgi;
	scgi_temp_path {{dir}}/scgi;
	map $http_upgrade $connection_upgrade { default upgrade; '' close; }
	upstream gateway { server {{gateway}}; }
	server {
		listen {{listen}};
		proxy_http_version 1.1;
		proxy_set_header Host $host;
		proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
		proxy_set_header Upgrade $http_upgrade;
		proxy_set_header Connection $connection_upgrade;
		proxy_buffering off;
		location /sse {
			proxy_pass http://gateway;
			proxy_read_timeout 1s;
		}
		location / {
			proxy_pass http://gateway;
			proxy_read_timeout 10s;
		}
	}
}
`

// startNginx puts nginx in front of the gateway at gatewayAddr and returns its address.
func startNginx(t *testing.T, gatewayAddr string) string {
	t.Helper()
	bin := findProgram(t, "nginx")
	dir := t.TempDir()
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	conf := strings.NewReplacer("{{dir}}", dir, "{{gateway}}", gatewayAddr, "{{listen}}", listen).Replace(nginxConf)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	startProxy(t, "nginx", listen, bin, "-p", dir, "-c", path, "-e", filepath.Join(dir, "error.log"))
	return listen
}

// proxyTestConfig: heartbeats slower than nginx's 1 s read timeout on /sse (so it cuts the event
// stream) and faster than its 10 s elsewhere; the per-IP limit at 2.
func proxyTestConfig() Config {
	cfg := testConfig()
	cfg.HeartbeatInterval = 3 * time.Second
	cfg.HeartbeatTimeout = 10 * time.Second
	cfg.SSEKeepalive = 3 * time.Second
	cfg.PollHold = time.Second
	cfg.MaxConnsPerIP = 2
	cfg.MaxConnsPerClient = 100
	cfg.TrustedProxies = []string{"127.0.0.1"}
	return cfg
}

// dialVia dials a WebSocket through the proxy at addr from the loopback address localIP.
func dialVia(t *testing.T, addr, localIP, user string, h http.Header) string {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second,
		NetDialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}}).DialContext}
	ws, resp, err := d.Dial("ws://"+addr+protocol.PathWS+"?token="+mintToken(t, user), h)
	if err != nil {
		status := ""
		if resp != nil {
			status = resp.Status
		}
		t.Fatalf("dial %s from %s: %v %s", addr, localIP, err, status)
	}
	t.Cleanup(func() { _ = ws.Close() })
	return expectWelcomeOrLimit(t, ws)
}

// TestBehindNginx: behind Debian's nginx with `proxy_set_header Host $host`, X-Forwarded-For and
// short read timeouts, the WebSocket (with a browser Origin), SSE (resuming across the proxy's cuts
// with nothing lost) and long polling all work, and the per-IP limit counts the real client
// addresses.
func TestBehindNginx(t *testing.T) {
	cfg := proxyTestConfig()
	ts := startServer(t, cfg)
	proxy := startNginx(t, ts.addr)
	via := &testServer{Server: ts.Server, addr: proxy}

	t.Run("websocket and per-IP limit", func(t *testing.T) {
		origin := http.Header{"Origin": {"http://" + proxy}} // Host reaches the gateway without the port
		limited := fmt.Sprintf("%d %s", protocol.ClosePolicy, protocol.ReasonConnLimit)
		spoof := http.Header{"X-Forwarded-For": {"203.0.113.99"}} // written by the client: ignored
		for _, step := range []struct {
			from string
			h    http.Header
			want string
		}{
			{"127.0.0.2", origin, "welcome"},
			{"127.0.0.2", spoof, "welcome"},
			{"127.0.0.2", spoof, limited},
			{"127.0.0.3", origin, "welcome"},
			{"127.0.0.3", nil, "welcome"},
			{"127.0.0.3", nil, limited},
		} {
			if got := dialVia(t, proxy, step.from, "ws-"+step.from, step.h); got != step.want {
				t.Errorf("from %s: %q, want %q", step.from, got, step.want)
			}
		}
	})

	t.Run("sse resumes across the proxy's cuts", func(t *testing.T) {
		bob := dialClient(t, via, mintToken(t, "bob"), dialOpts{localIP: "127.0.0.4"})
		bob.expect(protocol.TypeWelcome, 3*time.Second)
		bob.join("news")
		alice, w := openFallback(t, via, "sse", "alice", fbOpts{keepalive: true})
		alice.join("news")

		const bursts, per = 4, 5
		cut := make(chan struct{}, bursts*per)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range bursts {
				if b > 0 {
					// Idle until nginx's 1 s read timeout has cut alice's stream; the burst then
					// races her reconnect.
					select {
					case <-cut:
					case <-time.After(10 * time.Second):
						t.Errorf("nginx did not cut the idle event stream within 10s")
						return
					}
				}
				for range per {
					seq := bob.nextSeq()
					bob.send(protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "news", Seq: seq, Data: json.RawMessage(`1`)})
					bob.expectMatch(5*time.Second, "ack", func(f protocol.Frame) bool { return f.Type == protocol.TypeAck && f.Seq == seq })
				}
			}
		}()
		var got []uint64
		cuts := 0
		deadline := time.Now().Add(30 * time.Second)
		for len(got) < bursts*per && time.Now().Before(deadline) {
			for f := range alice.frames { // until the stream ends
				if f.Type == protocol.TypeBroadcast && f.RoomID == "news" {
					got = append(got, f.RoomSeq)
				}
				if len(got) == bursts*per {
					break
				}
			}
			if len(got) == bursts*per {
				break
			}
			cuts++
			cut <- struct{}{}
			alice.stopKeepalive()
			alice.mu.Lock()
			last := alice.lastID
			alice.mu.Unlock()
			var w2 protocol.Frame
			alice, w2 = openFallbackToken(t, via, "sse", alice.token, fbOpts{keepalive: true, lastEvent: last})
			if w2.Session != w.Session {
				t.Fatalf("after cut %d the stream has session %q, want %q", cuts, w2.Session, w.Session)
			}
		}
		wg.Wait()
		for i, s := range got {
			if s != uint64(i+1) {
				t.Fatalf("alice got roomSeqs %v across %d cuts, want 1..%d once each", got, cuts, bursts*per)
			}
		}
		if len(got) != bursts*per {
			t.Fatalf("alice got %d of %d broadcasts (%v) across %d cuts", len(got), bursts*per, got, cuts)
		}
		if cuts < 2 {
			t.Errorf("nginx cut the stream %d times, want at least 2 (the test did not exercise the resume)", cuts)
		}
		t.Logf("%d broadcasts, each once and in order, across %d cuts", len(got), cuts)
	})

	t.Run("long polling", func(t *testing.T) {
		carol := dialClient(t, via, mintToken(t, "carol"), dialOpts{localIP: "127.0.0.5"})
		carol.expect(protocol.TypeWelcome, 3*time.Second)
		carol.join("poll-room")
		dave, _ := openFallback(t, via, "poll", "dave", fbOpts{})
		dave.join("poll-room")
		carol.send(protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "poll-room", Seq: carol.nextSeq(), Data: json.RawMessage(`"hi"`)})
		f := dave.expectMatch(5*time.Second, "carol's broadcast", func(f protocol.Frame) bool { return f.Type == protocol.TypeBroadcast })
		if f.From != "carol" || string(f.Data) != `"hi"` {
			t.Errorf("dave got %+v", f)
		}
	})
}

// haproxyConf forwards TCP to the gateway with a PROXY protocol v2 header (send-proxy-v2).
const haproxyConf = `
global
	maxconn 512
defaults
	mode tcp
	timeout connect 2s
	timeout client 30s
	timeout server 30s
frontend fe
	bind {{listen}}
	default_backend gw
backend gw
	server gateway {{gateway}} send-proxy-v2
`

// TestBehindHAProxy: behind Debian's HAProxy sending the PROXY protocol v2, the per-IP limit
// counts the real client addresses.
func TestBehindHAProxy(t *testing.T) {
	bin := findProgram(t, "haproxy")
	ts := startServer(t, proxyTestConfig())
	dir := t.TempDir()
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	path := filepath.Join(dir, "haproxy.cfg")
	conf := strings.NewReplacer("{{listen}}", listen, "{{gateway}}", ts.addr).Replace(haproxyConf)
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	startProxy(t, "haproxy", listen, bin, "-db", "-f", path)

	limited := fmt.Sprintf("%d %s", protocol.ClosePolicy, protocol.ReasonConnLimit)
	for _, step := range []struct{ from, want string }{
		{"127.0.0.2", "welcome"}, {"127.0.0.2", "welcome"}, {"127.0.0.2", limited},
		{"127.0.0.3", "welcome"}, {"127.0.0.3", "welcome"}, {"127.0.0.3", limited},
	} {
		if got := dialVia(t, listen, step.from, "hp-"+step.from, nil); got != step.want {
			t.Errorf("from %s: %q, want %q", step.from, got, step.want)
		}
	}
}
