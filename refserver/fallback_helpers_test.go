package refserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/squall-dev/squall/internal/wstest"
	"github.com/squall-dev/squall/refserver/protocol"
)

// fbClient is a test client of a fallback tier (SSE or long polling) made of plain net/http
// requests. A goroutine reads the event stream, or polls, into frames.
type fbClient struct {
	t      testing.TB
	ts     *testServer
	kind   string // "sse" or "poll"
	token  string
	connID string
	frames chan protocol.Frame
	done   chan struct{} // closed when the reader or poller ends
	stop   context.CancelFunc
	hc     *http.Client

	mu     sync.Mutex
	closed *protocol.FallbackClose // the close received, if any
	status int                     // the HTTP status that ended polling (404, 410), if any
	pings  int                     // SSE heartbeat comments seen
	lastID string                  // SSE: the id of the last event received
	ids    map[uint64]string       // SSE: the id of the event of each broadcast's roomSeq
	err    error
	seq    uint64

	keepMu   sync.Mutex
	keepStop chan struct{} // closes the keepalive goroutine
}

type fbOpts struct {
	bearer    bool   // token in an Authorization header instead of the query
	noWelcome bool   // do not wait for welcome (the open is expected to fail)
	manual    bool   // poll: no polling goroutine; the test calls pollOnce
	keepalive bool   // sse: POST an empty /send every heartbeat interval / 2 (polls keep a poll client alive)
	lastEvent string // sse: the Last-Event-ID header of the request (a reconnect)
}

func (ts *testServer) url(path string, q url.Values) string {
	u := "http://" + ts.addr + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// fbRequest builds a request with the client's token (query or bearer) and conn id.
func (c *fbClient) request(ctx context.Context, method, path string, body []byte, bearer bool) *http.Request {
	q := url.Values{}
	if id := c.id(); id != "" {
		q.Set(protocol.ConnQueryParam, id)
	}
	if !bearer {
		q.Set(protocol.TokenQueryParam, c.token)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.ts.url(path, q), rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if bearer {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req
}

// openFallback opens an SSE or long-poll connection for user and waits for welcome.
func openFallback(t testing.TB, ts *testServer, kind, user string, o fbOpts) (*fbClient, protocol.Frame) {
	t.Helper()
	return openFallbackToken(t, ts, kind, mintToken(t, user), o)
}

func openFallbackToken(t testing.TB, ts *testServer, kind, token string, o fbOpts) (*fbClient, protocol.Frame) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &fbClient{t: t, ts: ts, kind: kind, token: token, frames: make(chan protocol.Frame, 4096),
		done: make(chan struct{}), stop: cancel, hc: &http.Client{Transport: &http.Transport{}}}
	t.Cleanup(func() {
		c.stopKeepalive()
		cancel()
		<-c.done
		c.hc.CloseIdleConnections()
	})
	switch kind {
	case "sse":
		req := c.request(ctx, http.MethodGet, protocol.PathSSE, nil, o.bearer)
		if o.lastEvent != "" {
			req.Header.Set("Last-Event-ID", o.lastEvent)
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			t.Fatalf("GET /sse: %v", err)
		}
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Fatalf("GET /sse: %s %q", resp.Status, b)
		}
		go c.readStream(resp.Body)
	case "poll":
		req := c.request(ctx, http.MethodGet, protocol.PathPoll, nil, o.bearer)
		if !c.pollWith(req) {
			close(c.done)
			close(c.frames)
			return c, protocol.Frame{}
		}
		if o.manual {
			close(c.done)
		} else {
			go c.pollLoop(ctx)
		}
	default:
		t.Fatalf("unknown fallback %q", kind)
	}
	if o.noWelcome {
		return c, protocol.Frame{}
	}
	w := c.expect(protocol.TypeWelcome, 2*time.Second)
	if o.keepalive && kind == "sse" {
		c.startKeepalive(time.Duration(w.HeartbeatInterval) * time.Millisecond / 2)
	}
	return c, w
}

// readStream parses the event stream: "data:" events are frames, the "close" event ends it.
func (c *fbClient) readStream(body io.ReadCloser) {
	defer close(c.done)
	defer close(c.frames)
	defer body.Close()
	br := bufio.NewReader(body)
	var event, data, id string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if data == "" {
				event = ""
				continue
			}
			if event == protocol.SSECloseEvent {
				var cl protocol.FallbackClose
				if err := json.Unmarshal([]byte(data), &cl); err != nil {
					c.t.Errorf("bad close event %q: %v", data, err)
				}
				c.mu.Lock()
				c.closed = &cl
				c.mu.Unlock()
			} else {
				c.decodeEvent([]byte(data), id)
			}
			event, data, id = "", "", ""
		case strings.HasPrefix(line, ":"):
			if strings.HasPrefix(line, ": ping") {
				c.mu.Lock()
				c.pings++
				c.mu.Unlock()
			}
		case strings.HasPrefix(line, "id: "):
			id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data += strings.TrimPrefix(line, "data: ")
		default:
			c.t.Errorf("unexpected SSE line %q", line)
		}
	}
}

