package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// ProbeTimeout bounds a probe: the dial, the upgrade and the protocol's own check together.
const ProbeTimeout = 10 * time.Second

// probeReplyTimeout is how long a probe waits for the protocol's answer once upgraded.
const probeReplyTimeout = 5 * time.Second

// ErrWrongProtocol marks a probe whose upgrade succeeded but whose server did not answer as the
// target's protocol says it should.
var ErrWrongProtocol = errors.New("the server does not speak the target's protocol")

// ErrCredentials marks a probe the server refused for its credentials (HTTP 401/403 on upgrade,
// or the protocol's own refusal).
var ErrCredentials = errors.New("the server refused the client's credentials")

// Probe opens one connection to ep as a client of t would — same TLS, headers and token — and
// runs the protocol's handshake check (squall: a welcome; centrifugo: a connect reply; generic:
// a published probe delivered back, or an answered ping), so that a target that is unreachable,
// refuses the upgrade, rejects the certificate or speaks another protocol fails at once with one
// line that names the setting to check, instead of as thousands of client errors. It returns
// within ProbeTimeout.
func Probe(ctx context.Context, t Target, ep Endpoint) error {
	proto, err := NewProtocol(t.Protocol)
	if err != nil {
		return fmt.Errorf("target.protocol: %w", err)
	}
	tokens, err := newTokenSource(t.Auth)
	if err != nil {
		return fmt.Errorf("target.auth: %w", err)
	}
	headers, err := newConnHeaders(t.Conn)
	if err != nil {
		return err
	}
	tlsCfg, err := t.Conn.TLS.Config()
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	d := templateData{User: "loadgen-probe"}
	tok, err := tokens.token(d, 1)
	if err != nil {
		return fmt.Errorf("target.auth: %w", err)
	}
	d.Token = tok
	hdr, err := headers.header(d)
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	place := cmpOr(t.Auth.Place, proto.tokenPlace())
	raw := ep.URL
	if a, ok := proto.(urlAdjuster); ok {
		raw = a.adjustURL(raw)
	}
	u, hdr, err := placeToken(place, t.Auth.Name, raw, hdr, tok)
	if err != nil {
		return fmt.Errorf("target %s: %w", ep.URL, err)
	}
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	dl := websocket.Dialer{HandshakeTimeout: 5 * time.Second, TLSClientConfig: tlsCfg, Proxy: nil}
	conn, resp, err := dl.DialContext(ctx, u, hdr)
	if err != nil {
		return explainProbeDial(ep.URL, resp, err)
	}
	defer conn.Close()
	if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("target %s: unexpected status %s", ep.URL, resp.Status)
	}
	pc := &probeConn{conn: conn, token: tok, place: place, deadline: time.Now().Add(probeReplyTimeout)}
	if dl, ok := ctx.Deadline(); ok && dl.Before(pc.deadline) {
		pc.deadline = dl
	}
	err = proto.probe(pc)
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "probe"), time.Now().Add(time.Second))
	if err != nil {
		if errors.Is(err, ErrCredentials) {
			return fmt.Errorf("target %s: %w (check target.auth / --secret)", ep.URL, err)
		}
		return fmt.Errorf("target %s: %w %q: %v (check target.protocol)", ep.URL, ErrWrongProtocol, proto.Name(), err)
	}
	return nil
}

func explainProbeDial(raw string, resp *http.Response, err error) error {
	if resp != nil {
		defer resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			return fmt.Errorf("target %s refused the WebSocket upgrade: HTTP %s: %w (check target.auth and target.headers)", raw, resp.Status, ErrCredentials)
		case http.StatusForbidden:
			return fmt.Errorf("target %s refused the WebSocket upgrade: HTTP %s (check target.origin, target.headers and target.auth)", raw, resp.Status)
		}
		return fmt.Errorf("target %s refused the WebSocket upgrade: HTTP %s (is target.url the gateway's WebSocket path, and target.protocol what it speaks?)", raw, resp.Status)
	}
	if e := ExplainDialError(raw, err); e != err {
		return e
	}
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("target %s unreachable: connection refused (is the gateway running?)", raw)
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("target %s unreachable: no answer within the timeout", raw)
	case errors.Is(err, websocket.ErrBadHandshake):
		return fmt.Errorf("target %s refused the WebSocket upgrade: %v", raw, err)
	}
	return fmt.Errorf("target %s unreachable: %v", raw, err)
}

// probeConn is the one connection of a probe.
type probeConn struct {
	conn     *websocket.Conn
	token    string
	place    string
	deadline time.Time
}

// write sends one text frame.
func (p *probeConn) write(b []byte) error {
	_ = p.conn.SetWriteDeadline(p.deadline)
	return p.conn.WriteMessage(websocket.TextMessage, b)
}

// writeBinary sends one frame of the given type.
func (p *probeConn) writeType(binary bool, b []byte) error {
	_ = p.conn.SetWriteDeadline(p.deadline)
	mt := websocket.TextMessage
	if binary {
		mt = websocket.BinaryMessage
	}
	return p.conn.WriteMessage(mt, b)
}

// readUntil reads messages until match says done (or fails), the deadline passes or the
// connection ends; what it waited for is named in the errors.
func (p *probeConn) readUntil(what string, match func([]byte) (bool, error)) error {
	_ = p.conn.SetReadDeadline(p.deadline)
	n := 0
	for {
		_, msg, err := p.conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			var ne net.Error
			switch {
			case errors.As(err, &ce):
				return fmt.Errorf("the server closed the connection before %s: %w", what, ce)
			case errors.As(err, &ne) && ne.Timeout():
				return fmt.Errorf("no %s within %v (%d other messages read)", what, probeReplyTimeout, n)
			}
			return fmt.Errorf("connection ended before %s: %v", what, err)
		}
		n++
		done, err := match(msg)
		if err != nil || done {
			return err
		}
	}
}

// excerpt quotes at most 80 bytes of a message for an error.
func excerpt(msg []byte) string {
	if len(msg) > 80 {
		return fmt.Sprintf("%q...", msg[:80])
	}
	return fmt.Sprintf("%q", msg)
}
