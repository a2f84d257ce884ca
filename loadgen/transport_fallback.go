package loadgen

// Fallback tiers from the client side: a tab whose WebSocket upgrade is refused (a corporate proxy
// that strips the Upgrade header) or cut before anything came through falls back, as browsers'
// realtime libraries do, to Server-Sent Events (GET /sse for frames down, POST /send for frames
// up), then to long polling (GET /poll). The reference gateway carries the same JSON frames on
// every tier (refserver/protocol/fallback.go), so the squall profile runs unchanged on each; only
// the connection differs. A fallback connection is a wireConn: the client writes, closes and cuts
// it as it does a WebSocket.
//
// Per tier, a cohort whose behaviour chooses its transport records: connections opened
// (CtrTierConnects), HTTP requests made — the tier's cost: an SSE stream and every /send, every
// poll (CtrTierRequests), and fan-out latency (HistTierFanout), each suffixed with ":" and the tier.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/refserver/protocol"
)

// Transport tiers, the ladder's rungs in order.
const (
	TierWebSocket = "websocket"
	TierSSE       = "sse"
	TierPoll      = "poll"
)

// Transport choices of a behaviour (Behaviour.Transport).
const (
	TransportLadder = "ladder" // WebSocket, falling back to SSE, then to long polling
)

// tierLadder is the order a laddered tab falls back in.
var tierLadder = []string{TierWebSocket, TierSSE, TierPoll}

// Per-tier figures, each suffixed with ":" and the tier (TierKey).
const (
	CtrTierConnects = "tier_connects" // connections opened on the tier
	CtrTierRequests = "tier_requests" // HTTP requests the tier took (WebSocket: the upgrade)
	HistTierFanout  = "tier_fanout"   // fan-out latency of the broadcasts received on the tier
)

// TierKey names a per-tier figure.
func TierKey(name, tier string) string { return name + ":" + tier }

// fallbackConn is one SSE or long-poll connection to the reference gateway.
type fallbackConn struct {
	c      *client
	tier   string
	hc     *http.Client
	base   url.URL // http(s)://host
	token  string
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	connID   string
	nc       net.Conn           // the TCP connection dialled last (the SSE stream's)
	stop     context.CancelFunc // cancels the read in progress (a past read deadline)
	deadline time.Time
	body     io.ReadCloser
}

var _ wireConn = (*fallbackConn)(nil)

// openFallback opens a connection on tier (TierSSE or TierPoll) to the gateway whose WebSocket
// endpoint is wsURL, with the client's token.
func (c *client) openFallback(di dialInfo, tier, wsURL, token string) (*fallbackConn, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return nil, err
	}
	base := url.URL{Scheme: "http", Host: u.Host}
	if u.Scheme == "wss" {
		base.Scheme = "https"
	}
	fc := &fallbackConn{c: c, tier: tier, base: base, token: token}
	tr := &http.Transport{
		TLSClientConfig:     c.env.dialer.TLSClientConfig,
		MaxIdleConnsPerHost: 1,
		DisableCompression:  true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := c.env.dialer.NetDialContext(ctx, network, addr)
			if err == nil {
				fc.mu.Lock()
				fc.nc = nc
				fc.mu.Unlock()
			}
			return nc, err
		},
	}
	fc.hc = &http.Client{Transport: tr}
	// Every request of the connection dials from the cohort's source address (per-IP limits).
	fc.ctx, fc.cancel = context.WithCancel(context.WithValue(context.Background(), localAddrKey{}, di))
	path := protocol.PathSSE
	if tier == TierPoll {
		path = protocol.PathPoll
	}
	req, err := http.NewRequestWithContext(fc.ctx, http.MethodGet, fc.url(path, false), nil)
	if err != nil {
		fc.cancel()
		return nil, err
	}
	c.add(TierKey(CtrTierRequests, tier), 1)
	// The stream outlives the open: the request is bound to the connection, with a bound on
	// getting its answer.
	slow := time.AfterFunc(10*time.Second, fc.cancel)
	resp, err := fc.hc.Do(req)
	slow.Stop()
	if err != nil {
		fc.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		fc.Close()
		return nil, &fallbackRefused{status: resp.StatusCode, body: strings.TrimSpace(string(b))}
	}
	fc.body = resp.Body
	if tier == TierPoll {
		// The first answer (the welcome) is read now, while the open's bound holds.
		b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
		resp.Body.Close()
		if err != nil {
			fc.Close()
			return nil, err
		}
		fc.body = io.NopCloser(bytes.NewReader(b))
	}
	return fc, nil
}

