// Package telemetry scrapes a target's Prometheus /metrics endpoint (one URL per gateway node)
// every second during a run and keeps the gateway's own figures — connections, memory,
// goroutines, orphaned subscriptions, shed and rejections — as a time series beside the client
// side's, with memory per connection derived from them; for a target on this machine, also the
// kernel's TCP memory (/proc/net/sockstat, /proc/slabinfo), so that user and kernel memory per
// connection sit side by side.
//
// A Scraper is driven by one goroutine calling Run; Result may be called from any goroutine at
// any time (it takes a copy under a lock). A target without /metrics is not an error: the result
// then says Status "none" and why.
package telemetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/squall-dev/squall/refserver/protocol"
)

// Kept lists the metric families kept in the series. Labelled families are kept per label set
// (as `name{k="v",...}`) and as their sum under the bare name.
var Kept = []string{
	protocol.MetricConnectionsActive,
	protocol.MetricConnectionsTotal,
	protocol.MetricDisconnectsTotal,
	protocol.MetricReconnectsTotal,
	protocol.MetricRoomSubscriptions,
	protocol.MetricOrphanedSubscriptions,
	protocol.MetricPresenceEntries,
	protocol.MetricMessagesInTotal,
	protocol.MetricMessagesOutTotal,
	protocol.MetricSendQueueDepth,
	protocol.MetricHeartbeatTimeouts,
	protocol.MetricConnRejectionsTotal,
	protocol.MetricShedTotal,
	protocol.MetricStormActive,
	protocol.MetricAuthRequestsTotal,
	protocol.MetricPoolUsageRatio,
	protocol.MetricProcessResidentMemory,
	protocol.MetricGoGoroutines,
	protocol.MetricProcessOpenFDs,
	protocol.MetricBuildInfo,
}

// Build is a gateway's build as its ws_build_info labels say.
type Build struct {
	Version, Commit, GoVersion string
}

// BuildsOf returns the builds a point's ws_build_info series name, sorted (several when nodes run
// different builds; none when the gateway does not export it).
func BuildsOf(values map[string]float64) []Build {
	var out []Build
	for _, k := range slices.Sorted(maps.Keys(values)) {
		rest, ok := strings.CutPrefix(k, protocol.MetricBuildInfo+"{")
		if !ok {
			continue
		}
		var b Build
		for _, part := range strings.Split(strings.TrimSuffix(rest, "}"), ",") {
			name, quoted, _ := strings.Cut(part, "=")
			v, err := strconv.Unquote(quoted)
			if err != nil {
				continue
			}
			switch name {
			case "version":
				b.Version = v
			case "commit":
				b.Commit = v
			case "go_version":
				b.GoVersion = v
			}
		}
		out = append(out, b)
	}
	return out
}

// Status values of a Telemetry.
const (
	StatusOK      = "ok"      // every node answered at least once
	StatusPartial = "partial" // some nodes never answered
	StatusNone    = "none"    // no node has /metrics (or none answered)
)

// Point is one scrape of every node, summed across nodes.
type Point struct {
	Second int                `json:"t"` // whole seconds since the run's start
	At     time.Time          `json:"at"`
	Values map[string]float64 `json:"values"`
	// MemoryPerConn is resident memory / active connections, in bytes (0 without connections).
	MemoryPerConn float64 `json:"memory_per_conn_bytes,omitempty"`
	// KernelPerConn is the kernel's TCP memory (KernelTCPMemBytes + KernelTCPSlabBytes, both ends
	// of every connection) / active connections, in bytes; 0 without Config.Kernel.
	KernelPerConn float64 `json:"kernel_per_conn_bytes,omitempty"`
	Nodes         int     `json:"nodes"` // nodes that answered this scrape
}

