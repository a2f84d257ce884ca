package reports

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/squall-dev/squall/chaos"
	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/refserver/protocol"
)

// Finding classes: where in the path from the browser tab to the gateway the trouble lies, as the
// 3 AM flowchart of a WebSocket incident splits it (client side, load balancer/proxy, server side).
const (
	// ClassClient: the clients make the trouble worse or cause it — reconnect storms, constant
	// retry without backoff, clients backing off in lock step.
	ClassClient = "client-side"
	// ClassBetween: something between clients and gateway cuts connections — 1006 closes at a
	// regular connection age while the gateway counted no heartbeat timeout: a proxy or load
	// balancer idle timeout.
	ClassBetween = "between"
	// ClassServer: the gateway itself — memory growth, orphaned subscriptions, slow consumers,
	// shedding and rejections, event-loop (scheduling) lag.
	ClassServer = "server-side"
)

// Finding severities.
const (
	SeverityInfo     = "info"     // worth knowing; not a fault on its own
	SeverityWarning  = "warning"  // a fault that degrades the service
	SeverityCritical = "critical" // a fault that breaks the service for many clients
)

// Diagnosis is what the run's figures say went wrong, classified the way an on-call engineer
// triages a WebSocket incident: each Finding names a class (client side, between, server side),
// a title and the evidence — the figures of this run — that point there. A nil Diagnosis in a
// Result means none was made (an older result); an empty Findings means nothing pointed anywhere.
type Diagnosis struct {
	Findings []Finding `json:"findings"`
}

// Finding is one conclusion of a Diagnosis.
type Finding struct {
	// Class is ClassClient, ClassBetween or ClassServer.
	Class string `json:"class"`
	// Code is a stable identifier of the rule that found it ("reconnect_storm",
	// "proxy_idle_timeout", "memory_growth", ...), for tests and tooling.
	Code string `json:"code"`
	// Title is one line for people ("Reconnect storm: 740 reconnects/s at the peak").
	Title string `json:"title"`
	// Severity is SeverityInfo, SeverityWarning or SeverityCritical.
	Severity string `json:"severity"`
	// Evidence are the figures that point there, one sentence each.
	Evidence []string `json:"evidence"`
	// Fix is what the flowchart suggests doing about it, one sentence.
	Fix string `json:"fix,omitempty"`
}

// Classes lists the finding classes in the flowchart's order.
var Classes = []string{ClassClient, ClassBetween, ClassServer}

// Thresholds of the diagnosis rules. Rates and durations that follow the scenario's clock are
// compared at full speed (divided or multiplied by the run's time scale).
const (
	// stormRate is the reconnect attempts in one second above which a gateway's storm alert fires
	// (the seeds' alert: more than 50 reconnects within one second).
	stormRate = 50.0
	// stormCritical is the sustained rate of the seeds' alert (reconnects above 100/s).
	stormCritical = 100.0
	// minRetries is how many reconnect attempts a retry-pattern rule needs to say anything.
	minRetries = 20
	// constantSpread: a policy whose p90 delay is within this factor of its p10 does not back off.
	constantSpread = 1.2
	// lockstepValues and lockstepShare: this share of the delays on at most this many distinct
	// values is a policy without jitter.
	lockstepValues = 6
	lockstepShare  = 0.9
	// regularAge: abnormal closes whose ages' p10–p90 span is within this fraction of their median
	// were cut at one regular age.
	regularAge = 0.25
	// growthShare and growthBytes: resident memory that grew by this share and this much while the
	// connections held steady.
	growthShare = 0.25
	growthBytes = 4 << 20
	// lagBound: the gateway answering pings or delivering broadcasts this late (p99) on a reliable
	// run is lagging: its own scheduling is behind.
	lagBound = 100 * time.Millisecond
)

