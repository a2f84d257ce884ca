package scalebench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/reports"
)

// ClassFigures are one class's costs during a hold.
type ClassFigures struct {
	Procs        int     // processes of the class
	PeakRSS      int64   // the largest sum of VmRSS over the hold's samples
	HWM          int64   // the sum of VmHWM at the hold's end (each process's peak, ramp included)
	RSSPerConn   float64 // PeakRSS / connections
	HWMPerConn   float64
	CoresHold    float64 // CPU over the hold, in cores
	CoresRamp    float64 // CPU over the ramp (squall runs only), in cores
	CPUPerConnUS float64 // CPU microseconds per connection per second during the hold
}

// classFigures computes a class's figures over [from, to] for conns connections.
func classFigures(ss []Sample, class string, from, to time.Time, conns int) ClassFigures {
	var f ClassFigures
	var first, last *Sample
	for i := range ss {
		s := &ss[i]
		if s.At.Before(from) || s.At.After(to) {
			continue
		}
		cs := s.Classes[class]
		f.Procs = max(f.Procs, cs.Procs)
		f.PeakRSS = max(f.PeakRSS, cs.RSSBytes)
		f.HWM = cs.HWMBytes
		if first == nil {
			first = s
		}
		last = s
	}
	if conns > 0 {
		f.RSSPerConn = float64(f.PeakRSS) / float64(conns)
		f.HWMPerConn = float64(f.HWM) / float64(conns)
	}
	f.CoresHold = cores(first, last, class)
	if f.CoresHold > 0 && conns > 0 {
		f.CPUPerConnUS = f.CoresHold * 1e6 / float64(conns)
	}
	return f
}

func cores(a, b *Sample, class string) float64 {
	if a == nil || b == nil || !b.At.After(a.At) {
		return 0
	}
	ta, tb := a.Classes[class].CPUTicks, b.Classes[class].CPUTicks
	if tb < ta {
		return 0 // a process exited in between
	}
	return float64(tb-ta) / clockTicks / b.At.Sub(a.At).Seconds()
}

// LeanFigures are the lean gorilla pair's.
type LeanFigures struct {
	Conns       int
	Procs       int // server processes (and as many client processes)
	RampSeconds float64
	Hold        time.Duration
	Server      ClassFigures
	Client      ClassFigures
	Errors      string
}

// RunFigures are the squall run's.
type RunFigures struct {
	Clients       int     // planned
	Held          int64   // fewest connections open during the hold (client side)
	PeakClients   int64   // most connections open at once over the run (client side)
	Window        string  // what the memory and CPU figures cover: "hold", or "whole run" without one
	PeakConns     float64 // the gateway's peak ws_connections_active
	Workers       int
	Nodes         int
	RampPlanned   float64 // connections/s the plan asked for
	RampMeasured  float64 // connections made during the ramp phase / its duration
	RampSeconds   float64
	Hold          time.Duration
	DialTimeouts  int64
	ConnectErrors int64
	Disconnects   int64 // during the hold
	FalseDisc     int64
	HBTimeouts    float64
	PingP99       time.Duration // the client's WebSocket ping → pong (ws_ping), hold only
	AppPingP99    time.Duration // application heartbeat ping → pong, hold only
	AppPings      int64
	LagP99        time.Duration // schedule lag p99, hold only
	LagP99Run     time.Duration // schedule lag p99, whole run
	LagBound      time.Duration // the plan's schedule-lag bound (above it the generator is unreliable)
	ConnectP99    time.Duration
	Reliable      bool
	Unreliable    string
	Gateway       ClassFigures
	Generator     ClassFigures
	Controller    ClassFigures
	KernelPerConn float64 // (TCP slab + TCP buffer pages) growth / connections held, both ends
	KernelTCPMem  int64   // peak TCP buffer bytes during the hold
	KernelSlab    int64   // peak TCP slab bytes during the hold
	ConntrackPeak int64   // most connection-tracking entries over the run (0 without netfilter)
	SlabPerConn   float64 // /proc/meminfo Slab growth / connections (upper bound: every cache)
}

