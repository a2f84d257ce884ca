package scenarios

import (
	"math"
	"slices"
	"strings"
	"time"

	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/refserver/protocol"
	"github.com/squall-dev/squall/reports"
)

// ResultSource is the MetricSource of a finished run: it answers from the merged result (client
// histograms and counters, the one-second series, the gateway's telemetry, the fault events). Each
// catalogue metric is read by its entry's Resolve (see Metrics), from what its Source column names;
// a metric whose data the run did not produce answers "no data" rather than a made-up number.
//
// An SLO restricted to one cohort reads the client figures of that cohort: from CohortStats, else
// from the per-cohort keys of the merged figures (stats.CohortKey), or the whole run's when the
// scenario has that one cohort. Metrics that are not PerCohort (the series' and the gateway's)
// answer no data for a cohort, as does a cohort without figures.
type ResultSource struct {
	Result *reports.Result
	// Scenario is the scenario that ran (its cohorts and phases).
	Scenario *Scenario
	// ServerMemory says the telemetry's resident memory is the gateway's alone. It is false for a
	// gateway running inside the load generator's process, whose memory includes the clients.
	ServerMemory bool
	// CohortStats holds the client figures of cohorts that ran on workers of their own (a cohort
	// routed alone through a chaos proxy), by cohort name.
	CohortStats map[string]reports.Stats
}

var _ MetricSource = ResultSource{}

// Value implements MetricSource: it looks the metric up in the catalogue, picks the client figures
// of the cohort asked for, and lets the metric's Resolve answer.
func (s ResultSource) Value(metric, agg, cohort string) (float64, bool) {
	if s.Result == nil {
		return 0, false
	}
	name, label, _ := strings.Cut(metric, ":")
	m, ok := LookupMetric(name)
	if !ok || m.Resolve == nil {
		return 0, false
	}
	q := MetricQuery{Run: s, Clients: s.Result.Stats, Agg: Agg(agg), Label: label}
	if cohort != "" && !s.soleCohort(cohort) {
		st, ok := s.cohortFigures(cohort)
		if !ok || !m.PerCohort {
			return 0, false
		}
		q.Clients = st
	}
	return m.Resolve(q)
}

// soleCohort reports whether cohort is the scenario's only one (its figures are the run's).
func (s ResultSource) soleCohort(cohort string) bool {
	return s.Scenario != nil && len(s.Scenario.Cohorts) == 1 && s.Scenario.Cohorts[0].Name == cohort
}

// cohortFigures returns the client figures of one cohort; ok is false when the run has none.
func (s ResultSource) cohortFigures(cohort string) (reports.Stats, bool) {
	if st, ok := s.CohortStats[cohort]; ok {
		return st, true
	}
	st := s.Result.Stats.Cohort(cohort)
	return st, st.Counters != nil || st.Histograms != nil
}

// A Resolver reads one metric off a finished run: q.Agg of it, in the metric's base unit (seconds,
// bytes, count, per second); ok is false when the run has no data for it, or the aggregation makes
// no sense for it.
type Resolver func(q MetricQuery) (v float64, ok bool)

// MetricQuery is one metric asked of a finished run, with the figures to answer from.
type MetricQuery struct {
	// Run is the run: its result (not nil), its scenario and how its gateway ran.
	Run ResultSource
	// Clients are the client figures (histograms, counters) asked about: the whole run's, or one
	// cohort's for a PerCohort metric restricted to it.
	Clients reports.Stats
	Agg     Agg
	// Label is the SLO's label for a labelled metric (close_codes: the close code), else "".
	Label string
}

// seconds is the run's length in seconds, over which rates are taken.
func (q MetricQuery) seconds() float64 { return q.Run.Result.Duration.Seconds() }

// hasClients reports whether there are client figures at all: a counter absent from them reads 0,
// but with none at all (a run that recorded nothing) it is no data.
func (q MetricQuery) hasClients() bool {
	return q.Clients.Counters != nil || q.Clients.Histograms != nil
}

// latency resolves a latency histogram of the clients (nanoseconds, answered in seconds). An
// empty histogram has a count (zero) but no percentiles.
func latency(hist string) Resolver {
	return func(q MetricQuery) (float64, bool) { return histValue(q.Clients.Hist(hist), q.Agg, q.seconds()) }
}

// perClient resolves a histogram of plain values, one per tab or per user.
func perClient(hist string) Resolver {
	return func(q MetricQuery) (float64, bool) { return plainValue(q.Clients.Hist(hist), q.Agg) }
}

// clientCounter resolves a counter of the clients: zero when they counted nothing.
func clientCounter(counter string) Resolver {
	return func(q MetricQuery) (float64, bool) {
		if !q.hasClients() {
			return 0, false
		}
		return counterValue(float64(q.Clients.Counter(counter)), q.Agg, q.seconds())
	}
}

