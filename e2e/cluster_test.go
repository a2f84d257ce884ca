package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/squall-dev/squall/chaos"
	"github.com/squall-dev/squall/chaos/dockerchaos"
	"github.com/squall-dev/squall/harness"
	"github.com/squall-dev/squall/internal/dockertest"
	"github.com/squall-dev/squall/internal/tlstest"
	"github.com/squall-dev/squall/refserver/protocol"
	"github.com/squall-dev/squall/reports"
	"github.com/squall-dev/squall/scenarios"
)

const (
	nodes  = 3
	agents = 3
	// gwSecret is the secret a scenario's URL target's clients sign their tokens with.
	gwSecret   = protocol.DevSecret
	agentToken = "e2e-agent-token"
	agentPort  = 7070
	gwPort     = 8080
)

// cluster is everything the tests run on: three gateway nodes sharing rooms through Redis, each
// reaching Redis through its own Toxiproxy proxy (redis-node-i), and three agents serving TLS.
type cluster struct {
	net        *dockertest.Network
	redis      *dockertest.Container
	toxiproxy  *dockertest.Container
	nodes      []*dockertest.Container
	agents     []*dockertest.Container
	certs      tlstest.Files
	containers map[string]chaos.Container // by container name, for the fault timeline
}

// nodeURLs are the gateway nodes' WebSocket URLs.
func (c *cluster) nodeURLs() []string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, "ws://"+n.Addr(gwPort)+"/ws")
	}
	return out
}

// agentAddrs are the agents' addresses, as the controller dials them.
func (c *cluster) agentAddrs() []string {
	var out []string
	for _, a := range c.agents {
		out = append(out, a.Addr(agentPort))
	}
	return out
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	img := dockertest.BuildImages(t)
	eng := dockertest.Engine(t)
	start := time.Now()
	c := &cluster{net: dockertest.NewNetwork(t), containers: map[string]chaos.Container{}}
	add := func(ct *dockertest.Container) *dockertest.Container {
		c.containers[ct.Name] = dockerchaos.FromTestcontainer(eng, ct.DockerContainer, ct.Name, dockerchaos.Options{StopTimeout: 3 * time.Second})
		return ct
	}

	c.redis = add(c.net.Run(t, dockertest.Spec{Name: "redis", Image: img.Redis}))
	c.toxiproxy = add(c.net.Run(t, dockertest.Spec{Name: "toxiproxy", Image: img.Toxiproxy}))
	dockertest.WaitTCP(t, c.redis.Addr(6379), 30*time.Second)
	dockertest.WaitHTTP(t, "http://"+c.toxiproxy.Addr(8474)+"/version", 30*time.Second)
	tox := chaos.NewExternal(c.toxiproxy.Addr(8474), chaos.ExternalOptions{})
	for i := range nodes {
		if _, err := tox.Proxy(t.Context(), redisProxy(i), fmt.Sprintf("0.0.0.0:%d", 20000+i), "redis:6379"); err != nil {
			t.Fatalf("toxiproxy: %v", err)
		}
	}

	for i := range nodes {
		c.nodes = append(c.nodes, add(c.net.Run(t, dockertest.Spec{Name: nodeName(i), Image: img.Refserver,
			Env: map[string]string{"SQUALL_AUTH_SECRET": gwSecret},
			Cmd: []string{"--addr", fmt.Sprintf("0.0.0.0:%d", gwPort), "--broker", fmt.Sprintf("redis://toxiproxy:%d/0", 20000+i),
				// Every agent's clients share the agent's one address.
				"--max-conns-per-ip", "-1"}})))
	}

	// The agents' certificate names the addresses the controller dials.
	var ips []net.IP
	var agentIPs []netip.Addr
	for range agents {
		ip := c.net.Reserve()
		agentIPs = append(agentIPs, ip)
		ips = append(ips, ip.AsSlice())
	}
	c.certs = tlstest.MakeFor(t, ips)
	for i := range agents {
		c.agents = append(c.agents, add(c.net.Run(t, dockertest.Spec{Name: fmt.Sprintf("agent-%d", i), Image: img.Loadgen, IP: agentIPs[i],
			Env:   map[string]string{"LOADGEN_AGENT_TOKEN": agentToken},
			Binds: []string{c.certs.Dir + ":/tls:ro"},
			Cmd: []string{"agent", "--listen", fmt.Sprintf("0.0.0.0:%d", agentPort), "--tls-cert", "/tls/" + filepath.Base(c.certs.ServerCert), "--tls-key", "/tls/" + filepath.Base(c.certs.ServerKey),
				"--allow-target", c.net.Subnet.String()}})))
	}
	for _, n := range c.nodes {
		dockertest.WaitHTTP(t, "http://"+n.Addr(gwPort)+"/readyz", 30*time.Second)
	}
	for _, a := range c.agents {
		dockertest.WaitTCP(t, a.Addr(agentPort), 30*time.Second)
	}
	t.Logf("cluster up in %v on %s (%s): nodes %v, agents %v", time.Since(start).Round(100*time.Millisecond), c.net.Name, c.net.Subnet,
		c.nodeURLs(), c.agentAddrs())
	return c
}