// fallbackRefused is an HTTP refusal of a fallback open.
type fallbackRefused struct {
	status int
	body   string
}

func (e *fallbackRefused) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.body) }

// url is the address of path with the token and, once known, the connection id.
func (fc *fallbackConn) url(path string, withConn bool) string {
	u := fc.base
	u.Path = path
	q := url.Values{}
	q.Set(protocol.TokenQueryParam, fc.token)
	if withConn {
		fc.mu.Lock()
		q.Set(protocol.ConnQueryParam, fc.connID)
		fc.mu.Unlock()
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// send posts body to /send (method POST, or DELETE to close).
func (fc *fallbackConn) send(method string, body []byte) error {
	fc.mu.Lock()
	known := fc.connID != ""
	fc.mu.Unlock()
	if !known {
		return errors.New("fallback connection: no welcome yet")
	}
	ctx, cancel := context.WithTimeout(fc.ctx, writeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, fc.url(protocol.PathSend, true), bytes.NewReader(body))
	if err != nil {
		return err
	}
	fc.c.add(TierKey(CtrTierRequests, fc.tier), 1)
	resp, err := fc.hc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("fallback %s /send: HTTP %d", method, resp.StatusCode)
	}
	return nil
}

// WriteMessage posts one frame.
func (fc *fallbackConn) WriteMessage(_ int, data []byte) error { return fc.send(http.MethodPost, data) }

// WriteControl: a close is DELETE /send (the gateway closes with 1000); pings and pongs have no
// meaning over HTTP (the client's requests are its heartbeat).
func (fc *fallbackConn) WriteControl(mt int, _ []byte, _ time.Time) error {
	if mt == websocket.CloseMessage {
		return fc.send(http.MethodDelete, nil)
	}
	return nil
}

func (fc *fallbackConn) SetWriteDeadline(time.Time) error { return nil }

// SetReadDeadline bounds the reader; a deadline in the past stops it at once.
func (fc *fallbackConn) SetReadDeadline(t time.Time) error {
	fc.mu.Lock()
	fc.deadline = t
	stop, nc, tier := fc.stop, fc.nc, fc.tier
	fc.mu.Unlock()
	if tier == TierSSE && nc != nil {
		return nc.SetReadDeadline(t)
	}
	if !t.IsZero() && !t.After(time.Now()) && stop != nil {
		stop()
	}
	return nil
}

// Cut ends the connection without telling the gateway (as Close).
func (fc *fallbackConn) Cut() error { return fc.Close() }

// Close ends the connection without telling the gateway.
func (fc *fallbackConn) Close() error {
	fc.cancel()
	fc.mu.Lock()
	body, nc := fc.body, fc.nc
	fc.mu.Unlock()
	if body != nil {
		body.Close()
	}
	if nc != nil {
		nc.Close()
	}
	fc.hc.CloseIdleConnections()
	return nil
}

// noteWelcome keeps the connection id of a welcome frame (every /send and /poll names it).
func (fc *fallbackConn) noteWelcome(frame []byte) {
	if !bytes.Contains(frame, []byte(`"welcome"`)) {
		return
	}
	var w struct {
		Type   protocol.Type `json:"type"`
		ConnID string        `json:"connId"`
	}
	if json.Unmarshal(frame, &w) == nil && w.Type == protocol.TypeWelcome && w.ConnID != "" {
		fc.mu.Lock()
		fc.connID = w.ConnID
		fc.mu.Unlock()
	}
}

// readLoop reads frames until the connection ends and returns its close code (0 without one) and
// reason, as the WebSocket reader does.
func (fc *fallbackConn) readLoop(c *client, rc *readCtx) (int, string, error) {
	if fc.tier == TierSSE {
		return fc.readSSE(c, rc)
	}
	return fc.readPolls(c, rc)
}

// readSSE reads the event stream: "data:" events are frames, the "close" event the close,
// ": ping" comments the server's heartbeat, answered with an empty POST /send (the client's sign
// of life on this tier).
func (fc *fallbackConn) readSSE(c *client, rc *readCtx) (int, string, error) {
	code, reason := 0, ""
	err := readSSEEvents(fc.body, func(event string, data []byte) bool {
		if event == protocol.SSECloseEvent {
			var fcl protocol.FallbackClose
			_ = json.Unmarshal(data, &fcl)
			code, reason = int(fcl.Code), fcl.Reason
			return true
		}
		fc.noteWelcome(data)
		c.deliver(data, rc)
		rc.first = false
		return false
	}, func(comment []byte) {
		if bytes.Contains(comment, []byte("ping")) {
			c.heard(time.Now())
			go func() { _ = fc.send(http.MethodPost, nil) }()
		}
	})
	if err == nil {
		err = errors.New("closed")
	}
	return code, reason, err
}

// readSSEEvents reads Server-Sent Events from r until onEvent says stop (nil) or r ends (its
// error): onEvent gets each event's name ("" for a plain message) and data (lines joined with
// newlines), onComment each comment line (": ..."). Lines are bounded by the reader's buffer
// (64 KiB): a longer line is cut into pieces, which end up in the same data.
func readSSEEvents(r io.Reader, onEvent func(event string, data []byte) (stop bool), onComment func(line []byte)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var event string
	var data bytes.Buffer
	for {
		line, err := br.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0 && data.Len() > 0:
			if onEvent(event, data.Bytes()) {
				return nil
			}
			event = ""
			data.Reset()
		case len(line) == 0:
			event = ""
		case line[0] == ':':
			onComment(line)
		case bytes.HasPrefix(line, []byte("event:")):
			event = string(bytes.TrimSpace(line[len("event:"):]))
		case bytes.HasPrefix(line, []byte("data:")):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.Write(bytes.TrimPrefix(line[len("data:"):], []byte(" ")))
		}
		if data.Len() > 8<<20 {
			return errors.New("sse: event larger than 8 MiB")
		}
	}
}

