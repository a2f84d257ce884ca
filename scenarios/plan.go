package scenarios

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/refserver"
)

// Plan converts the scenario's population and schedule into the load generator's plan: cohorts,
// phases, model, seed, schedule-lag bound and settle time, field by field. The timeline and the SLOs
// are not part of a plan: the run drives the timeline (chaos) and grades the SLOs itself.
//
// It fails for what the scenario can say but the load generator cannot do yet (a reorder window
// above 1), and with the plan's own validation error (loadgen.Plan.Validate).
func (s *Scenario) Plan() (loadgen.Plan, error) {
	var errs []error
	p := loadgen.Plan{
		Name:             s.Name,
		Seed:             s.Seed,
		Model:            loadgen.Model{Kind: loadgen.ModelKind(s.Model.Kind), ArrivalRate: s.Model.ArrivalRate, Lifetime: s.Model.Lifetime},
		ScheduleLagBound: s.ScheduleLagBound,
		Settle:           s.Settle,
	}
	for i, c := range s.Cohorts {
		b := c.Behaviour
		if b.Misbehave.ReorderWindow > 1 {
			errs = append(errs, fmt.Errorf("cohorts[%d].behaviour.misbehave.reorder_window %d: the load generator holds a frame back by one only",
				i, b.Misbehave.ReorderWindow))
		}
		p.Cohorts = append(p.Cohorts, loadgen.Cohort{
			Name:      c.Name,
			Count:     c.Count,
			SourceIPs: c.SourceIPs,
			Proxy:     c.Proxy != "",
			Behaviour: loadgen.Behaviour{
				RoomsPerClient:    b.Rooms.PerClient,
				RoomCount:         b.Rooms.Count,
				RoomSize:          b.Rooms.Size,
				RoomPrefix:        b.Rooms.Prefix,
				SendInterval:      b.SendInterval,
				PayloadSize:       b.Payload,
				HeartbeatInterval: b.Heartbeat,
				PingInterval:      b.WSPing,
				ReadTimeout:       b.ReadTimeout,
				Reconnect:         b.Reconnect.LoadgenPolicy(),
				Resume:            b.Resume,
				Exit:              loadgen.Exit{Kind: loadgen.ExitKind(b.Exit.Kind), After: b.Exit.After, Jitter: b.Exit.Jitter, Share: b.Exit.Share},
				TabsPerUser:       b.TabsPerUser,
				Misbehave: loadgen.Misbehaviour{
					SwapEvery:       b.Misbehave.ReorderEvery,
					DropEvery:       b.Misbehave.DropEvery,
					DupeEvery:       b.Misbehave.DupeEvery,
					IgnorePings:     b.Misbehave.IgnorePings,
					HeartbeatFactor: b.Misbehave.HeartbeatFactor,
				},
			},
		})
	}
	for _, ph := range s.Phases {
		p.Phases = append(p.Phases, loadgen.Phase{
			Name: ph.Name, Kind: loadgen.PhaseKind(ph.Kind), Rate: ph.Rate, Target: ph.Target, Duration: ph.Duration,
		})
	}
	if err := p.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return p, fmt.Errorf("scenarios: %s: %w", s.Name, err)
	}
	return p, nil
}

// LoadgenPolicy is the reconnect policy in the load generator's terms.
func (r Reconnect) LoadgenPolicy() loadgen.ReconnectPolicy {
	jitter := r.Jitter
	if r.Policy == PolicyBackoff && jitter == 0 {
		jitter = -1 // loadgen: zero means its default, negative means none
	}
	return loadgen.ReconnectPolicy{
		Kind:        loadgen.PolicyKind(r.Policy),
		Initial:     r.Initial,
		Multiplier:  r.Multiplier,
		Max:         r.Max,
		Jitter:      jitter,
		Steps:       append([]time.Duration(nil), r.Steps...),
		MaxAttempts: r.MaxAttempts,
	}
}

// EmbeddedOptions converts an embedded target into the options that start the reference gateway:
// node count, flaws and every gateway setting (already time-scaled). It fails for a URL target and
// for settings the gateway refuses (Config.Validate).
func (s *Scenario) EmbeddedOptions() (loadgen.EmbeddedOptions, error) {
	t := s.Target
	if !t.Embedded() {
		return loadgen.EmbeddedOptions{}, fmt.Errorf("scenarios: %s: the target is url %s, not the embedded gateway", s.Name, t.URL)
	}
	var errs []error
	flaws, err := refserver.ParseFlaws(strings.Join(t.Flaws, ","))
	if err != nil {
		errs = append(errs, err)
	}
	cfg := refserver.Config{
		HeartbeatInterval: t.HeartbeatInterval,
		HeartbeatTimeout:  t.HeartbeatTimeout,
		FlawSweepInterval: t.FlawSweepInterval,
		HelloTimeout:      t.HelloTimeout,
		WriteTimeout:      t.WriteTimeout,
		ReorderTimeout:    t.ReorderTimeout,
		HistoryTTL:        t.HistoryTTL,
		ReconnectWindow:   t.ReconnectWindow,
		MaxConnsPerClient: t.MaxConnsPerClient,
		MaxConnsPerIP:     t.MaxConnsPerIP,
		MaxConns:          t.MaxConns,
		SendQueue:         t.SendQueue,
		ReorderWindow:     t.ReorderWindow,
		HistorySize:       t.HistorySize,
		DrainSpread:       t.DrainSpread,
		SessionTTL:        t.SessionTTL,
		AuthLatency:       t.AuthLatency,
		AuthFailRate:      t.AuthFailureRate,
		AuthCacheTTL:      t.AuthCacheTTL,
		AcceptRate:        t.AcceptRate,
		AcceptBurst:       t.AcceptBurst,
		StormAlertRate:    t.StormAlertRate,
		StormAlertBurst:   t.StormAlertBurst,
		Flaws:             flaws,
		Dev:               true,
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	opts := loadgen.EmbeddedOptions{Nodes: t.Nodes, Config: cfg}
	if err := errors.Join(errs...); err != nil {
		return opts, fmt.Errorf("scenarios: %s: %w", s.Name, err)
	}
	return opts, nil
}
