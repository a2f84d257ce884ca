package scenarios

import (
	"cmp"
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/squall-dev/squall/loadgen"
)

// Validate reports every problem with s at once (as Errors), with file positions when s was loaded
// from a file. A Scenario built in Go may leave defaults out; Validate accepts zero where the loader
// would fill in a default.
func (s *Scenario) Validate() error {
	if errs := s.check(); len(errs) > 0 {
		return errs.sorted()
	}
	return nil
}

// errAt builds an error at field path, with the position it was written at (or, for a value set by
// a command-line flag, naming the flag).
func (s *Scenario) errAt(path, msg string) *Error {
	for p, flag := range s.overrides {
		if path == p || strings.HasPrefix(path, p+".") || strings.HasPrefix(path, p+"[") {
			return &Error{File: s.file, Path: path, Msg: msg + " (set by " + flag + ")"}
		}
	}
	q := s.pos.lookup(path)
	return &Error{File: s.file, Line: q.line, Column: q.col, Path: path, Msg: msg}
}

// checker collects problems.
type checker struct {
	s    *Scenario
	errs Errors
}

func (c *checker) add(path, format string, a ...any) {
	c.errs = append(c.errs, c.s.errAt(path, fmt.Sprintf(format, a...)))
}

func (c *checker) nonNegDur(path string, d time.Duration) {
	if d < 0 {
		c.add(path, "negative duration %v", d)
	}
}

func (c *checker) nonNeg(path string, n int) {
	if n < 0 {
		c.add(path, "negative value %d (want 0 or more)", n)
	}
}

func (c *checker) fraction(path string, f float64) {
	if math.IsNaN(f) || f < 0 || f > 1 {
		c.add(path, "%v is not a fraction (want 0 to 1)", f)
	}
}

func (c *checker) rate(path string, f float64) {
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		c.add(path, "%v is not a rate (want a finite number, 0 or more)", f)
	}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// check runs every validation rule.
func (s *Scenario) check() Errors {
	c := &checker{s: s}
	if strings.TrimSpace(s.Name) == "" {
		c.add("name", "missing (want the scenario's name)")
	} else if len(s.Name) > 128 {
		c.add("name", "%d characters (want at most 128: it names output directories and reports)", len(s.Name))
	}
	if len(s.Description) > maxTextBytes {
		c.add("description", "%d bytes (want at most %d: a paragraph, not a document)", len(s.Description), maxTextBytes)
	}
	_, overridden := s.overrides["time_scale"]
	if ts := s.TimeScale; math.IsNaN(ts) || ts < 0 || ts > 1000 || math.IsInf(ts, 0) || ts == 0 && overridden {
		c.add("time_scale", "%v is not a time scale (want a factor above 0, at most 1000; 0.1 runs ten times faster)", ts)
	}
	c.nonNegDur("schedule_lag_bound", s.ScheduleLagBound)
	if s.ClientIO != "" && !slices.Contains(loadgen.ClientIOs, s.ClientIO) {
		c.add("client_io", "%q (want one of %s)", s.ClientIO, strings.Join(loadgen.ClientIOs, ", "))
	}
	c.nonNegDur("settle", s.Settle)
	c.target()
	c.model()
	c.cohorts()
	c.phases()
	c.timeline()
	c.slos()
	return c.errs
}

func (c *checker) url(path, raw string, schemes ...string) {
	if raw == "" {
		return
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		c.add(path, "bad URL %q (want %s://HOST:PORT/...)", raw, schemes[0])
		return
	}
	if !slices.Contains(schemes, u.Scheme) {
		c.add(path, "URL scheme %q (want %s)", u.Scheme, orList(schemes))
	}
}

