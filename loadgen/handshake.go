package loadgen

// The WebSocket opening handshake of connections the run's poller takes over (ClientIOEpoll, ws://
// targets). gorilla/websocket's Dialer builds an http.Request, writes it through a fresh 4 KB
// bufio.Writer, reads the answer with http.ReadResponse and wraps the socket in a Conn with buffers
// of its own; a connection the poller adopts needs none of that. Here the request is written in one
// write from a pooled buffer, the response head read into a pooled buffer and checked as RFC 6455
// §4.1 asks, and the socket handed over with the bytes that followed the head. The request carries
// what gorilla's carries, header for header; an answer other than 101 is read by net/http, as
// gorilla's is, so that a refusal looks the same to the caller whichever path dialled.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// wsAcceptGUID is appended to the request's key to derive Sec-WebSocket-Accept (RFC 6455 §1.3).
const wsAcceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

const (
	// handshakeBufSize is the size of a new pooled handshake buffer: an upgrade request and a 101
	// head fit in it.
	handshakeBufSize = 1 << 10
	// maxUpgradeHead bounds the head of a 101 answer (status line to blank line); a longer one
	// fails the handshake. An answer other than 101 is read by net/http, without this bound.
	maxUpgradeHead = 8 << 10
	// refusalBodyLimit is how much of a refusal's body is kept for the caller, as gorilla keeps.
	refusalBodyLimit = 1 << 10
	// defaultUserAgent is net/http's, which gorilla's requests carry.
	defaultUserAgent = "Go-http-client/1.1"
)

// handshakeBufs hold an upgrade request and then the answer's head; a buffer that grew past
// maxUpgradeHead is not kept.
var handshakeBufs = sync.Pool{New: func() any { b := make([]byte, 0, handshakeBufSize); return &b }}

// errMalformedWSURL is gorilla's answer to a URL that is not ws:// or carries user info.
var errMalformedWSURL = errors.New("malformed ws or wss URL")

// aLongTimeAgo is a deadline in the past: set on a socket, it ends a blocked read or write at once.
var aLongTimeAgo = time.Unix(1, 0)

// dialUpgrade opens a WebSocket to rawURL (a ws:// URL) for the run's poller to take over. It dials
// the URL's host:port with dial (network "tcp"), writes the upgrade request with the headers in hdr
// as gorilla/websocket's Dialer.DialContext does (a "Host" entry replaces the URL's host; entries
// the handshake sets itself are refused), and validates the answer (RFC 6455 §4.1). It returns the
// socket, its deadline cleared, and the bytes that arrived after the answer's head: frames the
// server sent at once, which come before anything read from the socket later (nil when none).
//
// ctx bounds the whole handshake: its deadline is the socket's until the answer is validated, and
// its cancellation ends a handshake in progress with ctx's error. On failure the socket is closed.
// A status other than 101 comes back as a response (status, headers and the first 1 KiB of body,
// readable after the socket is closed; closing it is optional) with an error wrapping
// websocket.ErrBadHandshake; a 101 that fails validation wraps it too, without a response. A
// connection that ends within the head is io.ErrUnexpectedEOF, a malformed or oversized head a
// plain error, and a failed dial's error is returned as it is.
func dialUpgrade(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error), rawURL string, hdr http.Header) (net.Conn, []byte, *http.Response, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, nil, err
	}
	if u.Scheme != "ws" || u.User != nil {
		return nil, nil, nil, errMalformedWSURL
	}
	var key [24]byte
	newChallengeKey(&key)
	bp := handshakeBufs.Get().(*[]byte)
	defer putHandshakeBuf(bp)
	req, err := appendUpgradeRequest((*bp)[:0], u, hdr, key[:])
	*bp = req[:0]
	if err != nil {
		return nil, nil, nil, err
	}
	hostPort := u.Host
	if i := strings.LastIndexByte(hostPort, ':'); i <= strings.LastIndexByte(hostPort, ']') {
		hostPort += ":80" // as gorilla: no port in the URL is the scheme's
	}
	conn, err := dial(ctx, "tcp", hostPort)
	if err != nil {
		return nil, nil, nil, err
	}
	rest, resp, err := upgradeOn(ctx, conn, req, bp, &key, hdr["Sec-Websocket-Protocol"])
	if err != nil {
		conn.Close()
		return nil, nil, resp, err
	}
	return conn, rest, nil, nil
}