// Diagnose classifies what went wrong in r (see Diagnosis): every rule below that finds its
// pattern in the run's figures adds a finding with the figures as evidence. Findings come in the
// flowchart's order — client side, between, server side — and, within a class, most severe first.
func Diagnose(r *Result) *Diagnosis {
	d := diagnosis{r: r, h: HeadlineOf(r), scale: 1}
	if r.Scenario != nil && r.Scenario.TimeScale > 0 {
		d.scale = r.Scenario.TimeScale
	}
	for _, rule := range []func(){
		d.reconnectStorm, d.retryPattern, d.connectionHoarding,
		d.idleTimeout,
		d.orphanedSubscriptions, d.memoryGrowth, d.slowConsumers, d.shedding, d.serverLag,
	} {
		rule()
	}
	rank := map[string]int{SeverityCritical: 0, SeverityWarning: 1, SeverityInfo: 2}
	slices.SortStableFunc(d.out.Findings, func(a, b Finding) int {
		if c := slices.Index(Classes, a.Class) - slices.Index(Classes, b.Class); c != 0 {
			return c
		}
		return rank[a.Severity] - rank[b.Severity]
	})
	if d.out.Findings == nil {
		d.out.Findings = []Finding{}
	}
	return &d.out
}

// diagnosis is one Diagnose: the run and what its rules found.
type diagnosis struct {
	r     *Result
	h     Headline
	scale float64
	out   Diagnosis
}

func (d *diagnosis) add(f Finding) { d.out.Findings = append(d.out.Findings, f) }

// share formats n as a share of the clients ("40% of the 100 clients").
func (d *diagnosis) share(n int64) string {
	if d.h.Clients <= 0 {
		return ""
	}
	return fmt.Sprintf(" (%.0f%% of the %d clients)", 100*float64(n)/float64(d.h.Clients), d.h.Clients)
}

// scaled explains a time-scaled figure at full speed.
func (d *diagnosis) scaled(what string) string {
	if d.scale == 1 {
		return ""
	}
	return fmt.Sprintf("; the run ran at time scale %g: at full speed that is %s", d.scale, what)
}

// faultNear returns the fault step of the timeline that began within window before at (or up to
// a second after it), if any.
func (d *diagnosis) faultNear(at time.Time, window time.Duration) *Fault {
	for i := range d.r.Events {
		ev := &d.r.Events[i]
		if ev.Kind != EventFault || ev.Fault == nil || ev.Fault.Error != "" {
			continue
		}
		if ev.At.After(at.Add(-window)) && !ev.At.After(at.Add(time.Second)) {
			return ev.Fault
		}
	}
	return nil
}

func faultText(f *Fault) string {
	s := f.Action
	if f.Target != "" {
		s += " on " + f.Target
	}
	if t := f.Params["type"]; t != "" {
		s += " (" + t + ")"
	}
	return fmt.Sprintf("%q at %v", s, f.Offset.Round(time.Millisecond))
}

// peakSecond returns the one-second interval with the highest rate of counter.
func (d *diagnosis) peakSecond(counter string) (Interval, float64) {
	var best Interval
	peak := 0.0
	for _, iv := range d.r.Series {
		if v := iv.Rate(counter); v > peak {
			best, peak = iv, v
		}
	}
	return best, peak
}