// urlTarget checks a URL target's protocol, credentials and connection settings (reading the files
// they name).
func (c *checker) urlTarget() {
	lt, err := c.s.LoadgenTarget()
	if err != nil {
		return // target.url is reported by url()
	}
	if _, err := loadgen.NewProtocol(lt.Protocol); err != nil {
		c.add("target.protocol", "%v", err)
	}
	if err := lt.Auth.Validate(); err != nil {
		c.add("target.auth", "%v", err)
	}
	if _, err := lt.Conn.TLS.Config(); err != nil {
		c.add("target.tls", "%v", err)
	}
	if err := (loadgen.ConnSpec{Headers: lt.Conn.Headers}).Validate(); err != nil {
		c.add("target.headers", "%v", err)
	}
	if err := (loadgen.ConnSpec{Subprotocols: lt.Conn.Subprotocols}).Validate(); err != nil {
		c.add("target.subprotocols", "%v", err)
	}
}

func (c *checker) target() {
	t := c.s.Target
	c.url("target.url", t.URL, "ws", "wss")
	for i, u := range t.URLs {
		c.url(fmt.Sprintf("target.urls[%d]", i), u, "ws", "wss")
	}
	if t.URL != "" && len(t.URLs) > 0 {
		c.add("target.urls", "url and urls exclude each other (urls lists every node)")
	}
	c.url("target.metrics_url", t.MetricsURL, "http", "https")
	c.url("target.toxiproxy", t.Toxiproxy, "http")
	if !t.Embedded() {
		// Every embedded-only setting must be unset.
		v, typ := reflect.ValueOf(t), reflect.TypeOf(t)
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ",")
			if slices.Contains(urlOnly, name) {
				continue
			}
			if !v.Field(i).IsZero() {
				c.add("target."+name, "applies to the embedded gateway only, and the target is url %s", strings.Join(t.Addresses(), ", "))
			}
		}
		c.urlTarget()
		return
	}
	v, typ := reflect.ValueOf(t), reflect.TypeOf(t)
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ",")
		if !slices.Contains(urlOnly, name) || name == "url" || name == "metrics_url" || name == "toxiproxy" {
			continue
		}
		if name == "protocol" && (t.Protocol == loadgen.ProtocolSpec{Name: loadgen.ProtocolSquall}) {
			continue
		}
		if !v.Field(i).IsZero() {
			c.add("target."+name, "applies to a url target only (the embedded gateway speaks squall over ws:// with tokens of its own)")
		}
	}
	if t.Nodes < 0 {
		c.add("target.nodes", "negative value %d (want 1 or more)", t.Nodes)
	} else if t.Nodes > maxNodesPerMachine {
		c.add("target.nodes", "%d nodes (want at most %d on one machine)", t.Nodes, maxNodesPerMachine)
	}
	seen := map[string]bool{}
	for i, f := range t.Flaws {
		p := fmt.Sprintf("target.flaws[%d]", i)
		switch {
		case !slices.Contains(KnownFlaws, f):
			c.add(p, "unknown flaw %q (want %s)", f, orList(KnownFlaws))
		case seen[f]:
			c.add(p, "flaw %q listed twice", f)
		}
		seen[f] = true
	}
	for _, g := range t.gatewaySettings() {
		switch v := g.value.Interface().(type) {
		case time.Duration:
			c.nonNegDur("target."+g.yaml, v)
		case int:
			if g.flag != "max-conns-per-ip" { // -1 means no limit
				c.nonNeg("target."+g.yaml, v)
			}
		}
	}
	if t.MaxConnsPerIP < -1 {
		c.add("target.max_conns_per_ip", "%d (want 0 for the default, -1 for none, or a limit)", t.MaxConnsPerIP)
	}
	c.rate("target.accept_rate", t.AcceptRate)
	c.rate("target.storm_alert_rate", t.StormAlertRate)
	c.fraction("target.auth_failure_rate", t.AuthFailureRate)
}