// tierCounter resolves a per-tier counter of the tier given as label.
func tierCounter(counter string) Resolver {
	return func(q MetricQuery) (float64, bool) {
		if q.Label == "" {
			return 0, false
		}
		return clientCounter(loadgen.TierKey(counter, q.Label))(q)
	}
}

// tierLatency resolves the fan-out latency of the tier given as label.
func tierLatency(q MetricQuery) (float64, bool) {
	if q.Label == "" || !q.hasClients() {
		return 0, false
	}
	return histValue(q.Clients.Hist(loadgen.TierKey(loadgen.HistTierFanout, q.Label)), q.Agg, q.seconds())
}

// closeCodes resolves the clients' count of closes with the close code given as label.
func closeCodes(q MetricQuery) (float64, bool) {
	if q.Label == "" {
		return 0, false
	}
	return clientCounter(stats.PrefixCloseCode + q.Label)(q)
}

// ghostPresence resolves ghost_presence_duration. A departed user some observer still saw when
// ramp-down began (a ghost) was never cleared: max is +Inf ("never"), and the other aggregations
// count it with its age at that moment (a lower bound of its real duration) when the load
// generator recorded it (loadgen.HistGhostAge).
func ghostPresence(q MetricQuery) (float64, bool) {
	if !q.hasClients() {
		return 0, false
	}
	st, a, dur := q.Clients, q.Agg, q.seconds()
	ghosts := st.Counter(loadgenGhosts)
	if ghosts == 0 {
		return histValue(st.Hist(stats.HistPresence), a, dur)
	}
	if st.Count(loadgenGhostAge) > 0 {
		return neverCleared(st.Hist(stats.HistPresence), st.Hist(loadgenGhostAge), a, dur)
	}
	// Some users were still present to an observer when the run began to end: their ghost
	// lasted the rest of the run, from an exit time the result does not keep.
	cleared, _ := histValue(st.Hist(stats.HistPresence), AggCount, dur)
	switch a {
	case AggMax:
		return math.Inf(1), true
	case AggCount:
		return cleared + float64(ghosts), true
	case AggRate:
		return counterValue(cleared+float64(ghosts), a, dur)
	}
	return 0, false
}

// zombieCleanup resolves zombie_cleanup_time. A vanished tab the server had not closed by the end
// (a zombie) was never cleaned: max is +Inf ("never"), the other aggregations count it with its
// age then.
func zombieCleanup(q MetricQuery) (float64, bool) {
	if !q.hasClients() {
		return 0, false
	}
	st, a, dur := q.Clients, q.Agg, q.seconds()
	if st.Counter(loadgenZombiesUncleaned) == 0 {
		return histValue(st.Hist(loadgenZombieCleanup), a, dur)
	}
	return neverCleared(st.Hist(loadgenZombieCleanup), st.Hist(loadgenZombieAge), a, dur)
}

// reconnectRatePeak resolves reconnect_rate_peak: the highest one-second rate of reconnect
// attempts in the series.
func reconnectRatePeak(q MetricQuery) (float64, bool) {
	series := q.Run.Result.Series
	if len(series) == 0 || q.Agg != AggMax {
		return 0, false
	}
	peak := 0.0
	for _, iv := range series {
		peak = max(peak, iv.Rate(stats.CtrReconnectAttempts))
	}
	return peak, true
}

// recoveryTime resolves recovery_time (see recoveryValue); it needs fault events in the result.
func recoveryTime(q MetricQuery) (float64, bool) { return q.Run.recoveryValue(q.Agg) }

// orphanedSubscriptions resolves orphaned_subscriptions from the gateway's telemetry.
func orphanedSubscriptions(q MetricQuery) (float64, bool) {
	return telemetryValue(q.Run.Result.Telemetry, protocol.MetricOrphanedSubscriptions, q.Agg)
}

// shedTotal resolves shed_total: how much the gateway's counter rose during the run (from the
// scrape before the clients started to the one after they ended), not its absolute value, which
// counts every earlier run against the same gateway.
func shedTotal(q MetricQuery) (float64, bool) {
	v, ok := q.Run.Result.Telemetry.Increase(protocol.MetricShedTotal)
	if !ok {
		return 0, false
	}
	return counterValue(v, q.Agg, q.seconds())
}

// authBackend resolves auth_backend_calls (see authBackendCalls).
func authBackend(q MetricQuery) (float64, bool) {
	return authBackendCalls(q.Run.Result.Telemetry, q.Agg, q.seconds())
}