// Summary condenses the series for a report.
type Summary struct {
	PeakConnections     float64 `json:"peak_connections"`
	PeakRSSBytes        float64 `json:"peak_rss_bytes"`
	MemoryPerConnAtPeak float64 `json:"memory_per_conn_bytes_at_peak"`           // RSS / connections at peak connections
	KernelPerConnAtPeak float64 `json:"kernel_per_conn_bytes_at_peak,omitempty"` // kernel TCP memory / connections at peak connections
	PeakGoroutines      float64 `json:"peak_goroutines"`
	PeakOrphaned        float64 `json:"peak_orphaned_subscriptions"`
	FinalOrphaned       float64 `json:"final_orphaned_subscriptions"`
	// Shed, Rejections and HeartbeatTimeouts are the increase of the gateway's counters over the
	// run (Increase), not their absolute values.
	Shed                  float64 `json:"shed"`
	Rejections            float64 `json:"rejections"`
	HeartbeatTimeouts     float64 `json:"heartbeat_timeouts"`
	MemoryGrowthBytesPerS float64 `json:"memory_growth_bytes_per_s"` // RSS slope over the series (least squares)
}

// Telemetry is what a run learned from the target's /metrics.
type Telemetry struct {
	Status  string   `json:"status"`
	Reason  string   `json:"reason,omitempty"` // why "none" or "partial"
	Targets []string `json:"targets,omitempty"`
	Scrapes int      `json:"scrapes"`
	Errors  int      `json:"errors"`
	Points  []Point  `json:"points,omitempty"`
	Summary Summary  `json:"summary"`
}

// Config configures a Scraper.
type Config struct {
	// URLs are the metrics endpoints, one per node (e.g. http://127.0.0.1:8080/metrics). None means
	// the target has no metrics: the result says "none".
	URLs []string
	// Interval between scrapes; zero means one second.
	Interval time.Duration
	// Timeout of one scrape; zero means the interval.
	Timeout time.Duration
	// Start is the run's start instant, from which Points count seconds; zero means when Run starts.
	Start time.Time
	// Client is the HTTP client; nil means a private client without proxies.
	Client *http.Client
	// Kernel adds this machine's kernel TCP memory to every point (KernelTCPInUse and the other
	// Kernel* values, and Point.KernelPerConn): for targets running here.
	Kernel bool
	// Settle bounds the final scrapes (zero means 10 s): once the run is over, the gateway may
	// still be cleaning up the connections that just closed, so the final scrape is repeated every
	// half interval while memberships of gone connections (ws_orphaned_subscriptions) are still
	// going down: the final value is what stays, not a cleanup caught half way.
	Settle time.Duration
}

// Scraper scrapes the configured endpoints until its context ends.
type Scraper struct {
	cfg    Config
	logger *slog.Logger

	mu      sync.Mutex
	res     Telemetry
	okNodes map[string]bool
	lastErr map[string]string
}

// New returns a scraper. A nil logger discards.
func New(cfg Config, logger *slog.Logger) *Scraper {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = cfg.Interval
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 10 * time.Second
	}
	if cfg.Client == nil {
		// A dial outlives the scrape that started it (the transport keeps it for a later request),
		// so it gets the scrape's bound too: on a machine that drops new connections (a full
		// connection-tracking table), dials abandoned one a second would otherwise pile up for the
		// kernel's two minutes of SYN retries.
		dialer := &net.Dialer{Timeout: cfg.Timeout}
		cfg.Client = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2, DialContext: dialer.DialContext}}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Scraper{
		cfg:     cfg,
		logger:  logger,
		res:     Telemetry{Status: StatusNone, Targets: slices.Clone(cfg.URLs)},
		okNodes: map[string]bool{},
		lastErr: map[string]string{},
	}
}

// Run scrapes at once and then every interval until ctx ends; it then scrapes one last time,
// bounded by the scrape timeout (so that the series ends with the state after the run, e.g.
// orphaned subscriptions once every client left), and returns.
func (s *Scraper) Run(ctx context.Context) {
	if len(s.cfg.URLs) == 0 {
		s.mu.Lock()
		s.res.Reason = "the target has no metrics endpoint"
		s.mu.Unlock()
		return
	}
	start := s.cfg.Start
	if start.IsZero() {
		start = time.Now()
	}
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	s.ScrapeOnce(ctx, start, time.Now())
	for {
		select {
		case <-ctx.Done():
			s.finalScrapes(context.WithoutCancel(ctx), start)
			return
		case now := <-t.C:
			s.ScrapeOnce(ctx, start, now)
		}
	}
}

