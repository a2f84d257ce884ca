package reports

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"time"
)

// Schema 1, as it was written, for ParseJSON to read: the parts whose shape schema 2 changed are
// frozen here; the others (target, environment, scenario, SLO verdicts) are still the current
// types. testdata/result.v1.json, written by schema 1's code, keeps this honest.

type resultV1 struct {
	Schema        int              `json:"schema"`
	Tool          string           `json:"tool"`
	Name          string           `json:"name"`
	Scenario      *Scenario        `json:"scenario,omitempty"`
	Plan          json.RawMessage  `json:"plan,omitempty"`
	Target        Target           `json:"target"`
	Env           Environment      `json:"environment"`
	Started       time.Time        `json:"started"`
	Ended         time.Time        `json:"ended"`
	Duration      time.Duration    `json:"duration_ns"`
	StopReason    string           `json:"stop_reason"`
	Error         string           `json:"error,omitempty"`
	Phases        []phaseV1        `json:"phases,omitempty"`
	Events        []eventV1        `json:"events,omitempty"`
	Stats         statsV1          `json:"stats"`
	Series        []intervalV1     `json:"series,omitempty"`
	Telemetry     telemetryV1      `json:"telemetry"`
	ProxyOverhead *proxyOverheadV1 `json:"proxy_overhead,omitempty"`
	Workers       []workerV1       `json:"workers,omitempty"`
	Reliable      bool             `json:"reliable"`
	Unreliable    string           `json:"unreliable_reason,omitempty"`
	SLOs          []SLOVerdict     `json:"slos,omitempty"`
}

type phaseV1 struct {
	Name  string    `json:"name"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

type eventV1 struct {
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"`
	Message string    `json:"message"`
	Worker  int       `json:"worker,omitempty"`
	Fault   *faultV1  `json:"fault,omitempty"`
}

// faultV1 is chaos.Event's JSON form: durations in float seconds.
type faultV1 struct {
	Index         int               `json:"index"`
	AtSeconds     float64           `json:"at_seconds"`
	OffsetSeconds float64           `json:"offset_seconds"`
	Time          time.Time         `json:"time"`
	TookSeconds   float64           `json:"took_seconds"`
	Action        string            `json:"action"`
	Target        string            `json:"target,omitempty"`
	Params        map[string]string `json:"params,omitempty"`
	Error         string            `json:"error,omitempty"`
}

// statsV1 is stats.Snapshot's JSON form. Its histograms, and those of intervalV1 (which had only
// count, p50, p90, p99 and max beside the encoding), read as Histograms: only "hdr" is read.
type statsV1 struct {
	Start    time.Time            `json:"start"`
	At       time.Time            `json:"at"`
	Hists    map[string]Histogram `json:"hists"`
	Counters map[string]int64     `json:"counters"`
	Gauges   map[string]int64     `json:"gauges"`
}

type intervalV1 struct {
	Second   int                  `json:"t"`
	Start    time.Time            `json:"start"`
	End      time.Time            `json:"end"`
	Counters map[string]int64     `json:"counters,omitempty"`
	Gauges   map[string]int64     `json:"gauges,omitempty"`
	Hists    map[string]Histogram `json:"hists,omitempty"`
}

type telemetryV1 struct {
	Status  string         `json:"status"`
	Reason  string         `json:"reason,omitempty"`
	Targets []string       `json:"targets,omitempty"`
	Scrapes int            `json:"scrapes"`
	Errors  int            `json:"errors"`
	Points  []pointV1      `json:"points,omitempty"`
	Summary telemetrySumV1 `json:"summary"`
}

type pointV1 struct {
	Second        int                `json:"t"`
	At            time.Time          `json:"at"`
	Values        map[string]float64 `json:"values"`
	MemoryPerConn float64            `json:"memory_per_conn_bytes,omitempty"`
	Nodes         int                `json:"nodes"`
}

type telemetrySumV1 struct {
	PeakConnections       float64 `json:"peak_connections"`
	PeakRSSBytes          float64 `json:"peak_rss_bytes"`
	MemoryPerConnAtPeak   float64 `json:"memory_per_conn_bytes_at_peak"`
	PeakGoroutines        float64 `json:"peak_goroutines"`
	PeakOrphaned          float64 `json:"peak_orphaned_subscriptions"`
	FinalOrphaned         float64 `json:"final_orphaned_subscriptions"`
	Shed                  float64 `json:"shed"`
	Rejections            float64 `json:"rejections"`
	HeartbeatTimeouts     float64 `json:"heartbeat_timeouts"`
	MemoryGrowthBytesPerS float64 `json:"memory_growth_bytes_per_s"`
}

// v2 is the summary in schema 2 (which adds the kernel's memory per connection; schema 1 has none).
func (t telemetrySumV1) v2() TelemetrySummary {
	return TelemetrySummary{PeakConnections: t.PeakConnections, PeakRSSBytes: t.PeakRSSBytes,
		MemoryPerConnAtPeak: t.MemoryPerConnAtPeak, PeakGoroutines: t.PeakGoroutines, PeakOrphaned: t.PeakOrphaned,
		FinalOrphaned: t.FinalOrphaned, Shed: t.Shed, Rejections: t.Rejections, HeartbeatTimeouts: t.HeartbeatTimeouts,
		MemoryGrowthBytesPerS: t.MemoryGrowthBytesPerS}
}

type proxyOverheadV1 struct {
	Direct   roundTripsV1  `json:"direct"`
	Proxied  roundTripsV1  `json:"proxied"`
	AddedP50 time.Duration `json:"added_p50_ns"`
	AddedP99 time.Duration `json:"added_p99_ns"`
}

type roundTripsV1 struct {
	N   int           `json:"n"`
	Min time.Duration `json:"min_ns"`
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
}