// commonPhase is the span of phase p during which every worker was in it. A result's phases are
// worker 0's; each worker ramps its own part and so enters (and leaves) the hold at its own moment,
// and the seconds when one worker already ramps down are not part of anybody's hold.
func commonPhase(res *reports.Result, p *reports.Phase) (from, to time.Time) {
	from, to = p.Start, p.End
	type span struct{ start, end time.Time }
	spans := map[int]*span{}
	for _, ev := range res.Events {
		if ev.Kind != reports.EventPhase {
			continue
		}
		sp := spans[ev.Worker]
		switch {
		case ev.Message == p.Name && sp == nil:
			spans[ev.Worker] = &span{start: ev.At}
		case sp != nil && sp.end.IsZero() && ev.At.After(sp.start):
			sp.end = ev.At
		}
	}
	for _, sp := range spans {
		from = later(from, sp.start)
		if !sp.end.IsZero() && sp.end.Before(to) {
			to = sp.end
		}
	}
	if !to.After(from) {
		return p.Start, p.End
	}
	return from, to
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Figures derives a run's figures from its result and the samples taken while it ran; base is the
// kernel before the run.
func Figures(res *reports.Result, ss []Sample, base Kernel) RunFigures {
	f := RunFigures{Reliable: res.Reliable, Unreliable: res.UnreliableReason, Workers: len(res.Workers), Nodes: res.Target.Nodes,
		LagBound: loadgen.DefaultScheduleLagBound}
	var plan loadgen.Plan
	if len(res.Plan) > 0 && json.Unmarshal(res.Plan, &plan) == nil {
		f.LagBound = plan.LagBound()
	}
	var ramp, hold *reports.Phase
	for i := range res.Phases {
		p := &res.Phases[i]
		kind := p.Kind
		if kind == "" {
			kind = p.Name // schema 2 results name phases by their kind when the plan names none
		}
		switch {
		case kind == "ramp" && ramp == nil:
			ramp = p
		case kind == "hold" && hold == nil:
			hold = p
		}
		f.Clients = max(f.Clients, p.TargetClients)
	}
	st := res.Stats
	f.DialTimeouts = st.Counter(stats.PrefixError + stats.ErrDialTimeout)
	f.ConnectErrors = st.Counter(stats.CtrConnectErrors)
	f.FalseDisc = st.Counter(loadgen.CtrFalseDisconnects)
	f.HBTimeouts = res.Telemetry.Summary.HeartbeatTimeouts
	f.PeakConns = res.Telemetry.Summary.PeakConnections
	f.LagP99Run = st.Percentile(stats.HistScheduleLag, 99)
	f.ConnectP99 = st.Percentile(stats.HistConnect, 99)
	if ramp != nil {
		f.RampPlanned = ramp.RatePerSecond // 0 when the result does not say: Run fills it from the scenario
		f.RampSeconds = ramp.End.Sub(ramp.Start).Seconds()
		var made int64
		for _, iv := range res.Series {
			if !iv.End.After(ramp.Start) || iv.Start.After(ramp.End) {
				continue
			}
			made += iv.Counters[stats.CtrConnects]
		}
		if f.RampSeconds > 0 {
			f.RampMeasured = float64(made) / f.RampSeconds
		}
		f.Gateway.CoresRamp = coresBetween(ss, ClassGateway, ramp.Start, ramp.End)
		f.Generator.CoresRamp = coresBetween(ss, ClassGenerator, ramp.Start, ramp.End)
	}
	for _, iv := range res.Series {
		f.PeakClients = max(f.PeakClients, iv.Gauges[stats.GaugeConnections])
	}
	var from, to time.Time
	if hold != nil && hold.End.After(hold.Start) {
		from, to = commonPhase(res, hold)
		f.Window = "hold"
		f.Hold = to.Sub(from)
	} else {
		// No complete hold (a run stopped early): the figures cover the whole run, per connection
		// at its peak.
		from, to = res.Started, res.Ended
		f.Window = "whole run"
	}
	f.Held = -1
	lag, app, ping := stats.NewHist(), stats.NewHist(), stats.NewHist()
	for _, iv := range res.Series {
		if iv.Start.Before(from) || iv.End.After(to) {
			continue
		}
		if c, ok := iv.Gauges[stats.GaugeConnections]; ok && (f.Held < 0 || c < f.Held) {
			f.Held = c
		}
		f.Disconnects += iv.Counters[stats.CtrDisconnects]
		merge(lag, iv.Histograms[stats.HistScheduleLag])
		merge(app, iv.Histograms[stats.HistAppPingRTT])
		merge(ping, iv.Histograms[stats.HistPingRTT])
	}
	f.Held = max(f.Held, 0)
	if f.Window != "hold" {
		f.Held = f.PeakClients
	}
	f.LagP99 = time.Duration(lag.Percentile(99))
	f.AppPingP99 = time.Duration(app.Percentile(99))
	f.AppPings = app.Count()
	f.PingP99 = time.Duration(ping.Percentile(99))
	n := int(f.Held)
	f.Gateway = withRamp(classFigures(ss, ClassGateway, from, to, n), f.Gateway)
	f.Generator = withRamp(classFigures(ss, ClassGenerator, from, to, n), f.Generator)
	f.Controller = classFigures(ss, ClassController, from, to, n)
	var peak Kernel
	for _, s := range ss {
		if s.At.Before(from) || s.At.After(to) {
			continue
		}
		peak.TCPMemPages = max(peak.TCPMemPages, s.Kernel.TCPMemPages)
		peak.TCPSlab = max(peak.TCPSlab, s.Kernel.TCPSlab)
		peak.SlabBytes = max(peak.SlabBytes, s.Kernel.SlabBytes)
	}
	for _, s := range ss {
		f.ConntrackPeak = max(f.ConntrackPeak, s.Kernel.Conntrack) // the whole run: the ramp fills it
	}
	page := int64(os.Getpagesize())
	f.KernelTCPMem = peak.TCPMemPages * page
	f.KernelSlab = peak.TCPSlab
	if n > 0 {
		f.KernelPerConn = float64((peak.TCPSlab-base.TCPSlab)+(peak.TCPMemPages-base.TCPMemPages)*page) / float64(n)
		f.SlabPerConn = float64(peak.SlabBytes-base.SlabBytes) / float64(n)
	}
	return f
}

func withRamp(f, r ClassFigures) ClassFigures { f.CoresRamp = r.CoresRamp; return f }

func coresBetween(ss []Sample, class string, from, to time.Time) float64 {
	var a, b *Sample
	for i := range ss {
		if ss[i].At.Before(from) || ss[i].At.After(to) {
			continue
		}
		if a == nil {
			a = &ss[i]
		}
		b = &ss[i]
	}
	return cores(a, b, class)
}

func merge(into *stats.Hist, h reports.Histogram) {
	if h.Count == 0 {
		return
	}
	if x, err := h.Hist(); err == nil {
		into.Merge(x)
	}
}

// Machine describes where the bench ran.
type Machine struct {
	CPUs      int
	CPUModel  string
	MemTotal  string
	Kernel    string
	Go        string
	LoadStart string
	LoadEnd   string
	// Somaxconn and SynBacklog bound the listen queues (net.core.somaxconn,
	// net.ipv4.tcp_max_syn_backlog): a ramp faster than the gateway accepts overflows them.
	Somaxconn, SynBacklog string
	// ConntrackMax is the size of netfilter's connection-tracking table (0: not tracking): every
	// open connection takes an entry, and a closed one keeps it through TIME_WAIT (120 s), so it
	// bounds the connections a run can open, loopback ones included.
	ConntrackMax int64
}

// ReadMachine reads the machine's description.
func ReadMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), LoadStart: readLoad()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "MemTotal:") {
				m.MemTotal = fmt.Sprintf("%.1f GiB", float64(kbField(l))/(1<<30))
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	_, m.ConntrackMax = readConntrack()
	m.Somaxconn, m.SynBacklog = "?", "?"
	if b, err := os.ReadFile("/proc/sys/net/core/somaxconn"); err == nil {
		m.Somaxconn = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_max_syn_backlog"); err == nil {
		m.SynBacklog = strings.TrimSpace(string(b))
	}
	return m
}

