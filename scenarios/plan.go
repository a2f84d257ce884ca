package scenarios

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/embedded"
)

// Route is the cohorts that reach the gateway one way: directly (Proxy "") or through the chaos
// proxy named Proxy. A run gives each route's part of the plan (loadgen.Plan.Part) the address
// of its route.
type Route struct {
	Proxy   string
	Cohorts []int // indexes into the plan's cohorts
}

// Plan converts the scenario into the load generator's plan — cohorts, phases, model, seed,
// schedule-lag bound, settle time and the timeline's behaviour switches — and its routes: the
// direct route first (when any cohort has one), then one route per chaos proxy in the order the
// cohorts name them. Proxied cohorts are marked (loadgen.Cohort.Proxy); the timeline's faults and
// the SLOs are not part of a plan: the run drives the faults and grades the SLOs itself.
//
// It fails for what the scenario can say but the load generator cannot do (a reorder window above
// 1), and with the plan's own validation error (loadgen.Plan.Validate).
func (s *Scenario) Plan() (loadgen.Plan, []Route, error) {
	var errs []error
	p := loadgen.Plan{
		Name:             s.Name,
		Seed:             s.Seed,
		Model:            loadgen.Model{Kind: s.Model.Kind, ArrivalRate: s.Model.ArrivalRate, Lifetime: s.Model.Lifetime},
		ScheduleLagBound: s.ScheduleLagBound,
		Settle:           s.Settle,
		ClientIO:         s.ClientIO,
	}
	routes := []Route{{}}
	for i, c := range s.Cohorts {
		b, err := c.Behaviour.loadgen()
		if err != nil {
			errs = append(errs, fmt.Errorf("cohorts[%d].behaviour.%w", i, err))
		}
		p.Cohorts = append(p.Cohorts, loadgen.Cohort{Name: c.Name, Count: c.Count, SourceIPs: c.SourceIPs, Proxy: c.Proxy != "", Behaviour: b})
		k := slices.IndexFunc(routes, func(r Route) bool { return r.Proxy == c.Proxy })
		if k < 0 {
			routes = append(routes, Route{Proxy: c.Proxy})
			k = len(routes) - 1
		}
		routes[k].Cohorts = append(routes[k].Cohorts, i)
	}
	if len(routes[0].Cohorts) == 0 {
		routes = routes[1:]
	}
	for _, ph := range s.Phases {
		p.Phases = append(p.Phases, loadgen.Phase{Name: ph.Name, Kind: ph.Kind, Rate: ph.Rate, Target: ph.Target, Duration: ph.Duration})
	}
	if len(errs) == 0 {
		sw, err := s.switches(p)
		if err != nil {
			errs = append(errs, err)
		}
		p.Switches = sw
	}
	if len(errs) == 0 {
		if err := p.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return p, routes, fmt.Errorf("scenarios: %s: %w", s.Name, err)
	}
	return p, routes, nil
}

// loadgen converts a behaviour; an error names the field below the behaviour that the load
// generator cannot do.
func (b Behaviour) loadgen() (loadgen.Behaviour, error) {
	mb, err := b.Misbehave.loadgen()
	return loadgen.Behaviour{
		RoomsPerClient:    b.Rooms.PerClient,
		RoomCount:         b.Rooms.Count,
		RoomSize:          b.Rooms.Size,
		RoomPrefix:        b.Rooms.Prefix,
		SendInterval:      b.SendInterval,
		PayloadSize:       b.Payload,
		HeartbeatInterval: b.Heartbeat,
		HeartbeatPhase:    b.HeartbeatPhase,
		PingInterval:      b.WSPing,
		ReadTimeout:       b.ReadTimeout,
		Reconnect:         b.Reconnect.LoadgenPolicy(),
		Resume:            b.Resume,
		Exit:              b.Exit.loadgen(),
		TabsPerUser:       b.TabsPerUser,
		Misbehave:         mb,
		Transport:         b.Transport,
		BlockUpgrade:      b.BlockUpgrade,
	}, err
}

// loadgen converts the misbehaviours. The load generator holds a frame back by one only.
func (m Misbehave) loadgen() (loadgen.Misbehaviour, error) {
	var err error
	if m.ReorderWindow > 1 {
		err = fmt.Errorf("misbehave.reorder_window %d: the load generator holds a frame back by one only", m.ReorderWindow)
	}
	return loadgen.Misbehaviour{SwapEvery: m.ReorderEvery, DropEvery: m.DropEvery, DupeEvery: m.DupeEvery,
		IgnorePings: m.IgnorePings, HeartbeatFactor: m.HeartbeatFactor}, err
}

