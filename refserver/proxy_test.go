package refserver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	proxyproto "github.com/pires/go-proxyproto"

	"github.com/squall-dev/squall/refserver/protocol"
)

func TestClientFromForwarded(t *testing.T) {
	trusted, err := parseTrustedProxies([]string{"127.0.0.1", "10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	peer := netip.MustParseAddr("127.0.0.1")
	for _, tc := range []struct {
		name string
		xff  []string
		want string
	}{
		{"none", nil, "127.0.0.1"},
		{"one hop", []string{"203.0.113.7"}, "203.0.113.7"},
		{"client-written hops are ignored", []string{"1.1.1.1, 203.0.113.7"}, "203.0.113.7"},
		{"trusted hops are skipped", []string{"203.0.113.7, 10.1.2.3"}, "203.0.113.7"},
		{"several headers", []string{"6.6.6.6", "203.0.113.7", "10.0.0.2"}, "203.0.113.7"},
		{"all trusted: the leftmost", []string{"10.0.0.9, 10.0.0.1"}, "10.0.0.9"},
		{"garbage stops the walk", []string{"203.0.113.7, bogus, 10.0.0.1"}, "10.0.0.1"},
		{"ipv6", []string{"2001:db8::1"}, "2001:db8::1"},
		{"mapped ipv4", []string{"::ffff:198.51.100.2"}, "198.51.100.2"},
		{"empty hops", []string{" , ,203.0.113.7, "}, "203.0.113.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := clientFromForwarded(peer, tc.xff, trusted).String(); got != tc.want {
				t.Errorf("clientFromForwarded(%q) = %s, want %s", tc.xff, got, tc.want)
			}
		})
	}
}

// FuzzClientFromForwarded checks the X-Forwarded-For walk: it never panics and names the peer, or
// an address of the header that is not trusted (or the leftmost when every one is).
func FuzzClientFromForwarded(f *testing.F) {
	for _, s := range []string{"", "1.2.3.4", "1.2.3.4, 10.0.0.1", "::1,,x", "10.0.0.1, 10.0.0.2", "[::1]:80", "1.2.3.4%eth0"} {
		f.Add(s)
	}
	trusted, _ := parseTrustedProxies([]string{"10.0.0.0/8", "127.0.0.1"})
	peer := netip.MustParseAddr("127.0.0.1")
	f.Fuzz(func(t *testing.T, xff string) {
		got := clientFromForwarded(peer, []string{xff}, trusted)
		if got == peer {
			return
		}
		if !strings.Contains(xff, strings.SplitN(got.String(), "%", 2)[0]) && !strings.Contains(xff, ":") {
			t.Fatalf("%q gave %s, which it does not name", xff, got)
		}
	})
}

func TestParseTrustedProxies(t *testing.T) {
	if _, err := parseTrustedProxies([]string{"10.0.0.0/8", "::1", "192.168.1.7"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", ""} {
		if _, err := parseTrustedProxies([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	cfg := testConfig()
	cfg.TrustedProxies = []string{"nope"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "trusted-proxies") {
		t.Errorf("Validate: %v, want a trusted-proxies error", err)
	}
}

func TestSameHost(t *testing.T) {
	for _, tc := range []struct {
		origin, host string
		want         bool
	}{
		{"http://example.com:8080", "example.com:8080", true},
		{"http://example.com:8080", "example.com", true}, // proxy_set_header Host $host
		{"https://example.com", "example.com", true},
		{"https://example.com", "example.com:443", true},
		{"http://example.com", "example.com:8080", false},
		{"http://evil.com", "example.com", false},
		{"http://EXAMPLE.com", "example.com", true},
		{"http://[::1]:80", "[::1]", true},
		{"null", "example.com", false},
		{"http://example.com.evil.com", "example.com", false},
	} {
		if got := sameHost(tc.origin, tc.host); got != tc.want {
			t.Errorf("sameHost(%q, %q) = %v, want %v", tc.origin, tc.host, got, tc.want)
		}
	}
}

// dialWSHeader dials a WebSocket from the loopback address localIP with extra headers; before the
// handshake it writes pre (a PROXY protocol header) on the TCP connection.
func dialWSHeader(ts *testServer, token, localIP string, h http.Header, pre func(net.Conn) error) (*websocket.Conn, *http.Response, error) {
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}}
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := nd.DialContext(ctx, network, addr)
		if err == nil && pre != nil {
			if err = pre(nc); err != nil {
				_ = nc.Close()
			}
		}
		return nc, err
	}}
	return d.Dial(ts.wsURL(token), h)
}

// expectWelcomeOrLimit reads the first frame or close of ws: "welcome", or the close reason.
func expectWelcomeOrLimit(t *testing.T, ws *websocket.Conn) string {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, data, err := ws.ReadMessage()
	if err != nil {
		if ce, ok := err.(*websocket.CloseError); ok {
			return fmt.Sprintf("%d %s", ce.Code, ce.Text)
		}
		t.Fatalf("read: %v", err)
	}
	f, err := protocol.Decode(data, protocol.ServerToClient)
	if err != nil {
		t.Fatal(err)
	}
	if f.Type == protocol.TypeError {
		return expectWelcomeOrLimit(t, ws)
	}
	return string(f.Type)
}

