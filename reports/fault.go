package reports

import (
	"maps"
	"time"

	"github.com/squall-dev/squall/chaos"
)

// Fault is the record of one step of the fault timeline as it ran.
type Fault struct {
	// Index is the step's position in the timeline as written.
	Index int `json:"index"`
	// At is the step's planned offset from the timeline's start.
	At time.Duration `json:"at_ns"`
	// Offset is the actual offset at which the step began.
	Offset time.Duration `json:"offset_ns"`
	// Time is the wall-clock time at which it began.
	Time time.Time `json:"time"`
	// Took is how long the action took.
	Took time.Duration `json:"took_ns"`
	// Action is what the step did (add_toxic, disable_proxy, kill, ... or a custom action).
	Action string `json:"action"`
	// Target is the proxy or node the action applied to.
	Target string `json:"target,omitempty"`
	// Params are the step's parameters: for toxic actions the toxic's fields ("toxic", "type",
	// "stream", "toxicity") and attributes, for others the step's own.
	Params map[string]string `json:"params,omitempty"`
	// Error is why the action failed; empty when it succeeded.
	Error string `json:"error,omitempty"`
}

// FaultFrom converts the chaos runner's record of a step.
func FaultFrom(ev chaos.Event) Fault {
	return Fault{Index: ev.Index, At: ev.At, Offset: ev.Offset, Time: ev.Time, Took: ev.Took,
		Action: string(ev.Action), Target: ev.Target, Params: maps.Clone(ev.Params), Error: ev.Error}
}

// ProxyOverhead is what a chaos proxy without toxics added to a loopback round trip, measured
// before the run by timing round trips directly and through the proxy, alternately.
type ProxyOverhead struct {
	Direct  RoundTrips `json:"direct"`
	Proxied RoundTrips `json:"proxied"`
	// AddedP50 and AddedP99 are Proxied minus Direct at that percentile; noise can make them
	// slightly negative.
	AddedP50 time.Duration `json:"added_p50_ns"`
	AddedP99 time.Duration `json:"added_p99_ns"`
}

// RoundTrips summarises N timed round trips.
type RoundTrips struct {
	N   int           `json:"samples"`
	Min time.Duration `json:"min_ns"`
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
}

// OverheadFrom converts the chaos package's measurement.
func OverheadFrom(o chaos.Overhead) ProxyOverhead {
	rt := func(s chaos.RTTStats) RoundTrips {
		return RoundTrips{N: s.N, Min: s.Min, P50: s.P50, P99: s.P99, Max: s.Max}
	}
	return ProxyOverhead{Direct: rt(o.Direct), Proxied: rt(o.Proxied), AddedP50: o.AddedP50, AddedP99: o.AddedP99}
}
