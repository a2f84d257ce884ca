package harness

import (
	"testing"

	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/stats"
)

// TestFallbackTiers runs tabs on each tier of the reference gateway — WebSocket, SSE, long
// polling — and a cohort behind a proxy that strips the Upgrade header, whose ladder must take it
// to SSE; delivery, latency and cost are graded per tier.
func TestFallbackTiers(t *testing.T) {
	cohort := func(name, transport string, extra string) string {
		return `  - name: ` + name + `
    count: 10
    behaviour:
      rooms: {per_client: 1, count: 2}
      send_interval: 500ms
      heartbeat: 1s
      transport: ` + transport + `
` + extra
	}
	sc := `name: fallback-tiers
seed: 1
target:
  heartbeat_interval: 2s
  heartbeat_timeout: 6s
cohorts:
` + cohort("ws", "websocket", "") + cohort("corp", "ladder", "      block_upgrade: true\n") + cohort("polling", "poll", "") + `
phases:
  - {kind: ramp, rate: 200}
  - {kind: hold, duration: 4s}
  - {kind: ramp-down, rate: 200}
slos:
  - {metric: ordering_violations, agg: count, bound: "== 0"}
  - {metric: unrecovered_gaps, agg: count, bound: "== 0"}
  - {metric: duplicates, agg: count, bound: "== 0"}
  - {metric: tier_connections, label: websocket, cohort: ws, bound: ">= 10"}
  - {metric: tier_connections, label: websocket, cohort: corp, bound: "== 0"}
  - {metric: tier_connections, label: sse, cohort: corp, bound: ">= 10"}
  - {metric: tier_connections, label: poll, cohort: polling, bound: ">= 10"}
  - {metric: tier_fanout_latency, label: sse, agg: count, bound: "> 0"}
  - {metric: tier_fanout_latency, label: poll, agg: count, bound: "> 0"}
`
	res, err := runScenarioText(t, sc)
	if err != nil {
		t.Fatal(err)
	}
	st := res.Stats
	for _, tier := range []string{loadgen.TierWebSocket, loadgen.TierSSE, loadgen.TierPoll} {
		t.Logf("tier %-9s connections %3d, requests %5d, broadcasts received %5d, fan-out p50 %v p99 %v", tier,
			st.Counter(loadgen.TierKey(loadgen.CtrTierConnects, tier)), st.Counter(loadgen.TierKey(loadgen.CtrTierRequests, tier)),
			st.Count(loadgen.TierKey(loadgen.HistTierFanout, tier)),
			st.Percentile(loadgen.TierKey(loadgen.HistTierFanout, tier), 50), st.Percentile(loadgen.TierKey(loadgen.HistTierFanout, tier), 99))
	}
	t.Logf("connect errors %d, upgrade refusals %d, gaps %d, order violations %d", st.Counter(stats.CtrConnectErrors),
		st.Counter(stats.ErrorCounter(stats.ErrUpgradeRefused)), st.Counter(stats.CtrGaps), st.Counter(stats.CtrOrderViolations))
	for _, v := range res.SLOs {
		if !v.Pass {
			t.Errorf("SLO %s %s (cohort %q) failed: %v", v.Metric, v.Bound, v.Cohort, v.Value)
		}
	}
}