func (c *checker) model() {
	m := c.s.Model
	switch m.Kind {
	case "", ModelClosed:
		if m.ArrivalRate != 0 {
			c.add("model.arrival_rate", "only for the open model (model.kind: open)")
		}
		if m.Lifetime != 0 {
			c.add("model.lifetime", "only for the open model (model.kind: open)")
		}
	case ModelOpen:
		if !(m.ArrivalRate > 0) || math.IsInf(m.ArrivalRate, 0) {
			c.add("model.arrival_rate", "the open model needs an arrival rate above 0 (clients per second)")
		}
		if m.Lifetime <= 0 {
			c.add("model.lifetime", "the open model needs a lifetime above 0 (how long each client stays)")
		}
	default:
		c.add("model", "unknown model %q (want closed or open)", m.Kind)
	}
}

func (c *checker) cohorts() {
	if len(c.s.Cohorts) == 0 {
		c.add("cohorts", "no cohorts (want at least one group of clients)")
		return
	}
	names := map[string]bool{}
	for i, co := range c.s.Cohorts {
		p := fmt.Sprintf("cohorts[%d]", i)
		switch {
		case co.Name == "":
			c.add(p+".name", "missing (want a name for SLOs and timeline events)")
		case !nameRE.MatchString(co.Name):
			c.add(p+".name", "%q is not a name (want letters, digits, '-', '_' or '.')", co.Name)
		case names[co.Name]:
			c.add(p+".name", "cohort %q defined twice", co.Name)
		}
		names[co.Name] = true
		if co.Count < 0 {
			c.add(p+".count", "negative count %d (want 0 or more clients)", co.Count)
		}
		c.sourceIPs(p+".source_ips", co.SourceIPs)
		if co.Proxy != "" && !nameRE.MatchString(co.Proxy) {
			c.add(p+".proxy", "%q is not a proxy name (want letters, digits, '-', '_' or '.')", co.Proxy)
		}
		c.behaviour(p+".behaviour", co.Behaviour)
	}
	if c.s.Clients() == 0 && len(names) > 0 {
		c.add("cohorts", "no clients at all (every count is 0)")
	}
}

func (c *checker) sourceIPs(path, s string) {
	if s == "" {
		return
	}
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		c.add(path, "bad CIDR %q (want a range such as 127.1.0.0/16)", s)
		return
	}
	loop := netip.MustParsePrefix("127.0.0.0/8")
	if !pfx.Addr().Is4() || pfx.Bits() < 8 || !loop.Contains(pfx.Addr()) {
		c.add(path, "%s is outside 127.0.0.0/8 (all traffic stays on loopback)", s)
	}
}

func (c *checker) behaviour(p string, b Behaviour) {
	c.nonNeg(p+".rooms.per_client", b.Rooms.PerClient)
	c.nonNeg(p+".rooms.count", b.Rooms.Count)
	c.nonNeg(p+".rooms.size", b.Rooms.Size)
	if b.Rooms.Count > 0 && b.Rooms.PerClient > b.Rooms.Count {
		c.add(p+".rooms.per_client", "%d rooms per client but the cohort has only %d rooms", b.Rooms.PerClient, b.Rooms.Count)
	}
	if b.Rooms.PerClient > 64 {
		c.add(p+".rooms.per_client", "%d rooms per client (the gateway allows 64 per connection)", b.Rooms.PerClient)
	}
	c.nonNegDur(p+".send_interval", b.SendInterval)
	if b.Payload < 0 || b.Payload > 60_000 {
		c.add(p+".payload", "%d bytes (want 0 to 60000: a frame must stay under the gateway's 64 KiB)", b.Payload)
	}
	c.nonNegDur(p+".heartbeat", b.Heartbeat)
	switch b.HeartbeatPhase {
	case "", loadgen.HeartbeatPhaseConnect, loadgen.HeartbeatPhaseRandom:
	default:
		c.add(p+".heartbeat_phase", "unknown phase %q (want connect or random)", b.HeartbeatPhase)
	}
	c.nonNegDur(p+".ws_ping", b.WSPing)
	c.nonNegDur(p+".read_timeout", b.ReadTimeout)
	c.reconnect(p+".reconnect", b.Reconnect)
	c.exit(p+".exit", b.Exit)
	switch b.Transport {
	case "", loadgen.TierWebSocket, loadgen.TierSSE, loadgen.TierPoll, loadgen.TransportLadder:
	default:
		c.add(p+".transport", "unknown transport %q (want websocket, sse, poll or ladder)", b.Transport)
	}
	if name := c.s.Target.Protocol.Name; b.Transport != "" && name != "" && name != loadgen.ProtocolSquall {
		c.add(p+".transport", "the fallback tiers are the reference gateway's: the %s profile (target.protocol) has WebSocket only", name)
	}
	if b.BlockUpgrade && b.Transport != loadgen.TransportLadder && b.Transport != loadgen.TierWebSocket {
		c.add(p+".block_upgrade", "needs transport ladder (or websocket, to see the tabs fail)")
	}
	if b.TabsPerUser < 0 {
		c.add(p+".tabs_per_user", "negative value %d (want 1 or more)", b.TabsPerUser)
	}
	c.misbehave(p+".misbehave", b.Misbehave)
}