// upgradeOn writes req on conn and reads and validates the answer into *bp under ctx (see
// dialUpgrade); offered are the Sec-WebSocket-Protocol values of the request. It leaves conn open.
func upgradeOn(ctx context.Context, conn net.Conn, req []byte, bp *[]byte, key *[24]byte, offered []string) ([]byte, *http.Response, error) {
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return nil, nil, err
		}
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(aLongTimeAgo) })
	var (
		rest []byte
		resp *http.Response
	)
	_, err := conn.Write(req)
	if err == nil {
		rest, resp, err = readUpgrade(conn, bp, key, offered)
	}
	if !stop() && (err == nil || errors.Is(err, os.ErrDeadlineExceeded)) {
		// ctx ended the handshake (or may end it now: the deadline moves to the past at any time).
		// A refusal already read is kept: it is the server's answer.
		return nil, nil, ctx.Err()
	}
	if err != nil {
		return nil, resp, err
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil, nil, err
	}
	return rest, nil, nil
}

// putHandshakeBuf returns a handshake buffer to the pool unless it grew past maxUpgradeHead.
func putHandshakeBuf(bp *[]byte) {
	if cap(*bp) <= maxUpgradeHead {
		*bp = (*bp)[:0]
		handshakeBufs.Put(bp)
	}
}

