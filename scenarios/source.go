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
// histograms and counters, the one-second series, the gateway's telemetry). Each catalogue metric
// reads what its Source column names; a metric whose data the run did not produce answers "no
// data" rather than a made-up number:
//
//   - ghost_presence_duration and zombie_cleanup_time: a departed user some observer still saw
//     when ramp-down began (a ghost), or a vanished tab the server had not closed by the end (a
//     zombie), was never cleared: max is +Inf ("never"), and the other aggregations count it with
//     its age at that moment (a lower bound of its real duration);
//   - reconnect_attempts_per_client and concurrent_connections_per_client are plain-value
//     histograms (one value per tab, per user); false_disconnects a counter;
//   - an SLO restricted to one cohort reads the client figures (histograms and counters) of that
//     cohort from CohortStats, else from the per-cohort keys of the merged figures
//     (stats.CohortKey), or the whole run's when the scenario has that one cohort; series and
//     gateway figures are not kept per cohort;
//   - server memory figures need ServerMemory (the gateway in a process of its own);
//   - recovery_time needs fault events in the result.
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

// Value implements MetricSource.
func (s ResultSource) Value(metric, agg, cohort string) (float64, bool) {
	r := s.Result
	if r == nil {
		return 0, false
	}
	name, label, _ := strings.Cut(metric, ":")
	a := Agg(agg)
	st := r.Stats
	if cohort != "" && (s.Scenario == nil || len(s.Scenario.Cohorts) != 1 || s.Scenario.Cohorts[0].Name != cohort) {
		snap, ok := s.CohortStats[cohort]
		if !ok {
			snap = r.Stats.Cohort(cohort)
			if snap.Counters == nil && snap.Histograms == nil {
				return 0, false
			}
		}
		switch name {
		case "reconnect_rate_peak", "recovery_time", "orphaned_subscriptions", "shed_total", "auth_backend_calls",
			"server_memory_per_connection", "server_memory_growth_slope":
			return 0, false // from the series or the gateway: not per cohort
		}
		st = snap
	}
	haveStats := st.Counters != nil || st.Histograms != nil
	dur := r.Duration.Seconds()
	switch name {
	case "ghost_presence_duration":
		if !haveStats {
			return 0, false
		}
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
	case "zombie_cleanup_time":
		if !haveStats {
			return 0, false
		}
		if st.Counter(loadgenZombiesUncleaned) == 0 {
			return histValue(st.Hist(loadgenZombieCleanup), a, dur)
		}
		return neverCleared(st.Hist(loadgenZombieCleanup), st.Hist(loadgenZombieAge), a, dur)
	case "reconnect_attempts_per_client":
		return plainValue(st.Hist(loadgenAttemptsPerClient), a)
	case "concurrent_connections_per_client":
		return plainValue(st.Hist(loadgenConnsPerUser), a)
	case "false_disconnects":
		if !haveStats {
			return 0, false
		}
		return counterValue(float64(st.Counter(loadgenFalseDisconnects)), a, dur)
	case "presence_convergence":
		return histValue(st.Hist(stats.HistPresence), a, dur)
	case "connect_time":
		return histValue(st.Hist(stats.HistUpgrade), a, dur)
	case "ping_rtt":
		return histValue(st.Hist(stats.HistPingRTT), a, dur)
	case "fanout_latency":
		return histValue(st.Hist(stats.HistFanout), a, dur)
	case "reconnect_time":
		return histValue(st.Hist(stats.HistReconnect), a, dur)
	case "schedule_lag":
		return histValue(st.Hist(stats.HistScheduleLag), a, dur)
	case "ordering_violations", "unrecovered_gaps", "duplicates", "lost_acked_messages", "close_codes":
		if !haveStats {
			return 0, false
		}
		key := map[string]string{
			"ordering_violations": stats.CtrOrderViolations, "unrecovered_gaps": stats.CtrGaps,
			"duplicates": stats.CtrDuplicates, "lost_acked_messages": stats.CtrAckedUndelivered,
		}[name]
		if name == "close_codes" {
			if label == "" {
				return 0, false
			}
			key = stats.PrefixCloseCode + label
		}
		return counterValue(float64(st.Counter(key)), a, dur)
	case "reconnect_rate_peak":
		if len(r.Series) == 0 || a != AggMax {
			return 0, false
		}
		peak := 0.0
		for _, iv := range r.Series {
			peak = max(peak, iv.Rate(stats.CtrReconnectAttempts))
		}
		return peak, true
	case "recovery_time":
		return s.recoveryValue(a)
	case "orphaned_subscriptions":
		return telemetryValue(r.Telemetry, protocol.MetricOrphanedSubscriptions, a)
	case "shed_total":
		v, ok := telemetryValue(r.Telemetry, protocol.MetricShedTotal, AggLast)
		if !ok {
			return 0, false
		}
		return counterValue(v, a, dur)
	case "auth_backend_calls":
		return authBackendCalls(r.Telemetry, a, dur)
	case "server_memory_per_connection":
		if !s.ServerMemory {
			return 0, false
		}
		var xs, ys []float64
		for _, p := range r.Telemetry.Points {
			if p.MemoryPerConn > 0 {
				xs = append(xs, p.At.Sub(r.Started).Seconds())
				ys = append(ys, p.MemoryPerConn)
			}
		}
		return seriesValue(xs, ys, a)
	case "server_memory_growth_slope":
		if !s.ServerMemory || a != AggLast {
			return 0, false
		}
		var xs, ys []float64
		for _, p := range r.Telemetry.Points {
			v, ok := p.Values[protocol.MetricProcessResidentMemory]
			if ok && s.inHold(p.At) {
				xs = append(xs, p.At.Sub(r.Started).Seconds())
				ys = append(ys, v)
			}
		}
		return seriesValue(xs, ys, AggSlope)
	}
	return 0, false
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
// disabled, node killed, restarted, paused or drained), how long the open connections took to get
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
}