// readPolls delivers the first answer's frames (the welcome), then polls until a close.
func (fc *fallbackConn) readPolls(c *client, rc *readCtx) (int, string, error) {
	body := fc.body
	for {
		var pr protocol.PollResponse
		err := json.NewDecoder(io.LimitReader(body, 8<<20)).Decode(&pr)
		body.Close()
		if err != nil {
			return 0, "", err
		}
		for _, f := range pr.Frames {
			fc.noteWelcome(f)
			c.deliver(f, rc)
			rc.first = false
		}
		if pr.Close != nil {
			return int(pr.Close.Code), pr.Close.Reason, errors.New("closed")
		}
		c.heard(time.Now())
		if body, err = fc.poll(); err != nil {
			return 0, "", err
		}
	}
}

// poll sends the next GET /poll and returns its body.
func (fc *fallbackConn) poll() (io.ReadCloser, error) {
	ctx, stop := context.WithCancel(fc.ctx)
	fc.mu.Lock()
	if !fc.deadline.IsZero() && !fc.deadline.After(time.Now()) {
		fc.mu.Unlock()
		stop()
		return nil, errors.New("fallback poll: read deadline passed")
	}
	fc.stop = stop
	fc.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fc.url(protocol.PathPoll, true), nil)
	if err != nil {
		stop()
		return nil, err
	}
	fc.c.add(TierKey(CtrTierRequests, fc.tier), 1)
	resp, err := fc.hc.Do(req)
	if err != nil {
		stop()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		stop()
		return nil, fmt.Errorf("fallback poll: HTTP %d", resp.StatusCode)
	}
	return stopBody{resp.Body, stop}, nil
}

// stopBody releases its poll's context when closed.
type stopBody struct {
	io.ReadCloser
	stop context.CancelFunc
}

func (b stopBody) Close() error { err := b.ReadCloser.Close(); b.stop(); return err }

// blockedUpgrade is a WebSocket attempt through a proxy that strips the Upgrade header: the
// gateway receives a plain GET of its WebSocket path and refuses it. It returns the refusal (an
// error of class upgrade_refused), or the dial error.
func (c *client) blockedUpgrade(ctx context.Context, wsURL string) error {
	u, err := url.Parse(wsURL)
	if err != nil {
		return err
	}
	u.Scheme = map[string]string{"ws": "http", "wss": "https"}[u.Scheme]
	tr := &http.Transport{TLSClientConfig: c.env.dialer.TLSClientConfig, DialContext: c.env.dialer.NetDialContext, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return fmt.Errorf("%w (a proxy stripped the Upgrade header: HTTP %d)", websocket.ErrBadHandshake, resp.StatusCode)
}
