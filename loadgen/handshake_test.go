package loadgen

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/internal/wsframe"
	"github.com/squall-dev/squall/loadgen/stats"
)

// testKey is RFC 6455's sample nonce (§1.3); testAccept is the answer the RFC gives for it.
var testKey = [24]byte([]byte("dGhlIHNhbXBsZSBub25jZQ=="))

const testAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

// ok101 is a valid answer to testKey.
const ok101 = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + testAccept + "\r\n\r\n"

// testFrame is an unmasked text frame "hi", as a gateway sends one.
const testFrame = "\x81\x02hi"

// chunkReader hands out its chunks one Read at a time (a chunk larger than the caller's buffer
// over several), then io.EOF.
type chunkReader struct{ chunks [][]byte }

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.chunks) > 0 && len(r.chunks[0]) == 0 {
		r.chunks = r.chunks[1:]
	}
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	r.chunks[0] = r.chunks[0][n:]
	return n, nil
}

// unread is what the reader has not handed out yet.
func (r *chunkReader) unread() string {
	var b strings.Builder
	for _, c := range r.chunks {
		b.Write(c)
	}
	return b.String()
}

// chunksOf splits s into pieces of n bytes (n ≤ 0: one piece).
func chunksOf(s string, n int) [][]byte {
	if n <= 0 || n >= len(s) {
		return [][]byte{[]byte(s)}
	}
	var out [][]byte
	for len(s) > n {
		out = append(out, []byte(s[:n]))
		s = s[n:]
	}
	return append(out, []byte(s))
}

func TestAcceptKey(t *testing.T) {
	if got := acceptKey(&testKey); string(got[:]) != testAccept {
		t.Fatalf("acceptKey(RFC 6455 sample) = %s, want %s", got[:], testAccept)
	}
	var key [24]byte
	newChallengeKey(&key)
	raw, err := base64.StdEncoding.DecodeString(string(key[:]))
	if err != nil || len(raw) != 16 {
		t.Fatalf("challenge key %q: want 16 bytes in base64 (%d, %v)", key[:], len(raw), err)
	}
}

// readUpgradeCase is a case of TestReadUpgrade.
type readUpgradeCase struct {
	name     string
	chunks   [][]byte
	offered  []string
	wantErr  error  // errors.Is (nil: success unless errText is set)
	errText  string // in the error's text
	class    string // dialClass of the error
	status   int    // of the refusal handed back (0: none)
	retry    string // its Retry-After
	body     string // its body
	wantRest string
	unread   string // left in the reader after a success (read from a socket)
}