type workerV1 struct {
	Index   int        `json:"index"`
	Addr    string     `json:"addr,omitempty"`
	PID     int        `json:"pid,omitempty"`
	Clients int        `json:"clients"`
	Status  string     `json:"status"`
	Error   string     `json:"error,omitempty"`
	Stats   *statsV1   `json:"stats,omitempty"`
	Summary *summaryV1 `json:"summary,omitempty"`
}

// summaryV1 is loadgen.RunSummary as schema 1 carried it: untagged fields (keys "Start",
// "StopReason", ...), phases with the plan phase's own tags beside untagged "Start" and "End",
// durations in nanoseconds.
type summaryV1 struct {
	Start      time.Time
	End        time.Time
	StopReason string
	Phases     []struct {
		Name     string        `json:"name"`
		Kind     string        `json:"kind"`
		Rate     float64       `json:"rate"`
		Target   int           `json:"target"`
		Duration time.Duration `json:"duration"`
		Start    time.Time
		End      time.Time
	}
	Clients    int
	Unreliable bool
	Reason     string
	LagP99     time.Duration
	Delivery   struct{ Gaps, AckedUndelivered, Ghosts int64 }
}

// convert returns the schema 2 form of a schema 1 result.
func (v resultV1) convert() *Result {
	r := &Result{Schema: SchemaVersion, Tool: v.Tool, Name: v.Name, Scenario: v.Scenario, Plan: v.Plan,
		Target: v.Target, Env: v.Env, Started: v.Started, Ended: v.Ended, Duration: v.Duration,
		StopReason: v.StopReason, Error: v.Error, Stats: v.Stats.convert(), Reliable: v.Reliable,
		UnreliableReason: v.Unreliable, SLOs: v1Verdicts(v.SLOs)}
	for _, ph := range v.Phases {
		r.Phases = append(r.Phases, Phase{Name: ph.Name, Start: ph.Start, End: ph.End})
	}
	for _, ev := range v.Events {
		e := Event{At: ev.At, Kind: ev.Kind, Message: ev.Message, Worker: ev.Worker}
		if f := ev.Fault; f != nil {
			e.Fault = &Fault{Index: f.Index, At: seconds(f.AtSeconds), Offset: seconds(f.OffsetSeconds), Time: f.Time,
				Took: seconds(f.TookSeconds), Action: f.Action, Target: f.Target, Params: f.Params, Error: f.Error}
		}
		r.Events = append(r.Events, e)
	}
	for _, iv := range v.Series {
		r.Series = append(r.Series, Interval{Second: iv.Second, Start: iv.Start, End: iv.End,
			Counters: iv.Counters, Gauges: iv.Gauges, Histograms: iv.Hists})
	}
	t := v.Telemetry
	r.Telemetry = Telemetry{Status: t.Status, Reason: t.Reason, Targets: t.Targets, Scrapes: t.Scrapes, Errors: t.Errors,
		Summary: t.Summary.v2()}
	for _, p := range t.Points {
		r.Telemetry.Points = append(r.Telemetry.Points, TelemetryPoint{Second: p.Second, At: p.At, Values: p.Values,
			MemoryPerConn: p.MemoryPerConn, Nodes: p.Nodes})
	}
	if o := v.ProxyOverhead; o != nil {
		r.ProxyOverhead = &ProxyOverhead{Direct: RoundTrips(o.Direct), Proxied: RoundTrips(o.Proxied), AddedP50: o.AddedP50, AddedP99: o.AddedP99}
	}
	for _, w := range v.Workers {
		rw := Worker{Index: w.Index, Addr: w.Addr, PID: w.PID, Clients: w.Clients, Status: w.Status, Error: w.Error}
		if w.Stats != nil {
			s := w.Stats.convert()
			rw.Stats = &s
		}
		if s := w.Summary; s != nil {
			sum := &WorkerSummary{Start: s.Start, End: s.End, StopReason: s.StopReason, Clients: s.Clients,
				Unreliable: s.Unreliable, Reason: s.Reason, LagP99: s.LagP99,
				Delivery: Delivery{Gaps: s.Delivery.Gaps, AckedUndelivered: s.Delivery.AckedUndelivered, Ghosts: s.Delivery.Ghosts}}
			for _, ph := range s.Phases {
				sum.Phases = append(sum.Phases, Phase{Name: ph.Name, Kind: ph.Kind, RatePerSecond: ph.Rate,
					TargetClients: ph.Target, Duration: ph.Duration, Start: ph.Start, End: ph.End})
			}
			rw.Summary = sum
		}
		r.Workers = append(r.Workers, rw)
	}
	return r
}

func (s statsV1) convert() Stats {
	return Stats{Start: s.Start, At: s.At, Histograms: s.Hists, Counters: s.Counters, Gauges: s.Gauges}
}

// seconds converts schema 1's float seconds to a duration, to the nearest nanosecond.
func seconds(s float64) time.Duration {
	ns := math.Round(s * float64(time.Second))
	switch {
	case math.IsNaN(ns):
		return 0
	case ns >= math.MaxInt64:
		return math.MaxInt64
	case ns <= math.MinInt64:
		return math.MinInt64
	}
	return time.Duration(ns)
}

// v1Verdicts completes schema 1's verdicts, which carried the SLO only as text ("p99 < 100ms"):
// the aggregation and the comparison are read back from it; the threshold and its unit stay unknown
// (zero), since the text's value is written in the metric's unit, which the result does not name.
func v1Verdicts(vs []SLOVerdict) []SLOVerdict {
	out := slices.Clone(vs)
	for i := range out {
		if f := strings.Fields(out[i].Bound); len(f) >= 3 {
			out[i].Agg, out[i].Op = f[0], f[1]
		}
	}
	return out
}
