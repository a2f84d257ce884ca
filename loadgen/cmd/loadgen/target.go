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
	close      func(ctx context.Context) error
}

func (t *openedTarget) inProcessFDs() int { return t.localConns }

// openTarget resolves --target: "embedded" starts the reference gateway, a ws:// URL is used as
// it is; anything else is a usage error.
func openTarget(ctx context.Context, f runFlags, plan loadgen.Plan, workers int, logger *slog.Logger) (*openedTarget, error) {
	if f.target == "embedded" || f.target == "" {
		return openEmbedded(ctx, f, plan, logger)
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

// openEmbedded starts the reference gateway in this process, on a loopback port it picks.
func openEmbedded(ctx context.Context, f runFlags, plan loadgen.Plan, logger *slog.Logger) (*openedTarget, error) {
	cfg := refserver.DefaultConfig()
	cfg.Dev = true
	cfg.Addr = "127.0.0.1:0"
	cfg.MaxConnsPerIP = -1
	srv, err := refserver.New(cfg, logger.With("component", "gateway"))
	if err != nil {
		return nil, harnessErr(fmt.Errorf("embedded gateway: %w", err))
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, harnessErr(fmt.Errorf("embedded gateway: %w", err))
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, ln) }()
	host := ln.Addr().String()
	t := &loadgen.URLTarget{URL: "ws://" + host + protocol.PathWS, MetricsURL: "http://" + host + protocol.PathMetrics}
	return &openedTarget{
		target: t, kind: "embedded", localConns: plan.Clients(),
		close: func(ctx context.Context) error {
			err := srv.Shutdown(ctx)
			cancel()
			return errors.Join(err, <-done)
		},
	}, nil
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