func readLoad() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// Report is one bench run.
type Report struct {
	Scenario string
	File     string
	Label    string
	Command  string
	Clients  int
	Date     time.Time
	Machine  Machine
	Pinning  string // how the CPUs were split between the gateway and the generator ("" for not)
	Run      RunFigures
	Lean     LeanFigures
	Verdict  string
}

// Key identifies the section of docs/bench.md a report replaces.
func (r *Report) Key() string { return strings.TrimSpace(r.Scenario + " " + r.Label) }

func kb(b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f KB", b/1000)
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func ms(d time.Duration) string {
	if d == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// DescribePinning says in words how pin splits the CPUs ("" for no split).
func DescribePinning(pin map[string][]int) string {
	if pin == nil {
		return ""
	}
	cpus := func(cs []int) string {
		parts := make([]string, len(cs))
		for i, c := range cs {
			parts[i] = strconv.Itoa(c)
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprintf("gateway nodes (and the lean server) pinned to CPU %s, generator workers and the controller (and the lean client) to CPU %s",
		cpus(pin[ClassGateway]), cpus(pin[ClassGenerator]))
}

// Markdown renders the report as a section of docs/bench.md.
func (r *Report) Markdown() string {
	var b bytes.Buffer
	f, l, m := r.Run, r.Lean, r.Machine
	fmt.Fprintf(&b, "### %s — %s\n\n", r.Key(), r.Date.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "Machine: %d × %s, %s, Linux %s, %s; somaxconn %s, tcp_max_syn_backlog %s%s; load average %s at the start, %s at the end (shared machine).\n\n",
		m.CPUs, m.CPUModel, m.MemTotal, m.Kernel, m.Go, m.Somaxconn, m.SynBacklog, conntrackNote(m.ConntrackMax), m.LoadStart, m.LoadEnd)
	if r.Pinning != "" {
		fmt.Fprintf(&b, "CPUs: %s.\n\n", r.Pinning)
	}
	fmt.Fprintf(&b, "Reproduce: `%s` (scenario `%s`).\n\n", r.Command, r.File)
	fmt.Fprintf(&b, "| | squall |\n| --- | --- |\n")
	fmt.Fprintf(&b, "| clients planned / held through the hold / peak | %d / %d / %d (gateway peak %.0f) |\n", f.Clients, f.Held, f.PeakClients, f.PeakConns)
	if f.Window != "hold" {
		fmt.Fprintf(&b, "| no complete hold | memory, CPU and kernel figures cover the whole run, per connection at its peak |\n")
	}
	fmt.Fprintf(&b, "| processes | %d gateway nodes, %d generator workers |\n", f.Gateway.Procs, f.Generator.Procs)
	fmt.Fprintf(&b, "| ramp planned / measured | %.0f/s / %.0f/s (%.1f s) |\n", f.RampPlanned, f.RampMeasured, f.RampSeconds)
	fmt.Fprintf(&b, "| connect p99 | %s |\n", ms(f.ConnectP99))
	fmt.Fprintf(&b, "| dial timeouts / connect errors | %d / %d |\n", f.DialTimeouts, f.ConnectErrors)
	fmt.Fprintf(&b, "| hold | %s |\n", f.Hold.Round(time.Second))
	fmt.Fprintf(&b, "| disconnects during the hold / false disconnects / heartbeat timeouts | %d / %d / %.0f |\n", f.Disconnects, f.FalseDisc, f.HBTimeouts)
	fmt.Fprintf(&b, "| app heartbeat RTT p99 (hold, %d pings) | %s |\n", f.AppPings, ms(f.AppPingP99))
	fmt.Fprintf(&b, "| WebSocket ping RTT p99 (hold, client pings) | %s |\n", ms(f.PingP99))
	fmt.Fprintf(&b, "| schedule lag p99: hold / whole run | %s / %s |\n", ms(f.LagP99), ms(f.LagP99Run))
	fmt.Fprintf(&b, "| gateway peak RSS (sum) / per connection | %s / %s (VmHWM %s) |\n", mib(f.Gateway.PeakRSS), kb(f.Gateway.RSSPerConn), kb(f.Gateway.HWMPerConn))
	fmt.Fprintf(&b, "| generator peak RSS (sum) / per connection | %s / %s (VmHWM %s) |\n", mib(f.Generator.PeakRSS), kb(f.Generator.RSSPerConn), kb(f.Generator.HWMPerConn))
	fmt.Fprintf(&b, "| controller peak RSS | %s |\n", mib(f.Controller.PeakRSS))
	fmt.Fprintf(&b, "| kernel per connection (TCP slab + buffers, both ends) | %s (peak TCP slab %s, buffers %s; all slab caches %s) |\n",
		kb(f.KernelPerConn), mib(f.KernelSlab), mib(f.KernelTCPMem), kb(f.SlabPerConn))
	if m.ConntrackMax > 0 {
		fmt.Fprintf(&b, "| connection-tracking entries, peak / table | %d / %d%s |\n", f.ConntrackPeak, m.ConntrackMax, conntrackVerdict(f.ConntrackPeak, m.ConntrackMax))
	}
	fmt.Fprintf(&b, "| CPU, hold: gateway / generator | %.2f / %.2f cores (%.1f / %.1f µs per connection-second) |\n",
		f.Gateway.CoresHold, f.Generator.CoresHold, f.Gateway.CPUPerConnUS, f.Generator.CPUPerConnUS)
	fmt.Fprintf(&b, "| CPU, ramp: gateway / generator | %.2f / %.2f cores |\n", f.Gateway.CoresRamp, f.Generator.CoresRamp)
	fmt.Fprintf(&b, "| generator reliable during the hold | %s |\n", holdReliability(f))
	rel := "yes"
	if !f.Reliable {
		rel = "no: " + f.Unreliable
	}
	fmt.Fprintf(&b, "| generator reliable over the whole run (ramp included) | %s |\n", rel)
	fmt.Fprintf(&b, "| verdict | %s |\n\n", r.Verdict)
	if l.Conns > 0 || l.Errors != "" {
		fmt.Fprintf(&b, "Lean gorilla pair in the same run (%d server and %d client processes, one parked reader goroutine per connection on each side, 512-byte read buffers, pooled writes, nothing sent): "+
			"%d connections in %.1f s, held %s.\n\n", l.Procs, l.Procs, l.Conns, l.RampSeconds, l.Hold.Round(time.Second))
		fmt.Fprintf(&b, "| | lean server | lean client |\n| --- | --- | --- |\n")
		fmt.Fprintf(&b, "| peak RSS (sum) | %s | %s |\n", mib(l.Server.PeakRSS), mib(l.Client.PeakRSS))
		fmt.Fprintf(&b, "| per connection | %s (VmHWM %s) | %s (VmHWM %s) |\n", kb(l.Server.RSSPerConn), kb(l.Server.HWMPerConn), kb(l.Client.RSSPerConn), kb(l.Client.HWMPerConn))
		fmt.Fprintf(&b, "| CPU, hold | %.2f cores | %.2f cores |\n\n", l.Server.CoresHold, l.Client.CoresHold)
		if l.Errors != "" {
			fmt.Fprintf(&b, "Lean pair errors: %s\n\n", oneLine(l.Errors))
		}
	}
	return b.String()
}

func conntrackNote(max int64) string {
	if max == 0 {
		return ""
	}
	return fmt.Sprintf(", nf_conntrack_max %d", max)
}

// conntrackVerdict flags a run that filled the connection-tracking table (its new connections'
// packets were dropped).
func conntrackVerdict(peak, max int64) string {
	if peak >= max*99/100 {
		return " (full: the kernel dropped packets of new connections)"
	}
	return ""
}

// holdReliability says whether the generator kept its schedule during the hold: its schedule-lag
// p99 over the hold's intervals against the plan's bound.
func holdReliability(f RunFigures) string {
	switch {
	case f.Window != "hold":
		return "no hold to judge (the run stopped before its hold ended)"
	case f.LagP99 > f.LagBound:
		return fmt.Sprintf("no: schedule-lag p99 %s above the bound %s", ms(f.LagP99), ms(f.LagBound))
	}
	return fmt.Sprintf("yes: schedule-lag p99 %s within the bound %s", ms(f.LagP99), ms(f.LagBound))
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Section markers in docs/bench.md.
const (
	beginMark = "<!-- bench-scale:begin "
	endMark   = "<!-- bench-scale:end "
	nextMark  = "<!-- bench-scale:next -->"
)

// UpdateDoc replaces the section with key in the Markdown file at path, or adds it before the
// "next" marker (or at the end), and writes the file atomically.
func UpdateDoc(path, key, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	out := ReplaceSection(string(old), key, section)
	tmp, err := os.CreateTemp(filepath.Dir(path), ".bench-*.md")
	if err != nil {
		return err
	}
	if _, err := tmp.WriteString(out); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ReplaceSection is UpdateDoc's text transformation.
func ReplaceSection(doc, key, section string) string {
	begin, end := beginMark+key+" -->\n", endMark+key+" -->\n"
	block := begin + section + end
	if i := strings.Index(doc, begin); i >= 0 {
		if j := strings.Index(doc[i:], end); j >= 0 {
			return doc[:i] + block + doc[i+j+len(end):]
		}
	}
	if i := strings.Index(doc, nextMark); i >= 0 {
		return doc[:i] + block + "\n" + doc[i:]
	}
	if doc != "" && !strings.HasSuffix(doc, "\n") {
		doc += "\n"
	}
	return doc + block
}