// decodeEvent takes in an SSE frame event with its id.
func (c *fbClient) decodeEvent(b []byte, id string) {
	if id != "" {
		c.mu.Lock()
		c.lastID = id
		if f, err := protocol.Decode(b, protocol.ServerToClient); err == nil && f.Type == protocol.TypeBroadcast {
			if c.ids == nil {
				c.ids = map[uint64]string{}
			}
			c.ids[f.RoomSeq] = id
		}
		c.mu.Unlock()
	}
	c.decode(b)
}

func (c *fbClient) decode(b []byte) {
	f, err := protocol.Decode(b, protocol.ServerToClient)
	if err != nil {
		c.t.Errorf("server sent an invalid frame %q: %v", b, err)
		return
	}
	if f.Type == protocol.TypeWelcome {
		c.mu.Lock()
		c.connID = f.ConnID
		c.mu.Unlock()
	}
	c.frames <- f
}

// pollWith sends one poll and takes in its answer; false when polling is over (close, 404, 410,
// or an error).
func (c *fbClient) pollWith(req *http.Request) bool {
	resp, err := c.hc.Do(req)
	if err != nil {
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		return false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		return false
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusGone {
		c.mu.Lock()
		c.status = resp.StatusCode
		c.err = &httpStatusError{resp.StatusCode, string(b)}
		c.mu.Unlock()
		return false
	}
	var pr protocol.PollResponse
	if err := json.Unmarshal(b, &pr); err != nil {
		c.t.Errorf("bad poll answer %q: %v", b, err)
		return false
	}
	for _, f := range pr.Frames {
		c.decode(f)
	}
	if pr.Close != nil || resp.StatusCode == http.StatusGone {
		c.mu.Lock()
		c.closed = pr.Close
		c.status = resp.StatusCode
		c.mu.Unlock()
		return false
	}
	return true
}

type httpStatusError struct {
	code int
	body string
}

func (e *httpStatusError) Error() string { return http.StatusText(e.code) + ": " + e.body }

func (c *fbClient) pollLoop(ctx context.Context) {
	defer close(c.done)
	defer close(c.frames)
	for ctx.Err() == nil {
		if !c.pollWith(c.request(ctx, http.MethodGet, protocol.PathPoll, nil, false)) {
			return
		}
	}
}

// pollOnce polls once by hand (manual clients).
func (c *fbClient) pollOnce() bool {
	c.t.Helper()
	return c.pollWith(c.request(context.Background(), http.MethodGet, protocol.PathPoll, nil, false))
}

func (c *fbClient) startKeepalive(every time.Duration) {
	c.keepMu.Lock()
	defer c.keepMu.Unlock()
	stop := make(chan struct{})
	c.keepStop = stop
	go func() {
		tk := time.NewTicker(every)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				resp, err := c.hc.Do(c.request(context.Background(), http.MethodPost, protocol.PathSend, []byte{}, false))
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	}()
}

// stopKeepalive ends the keepalive goroutine (the client goes silent).
func (c *fbClient) stopKeepalive() {
	c.keepMu.Lock()
	defer c.keepMu.Unlock()
	if c.keepStop != nil {
		close(c.keepStop)
		c.keepStop = nil
	}
}

// post sends a body to /send and returns the HTTP status.
func (c *fbClient) post(body []byte) int {
	c.t.Helper()
	resp, err := c.hc.Do(c.request(context.Background(), http.MethodPost, protocol.PathSend, body, false))
	if err != nil {
		c.t.Fatalf("POST /send: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// send posts one frame and expects 204.
func (c *fbClient) send(f protocol.Frame) {
	c.t.Helper()
	b, err := protocol.Encode(&f)
	if err != nil {
		c.t.Fatal(err)
	}
	if st := c.post(b); st != http.StatusNoContent {
		c.t.Fatalf("POST /send %s: status %d", f.Type, st)
	}
}

func (c *fbClient) nextSeq() uint64 { c.seq++; return c.seq }

func (c *fbClient) join(room string) protocol.Frame {
	c.t.Helper()
	c.send(protocol.Frame{Type: protocol.TypeJoinRoom, RoomID: room, Seq: c.nextSeq()})
	return c.expectMatch(2*time.Second, "room_joined "+room, func(f protocol.Frame) bool {
		return f.Type == protocol.TypeRoomJoined && f.RoomID == room
	})
}

func (c *fbClient) expect(typ protocol.Type, timeout time.Duration) protocol.Frame {
	c.t.Helper()
	return c.expectMatch(timeout, string(typ), func(f protocol.Frame) bool { return f.Type == typ })
}

func (c *fbClient) expectMatch(timeout time.Duration, what string, match func(protocol.Frame) bool) protocol.Frame {
	c.t.Helper()
	return wstest.ExpectFrame(c.t, c.frames, timeout, c.kind+" "+what, match, func() string {
		return fmt.Sprintf("close %+v, %v", c.closeSeen(), c.readErr())
	})
}

func (c *fbClient) id() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connID
}

func (c *fbClient) readErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *fbClient) closeSeen() *protocol.FallbackClose {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// expectClose waits for the stream or the polling to end and returns the close received (code 1006
// when there was none).
func (c *fbClient) expectClose(timeout time.Duration) protocol.FallbackClose {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(timeout):
		c.t.Fatalf("%s connection not closed within %s", c.kind, timeout)
	}
	if cl := c.closeSeen(); cl != nil {
		return *cl
	}
	return protocol.FallbackClose{Code: protocol.CloseAbnormal, Reason: "no close: " + errString(c.readErr())}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
