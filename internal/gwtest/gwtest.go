// Package gwtest starts the reference gateway inside a test: one refserver.Server on a loopback
// port for the life of the test, stopped (and waited for) by the test's cleanup. It is for the tests
// of packages that drive the gateway from outside (loadgen, harness); refserver's own tests start
// their server themselves.
package gwtest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/squall-dev/squall/refserver"
	"github.com/squall-dev/squall/refserver/protocol"
)

// Gateway is a reference gateway serving on a loopback port.
type Gateway struct {
	*refserver.Server
	// Addr is its host:port.
	Addr string
	// Config is what it runs with (dev mode unless an auth secret was given).
	Config refserver.Config
}

// Start serves cfg (in dev mode when it has no auth secret) until the test ends.
func Start(t testing.TB, cfg refserver.Config) *Gateway {
	t.Helper()
	if cfg.AuthSecret == "" {
		cfg.Dev = true
	}
	srv, err := refserver.New(cfg, nil)
	if err != nil {
		t.Fatalf("gwtest: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("gwtest: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gwtest: Serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("gwtest: Serve did not return within 15s of cancel")
		}
	})
	return &Gateway{Server: srv, Addr: ln.Addr().String(), Config: cfg}
}

// URL is the gateway's WebSocket URL.
// It is wss:// when the gateway serves TLS (Config.TLSCert).
func (g *Gateway) URL() string {
	if g.Config.TLSCert != "" {
		return "wss://" + g.Addr + protocol.PathWS
	}
	return "ws://" + g.Addr + protocol.PathWS
}

// MetricsURL is the gateway's Prometheus endpoint.
func (g *Gateway) MetricsURL() string {
	if g.Config.TLSCert != "" {
		return "https://" + g.Addr + protocol.PathMetrics
	}
	return "http://" + g.Addr + protocol.PathMetrics
}
