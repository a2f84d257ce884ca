package scenarios

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/squall-dev/squall/loadgen/stats"
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

// Units.
const (
	UnitSeconds     Unit = "seconds"       // written as a Go duration in bounds: "45s", "250ms"
	UnitCount       Unit = "count"         // plain number
	UnitBytes       Unit = "bytes"         // number with an optional B, KB, KiB, MB, MiB, GB or GiB suffix
	UnitPerSecond   Unit = "per_second"    // number with an optional "/s" suffix
	UnitBytesPerSec Unit = "bytes_per_sec" // bytes suffixes and an optional "/s"
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
	// Source says where the number comes from in a run.
	Source string
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
		Source:  "client: presence tracker, per departed user (loadgen.HistGhostAge for the never cleared)",
		Resolve: ghostPresence},
	{Name: "zombie_cleanup_time", Unit: UnitSeconds, Aggs: worstAggs, Scaling: ScaleTime, PerCohort: true,
		Meaning: "from a tab vanishing (it stops reading and writing, TCP kept open) to the server closing its connection (a connection still open at the end counts as never cleaned)",
		Source:  "client: loadgen.HistZombieCleanup (FIN/RST seen at the socket), HistZombieAge + CtrZombiesUncleaned",
		Resolve: zombieCleanup},
	{Name: "ordering_violations", Unit: UnitCount, Aggs: counterAggs, Scaling: ScaleNone, PerCohort: true,
		Meaning: "broadcasts received with a roomSeq lower than one already seen in that room",
		Source:  "stats.CtrOrderViolations",
		Resolve: clientCounter(stats.CtrOrderViolations)},
	{Name: "unrecovered_gaps", Unit: UnitCount, Aggs: counterAggs, Scaling: ScaleNone, PerCohort: true,
		Meaning: "roomSeq gaps neither filled later nor replayed by a resume",
		Source:  "stats.CtrGaps",
		Resolve: clientCounter(stats.CtrGaps)},
	{Name: "duplicates", Unit: UnitCount, Aggs: counterAggs, Scaling: ScaleNone, PerCohort: true,
		Meaning: "broadcasts received twice (same room, same roomSeq)",
		Source:  "stats.CtrDuplicates",
		Resolve: clientCounter(stats.CtrDuplicates)},
	{Name: "lost_acked_messages", Unit: UnitCount, Aggs: counterAggs, Scaling: ScaleNone, PerCohort: true,
		Meaning: "broadcasts the server acknowledged that some member of the room never received",
		Source:  "stats.CtrAckedUndelivered",
		Resolve: clientCounter(stats.CtrAckedUndelivered)},
	{Name: "reconnect_rate_peak", Unit: UnitPerSecond, Aggs: []Agg{AggMax}, Scaling: ScaleRate,
		Meaning: "the most reconnect attempts in any one second of the run",
		Source:  "one-second series of stats.CtrReconnectAttempts, highest point",
		Resolve: reconnectRatePeak},
	{Name: "recovery_time", Unit: UnitSeconds, Aggs: []Agg{AggMax, AggMean, AggLast, AggCount}, Scaling: ScaleTime,
		Meaning: "from a fault on the timeline to connections back at their level before it",
		Source:  "one-second series of open connections around each timeline event",
		Resolve: recoveryTime},
	{Name: "reconnect_attempts_per_client", Unit: UnitCount, Aggs: []Agg{AggMax, AggP99, AggP50, AggP90, AggMean}, Scaling: ScaleNone, PerCohort: true,
		Meaning: "reconnect attempts one client made over the run",
		Source:  "client: loadgen.HistReconnectAttemptsPerClient, one value per tab",
		Resolve: perClient(loadgenAttemptsPerClient)},
	{Name: "false_disconnects", Unit: UnitCount, Aggs: counterAggs, Scaling: ScaleNone, PerCohort: true,
		Meaning: "connections of well-behaved tabs (no exit, still reading, answering every ping, not behind a chaos proxy) cut for a heartbeat reason: the tab's read timeout fired (not even a server ping heard), or the server dropped it without a close frame (1006, what a heartbeat sweep does) and the tab's next connection attempt succeeded (the gateway was up)",
		Source:  "client: loadgen.CtrFalseDisconnects",
		Resolve: clientCounter(loadgenFalseDisconnects)},
	{Name: "concurrent_connections_per_client", Unit: UnitCount, Aggs: []Agg{AggMax, AggP99, AggMean}, Scaling: ScaleNone, PerCohort: true,
		Meaning: "connections one user held open at the same moment",
		Source:  "client: loadgen.HistConnsPerUser, each user's peak of connections held (welcome to close)",
		Resolve: perClient(loadgenConnsPerUser)},
	{Name: "server_memory_per_connection", Unit: UnitBytes, Aggs: gaugeAggs, Scaling: ScaleNone,
		Meaning: "gateway resident memory divided by its open connections, sampled every second",
		Source:  "telemetry: process_resident_memory_bytes / ws_connections_active",
		Resolve: serverMemoryPerConnection},
	{Name: "server_memory_growth_slope", Unit: UnitBytesPerSec, Aggs: []Agg{AggLast}, Scaling: ScaleRate,
		Meaning: "least-squares slope of the gateway's resident memory over the hold phases",
		Source:  "telemetry: process_resident_memory_bytes series",
		Resolve: serverMemoryGrowthSlope},
	{Name: "connect_time", Unit: UnitSeconds, Aggs: histAggs, Scaling: ScaleNone, PerCohort: true,
		Meaning: "from dialling to the upgraded connection (TCP connect and HTTP upgrade)",
		Source:  "stats.HistUpgrade (dial to 101)",
		Resolve: latency(stats.HistUpgrade)},
	{Name: "ping_rtt", Unit: UnitSeconds, Aggs: histAggs, Scaling: ScaleNone, PerCohort: true,
		Meaning: "round trip of a WebSocket ping",
		Source:  "stats.HistPingRTT",
		Resolve: latency(stats.HistPingRTT)},
	{Name: "fanout_latency", Unit: UnitSeconds, Aggs: histAggs, Scaling: ScaleNone, PerCohort: true,
		Meaning: "from the sender's intended send time to each receipt of a broadcast",
		Source:  "stats.HistFanout",
		Resolve: latency(stats.HistFanout)},
	{Name: "reconnect_time", Unit: UnitSeconds, Aggs: histAggs, Scaling: ScaleTime, PerCohort: true,
		Meaning: "from a drop to the next welcome of the same tab (backoff delays included)",
		Source:  "stats.HistReconnect",
		Resolve: latency(stats.HistReconnect)},
	{Name: "presence_convergence", Unit: UnitSeconds, Aggs: histAggs, Scaling: ScaleTime, PerCohort: true,
		Meaning: "from a tab's exit to the moment every observer has seen its leave",
		Source:  "stats.HistPresence",
		Resolve: latency(stats.HistPresence)},
	{Name: "schedule_lag", Unit: UnitSeconds, Aggs: histAggs, Scaling: ScaleNone, PerCohort: true,
		Meaning: "how late the generator ran its own schedule (generator health)",
		Source:  "stats.HistScheduleLag",
		Resolve: latency(stats.HistScheduleLag)},
	{Name: "shed_total", Unit: UnitCount, Aggs: counterAggs, Scaling: ScaleNone,
		Meaning: "connections the gateway shed by admission control",
		Source:  "telemetry: ws_shed_total",
		Resolve: shedTotal},
	{Name: "auth_backend_calls", Unit: UnitCount, Aggs: counterAggs, Scaling: ScaleNone,
		Meaning: "token checks that reached the auth backend (not answered by the token cache or a concurrent check of the same token)",
		Source:  `telemetry: ws_auth_requests_total{cached="false"} with result ok, invalid or error`,
		Resolve: authBackend},
	{Name: "orphaned_subscriptions", Unit: UnitCount, Aggs: []Agg{AggLast, AggMax}, Scaling: ScaleNone,
		Meaning: "room memberships whose connection is gone (0 after every clean run)",
		Source:  "telemetry: ws_orphaned_subscriptions",
		Resolve: orphanedSubscriptions},
	{Name: "close_codes", Unit: UnitCount, Aggs: counterAggs, Scaling: ScaleNone, Labelled: true, PerCohort: true,
		Meaning: "connections closed with the close code given as label (1006 = abnormal, no close frame)",
		Source:  `stats counters "close_code:<label>"`,
		Resolve: closeCodes},
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
// significant digits, bytes with binary prefixes, counts as integers where whole.
func FormatValue(v float64, u Unit) string {
	if math.IsNaN(v) {
		return "NaN"
	}
	if math.IsInf(v, 1) && u == UnitSeconds {
		return "never" // e.g. a recovery that did not happen
	}
	if math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	switch u {
	case UnitSeconds:
		return formatDuration(time.Duration(v * float64(time.Second)))
	case UnitBytes:
		return formatBytes(v)
	case UnitBytesPerSec:
		return formatBytes(v) + "/s"
	case UnitPerSecond:
		return formatNumber(v) + "/s"
	}
	return formatNumber(v)
}

func formatNumber(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return sig3(v)
}

func formatBytes(v float64) string {
	abs := math.Abs(v)
	switch {
	case abs >= 1<<30:
		return sig3(v/(1<<30)) + "GiB"
	case abs >= 1<<20:
		return sig3(v/(1<<20)) + "MiB"
	case abs >= 1<<10:
		return sig3(v/(1<<10)) + "KiB"
	}
	return formatNumber(v) + "B"
}

// sig3 renders v with three significant digits, without an exponent from 1000 up (1000, not 1e+03).
func sig3(v float64) string {
	if math.Abs(v) >= 1000 && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// formatDuration rounds d to three significant digits.
func formatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	abs := d
	if abs < 0 {
		abs = -abs
	}
	unit := time.Duration(1)
	for abs/unit >= 1000 {
		unit *= 10
	}
	return d.Round(unit).String()
}