// reconnectStorm: more reconnect attempts in one second than a gateway's storm alert allows.
func (d *diagnosis) reconnectStorm() {
	iv, peak := d.peakSecond(stats.CtrReconnectAttempts)
	full := peak * d.scale
	if full <= stormRate {
		return
	}
	f := Finding{Class: ClassClient, Code: "reconnect_storm", Severity: SeverityWarning,
		Title: fmt.Sprintf("Reconnect storm: %.0f reconnect attempts in one second", peak),
		Fix:   "Reconnect with exponential backoff and jitter (1 s, ×1.5, up to 30 s, plus up to 1 s at random) and honour the gateway's retry_after_ms, so that clients dropped together come back spread out."}
	f.Evidence = append(f.Evidence, fmt.Sprintf("%.0f reconnect attempts in second %d of the run%s%s",
		peak, iv.Second, d.share(int64(peak)), d.scaled(fmt.Sprintf("%.0f a second, above the %.0f a second at which a storm alert fires", full, stormRate))))
	above := 0
	for _, iv := range d.r.Series {
		if iv.Rate(stats.CtrReconnectAttempts)*d.scale > stormRate {
			above++
		}
	}
	if above > 1 {
		f.Evidence = append(f.Evidence, fmt.Sprintf("the storm lasted %d seconds above the alert's rate", above))
	}
	if full > stormCritical && above > 1 {
		f.Severity = SeverityCritical
	}
	attempts, gaveUp := d.r.Stats.Counter(stats.CtrReconnectAttempts), d.r.Stats.Counter(loadgen.CtrReconnectGaveUp)
	line := fmt.Sprintf("%d reconnect attempts over the run, %d of them succeeded", attempts, d.r.Stats.Counter(stats.CtrReconnects))
	if gaveUp > 0 {
		line += fmt.Sprintf("; %d clients gave up", gaveUp)
	}
	f.Evidence = append(f.Evidence, line)
	if fl := d.faultNear(iv.Start, 3*time.Second); fl != nil {
		f.Evidence = append(f.Evidence, "it followed the fault "+faultText(fl)+": the clients it dropped all came back at once")
	}
	if v, ok := d.r.Telemetry.Max(protocol.MetricStormActive); ok && v > 0 {
		f.Severity = SeverityCritical
		f.Evidence = append(f.Evidence, "the gateway's own storm detector fired (ws_storm_active)")
	}
	d.add(f)
}

// retryPattern: clients that retry without backing off, or back off in lock step (no jitter).
func (d *diagnosis) retryPattern() {
	planned := d.r.Stats.Hist(loadgen.HistReconnectPlanned)
	n := planned.Count()
	if n < minRetries {
		return
	}
	p10, p50, p90 := time.Duration(planned.Percentile(10)), time.Duration(planned.Percentile(50)), time.Duration(planned.Percentile(90))
	perClient := d.r.Stats.Hist(loadgen.HistReconnectAttemptsPerClient).Max()
	if perClient >= 4 && float64(p90) <= constantSpread*float64(p10) {
		f := Finding{Class: ClassClient, Code: "constant_retry", Severity: SeverityWarning,
			Title: "Clients retry without backing off",
			Fix:   "Replace the constant retry with exponential backoff and jitter, with a cap on attempts."}
		if p90 == 0 {
			f.Title = "Clients retry at once, without any delay"
		}
		f.Evidence = append(f.Evidence,
			fmt.Sprintf("%d reconnect attempts; one client made %d", d.r.Stats.Counter(stats.CtrReconnectAttempts), perClient),
			fmt.Sprintf("every retry waited about the same: p10 %v, median %v, p90 %v (a backoff grows the delay with each attempt)",
				p10.Round(time.Millisecond), p50.Round(time.Millisecond), p90.Round(time.Millisecond)))
		if perClient >= 10 {
			f.Severity = SeverityCritical
		}
		d.add(f)
		return
	}
	values, share := topValues(planned, lockstepValues)
	if share < lockstepShare || d.r.Stats.Counter(stats.CtrReconnectAttempts) < minRetries {
		return
	}
	if _, peak := d.peakSecond(stats.CtrReconnectAttempts); peak < 10 {
		return // nobody came back together: no step to keep
	}
	texts := make([]string, len(values))
	for i, v := range values {
		texts[i] = FormatDuration(time.Duration(v))
	}
	d.add(Finding{Class: ClassClient, Code: "lockstep_backoff", Severity: SeverityWarning,
		Title: "Clients back off in lock step (no jitter)",
		Evidence: []string{fmt.Sprintf("%.0f%% of %d reconnect delays were one of %d values (%s): clients dropped together retry together, wave after wave",
			100*share, n, len(values), strings.Join(texts, ", "))},
		Fix: "Add random jitter to every reconnect delay (up to the delay itself, or at least 1 s)."})
}

// topValues returns the k most frequent values of h (at its resolution) and the share of the
// values they hold.
func topValues(h *stats.Hist, k int) ([]int64, float64) {
	total := h.Count()
	if total == 0 {
		return nil, 0
	}
	type bar struct{ v, c int64 }
	var bars []bar
	for _, b := range h.HDR().Distribution() {
		if b.Count > 0 {
			bars = append(bars, bar{(b.From + b.To) / 2, b.Count})
		}
	}
	slices.SortFunc(bars, func(a, b bar) int { return cmp.Compare(b.c, a.c) })
	var vals []int64
	var held int64
	for _, b := range bars[:min(k, len(bars))] {
		vals = append(vals, b.v)
		held += b.c
	}
	slices.Sort(vals)
	return vals, float64(held) / float64(total)
}