func nodeName(i int) string   { return fmt.Sprintf("node-%d", i) }
func redisProxy(i int) string { return fmt.Sprintf("redis-node-%d", i) }

// scenarioYAML is a scenario against the cluster's nodes: users in rooms of their own prefix (so
// that runs on the same Redis do not share rooms), a ramp, a hold and a ramp-down, plus extra
// (timeline, SLOs, a toxiproxy line).
func (c *cluster) scenarioYAML(name string, users int, hold time.Duration, extra string) string {
	var urls []string
	for _, u := range c.nodeURLs() {
		urls = append(urls, fmt.Sprintf("%q", u))
	}
	return fmt.Sprintf(`name: %s
seed: 42
target:
  urls: [%s]
  toxiproxy: "http://%s"
cohorts:
  - name: users
    count: %d
    behaviour:
      rooms: {per_client: 1, count: 6, prefix: %s-}
      send_interval: 1s
      payload: 64
      reconnect: {policy: backoff, initial: 500ms, multiplier: 1.5, max: 5s, jitter: 500ms, max_attempts: 10}
      exit: close
phases:
  - {kind: ramp, rate: 300}
  - {kind: hold, duration: %s}
  - {kind: ramp-down, rate: 600}
%s`, name, strings.Join(urls, ", "), c.toxiproxy.Addr(8474), users, name, hold, extra)
}

// waitReady waits until every node answers /readyz again (after a fault), so that the next run
// starts on a whole cluster.
func (c *cluster) waitReady(t *testing.T) {
	t.Helper()
	for _, n := range c.nodes {
		dockertest.WaitHTTP(t, "http://"+n.Addr(gwPort)+"/readyz", 30*time.Second)
	}
}

// run runs a scenario on the cluster from this process (the controller) on the given agents, over
// TLS (on the agents a run is split over; none: in this process). The run has the cluster's
// containers for its fault timeline. lostAfter bounds how long an unheard agent is waited for (0:
// the default).
func (c *cluster) run(t *testing.T, name, yaml string, agents []string, lostAfter time.Duration) *reports.Result {
	t.Helper()
	s, err := scenarios.Parse(name+".yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("scenario:\n%s\n%v", yaml, err)
	}
	opts := harness.Options{Containers: c.containers, Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		OnNote: func(s string) { t.Log(s) }, LostAfter: lostAfter}
	if len(agents) > 0 {
		opts.Agents, opts.Token, opts.AgentTLS = agents, agentToken, c.certs.ClientConfig()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	res, err := harness.Run(ctx, harness.Spec{Scenario: s, File: name + ".yaml", Source: []byte(yaml)}, opts)
	if err != nil {
		t.Fatalf("run %s: %v", name, err)
	}
	t.Logf("run %s took %v: %s, %d workers", name, time.Since(start).Round(100*time.Millisecond), res.StopReason, len(res.Workers))
	for _, v := range res.SLOs {
		t.Logf("  %-4v %-28s %-14s value %.3g %s", v.Pass, v.Metric, v.Bound, v.Value, v.Detail)
	}
	return res
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// verdict returns the result's verdict on metric (the test fails without one).
func verdict(t *testing.T, res *reports.Result, metric string) reports.SLOVerdict {
	t.Helper()
	for _, v := range res.SLOs {
		if v.Metric == metric {
			return v
		}
	}
	t.Fatalf("no verdict on %s", metric)
	return reports.SLOVerdict{}
}

// faults returns the result's fault events.
func faults(res *reports.Result) []reports.Fault {
	var out []reports.Fault
	for _, ev := range res.Events {
		if ev.Kind == reports.EventFault && ev.Fault != nil {
			out = append(out, *ev.Fault)
		}
	}
	return out
}