func (c *checker) reconnect(p string, r Reconnect) {
	policies := []string{string(PolicyBackoff), string(PolicyLadder), string(PolicyConstant), string(PolicyImmediate)}
	if r.Policy != "" && !slices.Contains(policies, string(r.Policy)) {
		at := p + ".policy"
		if _, written := c.s.pos[at]; !written {
			at = p // written as "reconnect: NAME"
		}
		c.add(at, "unknown policy %q (want %s)", r.Policy, orList(policies))
	}
	c.nonNegDur(p+".initial", r.Initial)
	c.nonNegDur(p+".max", r.Max)
	c.nonNegDur(p+".jitter", r.Jitter)
	if r.Multiplier != 0 && !(r.Multiplier >= 1) || math.IsInf(r.Multiplier, 0) {
		c.add(p+".multiplier", "%v (want 1 or more)", r.Multiplier)
	}
	for i, d := range r.Steps {
		c.nonNegDur(fmt.Sprintf("%s.steps[%d]", p, i), d)
	}
	if _, written := c.s.pos[p+".max_attempts"]; r.MaxAttempts < -1 || written && r.MaxAttempts == 0 {
		c.add(p+".max_attempts", "%d (want -1 for unlimited, or a limit of 1 or more)", r.MaxAttempts)
	}
}

func (c *checker) exit(p string, e Exit) {
	kinds := []string{string(ExitClose), string(ExitTabClose), string(ExitVanish), string(ExitNavigate)}
	if e.Kind != "" && !slices.Contains(kinds, string(e.Kind)) {
		at := p + ".kind"
		if _, written := c.s.pos[at]; !written {
			at = p
		}
		c.add(at, "unknown exit %q (want %s)", e.Kind, orList(kinds))
	}
	c.nonNegDur(p+".after", e.After)
	c.nonNegDur(p+".jitter", e.Jitter)
	c.fraction(p+".share", e.Share)
}

func (c *checker) misbehave(p string, m Misbehave) {
	c.nonNeg(p+".reorder_every", m.ReorderEvery)
	c.nonNeg(p+".reorder_window", m.ReorderWindow)
	c.nonNeg(p+".drop_every", m.DropEvery)
	c.nonNeg(p+".dupe_every", m.DupeEvery)
	if m.ReorderEvery == 1 || m.DropEvery == 1 {
		c.add(p, "every 1 breaks every frame (want every 2 or more)")
	}
	if math.IsNaN(m.HeartbeatFactor) || m.HeartbeatFactor < 0 || math.IsInf(m.HeartbeatFactor, 0) {
		c.add(p+".heartbeat_factor", "%v (want a factor above 0, e.g. 0.5 or 2)", m.HeartbeatFactor)
	}
}