func TestReadUpgrade(t *testing.T) {
	refusal := "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nbusy\n"
	with := func(lines ...string) string {
		return "HTTP/1.1 101 Switching Protocols\r\n" + strings.Join(lines, "\r\n") + "\r\n\r\n"
	}
	upgrade, connection, accept := "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Accept: "+testAccept
	tests := []readUpgradeCase{
		{name: "101", chunks: chunksOf(ok101, 0)},
		{name: "101 token lists any case", chunks: chunksOf(with("upgrade: WebSocket", "CONNECTION: keep-alive, Upgrade", "sec-websocket-accept: "+testAccept, "X-Other: 1"), 0)},
		{name: "101 bare LF", chunks: chunksOf(strings.ReplaceAll(ok101, "\r\n", "\n"), 0)},
		{name: "101 HTTP/1.0 no reason", chunks: chunksOf(strings.Replace(ok101, "HTTP/1.1 101 Switching Protocols", "HTTP/1.0 101", 1), 0)},
		{name: "subprotocol offered", offered: []string{"chat, squall.v1"}, chunks: chunksOf(with(upgrade, connection, accept, "Sec-WebSocket-Protocol: squall.v1"), 0)},
		{name: "empty subprotocol is none", chunks: chunksOf(with(upgrade, connection, accept, "Sec-WebSocket-Protocol: "), 0)},
		{name: "frames in the head's read", chunks: chunksOf(ok101+testFrame+testFrame, 0), wantRest: testFrame + testFrame},
		{name: "frames in the head's last read", chunks: [][]byte{[]byte(ok101[:50]), []byte(ok101[50:] + testFrame)}, wantRest: testFrame},
		{name: "one byte per read", chunks: chunksOf(ok101+testFrame, 1), unread: testFrame},
		{name: "refusal", chunks: chunksOf(refusal, 0), wantErr: websocket.ErrBadHandshake, class: stats.ErrUpgradeRefused, status: 503, retry: "7", body: "busy\n"},
		{name: "refusal one byte per read", chunks: chunksOf(refusal, 1), wantErr: websocket.ErrBadHandshake, class: stats.ErrUpgradeRefused, status: 503, retry: "7", body: "busy\n"},
		{
			name:    "refusal body kept to 1 KiB",
			chunks:  chunksOf("HTTP/1.1 401 Unauthorized\r\nContent-Length: 3000\r\n\r\n"+strings.Repeat("x", 3000), 700),
			wantErr: websocket.ErrBadHandshake, class: stats.ErrUpgradeRefused, status: 401, body: strings.Repeat("x", 1024),
		},
		{name: "wrong accept", chunks: chunksOf(strings.Replace(ok101, testAccept, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", 1), 0), wantErr: websocket.ErrBadHandshake, class: stats.ErrUpgradeRefused, errText: "Accept"},
		{name: "no accept", chunks: chunksOf(with(upgrade, connection), 0), wantErr: websocket.ErrBadHandshake, errText: "no Sec-WebSocket-Accept"},
		{name: "two accepts", chunks: chunksOf(with(upgrade, connection, accept, accept), 0), wantErr: websocket.ErrBadHandshake, errText: "Accept"},
		{name: "no upgrade", chunks: chunksOf(with(connection, accept), 0), wantErr: websocket.ErrBadHandshake, errText: "Upgrade"},
		{name: "upgrade to another protocol", chunks: chunksOf(with("Upgrade: h2c", connection, accept), 0), wantErr: websocket.ErrBadHandshake, errText: "Upgrade"},
		{name: "no connection", chunks: chunksOf(with(upgrade, accept), 0), wantErr: websocket.ErrBadHandshake, errText: "Connection"},
		{name: "connection close", chunks: chunksOf(with(upgrade, "Connection: close", accept), 0), wantErr: websocket.ErrBadHandshake, errText: "Connection"},
		{name: "subprotocol none offered", chunks: chunksOf(with(upgrade, connection, accept, "Sec-WebSocket-Protocol: chat"), 0), wantErr: websocket.ErrBadHandshake, errText: `"chat"`},
		{name: "subprotocol not offered", offered: []string{"squall.v1, squall.v2"}, chunks: chunksOf(with(upgrade, connection, accept, "Sec-WebSocket-Protocol: squall.v3"), 0), wantErr: websocket.ErrBadHandshake, errText: "squall.v3"},
		{name: "two subprotocols", offered: []string{"a, b"}, chunks: chunksOf(with(upgrade, connection, accept, "Sec-WebSocket-Protocol: a", "Sec-WebSocket-Protocol: b"), 0), wantErr: websocket.ErrBadHandshake, errText: "more than one"},
		{name: "extension", chunks: chunksOf(with(upgrade, connection, accept, "Sec-WebSocket-Extensions: permessage-deflate"), 0), wantErr: websocket.ErrBadHandshake, errText: "extensions"},
		{name: "closed mid-head", chunks: chunksOf(ok101[:40], 0), wantErr: io.ErrUnexpectedEOF, class: stats.ErrHandshake},
		{name: "closed before a byte", wantErr: io.ErrUnexpectedEOF, class: stats.ErrHandshake},
		{name: "closed mid-head one byte per read", chunks: chunksOf(ok101[:len(ok101)-1], 1), wantErr: io.ErrUnexpectedEOF, class: stats.ErrHandshake},
		{name: "closed in a refusal's status line", chunks: chunksOf("HTTP/1.1 50", 0), wantErr: io.ErrUnexpectedEOF, class: stats.ErrHandshake},
		{
			name:    "head over the bound",
			chunks:  chunksOf(with(upgrade, connection, accept, "X-Pad: "+strings.Repeat("p", maxUpgradeHead)), 1000),
			errText: "head over 8192 bytes", class: stats.ErrDialOther,
		},
		{name: "malformed header line", chunks: chunksOf(with(upgrade, "no colon here", connection, accept), 0), errText: "malformed header line", class: stats.ErrDialOther},
		{name: "folded header line", chunks: chunksOf(with(upgrade, connection, " folded", accept), 0), errText: "malformed header line", class: stats.ErrDialOther},
		{name: "not HTTP", chunks: chunksOf("SSH-2.0-OpenSSH_9.6\r\n\r\n", 0), errText: "malformed HTTP", class: stats.ErrDialOther},
	}
	// Each case runs twice: read from a socket (readUpgrade), and handed over piece by piece as the
	// run's poller hands an attempt's bytes over (upgradeAnswer.feed, then end at the close).
	for _, tt := range tests {
		for _, mode := range []string{"read", "fed"} {
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				r := &chunkReader{chunks: slices.Clone(tt.chunks)} // Read re-slices its chunks
				var (
					rest []byte
					resp *http.Response
					err  error
				)
				if mode == "read" {
					bp := handshakeBufs.Get().(*[]byte)
					defer putHandshakeBuf(bp)
					rest, resp, err = readUpgrade(r, bp, &testKey, tt.offered)
				} else {
					a := upgradeAnswer{key: &testKey, offered: tt.offered}
					done := false
					for i, ch := range tt.chunks {
						if done, rest, resp, err = a.feed(ch); done {
							r.chunks = tt.chunks[i+1:]
							break
						}
					}
					if !done {
						r.chunks = nil
						resp, err = a.end(io.EOF)
					}
				}
				checkReadUpgrade(t, tt, mode == "read", r, rest, resp, err)
			})
		}
	}
}

// checkReadUpgrade checks what one case of TestReadUpgrade gave (reader: read from a socket, whose
// unread bytes are checked too).
func checkReadUpgrade(t *testing.T, tt readUpgradeCase, reader bool, r *chunkReader, rest []byte, resp *http.Response, err error) {
	t.Helper()
	switch {
	case tt.wantErr == nil && tt.errText == "":
		if err != nil {
			t.Fatalf("err %v, want none", err)
		}
	case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
		t.Fatalf("err %v, want %v", err, tt.wantErr)
	case err == nil || !strings.Contains(err.Error(), tt.errText):
		t.Fatalf("err %v, want one saying %q", err, tt.errText)
	}
	if tt.class != "" && dialClass(err) != tt.class {
		t.Errorf("dialClass(%v) = %s, want %s", err, dialClass(err), tt.class)
	}
	if string(rest) != tt.wantRest {
		t.Errorf("rest %q, want %q", rest, tt.wantRest)
	}
	if got := r.unread(); reader && err == nil && got != tt.unread {
		t.Errorf("left unread %q, want %q", got, tt.unread)
	}
	if tt.status == 0 {
		if resp != nil {
			t.Fatalf("a response (%d) handed back", resp.StatusCode)
		}
		return
	}
	if resp == nil || resp.StatusCode != tt.status {
		t.Fatalf("response %+v, want status %d", resp, tt.status)
	}
	if got := resp.Header.Get("Retry-After"); got != tt.retry {
		t.Errorf("Retry-After %q, want %q", got, tt.retry)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != tt.body {
		t.Errorf("body %q, want %q", body, tt.body)
	}
	if err := resp.Body.Close(); err != nil {
		t.Errorf("closing the body: %v", err)
	}
}

func TestAppendUpgradeRequest(t *testing.T) {
	const fixed = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	tests := []struct {
		name    string
		url     string
		hdr     http.Header
		want    string
		wantErr string
	}{
		{name: "plain", url: "ws://127.0.0.1:8080/ws?token=abc", want: "GET /ws?token=abc HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: Go-http-client/1.1\r\n" + fixed + "\r\n"},
		{name: "no path no port", url: "ws://gw.example", want: "GET / HTTP/1.1\r\nHost: gw.example\r\nUser-Agent: Go-http-client/1.1\r\n" + fixed + "\r\n"},
		{name: "escaped path", url: "ws://h:1/a%20b/%E2%82%AC?q=%2F", want: "GET /a%20b/%E2%82%AC?q=%2F HTTP/1.1\r\nHost: h:1\r\nUser-Agent: Go-http-client/1.1\r\n" + fixed + "\r\n"},
		{
			name: "headers sorted, subprotocols spelled as gorilla",
			url:  "ws://h:1/ws",
			hdr: http.Header{"Origin": {"https://app.example.com"}, "Authorization": {"Bearer t"}, "Sec-Websocket-Protocol": {"chat, squall.v1"},
				"X-Two": {"a", "b"}, "Cookie": {"user=u1"}, "Content-Length": {"5"}},
			want: "GET /ws HTTP/1.1\r\nHost: h:1\r\nUser-Agent: Go-http-client/1.1\r\n" + fixed +
				"Authorization: Bearer t\r\nCookie: user=u1\r\nOrigin: https://app.example.com\r\nSec-WebSocket-Protocol: chat, squall.v1\r\nX-Two: a\r\nX-Two: b\r\n\r\n",
		},
		{name: "host and user agent from hdr", url: "ws://10.0.0.1:80/", hdr: http.Header{"Host": {"gw.example.com"}, "User-Agent": {"squall"}}, want: "GET / HTTP/1.1\r\nHost: gw.example.com\r\nUser-Agent: squall\r\n" + fixed + "\r\n"},
		{name: "empty user agent omitted", url: "ws://h:1/", hdr: http.Header{"User-Agent": {""}}, want: "GET / HTTP/1.1\r\nHost: h:1\r\n" + fixed + "\r\n"},
		{name: "line breaks in values", url: "ws://h:1/", hdr: http.Header{"X-A": {" one\r\nInjected: yes \t"}, "Bad Name": {"x"}}, want: "GET / HTTP/1.1\r\nHost: h:1\r\nUser-Agent: Go-http-client/1.1\r\n" + fixed + "X-A: one  Injected: yes\r\n\r\n"},
		{name: "invalid host sent empty", url: "ws://h:1/", hdr: http.Header{"Host": {"bad host"}}, want: "GET / HTTP/1.1\r\nHost: \r\nUser-Agent: Go-http-client/1.1\r\n" + fixed + "\r\n"},
		{name: "IPv6 zone dropped", url: "ws://[fe80::1%25lo]:8080/", want: "GET / HTTP/1.1\r\nHost: [fe80::1]:8080\r\nUser-Agent: Go-http-client/1.1\r\n" + fixed + "\r\n"},
		{name: "duplicate Upgrade", url: "ws://h:1/", hdr: http.Header{"Upgrade": {"x"}}, wantErr: "websocket: duplicate header not allowed: Upgrade"},
		{name: "duplicate key", url: "ws://h:1/", hdr: http.Header{"Sec-Websocket-Key": {"x"}}, wantErr: "websocket: duplicate header not allowed: Sec-Websocket-Key"},
		{name: "duplicate extensions", url: "ws://h:1/", hdr: http.Header{"Sec-Websocket-Extensions": {"x"}}, wantErr: "websocket: duplicate header not allowed: Sec-Websocket-Extensions"},
		{name: "non-ASCII host", url: "ws://h:1/", hdr: http.Header{"Host": {"bücher.example"}}, wantErr: "not ASCII"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := url.Parse(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			got, err := appendUpgradeRequest(nil, u, tt.hdr, testKey[:])
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("request\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

// TestUpgradeRequestMatchesGorilla checks that the request carries what gorilla's dialer sends for
// the same URL and headers: request target, Host and every header but the random key.
func TestUpgradeRequestMatchesGorilla(t *testing.T) {
	tests := []struct {
		name string
		url  string
		hdr  http.Header
	}{
		{"plain", "ws://127.0.0.1:8080/ws?token=abc", nil},
		{"escaped", "ws://h:1/a%20b/%E2%82%AC?q=%2F&r", nil},
		{"connHeaders", "ws://h:1/ws", http.Header{"Origin": {"https://app.example.com"}, "Authorization": {"Bearer t"},
			"Sec-Websocket-Protocol": {"chat, squall.v1"}, "X-Two": {"a", "b"}, "Cookie": {"user=u1"}}},
		{"host and user agent", "ws://10.0.0.1:80/", http.Header{"Host": {"gw.example.com:8443"}, "User-Agent": {"squall"}}},
		{"empty user agent", "ws://h:1/", http.Header{"User-Agent": {""}}},
		{"empty host", "ws://h:1/", http.Header{"Host": {""}}},
		{"excluded and invalid", "ws://h:1/", http.Header{"Content-Length": {"5"}, "Trailer": {"x"}, "Transfer-Encoding": {"chunked"}, "Bad Name": {"x"}}},
		{"line breaks", "ws://h:1/", http.Header{"X-A": {" one\r\nInjected: yes \t"}}},
		{"invalid host", "ws://h:1/", http.Header{"Host": {"bad host"}}},
		{"zone", "ws://[fe80::1%25lo]:8080/", nil},
		{"duplicate", "ws://h:1/", http.Header{"Connection": {"close"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			theirs, theirErr := gorillaRequest(t, tt.url, tt.hdr)
			u, err := url.Parse(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			b, ourErr := appendUpgradeRequest(nil, u, tt.hdr, testKey[:])
			if theirErr != nil || ourErr != nil {
				if theirErr == nil || ourErr == nil || theirErr.Error() != ourErr.Error() {
					t.Fatalf("gorilla: %v; ours: %v", theirErr, ourErr)
				}
				return
			}
			ours, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b)))
			if err != nil {
				t.Fatalf("our request %q does not parse: %v", b, err)
			}
			if ours.Method != theirs.Method || ours.RequestURI != theirs.RequestURI || ours.Host != theirs.Host || ours.Proto != theirs.Proto {
				t.Errorf("ours %s %s %s Host %q, gorilla's %s %s %s Host %q", ours.Method, ours.RequestURI, ours.Proto, ours.Host,
					theirs.Method, theirs.RequestURI, theirs.Proto, theirs.Host)
			}
			if len(theirs.Header["Sec-Websocket-Key"]) != 1 || len(ours.Header["Sec-Websocket-Key"]) != 1 {
				t.Errorf("keys: ours %q, gorilla's %q", ours.Header["Sec-Websocket-Key"], theirs.Header["Sec-Websocket-Key"])
			}
			delete(ours.Header, "Sec-Websocket-Key")
			delete(theirs.Header, "Sec-Websocket-Key")
			if !reflect.DeepEqual(ours.Header, theirs.Header) {
				t.Errorf("headers\nours    %q\ngorilla %q", ours.Header, theirs.Header)
			}
		})
	}
}

// gorillaRequest is the request gorilla's dialer writes for rawURL and hdr (or its error).
func gorillaRequest(t *testing.T, rawURL string, hdr http.Header) (*http.Request, error) {
	t.Helper()
	cli, srv := net.Pipe()
	got := make(chan *http.Request, 1)
	go func() {
		defer srv.Close()
		req, err := http.ReadRequest(bufio.NewReader(srv))
		if err != nil {
			req = nil
		}
		got <- req
	}()
	d := websocket.Dialer{NetDialContext: func(context.Context, string, string) (net.Conn, error) { return cli, nil }}
	_, _, err := d.DialContext(context.Background(), rawURL, hdr)
	cli.Close()
	req := <-got
	if err != nil && strings.Contains(err.Error(), "duplicate header") {
		return nil, err
	}
	if req == nil {
		t.Fatalf("gorilla wrote no request for %s (%v)", rawURL, err)
	}
	return req, nil
}

// rawServer accepts connections on loopback and hands each, with the upgrade request read from it,
// to serve. It returns the ws:// URL to dial; the listener closes and every serve has returned
// when the test ends.
func rawServer(t *testing.T, serve func(c net.Conn, br *bufio.Reader, req *http.Request)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				serve(c, br, req)
			})
		}
	})
	return "ws://" + ln.Addr().String() + "/ws"
}

// answer101 writes the valid 101 answer to req, followed by extra.
func answer101(c net.Conn, req *http.Request, extra string) {
	k := [24]byte([]byte(req.Header.Get("Sec-WebSocket-Key")))
	a := acceptKey(&k)
	_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "+string(a[:])+"\r\n\r\n"+extra)
}

// netDial dials as the run's dialer does, without its source address and histograms.
func netDial(ctx context.Context, network, addr string) (net.Conn, error) {
	return (&net.Dialer{KeepAlive: -1}).DialContext(ctx, network, addr)
}

func TestDialUpgrade(t *testing.T) {
	// outcome is what the dial returned.
	type outcome struct {
		err  error
		resp *http.Response
	}
	tests := []struct {
		name    string
		timeout time.Duration
		serve   func(c net.Conn, br *bufio.Reader, req *http.Request, cancel context.CancelFunc)
		check   func(t *testing.T, o outcome)
	}{
		{
			name: "bad accept closes the socket",
			serve: func(c net.Conn, _ *bufio.Reader, _ *http.Request, _ context.CancelFunc) {
				_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "+testAccept+"\r\n\r\n")
			},
			check: func(t *testing.T, o outcome) {
				if !errors.Is(o.err, websocket.ErrBadHandshake) || o.resp != nil {
					t.Errorf("err %v resp %v, want ErrBadHandshake without a response", o.err, o.resp)
				}
			},
		},
		{
			name: "closed mid-head",
			serve: func(c net.Conn, _ *bufio.Reader, _ *http.Request, _ context.CancelFunc) {
				_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgr")
				c.(*net.TCPConn).CloseWrite()
			},
			check: func(t *testing.T, o outcome) {
				if dialClass(o.err) != stats.ErrHandshake {
					t.Errorf("err %v (%s), want class %s", o.err, dialClass(o.err), stats.ErrHandshake)
				}
			},
		},
		{
			name:    "silent server times out",
			timeout: 300 * time.Millisecond,
			serve:   func(net.Conn, *bufio.Reader, *http.Request, context.CancelFunc) {},
			check: func(t *testing.T, o outcome) {
				if dialClass(o.err) != stats.ErrDialTimeout {
					t.Errorf("err %v (%s), want class %s", o.err, dialClass(o.err), stats.ErrDialTimeout)
				}
			},
		},
		{
			name: "cancelled mid-read",
			serve: func(_ net.Conn, _ *bufio.Reader, _ *http.Request, cancel context.CancelFunc) {
				cancel() // the request arrived; the answer never will
			},
			check: func(t *testing.T, o outcome) {
				if !errors.Is(o.err, context.Canceled) {
					t.Errorf("err %v, want context.Canceled", o.err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := cmp.Or(tt.timeout, 10*time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			seen := make(chan error, 1)
			u := rawServer(t, func(c net.Conn, br *bufio.Reader, req *http.Request) {
				tt.serve(c, br, req, cancel)
				_, err := br.ReadByte()
				seen <- err
			})
			start := time.Now()
			nc, rest, resp, err := dialUpgrade(ctx, netDial, u, nil)
			if nc != nil || rest != nil || err == nil {
				t.Fatalf("dial succeeded: %v %q", nc, rest)
			}
			if d := time.Since(start); d > timeout+2*time.Second {
				t.Errorf("the dial took %v (timeout %v)", d, timeout)
			}
			select {
			case serr := <-seen:
				if serr != io.EOF && !errors.Is(serr, syscall.ECONNRESET) {
					t.Errorf("the server read %v after its answer, want the client's close", serr)
				}
			case <-time.After(5 * time.Second):
				t.Error("the client left the socket open")
			}
			tt.check(t, outcome{err: err, resp: resp})
		})
	}
}

func TestDialUpgradeRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, _, resp, err := dialUpgrade(context.Background(), netDial, "ws://"+addr+"/ws", nil)
	if !errors.Is(err, syscall.ECONNREFUSED) || dialClass(err) != stats.ErrDialRefused || resp != nil {
		t.Fatalf("err %v (%s) resp %v, want ECONNREFUSED", err, dialClass(err), resp)
	}
	for _, raw := range []string{"wss://" + addr + "/", "ws://user:pw@" + addr + "/", "http://" + addr + "/"} {
		if _, _, _, err := dialUpgrade(context.Background(), netDial, raw, nil); !errors.Is(err, errMalformedWSURL) {
			t.Errorf("%s: err %v, want %v", raw, err, errMalformedWSURL)
		}
	}
}

// TestDialUpgradeStatus checks a refusal from a net/http server: its status, Retry-After and body
// reach the caller, which the error classes as a refused upgrade.
func TestDialUpgradeStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	nc, _, resp, err := dialUpgrade(context.Background(), netDial, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil)
	if nc != nil || !errors.Is(err, websocket.ErrBadHandshake) || dialClass(err) != stats.ErrUpgradeRefused {
		t.Fatalf("conn %v err %v (%s), want a refused upgrade", nc, err, dialClass(err))
	}
	if resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "7" {
		t.Fatalf("response %+v, want 503 with Retry-After 7", resp)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "busy\n" {
		t.Errorf("body %q", body)
	}
}

// TestDialUpgradeDeadlineCleared checks that a socket handed over has no deadline left from the
// dial's context, and that frames sent with the 101 come back as rest.
func TestDialUpgradeDeadlineCleared(t *testing.T) {
	more := make(chan struct{})
	u := rawServer(t, func(c net.Conn, br *bufio.Reader, req *http.Request) {
		answer101(c, req, testFrame)
		<-more
		_, _ = io.WriteString(c, testFrame)
		_, _ = br.ReadByte() // until the client closes
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	nc, rest, _, err := dialUpgrade(ctx, netDial, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	dl, _ := ctx.Deadline()
	cancel() // the handshake is over: the context no longer reaches the socket
	if string(rest) != testFrame {
		t.Errorf("rest %q, want the frame sent with the 101", rest)
	}
	time.Sleep(time.Until(dl) + 50*time.Millisecond) // past the dial's deadline
	close(more)
	b := make([]byte, len(testFrame))
	if _, err := io.ReadFull(nc, b); err != nil || string(b) != testFrame {
		t.Fatalf("read %q %v after the dial's deadline, want the frame", b, err)
	}
}

// TestDialUpgradeGorillaServer upgrades against gorilla's Upgrader, which checks a request
// strictly, with the headers a target's ConnSpec and token give, then exchanges frames over the
// socket handed over.
func TestDialUpgradeGorillaServer(t *testing.T) {
	type seen struct {
		hdr         http.Header
		subprotocol string
		got         string
	}
	ch := make(chan seen, 1)
	up := websocket.Upgrader{Subprotocols: []string{"squall.v1"}, CheckOrigin: func(r *http.Request) bool {
		return r.Header.Get("Origin") == "https://app.example.com"
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		s := seen{hdr: r.Header.Clone(), subprotocol: ws.Subprotocol()}
		_ = ws.WriteMessage(websocket.TextMessage, []byte("welcome"))
		_, m, err := ws.ReadMessage()
		if err == nil {
			s.got = string(m)
			_ = ws.WriteMessage(websocket.TextMessage, append([]byte("echo:"), m...))
		}
		ch <- s
		_, _, _ = ws.ReadMessage() // until the client closes
	}))
	defer srv.Close()

	spec := ConnSpec{Origin: "https://app.example.com", Subprotocols: []string{"chat", "squall.v1"}, Headers: map[string]string{"X-Squall-User": "{{.User}}"}}
	ch0, err := newConnHeaders(spec)
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := ch0.header(templateData{User: "users-1"})
	if err != nil {
		t.Fatal(err)
	}
	raw, hdr, err := placeToken(PlaceHeader, "", "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws?x=1", hdr, "tok")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, rest, resp, err := dialUpgrade(ctx, netDial, raw, hdr)
	if err != nil {
		t.Fatalf("dial: %v (response %+v)", err, resp)
	}
	defer nc.Close()

	var fr wsframe.Reader
	var msgs []string
	next := func() string {
		t.Helper()
		b := make([]byte, 512)
		for len(msgs) == 0 {
			if err := fr.Feed(rest, 0, func(ev wsframe.Event) { msgs = append(msgs, string(ev.Payload)) }); err != nil {
				t.Fatal(err)
			}
			rest = nil
			if len(msgs) > 0 {
				break
			}
			_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := nc.Read(b)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			rest = b[:n]
		}
		m := msgs[0]
		msgs = msgs[1:]
		return m
	}
	if m := next(); m != "welcome" {
		t.Fatalf("first message %q", m)
	}
	if _, err := nc.Write(wsframe.AppendClientFrame(nil, wsframe.OpText, []byte("ping"), [4]byte{1, 2, 3, 4})); err != nil {
		t.Fatal(err)
	}
	if m := next(); m != "echo:ping" {
		t.Fatalf("answer %q", m)
	}
	s := <-ch
	if s.subprotocol != "squall.v1" || s.got != "ping" {
		t.Errorf("server: subprotocol %q, got %q", s.subprotocol, s.got)
	}
	for k, want := range map[string]string{"Origin": "https://app.example.com", "Authorization": "Bearer tok", "X-Squall-User": "users-1",
		"Sec-Websocket-Protocol": "chat, squall.v1", "User-Agent": "Go-http-client/1.1"} {
		if got := s.hdr.Get(k); got != want {
			t.Errorf("server saw %s %q, want %q", k, got, want)
		}
	}
}

// TestHandshakeAllocs guards the handshake's allocation budget: writing the request and reading a
// 101 allocate nothing but the bytes past the head.
func TestHandshakeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	u, _ := url.Parse("ws://127.0.0.1:8080/ws?token=abc")
	hdr := http.Header{"Origin": {"https://app.example.com"}, "Authorization": {"Bearer t"}, "Sec-Websocket-Protocol": {"squall.v1"}}
	bp := handshakeBufs.Get().(*[]byte)
	if n := testing.AllocsPerRun(100, func() {
		var err error
		if *bp, err = appendUpgradeRequest((*bp)[:0], u, hdr, testKey[:]); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("appendUpgradeRequest: %v allocations, want 0", n)
	}
	for _, tc := range []struct {
		answer string
		want   float64
	}{{ok101, 0}, {ok101 + testFrame, 1}} {
		r := &chunkReader{chunks: make([][]byte, 1)}
		ans := []byte(tc.answer)
		if n := testing.AllocsPerRun(100, func() {
			r.chunks = append(r.chunks[:0], ans)
			if _, _, err := readUpgrade(r, bp, &testKey, hdr["Sec-Websocket-Protocol"]); err != nil {
				t.Fatal(err)
			}
		}); n != tc.want {
			t.Errorf("readUpgrade of %q: %v allocations, want %v", tc.answer, n, tc.want)
		}
	}
	var key [24]byte
	if n := testing.AllocsPerRun(100, func() { newChallengeKey(&key); _ = acceptKey(&key) }); n != 0 {
		t.Errorf("key and accept: %v allocations, want 0", n)
	}
}

// FuzzReadUpgrade feeds arbitrary answers, in pieces of arbitrary size, to the handshake's reader:
// it never panics, what it accepts is a 101 head answering the key followed by the bytes it hands
// back, a refusal comes with a response, and the same pieces handed over as the run's poller hands
// them (upgradeAnswer.feed) give the same verdict.
func FuzzReadUpgrade(f *testing.F) {
	f.Add([]byte(ok101), uint8(0))
	f.Add([]byte(ok101+testFrame), uint8(3))
	f.Add([]byte(strings.ReplaceAll(ok101, "\r\n", "\n")+testFrame), uint8(1))
	f.Add([]byte("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nContent-Length: 5\r\n\r\nbusy\n"), uint8(0))
	f.Add([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "+testAccept+"\r\nSec-WebSocket-Protocol: b\r\n\r\n"), uint8(7))
	f.Add([]byte("HTTP/1.1 101\r\n: x\r\n\r\n"), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, piece uint8) {
		r := &chunkReader{chunks: chunksOf(string(data), int(piece))}
		bp := handshakeBufs.Get().(*[]byte)
		defer putHandshakeBuf(bp)
		rest, resp, err := readUpgrade(r, bp, &testKey, []string{"a, b"})
		// Handed over piece by piece, as the run's poller does, the answer reads the same.
		a := upgradeAnswer{key: &testKey, offered: []string{"a, b"}}
		var (
			fresp *http.Response
			ferr  error
			done  bool
		)
		for _, ch := range chunksOf(string(data), int(piece)) {
			if done, _, fresp, ferr = a.feed(ch); done {
				break
			}
		}
		if !done {
			fresp, ferr = a.end(io.EOF)
		}
		if (ferr == nil) != (err == nil) || (fresp == nil) != (resp == nil) || (resp != nil && resp.StatusCode != fresp.StatusCode) {
			t.Fatalf("read: %v (response %v); handed over: %v (response %v)", err, resp != nil, ferr, fresp != nil)
		}
		if resp != nil {
			if !errors.Is(err, websocket.ErrBadHandshake) {
				t.Fatalf("a response with err %v", err)
			}
			if b, _ := io.ReadAll(resp.Body); len(b) > refusalBodyLimit {
				t.Fatalf("%d bytes of body kept", len(b))
			}
			return
		}
		if err != nil {
			return
		}
		read := data[:len(data)-len(r.unread())]
		head := read[:len(read)-len(rest)]
		if !bytes.HasSuffix(read, rest) || !bytes.HasPrefix(head, []byte("HTTP/1.")) || !(bytes.HasSuffix(head, []byte("\n\n")) || bytes.HasSuffix(head, []byte("\n\r\n"))) {
			t.Fatalf("accepted %q with rest %q", read, rest)
		}
		if !bytes.Contains(head, []byte(testAccept)) || len(head) > maxUpgradeHead {
			t.Fatalf("accepted head %q", head)
		}
	})
}

// handshakeServerEnv, set in its environment, makes the test binary the server of
// BenchmarkHandshake (TestHandshakeServerProcess): in a process of its own, the server's
// allocations stay out of the benchmark's figures.
const handshakeServerEnv = "SQUALL_HANDSHAKE_SERVER"

// TestHandshakeServerProcess is BenchmarkHandshake's server when handshakeServerEnv is set: it
// prints its address, upgrades every request with gorilla's Upgrader and closes the connection at
// once, until its standard input closes.
func TestHandshakeServerProcess(t *testing.T) {
	if os.Getenv(handshakeServerEnv) == "" {
		t.Skip("the server process of BenchmarkHandshake")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := websocket.Upgrader{ReadBufferSize: 512, WriteBufferSize: 512, CheckOrigin: func(*http.Request) bool { return true }}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ws, err := up.Upgrade(w, r, nil); err == nil {
			ws.Close()
		}
	})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	fmt.Println(ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	srv.Close()
	<-done
}

// BenchmarkHandshake opens WebSockets to a gorilla server in another process and closes them:
// over the lean handshake, over gorilla's dialer as the run configures it (newDialer), and plain
// TCP connections for the floor both share. Both handshakes dial with the run's NetDialContext.
func BenchmarkHandshake(b *testing.B) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHandshakeServerProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), handshakeServerEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	out := bufio.NewReader(stdout)
	addr, err := out.ReadString('\n')
	if err != nil {
		b.Fatalf("server process: %v", err)
	}
	b.Cleanup(func() {
		stdin.Close()
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
	})
	u := "ws://" + strings.TrimSpace(addr) + "/ws?token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2Vycy0xIn0.c2lnbmF0dXJl"
	hdr := http.Header{"Origin": {"https://app.example.com"}, "Cookie": {"session=users-1"}}
	dialer := newDialer(stats.NewRecorder(time.Now()), nil)
	ctx := context.Background()
	b.Run("lean", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			nc, _, _, err := dialUpgrade(dctx, dialer.NetDialContext, u, hdr)
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			nc.Close()
		}
	})
	b.Run("gorilla", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			ws, _, err := dialer.DialContext(dctx, u, hdr)
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			ws.Close()
		}
	})
	b.Run("tcp", func(b *testing.B) {
		b.ReportAllocs()
		hostPort := strings.TrimSpace(addr)
		for b.Loop() {
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			nc, err := dialer.NetDialContext(dctx, "tcp", hostPort)
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			nc.Close()
		}
	})
}