// finalScrapes scrapes once more, and again every half interval while the orphaned memberships
// still go down (a cleanup under way), until none is left, the count held for three scrapes in a
// row (what a leak looks like), or Config.Settle has passed.
func (s *Scraper) finalScrapes(ctx context.Context, start time.Time) {
	deadline := time.Now().Add(s.cfg.Settle)
	prev, same := -1.0, 0
	for {
		scrapeCtx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		s.ScrapeOnce(scrapeCtx, start, time.Now())
		cancel()
		orphaned, ok := s.lastOrphaned()
		switch {
		case !ok || orphaned == 0:
			return
		case orphaned == prev:
			same++
		default:
			same = 0
		}
		if same >= 2 || time.Now().After(deadline) {
			return
		}
		prev = orphaned
		time.Sleep(s.cfg.Interval / 2) // pacing the scrapes: nothing to wait for but the gateway's cleanup
	}
}

// lastOrphaned returns the orphaned memberships of the last point, ok=false without one.
func (s *Scraper) lastOrphaned() (float64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.res.Points) == 0 {
		return 0, false
	}
	v, ok := s.res.Points[len(s.res.Points)-1].Values[protocol.MetricOrphanedSubscriptions]
	return v, ok
}

// ScrapeOnce scrapes every node once and appends a point when at least one answered.
func (s *Scraper) ScrapeOnce(ctx context.Context, start, now time.Time) {
	type res struct {
		url  string
		vals map[string]float64
		err  error
	}
	out := make(chan res, len(s.cfg.URLs))
	for _, u := range s.cfg.URLs {
		go func() { // bounded by the timeout; collected below
			v, err := s.scrape(ctx, u)
			out <- res{u, v, err}
		}()
	}
	p := Point{Second: int((now.Sub(start) + time.Second/2) / time.Second), At: now, Values: map[string]float64{}}
	var errs int
	for range s.cfg.URLs {
		r := <-out
		s.mu.Lock()
		if r.err != nil {
			errs++
			s.lastErr[r.url] = r.err.Error()
			s.logger.Debug("telemetry: scrape failed", "url", r.url, "err", r.err)
		} else {
			s.okNodes[r.url] = true
			p.Nodes++
			for k, v := range r.vals {
				p.Values[k] += v
			}
		}
		s.mu.Unlock()
	}
	if s.cfg.Kernel {
		if k, ok := ReadKernelSockets(); ok {
			p.Values[KernelTCPInUse] = float64(k.InUse)
			p.Values[KernelTCPMemBytes] = float64(k.MemPages * int64(os.Getpagesize()))
			if k.SlabBytes > 0 {
				p.Values[KernelTCPSlabBytes] = float64(k.SlabBytes)
			}
		}
	}
	if c := p.Values[protocol.MetricConnectionsActive]; c > 0 {
		p.MemoryPerConn = p.Values[protocol.MetricProcessResidentMemory] / c
		if kb := p.Values[KernelTCPMemBytes] + p.Values[KernelTCPSlabBytes]; kb > 0 {
			p.KernelPerConn = kb / c
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.res.Scrapes++
	s.res.Errors += errs
	if p.Nodes > 0 {
		s.res.Points = append(s.res.Points, p)
	}
	s.updateStatus()
}

func (s *Scraper) updateStatus() {
	switch {
	case len(s.okNodes) == 0:
		s.res.Status = StatusNone
		s.res.Reason = "no metrics: " + s.firstErr()
	case len(s.okNodes) < len(s.cfg.URLs):
		s.res.Status = StatusPartial
		s.res.Reason = "some nodes never answered: " + s.firstErr()
	default:
		s.res.Status = StatusOK
		s.res.Reason = ""
	}
}

func (s *Scraper) firstErr() string {
	for _, u := range s.cfg.URLs {
		if e, ok := s.lastErr[u]; ok && !s.okNodes[u] {
			return e
		}
	}
	return "no scrape yet"
}

func (s *Scraper) scrape(ctx context.Context, url string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	// Uncompressed: one scrape a second of a gateway's few metric families is a few kilobytes, and
	// compressing it cost each gateway process a new compressor (hundreds of kilobytes of tables)
	// per scrape, which its collector then had to reclaim.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return Parse(resp.Body)
}

// Parse reads the Prometheus text format and returns the kept series: gauges, counters and
// untyped values by name (labelled ones per label set and summed under the bare name).
func Parse(r io.Reader) (map[string]float64, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("telemetry: parse metrics: %w", err)
	}
	out := map[string]float64{}
	for _, name := range Kept {
		f, ok := fams[name]
		if !ok {
			continue
		}
		for _, m := range f.GetMetric() {
			v, ok := value(m)
			if !ok {
				continue
			}
			out[name] += v
			if len(m.GetLabel()) > 0 {
				out[name+labels(m.GetLabel())] += v
			}
		}
	}
	return out, nil
}

func value(m *dto.Metric) (float64, bool) {
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue(), true
	case m.Counter != nil:
		return m.GetCounter().GetValue(), true
	case m.Untyped != nil:
		return m.GetUntyped().GetValue(), true
	}
	return 0, false
}