// newChallengeKey writes a fresh Sec-WebSocket-Key: 16 random bytes, base64. The key is a nonce
// that keeps caches and intermediaries from replaying an answer (RFC 6455 §4.1, §10.3); it guards
// against no attacker, so the runtime's generator serves.
func newChallengeKey(key *[24]byte) {
	var raw [16]byte
	binary.LittleEndian.PutUint64(raw[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(raw[8:], rand.Uint64())
	base64.StdEncoding.Encode(key[:], raw[:])
}

// acceptKey is the Sec-WebSocket-Accept a server answers key with: base64(SHA-1(key + GUID)).
func acceptKey(key *[24]byte) [28]byte {
	var in [len(key) + len(wsAcceptGUID)]byte
	copy(in[copy(in[:], key[:]):], wsAcceptGUID)
	sum := sha1.Sum(in[:])
	var out [28]byte
	base64.StdEncoding.Encode(out[:], sum[:])
	return out
}

// appendUpgradeRequest appends to b the upgrade request for u with key, carrying hdr as gorilla's
// Dialer.DialContext carries a request header, written as net/http writes a request: the request
// line and Host (hdr's "Host" entry, else the URL's host:port as written; an invalid one is sent
// empty, an IPv6 zone dropped), User-Agent (hdr's, else net/http's), the handshake's own headers,
// then hdr's other entries sorted by name, each value on a line of its own with line breaks made
// spaces and surrounding space trimmed. Entries with an invalid name are dropped, as are
// Content-Length, Transfer-Encoding and Trailer (a GET carries no body). An entry the handshake
// sets (Upgrade, Connection, Sec-Websocket-Key, -Version, -Extensions; keys as canonicalised by
// http.Header) is an error, as with gorilla, and so is a Host that is not ASCII (net/http would
// convert it to Punycode, which this package does not carry).
func appendUpgradeRequest(b []byte, u *url.URL, hdr http.Header, key []byte) ([]byte, error) {
	host := u.Host
	var names [16]string
	keys := names[:0]
	for k, vs := range hdr {
		switch k {
		case "Host":
			if len(vs) > 0 && vs[0] != "" { // an empty one is the URL's, as net/http takes it
				host = vs[0]
			}
		case "Upgrade", "Connection", "Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions":
			return b, errors.New("websocket: duplicate header not allowed: " + k)
		case "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
		default:
			keys = append(keys, k)
		}
	}
	for i := 0; i < len(host); i++ {
		if host[i] >= utf8.RuneSelf {
			return b, fmt.Errorf("websocket: Host %q is not ASCII (write its Punycode form)", host)
		}
	}
	if !validHostHeader(host) {
		host = ""
	}
	host = removeZone(host)
	slices.Sort(keys)

	b = append(b, "GET "...)
	if u.Opaque != "" {
		if strings.HasPrefix(u.Opaque, "//") {
			b = append(b, "http:"...) // as net/http's RequestURI of gorilla's http:// request URL
		}
		b = append(b, u.Opaque...)
	} else if p := u.EscapedPath(); p != "" {
		b = append(b, p...)
	} else {
		b = append(b, '/')
	}
	if u.ForceQuery || u.RawQuery != "" {
		b = append(b, '?')
		b = append(b, u.RawQuery...)
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	ua := defaultUserAgent
	if vs, ok := hdr["User-Agent"]; ok {
		ua = ""
		if len(vs) > 0 {
			ua = vs[0]
		}
	}
	if ua != "" {
		b = appendHeaderLine(b, "User-Agent", ua)
	}
	b = append(b, "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "...)
	b = append(b, key...)
	b = append(b, "\r\nSec-WebSocket-Version: 13\r\n"...)
	for _, k := range keys {
		if !validHeaderName(k) {
			continue
		}
		name := k
		if k == "Sec-Websocket-Protocol" {
			name = "Sec-WebSocket-Protocol" // gorilla's spelling, from the RFC's examples
		}
		for _, v := range hdr[k] {
			b = appendHeaderLine(b, name, v)
		}
	}
	return append(b, "\r\n"...), nil
}

// appendHeaderLine appends "name: value\r\n" with value's line breaks made spaces and its
// surrounding space trimmed, as net/http writes a header value.
func appendHeaderLine(b []byte, name, value string) []byte {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }
	for len(value) > 0 && isSpace(value[0]) {
		value = value[1:]
	}
	for len(value) > 0 && isSpace(value[len(value)-1]) {
		value = value[:len(value)-1]
	}
	b = append(b, name...)
	b = append(b, ": "...)
	for i := 0; i < len(value); i++ {
		c := value[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return append(b, "\r\n"...)
}

// readUpgrade reads the answer to an upgrade request from r into *bp (its contents overwritten;
// a buffer it grows replaces *bp) and validates it against key and the offered subprotocols
// (upgradeAnswer). It returns a copy of the bytes read past a valid 101's head (nil when none), or
// the refusal an answer other than 101 is. Nothing it returns refers to *bp.
func readUpgrade(r io.Reader, bp *[]byte, key *[24]byte, offered []string) ([]byte, *http.Response, error) {
	a := upgradeAnswer{key: key, offered: offered, buf: (*bp)[:0]}
	defer func() { *bp = a.buf[:0] }()
	for {
		if len(a.buf) == cap(a.buf) {
			a.buf = slices.Grow(a.buf, min(max(cap(a.buf), 512), maxAnswer-len(a.buf)+1))
		}
		n, err := r.Read(a.buf[len(a.buf):cap(a.buf)])
		if n > 0 {
			if done, rest, resp, ferr := a.grown(n); done {
				return rest, resp, ferr
			}
		}
		if err != nil {
			resp, err := a.end(err)
			return nil, resp, err
		}
	}
}

// maxAnswer bounds what is kept of an answer to an upgrade: a 101's head (maxUpgradeHead), or a
// refusal's head and the part of its body a caller gets.
const maxAnswer = maxUpgradeHead + refusalBodyLimit

// upgradeAnswer reads the answer to an upgrade request as it arrives, in pieces (readUpgrade
// reads them from a socket; the run's poller hands them over as they come, dialData): a 101's
// head, validated as RFC 6455 §4.1 asks (checkUpgrade), or another status, read with net/http as
// gorilla's dialer reads it (readRefusal) once its body is in as far as a caller keeps it.
type upgradeAnswer struct {
	key     *[24]byte
	offered []string // Sec-WebSocket-Protocol values of the request
	buf     []byte   // what arrived (the caller's buffer, grown as needed)
	scan    headScan
	status  int // 0 until the status line is in, then 101, or -1 for another status
}

// feed takes b, the next bytes of the answer. done reports the answer over: a valid 101 (err nil;
// rest, a copy of what followed its head, nil when nothing did), a refusal (resp, with an error
// wrapping websocket.ErrBadHandshake), or a malformed answer.
func (a *upgradeAnswer) feed(b []byte) (done bool, rest []byte, resp *http.Response, err error) {
	a.buf = append(a.buf, b...)
	return a.look()
}

// grown is feed for n bytes the caller read into a.buf's spare capacity.
func (a *upgradeAnswer) grown(n int) (done bool, rest []byte, resp *http.Response, err error) {
	a.buf = a.buf[:len(a.buf)+n]
	return a.look()
}

// look examines the answer so far (feed).
func (a *upgradeAnswer) look() (done bool, rest []byte, resp *http.Response, err error) {
	buf := a.buf
	if a.status == 0 {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			if len(buf) >= maxUpgradeHead {
				return true, nil, nil, errHeadTooLong
			}
			return false, nil, nil, nil
		}
		a.status = http.StatusSwitchingProtocols
		if !isStatus101(buf[:i]) {
			a.status = -1
		}
	}
	end := a.scan.end(buf)
	if a.status < 0 {
		if (end >= 0 && refusalComplete(buf, end)) || len(buf) >= maxAnswer {
			resp, err := readRefusal(bytes.NewReader(buf))
			return true, nil, resp, err
		}
		return false, nil, nil, nil
	}
	if end > maxUpgradeHead || (end < 0 && len(buf) >= maxUpgradeHead) {
		return true, nil, nil, errHeadTooLong
	}
	if end < 0 {
		return false, nil, nil, nil
	}
	if err := checkUpgrade(buf[:end], a.key, a.offered); err != nil {
		return true, nil, nil, err
	}
	if end < len(buf) {
		rest = slices.Clone(buf[end:])
	}
	return true, rest, nil, nil
}

// end is the answer's end when the connection ended (err: how; io.EOF when the peer closed it)
// before feed said it was over: a refusal's body cut short is still a refusal.
func (a *upgradeAnswer) end(err error) (*http.Response, error) {
	if a.status < 0 {
		return readRefusal(bytes.NewReader(a.buf))
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF // as http.ReadResponse: the head was cut
	}
	return nil, err
}

// errHeadTooLong fails the handshake of a 101 whose head is over maxUpgradeHead.
var errHeadTooLong = fmt.Errorf("websocket: handshake response head over %d bytes", maxUpgradeHead)

// refusalComplete reports whether buf, an answer other than 101 whose head is buf[:headEnd], holds
// all the body a refusal keeps: its length's worth (at most refusalBodyLimit), or refusalBodyLimit
// bytes of a body of no stated length.
func refusalComplete(buf []byte, headEnd int) bool {
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(buf[:headEnd])), nil)
	if err != nil {
		return true // malformed: readRefusal says so
	}
	want := int64(refusalBodyLimit)
	if resp.ContentLength >= 0 && len(resp.TransferEncoding) == 0 {
		want = min(resp.ContentLength, want)
	}
	return int64(len(buf)-headEnd) >= want
}

// readRefusal reads an answer other than 101 with net/http, as gorilla's dialer does, keeping the
// first refusalBodyLimit bytes of its body, and fails the handshake with websocket.ErrBadHandshake.
func readRefusal(r io.Reader) (*http.Response, error) {
	resp, err := http.ReadResponse(bufio.NewReader(r), nil)
	if err != nil {
		return nil, err
	}
	body := make([]byte, refusalBodyLimit)
	n, _ := io.ReadFull(resp.Body, body)
	// The rest of the body is left unread (closing the body would read it to its end): the
	// socket is closed next.
	resp.Body = io.NopCloser(bytes.NewReader(body[:n]))
	return resp, fmt.Errorf("%w: HTTP status %d", websocket.ErrBadHandshake, resp.StatusCode)
}

// headScan finds the end of an HTTP response head (the first empty line, ended by CRLF or a bare
// LF as net/http accepts) in bytes that arrive in pieces; each byte is looked at once.
type headScan struct {
	pos       int // bytes scanned
	lineStart int // start of the line being scanned
}

// end returns the length of the head in b, which extends what earlier calls saw, or -1 while the
// head is incomplete.
func (s *headScan) end(b []byte) int {
	for s.pos < len(b) {
		i := bytes.IndexByte(b[s.pos:], '\n')
		if i < 0 {
			s.pos = len(b)
			return -1
		}
		nl := s.pos + i
		line := b[s.lineStart:nl]
		s.pos, s.lineStart = nl+1, nl+1
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			return s.pos
		}
	}
	return -1
}