// connectionHoarding: clients opening more connections than the gateway allows one user or IP.
func (d *diagnosis) connectionHoarding() {
	limited := d.r.Stats.Counter(stats.PrefixCloseReason + protocol.ReasonConnLimit)
	if limited == 0 {
		return
	}
	f := Finding{Class: ClassClient, Code: "connection_hoarding", Severity: SeverityWarning,
		Title:    fmt.Sprintf("Clients open too many connections: %d refused over the per-user limit", limited),
		Evidence: []string{fmt.Sprintf("%d connections were closed with 1008 conn_limit: a user or address already held the most the gateway allows", limited)},
		Fix:      "Share one connection between a user's tabs (BroadcastChannel, a SharedWorker) and close the old connection before opening a new one."}
	if v := d.r.Stats.Hist(loadgen.HistConnsPerUser).Max(); v > 0 {
		f.Evidence = append(f.Evidence, fmt.Sprintf("one user held up to %d connections at once", v))
	}
	d.add(f)
}

// idleTimeout: connections cut without a close frame at one regular age while the gateway
// counted no heartbeat timeout — an idle timer between the clients and the gateway.
func (d *diagnosis) idleTimeout() {
	age := d.r.Stats.Hist(loadgen.HistAbnormalCloseAge)
	n := age.Count()
	if n < 5 || (d.h.Clients > 0 && n*5 < int64(d.h.Clients)) { // an idle timer cuts every idle tab, not a few
		return
	}
	p10, p50, p90 := time.Duration(age.Percentile(10)), time.Duration(age.Percentile(50)), time.Duration(age.Percentile(90))
	if p50 <= 0 || float64(p90-p10) > regularAge*float64(p50) {
		return
	}
	hb, telemetry := d.r.Telemetry.Increase(protocol.MetricHeartbeatTimeouts)
	if telemetry && hb > 0 {
		return // the gateway cut them itself
	}
	// Cuts that coincide with a fault of the timeline (a proxy disabled, a node killed) are that fault's.
	iv, _ := d.peakSecond(stats.CloseCodeCounter(int(protocol.CloseAbnormal)))
	if d.faultNear(iv.End, 2*time.Second) != nil {
		return
	}
	f := Finding{Class: ClassBetween, Code: "proxy_idle_timeout", Severity: SeverityWarning,
		Title: fmt.Sprintf("A proxy or load balancer cuts idle connections after about %v", p50.Round(10*time.Millisecond)),
		Fix:   "Make the gateway ping more often than the shortest idle timeout on the path (or raise the proxy's or load balancer's idle timeout above the heartbeat interval)."}
	f.Evidence = append(f.Evidence,
		fmt.Sprintf("%d connections%s ended without a close frame (1006) at ages between %v and %v (median %v): one regular age, as an idle timer cuts%s",
			n, d.share(n), p10.Round(time.Millisecond), p90.Round(time.Millisecond), p50.Round(time.Millisecond),
			d.scaled(fmt.Sprintf("an age of about %v, to compare with the idle timeouts of the proxies and load balancers on the path (often 30 or 60 s)", time.Duration(float64(p50)/d.scale).Round(time.Second)))))
	if telemetry {
		f.Evidence = append(f.Evidence, "the gateway counted no heartbeat timeout during the run: it did not close them")
	} else {
		f.Evidence = append(f.Evidence, "without the gateway's telemetry, whether it closed them itself is unknown")
	}
	f.Evidence = append(f.Evidence, "no fault of the timeline cut them at that moment")
	if d.h.Clients > 0 && 2*n >= int64(d.h.Clients) {
		f.Severity = SeverityCritical
	}
	d.add(f)
}

