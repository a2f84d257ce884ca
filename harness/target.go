package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/chaos"
	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/embedded"
	"github.com/squall-dev/squall/refserver/protocol"
	"github.com/squall-dev/squall/scenarios"
)

// openedTarget is the target of a run and how to let it go.
type openedTarget struct {
	target loadgen.Target
	kind   string // "embedded" or "url"
	// localFDs is the sockets an in-process gateway holds (they count against this process's open
	// files).
	localFDs int
	// ownProcess is set when the gateway runs in processes of its own, so that the memory its
	// /metrics reports is its alone (not the generator's as well).
	ownProcess bool
	// nodes are what process faults act on, by scenarios.NodeName.
	nodes map[string]chaos.Node
	close func(ctx context.Context) error
}

// upstream is the host:port chaos proxies forward to: the first endpoint's.
func (t *openedTarget) upstream() string {
	u, err := url.Parse(t.target.Endpoints[0].URL)
	if err != nil {
		return ""
	}
	return u.Host
}

// path is the WebSocket path of the first endpoint (proxied clients dial it on the proxy).
func (t *openedTarget) path() string {
	if u, err := url.Parse(t.target.Endpoints[0].URL); err == nil && u.Path != "" {
		return u.Path
	}
	return protocol.PathWS
}

// openTarget starts the embedded gateway or takes the URL of the spec.
func openTarget(ctx context.Context, spec Spec, o Options) (*openedTarget, error) {
	if s := spec.Scenario; s != nil {
		if !s.Target.Embedded() {
			var t loadgen.Target
			for _, raw := range s.Target.Addresses() {
				ep, err := loadgen.ParseURL(raw)
				if err != nil {
					return nil, usageErr(err)
				}
				t.Endpoints = append(t.Endpoints, ep)
			}
			if s.Target.URL != "" || s.Target.MetricsURL != "" {
				// One URL: its metrics only when the file names them. Several nodes: each node's own
				// /metrics, unless the file names one endpoint for the whole gateway.
				for i := range t.Endpoints {
					t.Endpoints[i].MetricsURL = ""
				}
				t.Endpoints[0].MetricsURL = s.Target.MetricsURL
			}
			return urlTarget(t), nil
		}
		opts, err := s.EmbeddedOptions()
		if err != nil {
			return nil, usageErr(err)
		}
		// Every node runs in a process of its own: the gateway's memory in /metrics is then its
		// alone (an in-process node's would include the clients), its garbage collection and
		// scheduling do not show up as the generator's schedule lag, and a node can be paused.
		opts.Process = true
		return startEmbedded(ctx, opts, 0, o)
	}
	t := spec.Target
	if t.URL != "" {
		lt, err := loadgen.URLTarget(t.URL)
		if err != nil {
			return nil, usagef("unknown target %q (want \"embedded\" or ws://host:port/path): %v", t.URL, err)
		}
		lt.Secret = t.Secret
		return urlTarget(lt), nil
	}
	nodes := t.Nodes
	if nodes == 0 {
		nodes = max(1, (spec.Plan.Clients()+o.FDsPerProcess-1)/o.FDsPerProcess)
	}
	cfg := t.Gateway
	if cfg.AuthSecret == "" {
		cfg.Dev = true
	}
	local := 0
	if nodes == 1 {
		local = spec.Plan.Clients() // the one node runs in this process
	}
	return startEmbedded(ctx, embedded.Options{Nodes: nodes, Config: cfg}, local, o)
}

func urlTarget(t loadgen.Target) *openedTarget {
	return &openedTarget{target: t, kind: "url", ownProcess: true, close: func(context.Context) error { return nil }}
}

func startEmbedded(ctx context.Context, opts embedded.Options, localFDs int, o Options) (*openedTarget, error) {
	opts.Logger = o.Logger.With("component", "gateway")
	opts.Stderr = o.GatewayLog
	emb, err := embedded.Start(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("embedded gateway: %w", err)
	}
	nodes := map[string]chaos.Node{}
	for i, n := range emb.Nodes() {
		nodes[scenarios.NodeName(i)] = n
	}
	return &openedTarget{target: emb.Target(), kind: "embedded", localFDs: localFDs, ownProcess: !emb.InProcess(),
		nodes: nodes, close: emb.Close}, nil
}

// probeTarget opens one connection to every endpoint before the run, so that an unreachable
// target or a refused upgrade fails at once with one clear line instead of as thousands of
// client errors.
func probeTarget(ctx context.Context, t loadgen.Target) error {
	for _, ep := range t.Endpoints {
		if err := probe(ctx, ep.URL, t.Secret); err != nil {
			return err
		}
	}
	return nil
}

func probe(ctx context.Context, raw, secret string) error {
	if secret == "" {
		secret = protocol.DevSecret
	}
	tok, err := protocol.SignToken([]byte(secret), "loadgen-probe", time.Now().Add(time.Minute))
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