func (c *checker) phases() {
	s := c.s
	if len(s.Phases) == 0 {
		c.add("phases", "no phases (want at least a ramp and a hold)")
		return
	}
	total := s.Clients()
	for i, ph := range s.Phases {
		p := fmt.Sprintf("phases[%d]", i)
		switch ph.Kind {
		case PhaseRamp, PhaseHold, PhaseRampDown:
		case "":
			c.add(p+".kind", "missing (want ramp, hold or ramp-down)")
		default:
			c.add(p+".kind", "unknown phase %q (want ramp, hold or ramp-down)", ph.Kind)
		}
		c.rate(p+".rate", ph.Rate)
		c.nonNeg(p+".target", ph.Target)
		c.nonNegDur(p+".duration", ph.Duration)
		if ph.Target > total && total > 0 {
			c.add(p+".target", "%d clients but the cohorts have only %d", ph.Target, total)
		}
		if ph.Kind == PhaseHold && ph.Duration <= 0 {
			c.add(p+".duration", "a hold needs a duration above 0")
		}
		if s.Model.Kind == ModelOpen {
			if ph.Kind == PhaseRamp && ph.Duration <= 0 {
				c.add(p+".duration", "in the open model a ramp needs a duration (clients arrive during it)")
			}
			if ph.Target != 0 {
				c.add(p+".target", "only for the closed model")
			}
		}
		if ph.Kind == PhaseHold && ph.Rate != 0 {
			c.add(p+".rate", "a hold has no rate")
		}
	}
}

// actionFields lists the event fields each action reads (at and action apply to all).
var actionFields = map[Action][]string{
	ActionToxicAdd:     {"duration", "proxy", "toxic", "type", "stream", "toxicity", "attributes"},
	ActionToxicRemove:  {"proxy", "toxic"},
	ActionProxyDisable: {"duration", "proxy"},
	ActionProxyEnable:  {"proxy"},
	ActionNodeKill:     {"node"},
	ActionNodeRestart:  {"node"},
	ActionNodePause:    {"duration", "node"},
	ActionNodeResume:   {"node"},
	ActionNodeDrain:    {"node"},
	ActionBehaviour:    {"cohort", "behaviour"},

	ActionContainerStop:       {"duration", "container"},
	ActionContainerStart:      {"container"},
	ActionContainerKill:       {"duration", "container"},
	ActionContainerRestart:    {"container"},
	ActionContainerPause:      {"duration", "container"},
	ActionContainerResume:     {"container"},
	ActionContainerDisconnect: {"duration", "container", "network"},
	ActionContainerConnect:    {"container", "network"},
}

func actionNames() []string {
	out := make([]string, 0, len(actionFields))
	for _, a := range []Action{ActionToxicAdd, ActionToxicRemove, ActionProxyDisable, ActionProxyEnable,
		ActionNodeKill, ActionNodeRestart, ActionNodePause, ActionNodeResume, ActionNodeDrain, ActionBehaviour,
		ActionContainerStop, ActionContainerStart, ActionContainerKill, ActionContainerRestart, ActionContainerPause,
		ActionContainerResume, ActionContainerDisconnect, ActionContainerConnect} {
		out = append(out, string(a))
	}
	return out
}

func toxicNames() []string {
	return []string{string(ToxicLatency), string(ToxicBandwidth), string(ToxicSlowClose), string(ToxicTimeout),
		string(ToxicResetPeer), string(ToxicLimitData), string(ToxicSlicer)}
}