func labels(ls []*dto.LabelPair) string {
	parts := make([]string, 0, len(ls))
	for _, l := range ls {
		parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

// Result returns what was scraped so far, with its summary.
func (s *Scraper) Result() Telemetry {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.res
	t.Targets = slices.Clone(s.res.Targets)
	t.Points = make([]Point, len(s.res.Points))
	for i, p := range s.res.Points {
		p.Values = maps.Clone(p.Values)
		t.Points[i] = p
	}
	t.Summary = Summarize(t.Points)
	return t
}

// Summarize condenses a series.
func Summarize(ps []Point) Summary {
	var s Summary
	if len(ps) == 0 {
		return s
	}
	for _, p := range ps {
		v := p.Values
		if c := v[protocol.MetricConnectionsActive]; c > s.PeakConnections {
			s.PeakConnections = c
			s.MemoryPerConnAtPeak = p.MemoryPerConn
			s.KernelPerConnAtPeak = p.KernelPerConn
		}
		s.PeakRSSBytes = max(s.PeakRSSBytes, v[protocol.MetricProcessResidentMemory])
		s.PeakGoroutines = max(s.PeakGoroutines, v[protocol.MetricGoGoroutines])
		s.PeakOrphaned = max(s.PeakOrphaned, v[protocol.MetricOrphanedSubscriptions])
	}
	last := ps[len(ps)-1].Values
	s.FinalOrphaned = last[protocol.MetricOrphanedSubscriptions]
	s.Shed, _ = Increase(ps, protocol.MetricShedTotal)
	s.Rejections, _ = Increase(ps, protocol.MetricConnRejectionsTotal)
	s.HeartbeatTimeouts, _ = Increase(ps, protocol.MetricHeartbeatTimeouts)
	s.MemoryGrowthBytesPerS = slope(ps)
	return s
}

// Increase is how much the counter name rose over the points (the scraper takes the first before
// the run's clients start and the last after they end): the run's own share of a counter that a
// long-running gateway has been counting since it started. A fall between two points is a node
// restarting with its counters at zero: what it counted since is added, as Prometheus's increase()
// does. A counter the first point lacks did not exist yet (a labelled series appears on its first
// increment): it counts from zero. ok is false when no point has the counter.
func Increase(ps []Point, name string) (inc float64, ok bool) {
	prev := 0.0
	for i, p := range ps {
		v, has := p.Values[name]
		if !has {
			continue
		}
		switch {
		case !ok && i == 0:
			ok = true
		case !ok:
			ok = true
			inc += v
		case v >= prev:
			inc += v - prev
		default: // a reset
			inc += v
		}
		prev = v
	}
	return inc, ok
}

// slope is the least-squares slope of RSS over time, in bytes per second.
func slope(ps []Point) float64 {
	if len(ps) < 2 {
		return 0
	}
	t0 := ps[0].At
	var n, sx, sy, sxx, sxy float64
	for _, p := range ps {
		x := p.At.Sub(t0).Seconds()
		y := p.Values[protocol.MetricProcessResidentMemory]
		n++
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}