// serverMemoryPerConnection resolves server_memory_per_connection over the scrapes that saw
// connections; it needs ServerMemory (the gateway in a process of its own).
func serverMemoryPerConnection(q MetricQuery) (float64, bool) {
	r := q.Run.Result
	if !q.Run.ServerMemory {
		return 0, false
	}
	var xs, ys []float64
	for _, p := range r.Telemetry.Points {
		if p.MemoryPerConn > 0 {
			xs = append(xs, p.At.Sub(r.Started).Seconds())
			ys = append(ys, p.MemoryPerConn)
		}
	}
	return seriesValue(xs, ys, q.Agg)
}

// serverMemoryGrowthSlope resolves server_memory_growth_slope: the slope of the gateway's resident
// memory over the scrapes inside hold phases; it needs ServerMemory.
func serverMemoryGrowthSlope(q MetricQuery) (float64, bool) {
	r := q.Run.Result
	if !q.Run.ServerMemory || q.Agg != AggLast {
		return 0, false
	}
	var xs, ys []float64
	for _, p := range r.Telemetry.Points {
		v, ok := p.Values[protocol.MetricProcessResidentMemory]
		if ok && q.Run.inHold(p.At) {
			xs = append(xs, p.At.Sub(r.Started).Seconds())
			ys = append(ys, v)
		}
	}
	return seriesValue(xs, ys, AggSlope)
}

// The load generator's names of the per-tab and per-user figures.
const (
	loadgenGhosts            = loadgen.CtrGhosts
	loadgenGhostAge          = loadgen.HistGhostAge
	loadgenZombieCleanup     = loadgen.HistZombieCleanup
	loadgenZombieAge         = loadgen.HistZombieAge
	loadgenZombiesUncleaned  = loadgen.CtrZombiesUncleaned
	loadgenAttemptsPerClient = loadgen.HistReconnectAttemptsPerClient
	loadgenConnsPerUser      = loadgen.HistConnsPerUser
	loadgenFalseDisconnects  = loadgen.CtrFalseDisconnects
)

// neverCleared aggregates durations of which some never ended: cleared holds the ones that did,
// aged the age of the others when the run stopped looking. Max is +Inf ("never"); the others
// aggregate the union, ages as they were.
func neverCleared(cleared, aged *stats.Hist, a Agg, dur float64) (float64, bool) {
	if a == AggMax {
		return math.Inf(1), true
	}
	u := stats.NewHist()
	if cleared != nil {
		u.Merge(cleared)
	}
	if aged != nil {
		u.Merge(aged)
	}
	return histValue(u, a, dur)
}

// plainValue aggregates a histogram of plain values (counts, not nanoseconds).
func plainValue(h *stats.Hist, a Agg) (float64, bool) {
	if h == nil || h.Count() == 0 {
		return 0, false
	}
	switch a {
	case AggP50:
		return float64(h.Percentile(50)), true
	case AggP90:
		return float64(h.Percentile(90)), true
	case AggP95:
		return float64(h.Percentile(95)), true
	case AggP99:
		return float64(h.Percentile(99)), true
	case AggMax:
		return float64(h.Max()), true
	case AggMin:
		return float64(h.Min()), true
	case AggMean:
		return h.Mean(), true
	case AggCount:
		return float64(h.Count()), true
	}
	return 0, false
}

// inHold reports whether t falls in a hold phase of the run (phases are matched to the scenario's
// by position).
func (s ResultSource) inHold(t time.Time) bool {
	if s.Scenario == nil {
		return false
	}
	for i, ph := range s.Result.Phases {
		if i >= len(s.Scenario.Phases) || s.Scenario.Phases[i].Kind != PhaseHold {
			continue
		}
		if !t.Before(ph.Start) && (ph.End.IsZero() || !t.After(ph.End)) {
			return true
		}
	}
	return false
}

// histValue aggregates a latency histogram (nanoseconds) into seconds. An empty histogram has a
// count (zero) but no percentiles.
func histValue(h *stats.Hist, a Agg, runSeconds float64) (float64, bool) {
	n := int64(0)
	if h != nil {
		n = h.Count()
	}
	switch a {
	case AggCount:
		return float64(n), true
	case AggRate:
		if runSeconds <= 0 {
			return 0, false
		}
		return float64(n) / runSeconds, true
	}
	if n == 0 {
		return 0, false
	}
	sec := func(v int64) float64 { return float64(v) / 1e9 }
	switch a {
	case AggP50:
		return sec(h.Percentile(50)), true
	case AggP90:
		return sec(h.Percentile(90)), true
	case AggP95:
		return sec(h.Percentile(95)), true
	case AggP99:
		return sec(h.Percentile(99)), true
	case AggP999:
		return sec(h.Percentile(99.9)), true
	case AggMax:
		return sec(h.Max()), true
	case AggMin:
		return sec(h.Min()), true
	case AggMean:
		return h.Mean() / 1e9, true
	}
	return 0, false
}