func (c *checker) timeline() {
	s := c.s
	end := s.Duration()
	proxies := s.proxies()
	added := map[string]bool{} // proxy/toxic added so far, in time order
	order := make([]int, len(s.Timeline))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(s.Timeline[a].At, s.Timeline[b].At) })
	for _, i := range order {
		e := s.Timeline[i]
		p := fmt.Sprintf("timeline[%d]", i)
		switch {
		case e.At < 0:
			c.add(p+".at", "negative time %v", e.At)
		case e.At > end && len(s.Phases) > 0:
			c.add(p+".at", "%v is after the end of the phases (%v)", e.At, end)
		}
		c.nonNegDur(p+".duration", e.Duration)
		if e.Duration > 0 && e.At >= 0 && e.At <= end && e.At+e.Duration > end {
			c.add(p+".duration", "reverts at %v, after the end of the phases (%v)", e.At+e.Duration, end)
		}
		fields, known := actionFields[e.Action]
		if !known {
			if e.Action == "" {
				c.add(p+".action", "missing (want %s)", orList(actionNames()))
			} else {
				c.add(p+".action", "unknown action %q (want %s)", e.Action, orList(actionNames()))
			}
			continue
		}
		c.eventFields(p, e, fields)
		switch e.Action {
		case ActionToxicAdd, ActionToxicRemove, ActionProxyDisable, ActionProxyEnable:
			c.proxyRef(p, e, proxies)
		}
		switch e.Action {
		case ActionToxicAdd:
			c.toxic(p, e)
			added[e.Proxy+"/"+e.Toxic] = true
		case ActionToxicRemove:
			if e.Toxic == "" {
				c.add(p+".toxic", "missing (want the name of the toxic to remove)")
			} else if !added[e.Proxy+"/"+e.Toxic] {
				c.add(p+".toxic", "no toxic %q was added to proxy %q before %v", e.Toxic, e.Proxy, e.At)
			}
			delete(added, e.Proxy+"/"+e.Toxic)
		case ActionNodeKill, ActionNodeRestart, ActionNodePause, ActionNodeResume, ActionNodeDrain:
			if !s.Target.Embedded() {
				c.add(p+".action", "%s needs the embedded gateway (the target is url %s; container-* faults act on containers)", e.Action, strings.Join(s.Target.Addresses(), ", "))
			} else if nodes := max(s.Target.Nodes, 1); e.Node < 0 || e.Node >= nodes {
				c.add(p+".node", "node %d does not exist (the target has %d: 0 to %d)", e.Node, nodes, nodes-1)
			}
		case ActionBehaviour:
			c.behaviourSwitch(p, e)
		case ActionContainerStop, ActionContainerStart, ActionContainerKill, ActionContainerRestart, ActionContainerPause,
			ActionContainerResume, ActionContainerDisconnect, ActionContainerConnect:
			if e.Container == "" {
				c.add(p+".container", "missing (the name of the run's container %s acts on)", e.Action)
			}
			if (e.Action == ActionContainerDisconnect || e.Action == ActionContainerConnect) && e.Network == "" {
				c.add(p+".network", "missing (the Docker network %s acts on)", e.Action)
			}
		}
	}
}

// eventFields reports fields set on an event that its action does not read.
func (c *checker) eventFields(p string, e Event, allowed []string) {
	v, t := reflect.ValueOf(e), reflect.TypeOf(e)
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "at" || name == "action" || slices.Contains(allowed, name) || v.Field(i).IsZero() {
			continue
		}
		c.add(p+"."+name, "does not apply to %s (it reads %s)", e.Action, orList(append([]string{"at"}, allowed...)))
	}
}

func (c *checker) proxyRef(p string, e Event, proxies []string) {
	if c.s.Target.Toxiproxy != "" && e.Proxy != "" && !slices.Contains(proxies, e.Proxy) {
		return // a proxy of the external Toxiproxy no cohort uses (e.g. a gateway's link to Redis)
	}
	switch {
	case len(proxies) == 0:
		c.add(p+".action", "%s needs a cohort routed through a proxy (set cohorts[].proxy)", e.Action)
	case e.Proxy == "":
		c.add(p+".proxy", "missing: the cohorts use several proxies (want %s)", orList(proxies))
	case !slices.Contains(proxies, e.Proxy):
		c.add(p+".proxy", "no cohort is routed through proxy %q (want %s)", e.Proxy, orList(proxies))
	}
}

