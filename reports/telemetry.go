package reports

import (
	"maps"
	"slices"
	"time"

	"github.com/squall-dev/squall/loadgen/telemetry"
)

// Telemetry status values.
const (
	TelemetryOK      = telemetry.StatusOK      // every node answered at least once
	TelemetryPartial = telemetry.StatusPartial // some nodes never answered
	TelemetryNone    = telemetry.StatusNone    // no node has /metrics (or none answered)
)

// Telemetry is what a run scraped from the target's Prometheus /metrics (one endpoint per gateway
// node) once a second: the gateway's own figures beside the clients'.
type Telemetry struct {
	Status  string           `json:"status"`           // TelemetryOK, TelemetryPartial or TelemetryNone
	Reason  string           `json:"reason,omitempty"` // why "none" or "partial"
	Targets []string         `json:"targets,omitempty"`
	Scrapes int              `json:"scrapes"`
	Errors  int              `json:"errors"`
	Points  []TelemetryPoint `json:"points,omitempty"`
	Summary TelemetrySummary `json:"summary"`
}

// TelemetryPoint is one scrape of every node, summed across nodes.
type TelemetryPoint struct {
	Second int       `json:"second"` // whole seconds since the run's start
	At     time.Time `json:"at"`
	// Values are the kept metric families by name; labelled ones also per label set, as
	// `name{k="v",...}` (see loadgen/telemetry).
	Values map[string]float64 `json:"values"`
	// MemoryPerConn is resident memory / active connections, in bytes (0 without connections).
	MemoryPerConn float64 `json:"memory_per_conn_bytes,omitempty"`
	// KernelPerConn is the kernel's TCP memory (socket buffers and objects, both ends) / active
	// connections, in bytes, for a target on the generator's machine (0 otherwise).
	KernelPerConn float64 `json:"kernel_per_conn_bytes,omitempty"`
	Nodes         int     `json:"nodes"` // nodes that answered this scrape
}

// TelemetrySummary condenses the points.
type TelemetrySummary struct {
	PeakConnections       float64 `json:"peak_connections"`
	PeakRSSBytes          float64 `json:"peak_rss_bytes"`
	MemoryPerConnAtPeak   float64 `json:"memory_per_conn_bytes_at_peak"`           // RSS / connections at peak connections
	KernelPerConnAtPeak   float64 `json:"kernel_per_conn_bytes_at_peak,omitempty"` // kernel TCP memory / connections at peak connections
	PeakGoroutines        float64 `json:"peak_goroutines"`
	PeakOrphaned          float64 `json:"peak_orphaned_subscriptions"`
	FinalOrphaned         float64 `json:"final_orphaned_subscriptions"`
	Shed                  float64 `json:"shed"`
	Rejections            float64 `json:"rejections"`
	HeartbeatTimeouts     float64 `json:"heartbeat_timeouts"`
	MemoryGrowthBytesPerS float64 `json:"memory_growth_bytes_per_second"` // RSS slope over the points (least squares)
}

// TelemetryFrom converts what the scraper collected.
func TelemetryFrom(t telemetry.Telemetry) Telemetry {
	out := Telemetry{Status: t.Status, Reason: t.Reason, Targets: slices.Clone(t.Targets), Scrapes: t.Scrapes, Errors: t.Errors,
		Summary: TelemetrySummary{
			PeakConnections: t.Summary.PeakConnections, PeakRSSBytes: t.Summary.PeakRSSBytes,
			MemoryPerConnAtPeak: t.Summary.MemoryPerConnAtPeak, KernelPerConnAtPeak: t.Summary.KernelPerConnAtPeak,
			PeakGoroutines: t.Summary.PeakGoroutines,
			PeakOrphaned:   t.Summary.PeakOrphaned, FinalOrphaned: t.Summary.FinalOrphaned, Shed: t.Summary.Shed,
			Rejections: t.Summary.Rejections, HeartbeatTimeouts: t.Summary.HeartbeatTimeouts,
			MemoryGrowthBytesPerS: t.Summary.MemoryGrowthBytesPerS,
		}}
	if t.Points != nil {
		out.Points = make([]TelemetryPoint, len(t.Points))
		for i, p := range t.Points {
			out.Points[i] = TelemetryPoint{Second: p.Second, At: p.At, Values: maps.Clone(p.Values), MemoryPerConn: p.MemoryPerConn, KernelPerConn: p.KernelPerConn, Nodes: p.Nodes}
		}
	}
	return out
}

// Increase is how much the gateway's counter name rose during the run (telemetry.Increase: the
// first scrape is taken before the clients start, the last after they end, and node restarts are
// accounted for); ok is false when no scrape had it.
func (t Telemetry) Increase(name string) (float64, bool) {
	ps := make([]telemetry.Point, len(t.Points))
	for i, p := range t.Points {
		ps[i].Values = p.Values
	}
	return telemetry.Increase(ps, name)
}

// Max is the highest value of the gateway's metric name over the scrapes; ok is false when no
// scrape had it.
func (t Telemetry) Max(name string) (peak float64, ok bool) {
	for _, p := range t.Points {
		if v, has := p.Values[name]; has && (!ok || v > peak) {
			peak, ok = v, true
		}
	}
	return peak, ok
}
