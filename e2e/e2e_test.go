package e2e

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/squall-dev/squall/loadgen/agent"
	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/reports"
)

// TestCluster starts the cluster once and runs, in order: a gateway node killed mid-run, a node
// partitioned from Redis, the same plan distributed over the three agents and in one process, and
// an agent killed mid-run. Each fault is reverted before the next run starts.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster of containers")
	}
	c := startCluster(t)

	// Node loss → reconnect storm → recovery: node-0 is killed 5 s into the run and started
	// again 3 s later; its third of the clients drop with no close, retry with backoff, and are
	// back when it is.
	t.Run("node loss", func(t *testing.T) {
		res := c.run(t, "node-loss", c.scenarioYAML("node-loss", 300, 12*time.Second, `timeline:
  - {at: 4s, action: container-kill, container: node-0, duration: 2s}
slos:
  - {metric: reconnect_rate_peak, agg: max, bound: "< 2000/s"}
  - {metric: recovery_time, agg: max, bound: "<= 20s", time_scaled: false}
  - {metric: ordering_violations, agg: count, bound: "== 0"}
`), c.agentAddrs(), 0)
		checkFaults(t, res, "container_kill node-0", "container_start node-0")
		peak := verdict(t, res, "reconnect_rate_peak")
		if peak.NoData || peak.Value <= 0 {
			t.Errorf("reconnect peak %v: want the storm of node-0's clients (about 100 reconnects)", peak.Value)
		}
		rec := verdict(t, res, "recovery_time")
		if !rec.Pass || rec.NoData || rec.Unbounded || rec.Value <= 0 {
			t.Errorf("recovery time %+v: want the connections back within the bound after a dip", rec)
		}
		if got := res.Stats.Counter(stats.CtrReconnectAttempts); got < 50 {
			t.Errorf("%d reconnect attempts: want node-0's clients to have reconnected", got)
		}
		t.Logf("node loss: reconnect peak %.0f/s, recovery %.1fs", peak.Value, rec.Value)
		c.waitReady(t)
	})

	// Partition: node-1 loses Redis for 4 s (its proxy to Redis is disabled: connections closed,
	// new ones refused) while every node keeps its clients.
	t.Run("redis partition", func(t *testing.T) {
		res := c.run(t, "partition", c.scenarioYAML("partition", 300, 10*time.Second, fmt.Sprintf(`timeline:
  - {at: 3s, action: proxy-disable, proxy: %s, duration: 3s}
slos:
  - {metric: reconnect_rate_peak, agg: max, bound: "< 2000/s"}
  - {metric: recovery_time, agg: max, bound: "<= 20s", time_scaled: false}
  - {metric: unrecovered_gaps, agg: count, bound: "== 0"}
  - {metric: lost_acked_messages, agg: count, bound: "== 0"}
`, redisProxy(1))), c.agentAddrs(), 0)
		checkFaults(t, res, "disable_proxy "+redisProxy(1), "enable_proxy "+redisProxy(1))
		peak, rec := verdict(t, res, "reconnect_rate_peak"), verdict(t, res, "recovery_time")
		if peak.NoData || rec.NoData {
			t.Errorf("ungraded: peak %+v, recovery %+v", peak, rec)
		}
		if !rec.Pass {
			t.Errorf("the cluster did not recover from the partition: %+v", rec)
		}
		// What the partition costs in delivery is the gateway's business: the run grades it and
		// the result keeps it, whichever way it goes.
		gaps, lost := verdict(t, res, "unrecovered_gaps"), verdict(t, res, "lost_acked_messages")
		// The partitioned node cannot publish: its senders get error frames instead of acks.
		var errs int64
		for k, v := range res.Stats.Counters {
			if strings.HasPrefix(k, stats.PrefixError) {
				errs += v
			}
		}
		if errs == 0 {
			t.Errorf("no client saw an error while node-1 could not reach Redis")
		}
		t.Logf("partition: reconnect peak %.0f/s, recovery %.1fs, unrecovered gaps %.0f, lost acknowledged messages %.0f, error frames %d",
			peak.Value, rec.Value, gaps.Value, lost.Value, errs)
		c.waitReady(t)
	})

	// The same plan over the three agents and in one process (one agent: the same binary, so that
	// neither side runs under the test's race detector): same verdicts, same counts (connections
	// exactly, messages within the plan's randomness).
	t.Run("distributed matches one process", func(t *testing.T) {
		// Latency bounds leave room for a loaded machine (cluster, agents and controller share two
		// cores): the comparison is of verdicts and counts, not of this machine's speed.
		slos := `slos:
  - {metric: ordering_violations, agg: count, bound: "== 0"}
  - {metric: duplicates, agg: count, bound: "== 0"}
  - {metric: lost_acked_messages, agg: count, bound: "== 0"}
  - {metric: connect_time, agg: p99, bound: "< 5s"}
  - {metric: fanout_latency, agg: p99, bound: "< 10s"}
`
		dist := c.run(t, "split-a", c.scenarioYAML("split-a", 240, 6*time.Second, slos), c.agentAddrs(), 0)
		one := c.run(t, "split-b", c.scenarioYAML("split-b", 240, 6*time.Second, slos), c.agentAddrs()[:1], 0)
		if len(dist.Workers) != agents || len(one.Workers) != 1 {
			t.Fatalf("%d and %d workers", len(dist.Workers), len(one.Workers))
		}
		for i, w := range dist.Workers {
			if w.Index != i || w.Addr != c.agentAddrs()[i] || w.Kind != reports.WorkerAgent || w.Transport != agent.TransportTLS || w.Status != reports.WorkerOK {
				t.Errorf("agent worker %d: %+v", i, w)
			}
		}
		for i, v := range dist.SLOs {
			if o := one.SLOs[i]; v.Metric != o.Metric || v.Pass != o.Pass {
				t.Errorf("%s: distributed pass=%v (%.3g), one process pass=%v (%.3g)", v.Metric, v.Pass, v.Value, o.Pass, o.Value)
			}
		}
		for _, name := range []string{stats.CtrConnects, stats.CtrConnectAttempts} {
			if d, o := dist.Stats.Counter(name), one.Stats.Counter(name); d != 240 || o != 240 {
				t.Errorf("%s: distributed %d, one process %d, want 240 each", name, d, o)
			}
		}
		for _, h := range []string{stats.HistConnect, stats.HistUpgrade, stats.HistFirstFrame, stats.HistFanout} {
			d, o := dist.Stats.Count(h), one.Stats.Count(h)
			if o == 0 || math.Abs(float64(d-o))/float64(o) > 0.1 {
				t.Errorf("histogram %s: distributed %d, one process %d: want within 10%%", h, d, o)
			}
			t.Logf("histogram %-12s distributed %6d, one process %6d", h, d, o)
		}
	})

	// An agent killed mid-run: the controller reports it lost (by address and shard), keeps its
	// last report and finishes the run on the other two.
	t.Run("agent lost", func(t *testing.T) {
		yaml := c.scenarioYAML("agent-lost", 240, 8*time.Second, `timeline:
  - {at: 2s, action: container-kill, container: agent-2}
`)
		res := c.run(t, "agent-lost", yaml, c.agentAddrs(), 4*time.Second)
		if res.StopReason != reports.StopCompleted {
			t.Fatalf("stop reason %s: want the run completed on the other agents", res.StopReason)
		}
		lost := res.Workers[2]
		if lost.Status != reports.WorkerLost || lost.Addr != c.agentAddrs()[2] || lost.Index != 2 || lost.Kind != reports.WorkerAgent {
			t.Errorf("worker 2: %+v, want lost", lost)
		}
		if lost.Stats == nil || lost.Stats.Counter(stats.CtrConnects) == 0 {
			t.Errorf("the lost agent's last report was not kept")
		}
		for _, w := range res.Workers[:2] {
			if w.Status != reports.WorkerOK {
				t.Errorf("worker %d: %s %s", w.Index, w.Status, w.Error)
			}
		}
		if res.Reliable {
			t.Errorf("a run that lost a worker is marked reliable")
		}
		if !slices.ContainsFunc(res.Events, func(ev reports.Event) bool { return ev.Kind == "worker_lost" && ev.Worker == 2 }) {
			t.Errorf("no worker_lost event for worker 2")
		}
		t.Logf("worker 2: %s", lost.Error)
	})
}

// checkFaults checks that the result records these fault steps ("action target"), in order, each
// without an error.
func checkFaults(t *testing.T, res *reports.Result, want ...string) {
	t.Helper()
	var got []string
	for _, f := range faults(res) {
		got = append(got, f.Action+" "+f.Target)
		if f.Error != "" {
			t.Errorf("fault %s on %s failed: %s", f.Action, f.Target, f.Error)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("faults %v, want %v", got, want)
	}
}