func (c *checker) toxic(p string, e Event) {
	var attrs []string
	for _, a := range e.Type.Attributes() {
		attrs = append(attrs, a.Name)
	}
	if !e.Type.Valid() {
		if e.Type == "" {
			c.add(p+".type", "missing (want %s)", orList(toxicNames()))
		} else {
			c.add(p+".type", "unknown toxic %q (want %s)", e.Type, orList(toxicNames()))
		}
	}
	if e.Stream != "" && e.Stream != "upstream" && e.Stream != "downstream" {
		c.add(p+".stream", "unknown stream %q (want upstream or downstream)", e.Stream)
	}
	c.fraction(p+".toxicity", e.Toxicity)
	a := e.Attributes
	v, t := reflect.ValueOf(a), reflect.TypeOf(a)
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		f := v.Field(i)
		if f.Kind() == reflect.Int64 || f.Kind() == reflect.Int {
			if f.Int() < 0 {
				c.add(p+".attributes."+name, "negative value %v", f.Interface())
			}
		}
		if e.Type.Valid() && !f.IsZero() && !slices.Contains(attrs, name) {
			c.add(p+".attributes."+name, "not an attribute of %s (want %s)", e.Type, orList(attrs))
		}
	}
	switch e.Type {
	case ToxicLatency:
		if a.Latency == 0 && a.Jitter == 0 {
			c.add(p+".attributes", "a latency toxic needs latency (and optionally jitter)")
		}
	case ToxicBandwidth:
		if a.Rate == 0 {
			c.add(p+".attributes.rate", "a bandwidth toxic needs rate (KB/s) above 0")
		}
	case ToxicSlicer:
		if a.AverageSize == 0 {
			c.add(p+".attributes.average_size", "a slicer needs average_size above 0")
		}
	}
}

func (c *checker) behaviourSwitch(p string, e Event) {
	found := false
	for _, co := range c.s.Cohorts {
		found = found || co.Name == e.Cohort
	}
	switch {
	case e.Cohort == "":
		c.add(p+".cohort", "missing (want the cohort whose behaviour switches)")
	case !found:
		c.add(p+".cohort", "unknown cohort %q", e.Cohort)
	}
	b := e.Behaviour
	if b == nil {
		c.add(p+".behaviour", "missing (want the behaviour fields that change)")
		return
	}
	bp := p + ".behaviour"
	if reflect.ValueOf(*b).IsZero() {
		c.add(bp, "changes nothing (set at least one field)")
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
	}{{"send_interval", b.SendInterval}, {"heartbeat", b.Heartbeat}, {"ws_ping", b.WSPing}, {"read_timeout", b.ReadTimeout}} {
		if d.v != nil {
			c.nonNegDur(bp+"."+d.name, *d.v)
		}
	}
	if b.Payload != nil && (*b.Payload < 0 || *b.Payload > 60_000) {
		c.add(bp+".payload", "%d bytes (want 0 to 60000)", *b.Payload)
	}
	if b.Reconnect != nil {
		c.reconnect(bp+".reconnect", *b.Reconnect)
	}
	if b.Exit != nil {
		c.exit(bp+".exit", *b.Exit)
	}
	if b.Misbehave != nil {
		c.misbehave(bp+".misbehave", *b.Misbehave)
	}
}

// needs refuses an SLO whose metric needs what the target's protocol cannot observe, naming both.
func (c *checker) needs(path string, m Metric) {
	proto, err := loadgen.NewProtocol(c.s.Target.Protocol)
	if err != nil || len(m.Needs) == 0 {
		return // an unusable protocol is reported under target.protocol
	}
	caps := proto.Capabilities()
	var missing []string
	for _, n := range m.Needs {
		if !caps.Has(n) {
			missing = append(missing, string(n))
		}
	}
	if len(missing) > 0 {
		c.add(path+".metric", "%s needs %s, which the %s profile cannot observe (target.protocol; see \"testing your own gateway\" in scenarios/README.md)",
			m.Name, strings.Join(missing, " and "), proto.Name())
	}
}