// TestTrustedProxyClientAddress: behind a trusted proxy the per-IP limit counts the client addresses
// that X-Forwarded-For and the PROXY protocol (v1 and v2) name; from an untrusted peer both are
// ignored.
func TestTrustedProxyClientAddress(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConnsPerIP = 1
	cfg.MaxConnsPerClient = 100
	cfg.TrustedProxies = []string{"127.0.0.1/32"}
	ts := startServer(t, cfg)

	xff := func(ip string) http.Header { return http.Header{"X-Forwarded-For": {"6.6.6.6, " + ip}} }
	v1 := func(ip string) func(net.Conn) error {
		return func(nc net.Conn) error {
			_, err := fmt.Fprintf(nc, "PROXY TCP4 %s 127.0.0.1 40000 80\r\n", ip)
			return err
		}
	}
	v2 := func(ip string) func(net.Conn) error {
		return func(nc net.Conn) error {
			h := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP(ip), Port: 40000},
				&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 80})
			_, err := h.WriteTo(nc)
			return err
		}
	}
	n := 0
	open := func(name, localIP string, h http.Header, pre func(net.Conn) error) string {
		t.Helper()
		n++
		ws, _, err := dialWSHeader(ts, mintToken(t, fmt.Sprintf("user%d", n)), localIP, h, pre)
		if err != nil {
			t.Fatalf("%s: dial: %v", name, err)
		}
		t.Cleanup(func() { _ = ws.Close() })
		return expectWelcomeOrLimit(t, ws)
	}
	limited := fmt.Sprintf("%d %s", protocol.ClosePolicy, protocol.ReasonConnLimit)
	for _, step := range []struct {
		name, localIP string
		h             http.Header
		pre           func(net.Conn) error
		want          string
	}{
		{"xff client A", "127.0.0.1", xff("198.51.100.1"), nil, "welcome"},
		{"xff client A again", "127.0.0.1", xff("198.51.100.1"), nil, limited},
		{"xff client B", "127.0.0.1", xff("198.51.100.2"), nil, "welcome"},
		{"proxy v1 client C", "127.0.0.1", nil, v1("198.51.100.3"), "welcome"},
		{"proxy v1 client C again", "127.0.0.1", nil, v1("198.51.100.3"), limited},
		{"proxy v2 client D", "127.0.0.1", nil, v2("198.51.100.4"), "welcome"},
		{"proxy v2 client D again", "127.0.0.1", nil, v2("198.51.100.4"), limited},
		{"proxy v2 client C", "127.0.0.1", nil, v2("198.51.100.3"), limited},
		{"the proxy itself", "127.0.0.1", nil, nil, "welcome"},
		{"untrusted peer: xff ignored", "127.0.0.5", xff("198.51.100.9"), nil, "welcome"},
		{"untrusted peer: counted as itself", "127.0.0.5", xff("198.51.100.10"), nil, limited},
	} {
		if got := open(step.name, step.localIP, step.h, step.pre); got != step.want {
			t.Errorf("%s: got %q, want %q", step.name, got, step.want)
		}
	}

	// An untrusted peer's PROXY header is not read: it is not HTTP.
	_, resp, err := dialWSHeader(ts, mintToken(t, "spoof"), "127.0.0.6", nil, v1("198.51.100.11"))
	if err == nil || (resp != nil && resp.StatusCode != http.StatusBadRequest) {
		t.Errorf("an untrusted peer's PROXY header: err %v, resp %v; want a refused handshake", err, resp)
	}
}

// TestOriginBehindProxy: the same-host Origin check accepts a Host without port (nginx's
// `proxy_set_header Host $host`), and a refused Origin is logged.
func TestOriginBehindProxy(t *testing.T) {
	var logs syncBuffer
	srv, err := New(testConfig(), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	ts := &testServer{Server: srv, addr: ln.Addr().String()}

	dial := func(host, origin string) (*http.Response, error) {
		d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", ts.addr)
		}}
		ws, resp, err := d.Dial("ws://"+host+protocol.PathWS+"?token="+mintToken(t, "o"), http.Header{"Origin": {origin}})
		if err == nil {
			_ = ws.Close()
		}
		return resp, err
	}
	if _, err := dial("app.example.com", "https://app.example.com:8443"); err != nil {
		t.Errorf("Host without port, Origin with one: %v", err)
	}
	resp, err := dial("app.example.com", "https://evil.example.net")
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a foreign Origin: %v %v, want 403", resp, err)
	}
	waitFor(t, 2*time.Second, "the refusal logged", func() bool {
		l := logs.String()
		return strings.Contains(l, "origin refused") && strings.Contains(l, "evil.example.net")
	})
}

// FuzzSameHost checks the same-host Origin check: it never panics, and accepts only an Origin whose
// hostname is the Host header's.
func FuzzSameHost(f *testing.F) {
	for _, s := range [][2]string{
		{"http://a.example:8080", "a.example"}, {"https://a.example", "a.example:443"}, {"null", "x"},
		{"http://[::1]:80", "[::1]"}, {"http://a.example@evil.example", "a.example"}, {"://", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, origin, host string) {
		if !sameHost(origin, host) {
			return
		}
		u, err := url.Parse(origin)
		if err != nil {
			t.Fatalf("accepted %q, which does not parse: %v", origin, err)
		}
		h := host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			h = hh
		}
		if !strings.EqualFold(u.Hostname(), strings.Trim(h, "[]")) {
			t.Fatalf("accepted Origin %q (host %q) for Host %q", origin, u.Hostname(), host)
		}
	})
}

// FuzzParseTrustedProxies checks the --trusted-proxies parser: what it accepts contains the address
// it names.
func FuzzParseTrustedProxies(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "127.0.0.1", "::1", "::ffff:1.2.3.4", "1.2.3.4/33", "x", "fe80::1%eth0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		nets, err := parseTrustedProxies([]string{s})
		if err != nil {
			return
		}
		if len(nets) != 1 {
			t.Fatalf("%q gave %d prefixes", s, len(nets))
		}
		if a, err := netip.ParseAddr(strings.TrimSpace(s)); err == nil && !nets.contains(a) {
			t.Fatalf("%q does not contain itself (%v)", s, nets)
		}
	})
}