// TestPollerDialAddr: an attempt goes to the poller from its start only for a ws:// URL whose host
// is an IP address (a name needs a resolver the loop must not wait for), at the URL's port or 80.
func TestPollerDialAddr(t *testing.T) {
	for _, tc := range []struct {
		url, want string // want "": not on the poller
	}{
		{"ws://127.0.0.1:8080/ws?token=x", "127.0.0.1:8080"},
		{"ws://127.0.0.1/ws", "127.0.0.1:80"},
		{"ws://[::1]:9000/ws", "[::1]:9000"},
		{"ws://[::1]/ws", "[::1]:80"},
		{"ws://10.0.0.7:80", "10.0.0.7:80"},
		{"ws://localhost:8080/ws", ""},
		{"ws://gateway.example:443/ws", ""},
		{"wss://127.0.0.1:8443/ws", ""},
		{"http://127.0.0.1:8080/ws", ""},
		{"ws://user@127.0.0.1:8080/ws", ""},
		{"ws://[fe80::1%25eth0]:80/ws", ""},
	} {
		ap, ok := pollerDialAddr(tc.url)
		got := ""
		if ok {
			got = ap.String()
		}
		if got != tc.want {
			t.Errorf("pollerDialAddr(%q) = %q, want %q", tc.url, got, tc.want)
		}
	}
}