// counterValue aggregates a run total.
func counterValue(total float64, a Agg, runSeconds float64) (float64, bool) {
	switch a {
	case AggCount, AggLast:
		return total, true
	case AggRate:
		if runSeconds <= 0 {
			return 0, false
		}
		return total / runSeconds, true
	}
	return 0, false
}

// telemetryValue reads a gateway metric from the scraped series: its last or highest value.
func telemetryValue(t reports.Telemetry, name string, a Agg) (float64, bool) {
	found, last, peak := false, 0.0, math.Inf(-1)
	for _, p := range t.Points {
		v, ok := p.Values[name]
		if !ok {
			continue
		}
		found, last, peak = true, v, max(peak, v)
	}
	if !found {
		return 0, false
	}
	switch a {
	case AggLast:
		return last, true
	case AggMax:
		return peak, true
	}
	return 0, false
}

// seriesValue aggregates samples ys taken at xs seconds.
func seriesValue(xs, ys []float64, a Agg) (float64, bool) {
	if len(ys) == 0 {
		return 0, false
	}
	sorted := slices.Sorted(slices.Values(ys))
	rank := func(q float64) float64 { // nearest rank
		i := int(math.Ceil(q*float64(len(sorted)))) - 1
		return sorted[min(max(i, 0), len(sorted)-1)]
	}
	switch a {
	case AggMax:
		return sorted[len(sorted)-1], true
	case AggMin:
		return sorted[0], true
	case AggLast:
		return ys[len(ys)-1], true
	case AggMean:
		sum := 0.0
		for _, y := range ys {
			sum += y
		}
		return sum / float64(len(ys)), true
	case AggP50:
		return rank(0.5), true
	case AggP90:
		return rank(0.9), true
	case AggP99:
		return rank(0.99), true
	case AggSlope:
		return leastSquaresSlope(xs, ys)
	}
	return 0, false
}

func leastSquaresSlope(xs, ys []float64) (float64, bool) {
	if len(xs) < 2 {
		return 0, false
	}
	var n, sx, sy, sxx, sxy float64
	for i := range xs {
		n++
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0, false
	}
	return (n*sxy - sx*sy) / d, true
}

// recoveryValue measures, for each fault of the run (a step that disrupts: toxic added, proxy
// disabled, node or container killed, stopped, restarted, paused or drained, container
// disconnected), how long the open connections took to get
// back to their level just before it. It looks until the next fault or the ramp-down: zero when
// they did not dip; +Inf ("never") when they were not back by then. Levels come from the
// one-second series, so recovery times have a resolution of one second.
func (s ResultSource) recoveryValue(a Agg) (float64, bool) {
	r := s.Result
	if len(r.Series) == 0 {
		return 0, false
	}
	var faults []time.Time
	for _, ev := range r.Events {
		if ev.Kind == reports.EventFault && ev.Fault != nil && ev.Fault.Error == "" && disruptive[ev.Fault.Action] {
			faults = append(faults, ev.At)
		}
	}
	end := r.Series[len(r.Series)-1].End
	if s.Scenario != nil {
		for i, ph := range r.Phases {
			if i < len(s.Scenario.Phases) && s.Scenario.Phases[i].Kind == PhaseRampDown {
				end = ph.Start
				break
			}
		}
	}
	var times []float64
	for k, at := range faults {
		until := end
		if k+1 < len(faults) && faults[k+1].Before(until) {
			until = faults[k+1]
		}
		base, seen := int64(0), false
		for _, iv := range r.Series {
			if iv.End.After(at) {
				break
			}
			base, seen = iv.Gauges[stats.GaugeConnections], true
		}
		if !seen || !at.Before(until) {
			continue
		}
		rec, dipped := 0.0, false
		for _, iv := range r.Series {
			if !iv.End.After(at) {
				continue
			}
			if iv.End.After(until) {
				break
			}
			c := iv.Gauges[stats.GaugeConnections]
			if c < base {
				dipped = true
				continue
			}
			if dipped {
				rec = iv.End.Sub(at).Seconds()
				dipped = false
				break
			}
		}
		if dipped { // not back at the level before the window ended
			rec = math.Inf(1)
		}
		times = append(times, rec)
	}
	if len(times) == 0 {
		return 0, false
	}
	switch a {
	case AggCount:
		return float64(len(times)), true
	case AggMax, AggMean, AggLast:
		return seriesValue(nil, times, a)
	}
	return 0, false
}

// disruptive lists the chaos actions recovery_time measures from (reverts are not faults).
var disruptive = map[string]bool{
	"add_toxic": true, "disable_proxy": true, "kill": true, "restart": true, "pause": true, "drain": true,
	"container_stop": true, "container_kill": true, "container_restart": true, "container_pause": true,
	"network_disconnect": true,
}