func (c *checker) slos() {
	s := c.s
	cohorts := map[string]bool{}
	for _, co := range s.Cohorts {
		cohorts[co.Name] = true
	}
	for i, o := range s.SLOs {
		p := fmt.Sprintf("slos[%d]", i)
		m, known := LookupMetric(o.Metric)
		switch {
		case o.Metric == "":
			c.add(p+".metric", "missing (want a metric of the catalogue, see scenarios/README.md)")
		case !known:
			c.add(p+".metric", "unknown metric %q (%s)", o.Metric, suggestName(o.Metric, metricNames(), "see the metric catalogue in scenarios/README.md"))
		}
		if o.Agg != "" && !slices.Contains(Aggs, o.Agg) {
			c.add(p+".agg", "unknown aggregation %q (want %s)", o.Agg, orList(aggNames(Aggs)))
		} else if known && o.Agg != "" && !m.Allows(o.Agg) {
			c.add(p+".agg", "%s does not apply to %s (want %s)", o.Agg, o.Metric, orList(aggNames(m.Aggs)))
		}
		if known {
			c.needs(p, m)
		}
		if known {
			switch {
			case m.Labelled && o.Label == "" && strings.HasPrefix(m.Name, "tier_"):
				c.add(p+".label", "%s needs a label (a tier: websocket, sse or poll)", o.Metric)
			case m.Labelled && o.Label == "":
				c.add(p+".label", "%s needs a label (a close code such as 1006)", o.Metric)
			case strings.HasPrefix(m.Name, "tier_"):
				if !slices.Contains([]string{loadgen.TierWebSocket, loadgen.TierSSE, loadgen.TierPoll}, o.Label) {
					c.add(p+".label", "%q is not a tier (want websocket, sse or poll)", o.Label)
				}
			case !m.Labelled && o.Label != "":
				c.add(p+".label", "%s has no labels", o.Metric)
			case m.Name == "close_codes":
				if code, err := strconv.Atoi(o.Label); err != nil || code < 1000 || code > 4999 {
					c.add(p+".label", "%q is not a close code (want 1000 to 4999)", o.Label)
				}
			}
		}
		for j, f := range o.Catches {
			if !slices.Contains(KnownFlaws, f) {
				c.add(fmt.Sprintf("%s.catches[%d]", p, j), "unknown flaw %q (want %s)", f, orList(KnownFlaws))
			}
		}
		if o.Cohort != "" && !cohorts[o.Cohort] {
			c.add(p+".cohort", "unknown cohort %q", o.Cohort)
		}
		switch o.Bound.Op {
		case OpLT, OpLE, OpGT, OpGE, OpEQ:
			if math.IsNaN(o.Bound.Value) || math.IsInf(o.Bound.Value, 0) {
				c.add(p+".bound", "bound value %v is not a number", o.Bound.Value)
			}
		case "":
			if o.Bound.text == "" {
				c.add(p+".bound", `missing (want a comparison such as "<= 45s" or "== 0")`)
			}
		default:
			c.add(p+".bound", "unknown comparison %q (want <, <=, >, >= or ==)", o.Bound.Op)
		}
	}
}

// suggestName proposes the closest of names to s, or falls back to hint.
func suggestName(s string, names []string, hint string) string {
	best, bestDist := "", 4
	for _, n := range names {
		if s != "" && (strings.HasPrefix(n, s) || strings.HasPrefix(s, n)) {
			return fmt.Sprintf("did you mean %q?", n)
		}
		if d := editDistance(s, n); d < bestDist {
			best, bestDist = n, d
		}
	}
	if best != "" {
		return fmt.Sprintf("did you mean %q?", best)
	}
	return hint
}

// maxNodesPerMachine bounds the embedded gateway's nodes: each node is a process holding at most
// ~19 000 connections (the open-file limit, DESIGN §8), so 64 nodes hold a million and some.
const maxNodesPerMachine = 64