func (e Exit) loadgen() loadgen.Exit {
	return loadgen.Exit{Kind: e.Kind, After: e.After, Jitter: e.Jitter, Share: e.Share}
}

// apply returns b with the patch's fields replaced.
func (pt *BehaviourPatch) apply(b loadgen.Behaviour) (loadgen.Behaviour, error) {
	if pt.SendInterval != nil {
		b.SendInterval = *pt.SendInterval
	}
	if pt.Payload != nil {
		b.PayloadSize = *pt.Payload
	}
	if pt.Heartbeat != nil {
		b.HeartbeatInterval = *pt.Heartbeat
	}
	if pt.WSPing != nil {
		b.PingInterval = *pt.WSPing
	}
	if pt.ReadTimeout != nil {
		b.ReadTimeout = *pt.ReadTimeout
	}
	if pt.Reconnect != nil {
		b.Reconnect = pt.Reconnect.LoadgenPolicy()
	}
	if pt.Resume != nil {
		b.Resume = *pt.Resume
	}
	if pt.Exit != nil {
		b.Exit = pt.Exit.loadgen()
	}
	if pt.Misbehave != nil {
		mb, err := pt.Misbehave.loadgen()
		if err != nil {
			return b, fmt.Errorf("behaviour.%w", err)
		}
		b.Misbehave = mb
	}
	b.Reconnect.Steps = slices.Clone(b.Reconnect.Steps)
	return b, nil
}

// switches turns the timeline's behaviour switches into the plan's, in time order: each patch
// applies to the cohort's behaviour as the earlier switches left it.
func (s *Scenario) switches(p loadgen.Plan) ([]loadgen.Switch, error) {
	cur := map[string]loadgen.Behaviour{}
	for _, c := range p.Cohorts {
		cur[c.Name] = c.Behaviour
	}
	var idx []int
	for i, ev := range s.Timeline {
		if ev.Action == ActionBehaviour && ev.Behaviour != nil {
			idx = append(idx, i)
		}
	}
	slices.SortStableFunc(idx, func(a, b int) int { return int(s.Timeline[a].At - s.Timeline[b].At) })
	var out []loadgen.Switch
	for _, i := range idx {
		ev := s.Timeline[i]
		b, ok := cur[ev.Cohort]
		if !ok {
			return nil, fmt.Errorf("timeline[%d]: unknown cohort %q", i, ev.Cohort)
		}
		b, err := ev.Behaviour.apply(b)
		if err != nil {
			return nil, fmt.Errorf("timeline[%d].%w", i, err)
		}
		cur[ev.Cohort] = b
		out = append(out, loadgen.Switch{At: ev.At, Cohort: ev.Cohort, Behaviour: b})
	}
	return out, nil
}

// LoadgenPolicy is the reconnect policy in the load generator's terms.
func (r Reconnect) LoadgenPolicy() loadgen.ReconnectPolicy {
	jitter := r.Jitter
	if r.Policy == PolicyBackoff && jitter == 0 {
		jitter = -1 // loadgen: zero means its default, negative means none
	}
	return loadgen.ReconnectPolicy{
		Kind:        r.Policy,
		Initial:     r.Initial,
		Multiplier:  r.Multiplier,
		Max:         r.Max,
		Jitter:      jitter,
		Steps:       append([]time.Duration(nil), r.Steps...),
		MaxAttempts: r.MaxAttempts,
	}
}

// EmbeddedOptions converts an embedded target into the options that start the reference gateway:
// node count and the gateway's configuration (GatewayConfig). It fails for a URL target and for
// settings the gateway refuses.
func (s *Scenario) EmbeddedOptions() (embedded.Options, error) {
	t := s.Target
	if !t.Embedded() {
		return embedded.Options{}, fmt.Errorf("scenarios: %s: the target is url %s, not the embedded gateway", s.Name, strings.Join(t.Addresses(), ", "))
	}
	cfg, err := t.GatewayConfig()
	opts := embedded.Options{Nodes: t.Nodes, Config: cfg}
	if err != nil {
		return opts, fmt.Errorf("scenarios: %s: %w", s.Name, err)
	}
	return opts, nil
}
