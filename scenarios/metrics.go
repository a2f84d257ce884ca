package scenarios

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/refserver"
	"github.com/squall-dev/squall/reports"
)

// Agg is how a metric's observations are reduced to the one number an SLO bounds.
type Agg string

// Aggregations.
const (
	AggP50   Agg = "p50"   // median of the observations
	AggP90   Agg = "p90"   // 90th percentile
	AggP95   Agg = "p95"   // 95th percentile
	AggP99   Agg = "p99"   // 99th percentile
	AggP999  Agg = "p999"  // 99.9th percentile
	AggMax   Agg = "max"   // largest observation (for a time series: the highest one-second value)
	AggMin   Agg = "min"   // smallest observation
	AggMean  Agg = "mean"  // arithmetic mean
	AggCount Agg = "count" // number of events (a counter's total, a histogram's observation count)
	AggRate  Agg = "rate"  // events per second over the run
	AggLast  Agg = "last"  // the value at the end of the run (a gauge), or the metric's single value
	AggSlope Agg = "slope" // least-squares slope of a time series, per second
)

// Aggs lists every aggregation in a stable order.
var Aggs = []Agg{AggP50, AggP90, AggP95, AggP99, AggP999, AggMax, AggMin, AggMean, AggCount, AggRate, AggLast, AggSlope}

// aggMeaning documents each aggregation (README and error messages).
var aggMeaning = map[Agg]string{
	AggP50: "median", AggP90: "90th percentile", AggP95: "95th percentile", AggP99: "99th percentile",
	AggP999: "99.9th percentile", AggMax: "largest value", AggMin: "smallest value", AggMean: "mean",
	AggCount: "number of events", AggRate: "events per second over the run",
	AggLast: "value at the end of the run", AggSlope: "least-squares slope per second",
}

// Unit is the base unit of a metric's values; bounds and MetricSource values are in it.
type Unit string

// Units (the values result.json's verdicts carry: reports' units).
const (
	UnitSeconds     Unit = reports.UnitSeconds     // written as a Go duration in bounds: "45s", "250ms"
	UnitCount       Unit = reports.UnitCount       // plain number
	UnitBytes       Unit = reports.UnitBytes       // number with an optional B, KB, KiB, MB, MiB, GB or GiB suffix
	UnitPerSecond   Unit = reports.UnitPerSecond   // number with an optional "/s" suffix
	UnitBytesPerSec Unit = reports.UnitBytesPerSec // bytes suffixes and an optional "/s"
)

// Scaling says how time_scale changes a metric's bounds.
type Scaling int

const (
	// ScaleNone: the value does not follow the scenario's clock (counts, sizes, network latencies).
	ScaleNone Scaling = iota
	// ScaleTime: a duration that follows the scenario's clock (it comes from heartbeats, timeouts,
	// backoff delays): bounds are multiplied by the time scale.
	ScaleTime
	// ScaleRate: a per-second rate of events whose pace follows the scenario's clock: bounds are
	// divided by the time scale.
	ScaleRate
)

// Metric describes one gradable metric: what it means, its unit and aggregations, and how it is
// read off a run. Adding a metric is adding one entry to Metrics (and its row to README.md).
type Metric struct {
	Name    string
	Unit    Unit
	Aggs    []Agg // the aggregations that make sense, the default first
	Scaling Scaling
	// Labelled metrics need an SLO label (close_codes: the close code).
	Labelled bool
	// PerCohort metrics are read from client figures, which are kept per cohort, so an SLO may
	// restrict them to one cohort; the others (from the series or the gateway) answer no data
	// for a cohort.
	PerCohort bool
	// Meaning is one line saying what is measured.
	Meaning string
	// Catches is one line saying which failure an SLO on the metric catches (naming the reference
	// gateway's flaws that bring it back); reports show it beside the verdict.
	Catches string
	// Source says where the number comes from in a run.
	Source string
	// Needs are what the target's protocol must let a client observe for the metric to mean
	// anything (loadgen.Capability); validation refuses an SLO whose profile cannot see them.
	Needs []loadgen.Capability
	// Resolve reads the metric off a finished run (ResultSource).
	Resolve Resolver
}

// DefaultAgg is the aggregation used when an SLO names none.
func (m Metric) DefaultAgg() Agg { return m.Aggs[0] }

// Allows reports whether agg makes sense for m.
func (m Metric) Allows(agg Agg) bool {
	for _, a := range m.Aggs {
		if a == agg {
			return true
		}
	}
	return false
}

