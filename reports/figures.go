package reports

import (
	"fmt"
	"strings"
	"time"

	"github.com/squall-dev/squall/loadgen/stats"
)

// KeyFigure is one of the numbers a reader of a run looks at first.
type KeyFigure struct {
	Name  string
	Value float64
	Unit  string // a Unit constant, or "ratio"
	// Present is false when the run did not measure it (a latency nobody recorded, a gateway
	// without /metrics); such a figure is shown as "-".
	Present bool
	// Note says more, e.g. what the errors were.
	Note string
}

// Text renders the figure's value ("-" when not measured).
func (f KeyFigure) Text() string {
	if !f.Present {
		return "-"
	}
	if f.Unit == "ratio" {
		return FormatQuantity(f.Value, f.Unit)
	}
	return FormatValue(f.Value, f.Unit)
}

// KeyFigures returns the run's key numbers in a fixed order: the headline figures (HeadlineOf: the
// load, every error, latencies, memory per connection) with the run's length, generator health and
// the gateway's own counts.
func (r *Result) KeyFigures() []KeyFigure {
	h := HeadlineOf(r)
	count := func(name string, v int64) KeyFigure {
		return KeyFigure{Name: name, Value: float64(v), Unit: UnitCount, Present: true}
	}
	lat := func(name string, l Latency, d time.Duration) KeyFigure {
		return KeyFigure{Name: name, Value: d.Seconds(), Unit: UnitSeconds, Present: l.Count > 0}
	}
	gateway := r.Telemetry.Status != "" && r.Telemetry.Status != TelemetryNone
	var kinds []string
	for _, k := range h.ErrorKinds {
		kinds = append(kinds, fmt.Sprintf("%s %d", k.Kind, k.Count))
	}
	errs := count("errors", h.Errors)
	errs.Note = strings.Join(kinds, ", ")
	lag := r.Stats.Hist(stats.HistScheduleLag)
	return []KeyFigure{
		count("clients", int64(h.Clients)),
		{Name: "duration", Value: r.Duration.Seconds(), Unit: UnitSeconds, Present: true},
		count("connect attempts", h.ConnectAttempts),
		count("connects", h.Connects),
		count("peak connections", h.PeakConnections),
		errs,
		{Name: "error rate (errors per connect attempt)", Value: h.ErrorRate, Unit: "ratio", Present: h.ConnectAttempts > 0},
		count("abnormal closes", h.AbnormalCloses),
		{Name: "disconnect rate (abnormal closes per connect)", Value: h.DisconnectRate, Unit: "ratio", Present: h.Connects > 0},
		count("false disconnects", h.FalseDisconnects),
		count("messages sent", h.MessagesSent),
		count("messages received", h.MessagesReceived),
		lat("connect_time p50", h.ConnectTime, h.ConnectTime.P50),
		lat("connect_time p99", h.ConnectTime, h.ConnectTime.P99),
		lat("fanout_latency p50", h.Fanout, h.Fanout.P50),
		lat("fanout_latency p99", h.Fanout, h.Fanout.P99),
		lat("ping_rtt p99", h.PingRTT, h.PingRTT.P99),
		lat("reconnect_time p99", h.Reconnect, h.Reconnect.P99),
		{Name: "schedule_lag p99 (generator health)", Value: time.Duration(lag.Percentile(99)).Seconds(), Unit: UnitSeconds, Present: lag.Count() > 0},
		{Name: "gateway memory per connection at peak", Value: h.MemoryPerConnection, Unit: UnitBytes, Present: h.MemoryPerConnection > 0},
		{Name: "gateway peak goroutines", Value: r.Telemetry.Summary.PeakGoroutines, Unit: UnitCount, Present: gateway},
		{Name: "gateway shed", Value: r.Telemetry.Summary.Shed, Unit: UnitCount, Present: gateway},
		{Name: "gateway rejections", Value: r.Telemetry.Summary.Rejections, Unit: UnitCount, Present: gateway},
	}
}