// orphanedSubscriptions: room memberships the gateway kept for connections that are gone.
func (d *diagnosis) orphanedSubscriptions() {
	t := d.r.Telemetry.Summary
	if t.FinalOrphaned <= 0 {
		return
	}
	d.add(Finding{Class: ClassServer, Code: "orphaned_subscriptions", Severity: SeverityCritical,
		Title: fmt.Sprintf("The gateway leaks subscriptions: %.0f left for connections that are gone", t.FinalOrphaned),
		Evidence: []string{
			fmt.Sprintf("%.0f room memberships whose connection had closed were still held after the run (ws_orphaned_subscriptions, peak %.0f)", t.FinalOrphaned, t.PeakOrphaned),
			"some close path skips the cleanup: every membership, presence entry and queue of those connections stays in memory",
		},
		Fix: "Run one cleanup on every close path (clean close, read or write error, heartbeat timeout, shed, drain)."})
}

// memoryGrowth: resident memory that keeps growing while the connections hold steady.
func (d *diagnosis) memoryGrowth() {
	if !d.r.Target.OwnProcess {
		return // the memory includes the load generator's
	}
	pts := d.r.Telemetry.Points
	peak := d.r.Telemetry.Summary.PeakConnections
	var steady []TelemetryPoint
	for _, p := range pts {
		if peak > 0 && p.Values[protocol.MetricConnectionsActive] >= 0.9*peak {
			steady = append(steady, p)
		}
	}
	if len(steady) < 5 {
		return
	}
	first, last := steady[0], steady[len(steady)-1]
	span := last.At.Sub(first.At)
	r0, r1 := first.Values[protocol.MetricProcessResidentMemory], last.Values[protocol.MetricProcessResidentMemory]
	if span < 3*time.Second || r0 <= 0 || r1-r0 < growthBytes || r1-r0 < growthShare*r0 {
		return
	}
	f := Finding{Class: ClassServer, Code: "memory_growth", Severity: SeverityWarning,
		Title: fmt.Sprintf("Gateway memory grows while the load holds steady: +%s in %v", FormatQuantity(r1-r0, "bytes"), span.Round(time.Second)),
		Evidence: []string{fmt.Sprintf("resident memory went from %s to %s (+%.0f%%) over %v while connections held between %.0f and %.0f",
			FormatQuantity(r0, "bytes"), FormatQuantity(r1, "bytes"), 100*(r1-r0)/r0, span.Round(time.Second), 0.9*peak, peak)},
		Fix: "Find what is kept per message or per closed connection (a heap profile from /debug/pprof/heap before and after); bound every history and queue."}
	if g0, g1 := first.Values[protocol.MetricGoGoroutines], last.Values[protocol.MetricGoGoroutines]; g1 > 1.25*g0 && g1-g0 > 50 {
		f.Evidence = append(f.Evidence, fmt.Sprintf("goroutines went from %.0f to %.0f", g0, g1))
	}
	d.add(f)
}

// slowConsumers: connections the gateway cut because their send queue overflowed.
func (d *diagnosis) slowConsumers() {
	n := d.r.Stats.Counter(stats.PrefixCloseReason + protocol.ReasonSlowConsumer)
	if n == 0 {
		return
	}
	f := Finding{Class: ClassServer, Code: "slow_consumers", Severity: SeverityWarning,
		Title:    fmt.Sprintf("The gateway cut %d slow consumers", n),
		Evidence: []string{fmt.Sprintf("%d connections were closed with 1008 slow_consumer: their send queue overflowed because they did not read fast enough", n)},
		Fix:      "The gateway protects its memory as it should; find why those clients read slowly (a busy tab, a slow network) or send them less (coalesce or sample broadcasts)."}
	if q, ok := d.r.Telemetry.Max(protocol.MetricSendQueueDepth); ok && q > 0 {
		f.Evidence = append(f.Evidence, fmt.Sprintf("the gateway's send queues held up to %.0f frames (ws_send_queue_depth)", q))
	}
	if d.h.Fanout.Count > 0 {
		f.Evidence = append(f.Evidence, fmt.Sprintf("fan-out latency p99 %v", d.h.Fanout.P99.Round(time.Millisecond)))
	}
	d.add(f)
}