var (
	histAggs    = []Agg{AggP99, AggP50, AggP90, AggP95, AggP999, AggMax, AggMin, AggMean, AggCount, AggRate}
	worstAggs   = []Agg{AggMax, AggP50, AggP90, AggP95, AggP99, AggP999, AggMin, AggMean, AggCount, AggRate}
	counterAggs = []Agg{AggCount, AggRate}
	gaugeAggs   = []Agg{AggMax, AggLast, AggMin, AggMean, AggP50, AggP90, AggP99, AggSlope}
)

// Metrics is the catalogue of metrics an SLO may grade (DESIGN §4), in documentation order.
var Metrics = []Metric{
	{Name: "ghost_presence_duration", Unit: UnitSeconds, Aggs: worstAggs, Scaling: ScaleTime, PerCohort: true,
		Meaning: "how long a user whose every tab has gone stays present to observers (a user never cleared counts until the end of the run)",
		Catches: "departed users left online: presence leaves never sent (no-presence-leave) or skipped after an abnormal close (leak-on-error)",
		Source:  "client: presence tracker, per departed user (loadgen.HistGhostAge for the never cleared)",
		Needs:   []loadgen.Capability{loadgen.CapPresence},
		Resolve: ghostPresence},
	{Name: "zombie_cleanup_time", Unit: UnitSeconds, Aggs: worstAggs, Scaling: ScaleTime, PerCohort: true,
		Meaning: "from a tab vanishing (it stops reading and writing, TCP kept open) to the server closing its connection (a connection still open at the end counts as never cleaned)",
		Catches: "half-open connections the server never notices: no server heartbeat (no-server-ping), or a sweep far slower than the heartbeat",
		Source:  "client: loadgen.HistZombieCleanup (FIN/RST seen at the socket), HistZombieAge + CtrZombiesUncleaned",
		Resolve: zombieCleanup},
	{Name: "ordering_violations", Unit: UnitCount, Aggs: counterAggs, Scaling: ScaleNone, PerCohort: true,
		Meaning: "broadcasts received with a roomSeq lower than one already seen in that room",
		Catches: "frames applied in arrival order instead of by seq (no-seq-order), or a broker that reorders",
		Source:  "stats.CtrOrderViolations",
		Resolve: clientCounter(stats.CtrOrderViolations)},
	{Name: "unrecovered_gaps", Unit: UnitCount, Aggs: counterAggs, Scaling: ScaleNone, PerCohort: true,
		Meaning: "roomSeq gaps neither filled later nor replayed by a resume",
		Catches: "broadcasts lost for good: dropped by a slow-consumer queue and not replayed by resume, or frames a node never relayed",
		Source:  "stats.CtrGaps",
		Resolve: clientCounter(stats.CtrGaps)},
	{Name: "duplicates", Unit: UnitCount, Aggs: counterAggs, Scaling: ScaleNone, PerCohort: true,
		Meaning: "broadcasts received twice (same room, same roomSeq)",
		Catches: "a retried frame applied twice (no-seq-order), or a resume that replays what was already delivered",
		Source:  "stats.CtrDuplicates",
		Resolve: clientCounter(stats.CtrDuplicates)},
	{Name: "lost_acked_messages", Unit: UnitCount, Aggs: counterAggs, Scaling: ScaleNone, PerCohort: true,
		Meaning: "broadcasts the server acknowledged that some member of the room never received",
		Catches: "messages the gateway acknowledged and then dropped: the worst delivery failure, a broken promise to the sender",
		Source:  "stats.CtrAckedUndelivered",
		Needs:   []loadgen.Capability{loadgen.CapAcks, loadgen.CapEcho},
		Resolve: clientCounter(stats.CtrAckedUndelivered)},
	{Name: "messages_lost", Unit: UnitCount, Aggs: counterAggs, Scaling: ScaleNone, PerCohort: true,
		Meaning: "stamped messages whose own copy had not come back to their sender by the delivery check (relay profiles; a late copy is not lost)",
		Catches: "a gateway that silently drops what clients publish: an unanswered send that simply vanishes",
		Source:  "loadgen.CtrLost (payload stamps)",
		Needs:   []loadgen.Capability{loadgen.CapAccounting},
		Resolve: clientCounter(loadgen.CtrLost)},
	{Name: "reconnect_rate_peak", Unit: UnitPerSecond, Aggs: []Agg{AggMax}, Scaling: ScaleRate,
		Meaning: "the most reconnect attempts in any one second of the run",
		Catches: "reconnect storms: a fleet cut at once without a retry hint (no-drain) retrying in lock-step",
		Source:  "one-second series of stats.CtrReconnectAttempts, highest point",
		Resolve: reconnectRatePeak},
	{Name: "recovery_time", Unit: UnitSeconds, Aggs: []Agg{AggMax, AggMean, AggLast, AggCount}, Scaling: ScaleTime,
		Meaning: "from a fault on the timeline to connections back at their level before it",
		Catches: "a fleet that does not come back after an outage, a restart or a drain (no-drain, constant retry, refused reconnects)",
		Source:  "one-second series of open connections around each timeline event",
		Resolve: recoveryTime},
	{Name: "reconnect_attempts_per_client", Unit: UnitCount, Aggs: []Agg{AggMax, AggP99, AggP50, AggP90, AggMean}, Scaling: ScaleNone, PerCohort: true,
		Meaning: "reconnect attempts one client made over the run",
		Catches: "clients retrying without backoff or in a loop against a gateway that keeps refusing them",
		Source:  "client: loadgen.HistReconnectAttemptsPerClient, one value per tab",
		Resolve: perClient(loadgenAttemptsPerClient)},
	{Name: "false_disconnects", Unit: UnitCount, Aggs: counterAggs, Scaling: ScaleNone, PerCohort: true,
		Meaning: "connections of well-behaved tabs (no exit, still reading, answering every ping, not behind a chaos proxy) cut for a heartbeat reason: the tab's read timeout fired (not even a server ping heard), or the server dropped it without a close frame (1006, what a heartbeat sweep does) and the tab's next connection attempt succeeded (the gateway was up)",
		Catches: "healthy clients cut by a heartbeat mismatch: the server never pings (no-server-ping) or times out faster than clients answer",
		Source:  "client: loadgen.CtrFalseDisconnects",
		Needs:   []loadgen.Capability{loadgen.CapHeartbeat},
		Resolve: clientCounter(loadgenFalseDisconnects)},
	{Name: "concurrent_connections_per_client", Unit: UnitCount, Aggs: []Agg{AggMax, AggP99, AggMean}, Scaling: ScaleNone, PerCohort: true,
		Meaning: "connections one user held open at the same moment",
		Catches: "connection leaks per user: old sockets kept open across navigations, with no per-user limit (no-conn-limit)",
		Source:  "client: loadgen.HistConnsPerUser, each user's peak of connections held (welcome to close)",
		Resolve: perClient(loadgenConnsPerUser)},
	{Name: "server_memory_per_connection", Unit: UnitBytes, Aggs: gaugeAggs, Scaling: ScaleNone,
		Meaning: "gateway resident memory divided by its open connections, sampled every second",
		Catches: "per-connection memory bloat: history kept without bound (unbounded-history), state left behind (leak-on-error)",
		Source:  "telemetry: process_resident_memory_bytes / ws_connections_active",
		Resolve: serverMemoryPerConnection},
	{Name: "server_memory_growth_slope", Unit: UnitBytesPerSec, Aggs: []Agg{AggLast}, Scaling: ScaleRate,
		Meaning: "least-squares slope of the gateway's resident memory over the hold phases",
		Catches: "leaks: memory that grows while the load is flat (leak-on-error, unbounded-history)",
		Source:  "telemetry: process_resident_memory_bytes series",
		Resolve: serverMemoryGrowthSlope},
	{Name: "connect_time", Unit: UnitSeconds, Aggs: histAggs, Scaling: ScaleNone, PerCohort: true,
		Meaning: "from dialling to the upgraded connection (TCP connect and HTTP upgrade)",
		Catches: "a slow accept path: an overloaded gateway, or an auth backend called on every connection (no-auth-cache)",
		Source:  "stats.HistUpgrade (dial to 101)",
		Resolve: latency(stats.HistUpgrade)},
	{Name: "ping_rtt", Unit: UnitSeconds, Aggs: histAggs, Scaling: ScaleNone, PerCohort: true,
		Meaning: "round trip of a WebSocket ping",
		Catches: "a stalled event loop or writer: pongs queued behind slow consumers or a saturated node",
		Source:  "stats.HistPingRTT",
		Resolve: latency(stats.HistPingRTT)},
	{Name: "fanout_latency", Unit: UnitSeconds, Aggs: histAggs, Scaling: ScaleNone, PerCohort: true,
		Meaning: "from the sender's intended send time to each receipt of a broadcast",
		Catches: "slow delivery: a slow consumer holding up its room, a broker or node falling behind",
		Source:  "stats.HistFanout",
		Resolve: latency(stats.HistFanout)},
	{Name: "reconnect_time", Unit: UnitSeconds, Aggs: histAggs, Scaling: ScaleTime, PerCohort: true,
		Meaning: "from a drop to the next welcome of the same tab (backoff delays included)",
		Catches: "slow recovery after a drop: long backoff, refused reconnects, a gateway slow to accept again",
		Source:  "stats.HistReconnect",
		Resolve: latency(stats.HistReconnect)},
	{Name: "presence_convergence", Unit: UnitSeconds, Aggs: histAggs, Scaling: ScaleTime, PerCohort: true,
		Meaning: "from a tab's exit to the moment every observer has seen its leave",
		Catches: "slow or missing presence leaves (no-presence-leave): observers see departed users for too long",
		Source:  "stats.HistPresence",
		Needs:   []loadgen.Capability{loadgen.CapPresence},
		Resolve: latency(stats.HistPresence)},
	{Name: "schedule_lag", Unit: UnitSeconds, Aggs: histAggs, Scaling: ScaleNone, PerCohort: true,
		Meaning: "how late the generator ran its own schedule (generator health)",
		Catches: "a saturated load generator: past its bound the run measures the generator, not the gateway",
		Source:  "stats.HistScheduleLag",
		Resolve: latency(stats.HistScheduleLag)},
	{Name: "shed_total", Unit: UnitCount, Aggs: counterAggs, Scaling: ScaleNone,
		Meaning: "connections the gateway shed by admission control",
		Catches: "admission control shedding connections under load (or not shedding when it should)",
		Source:  "telemetry: ws_shed_total",
		Resolve: shedTotal},
	{Name: "auth_backend_calls", Unit: UnitCount, Aggs: counterAggs, Scaling: ScaleNone,
		Meaning: "token checks that reached the auth backend (not answered by the token cache or a concurrent check of the same token)",
		Catches: "an auth backend hammered by reconnects: tokens checked on every connection (no-auth-cache)",
		Source:  `telemetry: ws_auth_requests_total{cached="false"} with result ok, invalid or error`,
		Resolve: authBackend},
	{Name: "orphaned_subscriptions", Unit: UnitCount, Aggs: []Agg{AggLast, AggMax}, Scaling: ScaleNone,
		Meaning: "room memberships whose connection is gone (0 after every clean run)",
		Catches: "subscriptions left behind when a connection ends without a close handshake (leak-on-error)",
		Source:  "telemetry: ws_orphaned_subscriptions",
		Resolve: orphanedSubscriptions},
	{Name: "tier_connections", Unit: UnitCount, Aggs: counterAggs, Scaling: ScaleNone, Labelled: true, PerCohort: true,
		Meaning: "connections opened on the transport tier given as label (websocket, sse, poll) by tabs whose behaviour sets a transport",
		Catches: "tabs that never reach their tier, or a ladder that does not fall back when the upgrade is blocked",
		Source:  `loadgen counters "tier_connects:<label>"`,
		Needs:   []loadgen.Capability{loadgen.CapFallback},
		Resolve: tierCounter(loadgen.CtrTierConnects)},
	{Name: "tier_requests", Unit: UnitCount, Aggs: counterAggs, Scaling: ScaleNone, Labelled: true, PerCohort: true,
		Meaning: "HTTP requests the tier given as label took (the WebSocket upgrade; an SSE stream and every POST /send; every poll): its cost",
		Catches: "a fallback tier too costly for the gateway: polls and sends per delivered message",
		Source:  `loadgen counters "tier_requests:<label>"`,
		Needs:   []loadgen.Capability{loadgen.CapFallback},
		Resolve: tierCounter(loadgen.CtrTierRequests)},
	{Name: "tier_fanout_latency", Unit: UnitSeconds, Aggs: histAggs, Scaling: ScaleNone, Labelled: true, PerCohort: true,
		Meaning: "fan-out latency of the broadcasts received on the tier given as label (count: broadcasts delivered on it)",
		Catches: "a fallback tier that delivers late or not at all (a poll hold, a buffering proxy)",
		Source:  `loadgen histogram "tier_fanout:<label>"`,
		Needs:   []loadgen.Capability{loadgen.CapFallback},
		Resolve: tierLatency},
	{Name: "close_codes", Unit: UnitCount, Aggs: counterAggs, Scaling: ScaleNone, Labelled: true, PerCohort: true,
		Meaning: "connections closed with the close code given as label (1006 = abnormal, no close frame)",
		Catches: "abnormal closes: 1006 from a drain without close frames (no-drain) or an idle-timeout proxy; 1008/1013 refusals from limits (no-conn-limit) and overload",
		Source:  `stats counters "close_code:<label>"`,
		Resolve: closeCodes},
}