// isStatus101 reports whether line (without its LF) is an HTTP/1.x status line with status 101.
func isStatus101(line []byte) bool {
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) < len("HTTP/1.1 101") || !bytes.HasPrefix(line, []byte("HTTP/1.")) || (line[7] != '0' && line[7] != '1') {
		return false
	}
	rest := line[8:]
	return bytes.HasPrefix(rest, []byte(" 101")) && (len(rest) == 4 || rest[4] == ' ')
}

// checkUpgrade validates the head of a 101 answer (status line to empty line) to a request with
// key that offered the subprotocols in offered (Sec-WebSocket-Protocol values, comma-separated
// lists), as RFC 6455 §4.1 asks: Upgrade names websocket and Connection upgrade (token lists,
// case-insensitive), Sec-WebSocket-Accept is key's, a Sec-WebSocket-Protocol (at most one; empty
// counts as absent) is one offered, and there is no Sec-WebSocket-Extensions (none is offered).
// Failures wrap websocket.ErrBadHandshake; a line that is not a header field is a plain error.
func checkUpgrade(head []byte, key *[24]byte, offered []string) error {
	want := acceptKey(key)
	var (
		upgrade, connection bool
		accepts, protocols  int
		accept, protocol    []byte
	)
	lines := head[bytes.IndexByte(head, '\n')+1:] // after the status line
	for len(lines) > 0 {
		i := bytes.IndexByte(lines, '\n')
		if i < 0 {
			i = len(lines) // not reached: the head ends with an empty line
		}
		line := bytes.TrimSuffix(lines[:i], []byte("\r"))
		lines = lines[min(i+1, len(lines)):]
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !validHeaderName(line[:colon]) {
			return fmt.Errorf("websocket: malformed header line %q in the handshake response", line)
		}
		name, value := line[:colon], bytes.Trim(line[colon+1:], " \t")
		switch {
		case bytes.EqualFold(name, []byte("Upgrade")):
			upgrade = upgrade || tokenListHas(value, "websocket")
		case bytes.EqualFold(name, []byte("Connection")):
			connection = connection || tokenListHas(value, "upgrade")
		case bytes.EqualFold(name, []byte("Sec-WebSocket-Accept")):
			accepts++
			accept = value
		case bytes.EqualFold(name, []byte("Sec-WebSocket-Protocol")):
			protocols++
			protocol = value
		case bytes.EqualFold(name, []byte("Sec-WebSocket-Extensions")):
			return fmt.Errorf("%w: the server chose extensions %q, none offered", websocket.ErrBadHandshake, value)
		}
	}
	switch {
	case !upgrade:
		return fmt.Errorf("%w: no Upgrade: websocket in the 101 response", websocket.ErrBadHandshake)
	case !connection:
		return fmt.Errorf("%w: no Connection: upgrade in the 101 response", websocket.ErrBadHandshake)
	case accepts == 0:
		return fmt.Errorf("%w: no Sec-WebSocket-Accept in the 101 response", websocket.ErrBadHandshake)
	case accepts > 1 || !bytes.Equal(accept, want[:]):
		return fmt.Errorf("%w: Sec-WebSocket-Accept does not answer the key", websocket.ErrBadHandshake)
	case protocols > 1:
		return fmt.Errorf("%w: more than one Sec-WebSocket-Protocol in the 101 response", websocket.ErrBadHandshake)
	case len(protocol) > 0 && !offeredProtocol(offered, protocol):
		return fmt.Errorf("%w: the server chose subprotocol %q, not offered", websocket.ErrBadHandshake, protocol)
	}
	return nil
}

