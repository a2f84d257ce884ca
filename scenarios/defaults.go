package scenarios

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/squall-dev/squall/refserver"
)

// Defaults the loader fills in (the gateway's come from refserver, see fillGatewayDefaults), written into the loaded
// scenario so that time_scale reaches them too.
const (
	DefaultSourceIPs        = "127.1.0.0/16"
	DefaultRoomPrefix       = "room-"
	DefaultScheduleLagBound = 50 * time.Millisecond
	DefaultSettle           = 2 * time.Second
)

// KnownFlaws are the refserver flaws a scenario may switch on, in refserver's order.
var KnownFlaws = func() []string {
	var out []string
	for _, f := range refserver.AllFlaws() {
		out = append(out, string(f.Flaw))
	}
	return out
}()

// DefaultLadder is the ladder policy's steps.
var DefaultLadder = []time.Duration{0, time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second}

// withDefaults fills the parameters of r's policy that are zero. A jitter written as 0 in the file
// (path names the reconnect mapping; written reports what the file set) stays 0: no jitter.
func (r *Reconnect) withDefaults(path string, written positions) {
	if _, ok := written[path+".jitter"]; ok && r.Jitter == 0 {
		defer func() { r.Jitter = 0 }()
	}
	if r.Policy == "" {
		r.Policy = PolicyBackoff
	}
	switch r.Policy {
	case PolicyBackoff:
		setDur(&r.Initial, time.Second)
		if r.Multiplier == 0 {
			r.Multiplier = 1.5
		}
		setDur(&r.Max, 30*time.Second)
		setDur(&r.Jitter, time.Second)
		setInt(&r.MaxAttempts, 7)
	case PolicyConstant:
		setDur(&r.Initial, time.Second)
		setInt(&r.MaxAttempts, 100)
	case PolicyLadder:
		if len(r.Steps) == 0 {
			r.Steps = slices.Clone(DefaultLadder)
		}
		setInt(&r.MaxAttempts, -1)
	case PolicyImmediate:
		setInt(&r.MaxAttempts, -1)
	}
}

func setDur(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

func setInt(i *int, def int) {
	if *i == 0 {
		*i = def
	}
}

// fillDefaults writes every default into s so that zero means zero from here on.
func (s *Scenario) fillDefaults() {
	if _, overridden := s.overrides["time_scale"]; s.TimeScale == 0 && !overridden {
		s.TimeScale = 1
	}
	setDur(&s.ScheduleLagBound, DefaultScheduleLagBound)
	setDur(&s.Settle, DefaultSettle)
	if s.Target.Embedded() {
		setInt(&s.Target.Nodes, 1)
		s.Target.fillGatewayDefaults()
	}
	if s.Model.Kind == "" {
		s.Model.Kind = ModelClosed
	}
	for i := range s.Cohorts {
		c := &s.Cohorts[i]
		if c.SourceIPs == "" {
			c.SourceIPs = DefaultSourceIPs
		}
		b := &c.Behaviour
		setInt(&b.Rooms.PerClient, 1)
		if b.Rooms.Prefix == "" {
			b.Rooms.Prefix = DefaultRoomPrefix
		}
		setInt(&b.TabsPerUser, 1)
		b.Reconnect.withDefaults(fmt.Sprintf("cohorts[%d].behaviour.reconnect", i), s.pos)
		if b.Exit.Kind == "" {
			b.Exit.Kind = ExitClose
		}
		if b.Misbehave.ReorderEvery > 0 {
			setInt(&b.Misbehave.ReorderWindow, 1)
		}
	}
	for i := range s.Phases {
		if s.Phases[i].Name == "" {
			s.Phases[i].Name = string(s.Phases[i].Kind)
		}
	}
	proxies := s.proxies()
	for i := range s.Timeline {
		e := &s.Timeline[i]
		if e.Proxy == "" && len(proxies) == 1 && (strings.HasPrefix(string(e.Action), "toxic-") || strings.HasPrefix(string(e.Action), "proxy-")) {
			e.Proxy = proxies[0]
		}
		if e.Action == ActionToxicAdd {
			if e.Toxic == "" {
				e.Toxic = string(e.Type)
			}
			if e.Stream == "" {
				e.Stream = "downstream"
			}
			if e.Toxicity == 0 {
				e.Toxicity = 1
			}
		}
		if p := e.Behaviour; p != nil {
			if p.Reconnect != nil {
				p.Reconnect.withDefaults(fmt.Sprintf("timeline[%d].behaviour.reconnect", i), s.pos)
			}
			if p.Exit != nil && p.Exit.Kind == "" {
				p.Exit.Kind = ExitClose
			}
		}
	}
	for i := range s.SLOs {
		o := &s.SLOs[i]
		if m, ok := LookupMetric(o.Metric); ok && o.Agg == "" {
			o.Agg = m.DefaultAgg()
		}
		if o.Name == "" {
			o.Name = o.defaultName()
		}
	}
}

func (o SLO) defaultName() string {
	n := o.Metric
	if o.Label != "" {
		n += "{" + o.Label + "}"
	}
	return n + " " + string(o.Agg)
}

// parseBounds reads the bounds written in the file, now that the metrics (and so the units) are
// known.
func (s *Scenario) parseBounds() Errors {
	var errs Errors
	for i := range s.SLOs {
		o := &s.SLOs[i]
		if o.Bound.text == "" {
			continue
		}
		m, ok := LookupMetric(o.Metric)
		if !ok {
			continue // reported as an unknown metric
		}
		agg := o.Agg
		if agg == "" {
			agg = m.DefaultAgg()
		}
		b, err := parseBound(o.Bound.text, aggUnit(m.Unit, agg))
		if err != nil {
			errs = append(errs, s.errAt(fmt.Sprintf("slos[%d].bound", i), err.Error()))
			continue
		}
		o.Bound = b
	}
	return errs
}

// Proxies lists the proxy names the cohorts are routed through, sorted.
func (s *Scenario) proxies() []string {
	var out []string
	for _, c := range s.Cohorts {
		if c.Proxy != "" && !slices.Contains(out, c.Proxy) {
			out = append(out, c.Proxy)
		}
	}
	slices.Sort(out)
	return out
}

// Clients returns the number of clients of every cohort together.
func (s *Scenario) Clients() int {
	n := 0
	for _, c := range s.Cohorts {
		n += max(c.Count, 0)
	}
	return n
}

// PhaseDurations returns how long each phase runs: a closed-model ramp or ramp-down given by rate
// takes the time its connections need at that rate (capped by its duration when set).
func (s *Scenario) PhaseDurations() []time.Duration {
	out := make([]time.Duration, len(s.Phases))
	connected := 0
	total := s.Clients()
	for i, p := range s.Phases {
		d := p.Duration
		if s.Model.Kind != ModelOpen {
			var moved int
			switch p.Kind {
			case PhaseRamp:
				target := total
				if p.Target > 0 {
					target = min(p.Target, total)
				}
				moved = max(target-connected, 0)
				connected = target
			case PhaseRampDown:
				moved = connected
				connected = 0
			}
			if p.Kind != PhaseHold && p.Rate > 0 && !math.IsInf(p.Rate, 0) {
				byRate := time.Duration(float64(moved) / p.Rate * float64(time.Second))
				if d == 0 || byRate < d {
					d = byRate
				}
			}
		}
		out[i] = max(d, 0)
	}
	return out
}

// Duration returns the planned length of the run: the phases one after the other.
func (s *Scenario) Duration() time.Duration {
	var t time.Duration
	for _, d := range s.PhaseDurations() {
		t += d
	}
	return t
}