// Glossary explains the catalogue's metrics and the reference gateway's flaws to the reports.
func Glossary() reports.Glossary {
	g := reports.Glossary{Metrics: make(map[string]reports.MetricDoc, len(Metrics)), Flaws: map[string]string{}}
	for _, m := range Metrics {
		g.Metrics[m.Name] = reports.MetricDoc{Meaning: m.Meaning, Catches: m.Catches}
	}
	for _, f := range refserver.AllFlaws() {
		g.Flaws[string(f.Flaw)] = f.Description
	}
	return g
}

// LookupMetric returns the catalogue entry of name.
func LookupMetric(name string) (Metric, bool) {
	for _, m := range Metrics {
		if m.Name == name {
			return m, true
		}
	}
	return Metric{}, false
}

func metricNames() []string {
	out := make([]string, len(Metrics))
	for i, m := range Metrics {
		out[i] = m.Name
	}
	return out
}

func aggNames(aggs []Agg) []string {
	out := make([]string, len(aggs))
	for i, a := range aggs {
		out[i] = string(a)
	}
	return out
}

// boundFactor is what time scale f does to a bound of agg over m: durations that follow the
// scenario's clock are multiplied by f, per-second figures divided by f, counts unchanged.
func boundFactor(m Metric, agg Agg, timeScaled *bool, f float64) float64 {
	scaling := m.Scaling
	if timeScaled != nil {
		switch {
		case !*timeScaled:
			scaling = ScaleNone
		case scaling == ScaleNone && m.Unit == UnitSeconds:
			scaling = ScaleTime
		case scaling == ScaleNone:
			scaling = ScaleRate
		}
	}
	base := 1.0
	switch scaling {
	case ScaleTime:
		base = f
	case ScaleRate:
		base = 1 / f
	}
	switch agg {
	case AggCount:
		return 1
	case AggRate:
		if timeScaled != nil && !*timeScaled {
			return 1
		}
		return 1 / f
	case AggSlope:
		if timeScaled != nil && !*timeScaled {
			return 1
		}
		return base / f
	}
	return base
}