// shedding: connections refused by admission control, the connection cap or an overloaded auth
// backend (1013, HTTP 503).
func (d *diagnosis) shedding() {
	var ev []string
	var refused int64
	if shed, ok := d.r.Telemetry.Increase(protocol.MetricShedTotal); ok && shed > 0 {
		ev = append(ev, fmt.Sprintf("the gateway shed %.0f connections by admission control (ws_shed_total rose by that much during the run)", shed))
	}
	if n := d.r.Stats.Counter(stats.CloseCodeCounter(int(protocol.CloseTryAgainLater))); n > 0 {
		refused += n
		var words []string
		for _, w := range []string{protocol.ReasonShed, protocol.ReasonOverloaded, protocol.ReasonAuthDown} {
			if c := d.r.Stats.Counter(stats.PrefixCloseReason + w); c > 0 {
				words = append(words, fmt.Sprintf("%s %d", w, c))
			}
		}
		line := fmt.Sprintf("clients were told to try again later %d times (1013)", n)
		if len(words) > 0 {
			line += ": " + strings.Join(words, ", ")
		}
		ev = append(ev, line)
	}
	if n := d.r.Stats.Counter(stats.ErrorCounter(stats.ErrUpgradeRefused)); n > 0 {
		refused += n
		ev = append(ev, fmt.Sprintf("%d upgrades were refused with an HTTP status instead of 101 (503 when shed or at the cap)", n))
	}
	if len(ev) == 0 {
		return
	}
	f := Finding{Class: ClassServer, Code: "shedding", Severity: SeverityWarning,
		Title:    "The gateway sheds or refuses connections",
		Evidence: ev,
		Fix:      "Add capacity (nodes) or spread the arrivals (client backoff with jitter, drain spread); check the admission rate and the connection cap against the load."}
	if a := d.h.ConnectAttempts; a > 0 && refused*10 > a {
		f.Severity = SeverityCritical
		f.Evidence = append(f.Evidence, fmt.Sprintf("%.0f%% of %d connection attempts were refused", 100*float64(refused)/float64(a), a))
	}
	d.add(f)
}

// serverLag: the gateway answers pings or delivers broadcasts late while the generator kept its
// schedule — the gateway's own scheduling (its "event loop") lags.
func (d *diagnosis) serverLag() {
	if !d.r.Reliable {
		return // the generator itself lagged: its latencies say nothing about the gateway
	}
	for _, ev := range d.r.Events {
		if ev.Fault != nil && ev.Fault.Action == string(chaos.ActionAddToxic) && slices.Contains([]string{"latency", "bandwidth", "slicer", "limit_data", "slow_close", "timeout"}, ev.Fault.Params["type"]) {
			return // the chaos proxy delayed traffic on purpose
		}
	}
	ping := d.h.PingRTT
	server := latencyOf(d.r.Stats, stats.HistFanoutServer)
	if ping.P99 < lagBound && server.P99 < lagBound {
		return
	}
	f := Finding{Class: ClassServer, Code: "event_loop_lag", Severity: SeverityWarning,
		Title: "The gateway lags: it answers and delivers late",
		Fix:   "Profile the gateway under this load (/debug/pprof/profile): look for work done inline on the read or write path, lock contention, or a CPU at its limit; add nodes."}
	if ping.Count > 0 {
		f.Evidence = append(f.Evidence, fmt.Sprintf("WebSocket ping round trip p99 %v, median %v (on loopback a ping takes well under a millisecond)", FormatDuration(ping.P99), FormatDuration(ping.P50)))
	}
	if server.Count > 0 {
		f.Evidence = append(f.Evidence, fmt.Sprintf("from the gateway stamping a broadcast to its receipt: p99 %v", FormatDuration(server.P99)))
	}
	f.Evidence = append(f.Evidence, fmt.Sprintf("the generator kept its schedule (schedule lag p99 %v): the delay is the gateway's", d.r.Stats.Percentile(stats.HistScheduleLag, 99).Round(time.Millisecond)))
	if max(ping.P99, server.P99) > 10*lagBound {
		f.Severity = SeverityCritical
	}
	d.add(f)
}
