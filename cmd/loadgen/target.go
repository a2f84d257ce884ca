package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/refserver"
	"github.com/squall-dev/squall/refserver/protocol"
)

// openedTarget is the target of a run and how to let it go.
type openedTarget struct {
	target loadgen.Target
	kind   string // "embedded" or "url"
	// localConns is the connections an in-process gateway holds (they count against this
	// process's open files).
	localConns int
	// ownProcess is set when the gateway runs in processes of its own, so that the memory its
	// /metrics reports is its alone (not the generator's as well).
	ownProcess bool
	close      func(ctx context.Context) error
}

func (t *openedTarget) inProcessFDs() int { return t.localConns }

// openTarget resolves --target: "embedded" starts the reference gateway, a ws:// URL is used as
// it is; anything else is a usage error.
func openTarget(ctx context.Context, e *env, f runFlags, plan loadgen.Plan, workers int, logger *slog.Logger) (*openedTarget, error) {
	if f.target == "embedded" || f.target == "" {
		return openEmbedded(ctx, e, f, plan, logger)
	}
	t, err := loadgen.ParseURLTarget(f.target)
	if err != nil {
		return nil, usagef("unknown target %q (want \"embedded\" or ws://host:port/path): %v", f.target, err)
	}
	if f.secret != "" {
		t.AuthSecret = []byte(f.secret)
	}
	return &openedTarget{target: t, kind: "url", close: func(context.Context) error { return nil }}, nil
}

// openEmbedded starts the reference gateway: one node in this process when the clients fit in one
// node, otherwise child-process nodes of this binary (NodeCommand), each holding at most
// --fds-per-process connections.
func openEmbedded(ctx context.Context, e *env, f runFlags, plan loadgen.Plan, logger *slog.Logger) (*openedTarget, error) {
	nodes := f.nodes
	if nodes == 0 {
		nodes = nodesFor(plan.Clients(), f.perProcess)
	}
	opts := loadgen.EmbeddedOptions{Nodes: nodes, Config: refserver.DefaultConfig(), Logger: logger.With("component", "gateway")}
	opts.Config.Dev = true
	if f.verbose {
		opts.Stderr = e.stderr
	}
	emb, err := loadgen.StartEmbedded(ctx, opts)
	if err != nil {
		return nil, harnessErr(fmt.Errorf("embedded gateway: %w", err))
	}
	local := 0
	if nodes == 1 {
		local = plan.Clients()
	}
	return &openedTarget{target: emb, kind: "embedded", localConns: local, close: emb.Close}, nil
}

// nodesFor is how many gateway nodes hold clients connections at perProcess each.
func nodesFor(clients, perProcess int) int {
	return max(1, (clients+perProcess-1)/perProcess)
}

// probeTarget opens one connection to every endpoint before the run, so that an unreachable
// target or a refused upgrade fails at once with one clear line instead of as thousands of
// client errors.
func probeTarget(ctx context.Context, t loadgen.Target) error {
	for _, ep := range t.Endpoints() {
		if err := probe(ctx, ep.URL, t.Secret()); err != nil {
			return err
		}
	}
	return nil
}

func probe(ctx context.Context, raw string, secret []byte) error {
	tok, err := protocol.SignToken(secret, "loadgen-probe", time.Now().Add(time.Minute))
	if err != nil {
		return fmt.Errorf("target %s: %w", raw, err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("target %s: %w", raw, err)
	}
	q := u.Query()
	q.Set(protocol.TokenQueryParam, tok)
	u.RawQuery = q.Encode()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Proxy: nil}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, resp, err := d.DialContext(ctx, u.String(), nil)
	if err != nil {
		if resp != nil {
			defer resp.Body.Close()
			return fmt.Errorf("target %s refused the WebSocket upgrade: HTTP %s", raw, resp.Status)
		}
		var ne net.Error
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			return fmt.Errorf("target %s unreachable: connection refused (is the gateway running?)", raw)
		case errors.As(err, &ne) && ne.Timeout():
			return fmt.Errorf("target %s unreachable: no answer within the timeout", raw)
		case errors.Is(err, websocket.ErrBadHandshake):
			return fmt.Errorf("target %s refused the WebSocket upgrade: %v", raw, err)
		default:
			return fmt.Errorf("target %s unreachable: %v", raw, err)
		}
	}
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "probe"), time.Now().Add(time.Second))
	_ = conn.Close()
	if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("target %s: unexpected status %s", raw, resp.Status)
	}
	return nil
}