// aggUnit is the unit of agg over a metric of unit u.
func aggUnit(u Unit, agg Agg) Unit {
	switch agg {
	case AggCount:
		return UnitCount
	case AggRate:
		return UnitPerSecond
	case AggSlope:
		switch u {
		case UnitBytes:
			return UnitBytesPerSec
		case UnitCount:
			return UnitPerSecond
		}
	}
	return u
}

// parseBound reads "OP VALUE" with VALUE in unit u.
func parseBound(text string, u Unit) (Bound, error) {
	s := strings.TrimSpace(text)
	var op Op
	for _, o := range []Op{OpLE, OpGE, OpEQ, OpLT, OpGT} { // two-character operators first
		if strings.HasPrefix(s, string(o)) {
			op = o
			s = strings.TrimSpace(s[len(o):])
			break
		}
	}
	if op == "" {
		return Bound{}, fmt.Errorf("bound %q has no comparison (want <, <=, >, >= or == before the value, quoted in YAML: \"<= %s\")", text, exampleValue(u))
	}
	v, err := parseValue(s, u)
	if err != nil {
		return Bound{}, fmt.Errorf("bound %q: %v", text, err)
	}
	return Bound{Op: op, Value: v, text: text}, nil
}

func exampleValue(u Unit) string {
	switch u {
	case UnitSeconds:
		return "45s"
	case UnitBytes:
		return "16KiB"
	case UnitPerSecond:
		return "5/s"
	case UnitBytesPerSec:
		return "1KiB/s"
	}
	return "0"
}

var byteSuffixes = []struct {
	s string
	m float64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}

// parseValue reads a bound value in unit u into the base unit.
func parseValue(s string, u Unit) (float64, error) {
	orig := s
	switch u {
	case UnitSeconds:
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("want a Go duration such as 45s or 250ms, got %q", orig)
		}
		return d.Seconds(), nil
	case UnitPerSecond, UnitBytesPerSec:
		s = strings.TrimSpace(strings.TrimSuffix(s, "/s"))
	}
	mult := 1.0
	if u == UnitBytes || u == UnitBytesPerSec {
		for _, suf := range byteSuffixes {
			if strings.HasSuffix(s, suf.s) {
				s, mult = strings.TrimSpace(strings.TrimSuffix(s, suf.s)), suf.m
				break
			}
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("want a number in %s such as %s, got %q", u, exampleValue(u), orig)
	}
	return f * mult, nil
}

// FormatValue renders v (in the base unit u) for people: durations as Go durations rounded to three
// significant digits, bytes with binary prefixes, counts as integers where whole (reports.FormatValue,
// which the reports render with).
func FormatValue(v float64, u Unit) string { return reports.FormatValue(v, string(u)) }

func formatDuration(d time.Duration) string { return reports.FormatDuration(d) }