// tokenListHas reports whether the comma-separated list v holds tok, compared case-insensitively.
func tokenListHas(v []byte, tok string) bool {
	for len(v) > 0 {
		item := v
		if i := bytes.IndexByte(v, ','); i >= 0 {
			item, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		if bytes.EqualFold(bytes.Trim(item, " \t"), []byte(tok)) {
			return true
		}
	}
	return false
}

// offeredProtocol reports whether p is one of the subprotocols in offered (comma-separated lists);
// subprotocol names compare exactly.
func offeredProtocol(offered []string, p []byte) bool {
	for _, v := range offered {
		for v != "" {
			item := v
			if i := strings.IndexByte(v, ','); i >= 0 {
				item, v = v[:i], v[i+1:]
			} else {
				v = ""
			}
			if strings.Trim(item, " \t") == string(p) {
				return true
			}
		}
	}
	return false
}

// validHeaderName reports whether s is an HTTP token (RFC 9110 §5.6.2), as a field name must be.
func validHeaderName[S ~string | ~[]byte](s S) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHostHeader reports whether h holds only bytes that may appear in a Host header (host,
// IPv6 literal with zone, port), as net/http checks before sending it.
func validHostHeader(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!$%&'()*+,-.:;=[]_~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// removeZone drops the zone of an IPv6 literal host ("[fe80::1%eth0]:80" → "[fe80::1]:80"), as
// RFC 6874 asks of a client.
func removeZone(host string) string {
	if !strings.HasPrefix(host, "[") {
		return host
	}
	i := strings.LastIndexByte(host, ']')
	if i < 0 {
		return host
	}
	j := strings.LastIndexByte(host[:i], '%')
	if j < 0 {
		return host
	}
	return host[:j] + host[i:]
}
