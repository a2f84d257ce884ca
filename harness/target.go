package harness

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"

	"github.com/squall-dev/squall/chaos"
	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/embedded"
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

// openTarget starts the embedded gateway or takes the URL of the spec.
func openTarget(ctx context.Context, spec Spec, o Options) (*openedTarget, error) {
	if s := spec.Scenario; s != nil {
		if !s.Target.Embedded() {
			t, err := s.LoadgenTarget()
			if err != nil {
				return nil, usageErr(err)
			}
			if err := t.Validate(); err != nil {
				return nil, usageErr(err)
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
			return nil, usagef("unknown target %q (want \"embedded\" or ws://host:port/path or wss://...): %v", t.URL, err)
		}
		lt.Auth, lt.Conn, lt.Protocol = t.Auth, t.Conn, t.Protocol
		if err := lt.Validate(); err != nil {
			return nil, usageErr(err)
		}
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
	opts.Binary = o.NodeBinary
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

// probeTarget opens one connection to every endpoint before the run and checks that it speaks the
// target's protocol (loadgen.Probe), so that an unreachable target, a refused upgrade or
// certificate, or a server speaking another protocol fails at once with one clear line instead of
// as thousands of client errors. A refusal of the credentials is a usage error.
func probeTarget(ctx context.Context, t loadgen.Target) error {
	for _, ep := range t.Endpoints {
		if err := loadgen.Probe(ctx, t, ep); err != nil {
			if errors.Is(err, loadgen.ErrCredentials) {
				return usageErr(err)
			}
			return err
		}
	}
	return nil
}

// proxiedTarget is t reached through a chaos proxy listening at listen: the same scheme, path and
// query, with the TLS server name and the Host header of the gateway, so that TLS and virtual
// hosts see the gateway's name.
func proxiedTarget(t loadgen.Target, listen string) loadgen.Target {
	u, err := url.Parse(t.Endpoints[0].URL)
	if err != nil {
		return t
	}
	host := u.Host
	u.Host = listen
	t.Endpoints = []loadgen.Endpoint{{URL: u.String()}}
	if u.Scheme == "wss" && t.Conn.TLS.ServerName == "" {
		if h, _, err := net.SplitHostPort(host); err == nil {
			t.Conn.TLS.ServerName = h
		}
	}
	hs := maps.Clone(t.Conn.Headers)
	if hs == nil {
		hs = map[string]string{}
	}
	if _, ok := hs["Host"]; !ok {
		hs["Host"] = host
	}
	t.Conn.Headers = hs
	return t
}
