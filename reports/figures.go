package reports

import (
	"strings"
	"time"

	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/stats"
)

// KeyFigure is one of the numbers a reader of a run looks at first.
type KeyFigure struct {
	Name  string
	Value float64
	Unit  string // one of the Unit constants
	// Present is false when the run did not measure it (a latency nobody recorded, a gateway
	// without /metrics); such a figure is shown as "-".
	Present bool
}

// Text renders the figure's value ("-" when not measured).
func (f KeyFigure) Text() string {
	if !f.Present {
		return "-"
	}
	return FormatValue(f.Value, f.Unit)
}

// KeyFigures returns the run's key numbers in a fixed order: the load, what went wrong on the
// client side (every failed connect, abnormal close, refusal and false disconnect), latencies (each
// a percentile of the merged histogram) and the gateway's own figures.
func (r *Result) KeyFigures() []KeyFigure {
	s := r.Stats
	count := func(name string, v int64) KeyFigure {
		return KeyFigure{Name: name, Value: float64(v), Unit: UnitCount, Present: true}
	}
	lat := func(name, hist string, p float64) KeyFigure {
		h := s.Hist(hist)
		return KeyFigure{Name: name, Value: time.Duration(h.Percentile(p)).Seconds(), Unit: UnitSeconds, Present: h.Count() > 0}
	}
	gw := func(name string, v float64, unit string) KeyFigure {
		return KeyFigure{Name: name, Value: v, Unit: unit, Present: r.Telemetry.Status != "" && r.Telemetry.Status != TelemetryNone}
	}
	var errs int64
	for k, v := range s.Counters {
		if strings.HasPrefix(k, stats.PrefixError) {
			errs += v
		}
	}
	return []KeyFigure{
		count("clients", int64(r.Clients())),
		{Name: "duration", Value: r.Duration.Seconds(), Unit: UnitSeconds, Present: true},
		count("connects", s.Counter(stats.CtrConnects)),
		count("connect errors", s.Counter(stats.CtrConnectErrors)),
		count("client errors (dial, read, write, protocol)", errs),
		count("abnormal closes (1006)", s.Counter(stats.CloseCodeCounter(1006))),
		count("refusals (1008, 1013)", s.Counter(stats.CloseCodeCounter(1008))+s.Counter(stats.CloseCodeCounter(1013))),
		count("false disconnects", s.Counter(loadgen.CtrFalseDisconnects)),
		count("reconnects", s.Counter(stats.CtrReconnects)),
		count("messages sent", s.Counter(stats.CtrMessagesSent)),
		count("messages received", s.Counter(stats.CtrMessagesReceived)),
		count("delivery faults (order, gaps, duplicates, acked undelivered)", s.Counter(stats.CtrOrderViolations)+
			s.Counter(stats.CtrGaps)+s.Counter(stats.CtrDuplicates)+s.Counter(stats.CtrAckedUndelivered)),
		lat("connect_time p99 (dial to 101)", stats.HistUpgrade, 99),
		lat("fanout_latency p50", stats.HistFanout, 50),
		lat("fanout_latency p99", stats.HistFanout, 99),
		lat("reconnect_time p99", stats.HistReconnect, 99),
		lat("schedule_lag p99", stats.HistScheduleLag, 99),
		gw("gateway peak connections", r.Telemetry.Summary.PeakConnections, UnitCount),
		gw("gateway memory per connection at peak", r.Telemetry.Summary.MemoryPerConnAtPeak, UnitBytes),
		gw("gateway peak goroutines", r.Telemetry.Summary.PeakGoroutines, UnitCount),
		gw("gateway shed + rejections", r.Telemetry.Summary.Shed+r.Telemetry.Summary.Rejections, UnitCount),
	}
}
