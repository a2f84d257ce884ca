package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/squall-dev/squall/chaos"
	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/agent"
	"github.com/squall-dev/squall/refserver/protocol"
	"github.com/squall-dev/squall/reports"
	"github.com/squall-dev/squall/scenarios"
)

// planFlags shape the built-in plan; a scenario file sets all of them itself.
var planFlags = []string{"clients", "rooms", "ramp", "hold", "send-interval", "payload", "seed", "target", "nodes", "secret", "lag-bound"}

// route is the cohorts that reach the gateway one way: directly (proxy "") or through one chaos
// proxy. Each route runs as its own plan part(s), so that its clients dial its own address.
type route struct {
	proxy   string
	cohorts []int // indexes into the plan's cohorts
}

// runScenario is `loadgen run FILE`: load the scenario (with the command line's overrides), start
// its target and proxies, run the plan while the fault timeline runs, grade the SLOs, write the
// result and print the verdict table.
func runScenario(ctx context.Context, e *env, f runFlags, file string, flags *pflag.FlagSet) (err error) {
	if err := f.validate(); err != nil {
		return err
	}
	for _, name := range planFlags {
		if flags.Changed(name) {
			return usagef("--%s shapes the built-in plan; scenario %s sets its own (edit the file)", name, file)
		}
	}
	var opts []scenarios.Option
	if flags.Changed("time-scale") {
		opts = append(opts, scenarios.WithTimeScale(f.timeScale))
	}
	if flags.Changed("flaw") {
		var fl []string
		for _, s := range strings.Split(f.flaws, ",") {
			if s = strings.TrimSpace(s); s != "" {
				fl = append(fl, s)
			}
		}
		opts = append(opts, scenarios.WithFlaws(fl))
	}
	if flags.Changed("out") {
		opts = append(opts, scenarios.WithOut(f.out))
	}
	s, err := scenarios.Load(file, opts...)
	if err != nil {
		var es scenarios.Errors
		if errors.As(err, &es) {
			for _, p := range es {
				fmt.Fprintln(e.stderr, p.Error())
			}
			what := "1 problem"
			if len(es) != 1 {
				what = fmt.Sprintf("%d problems", len(es))
			}
			return usagef("scenario %s is invalid (%s, listed above)", file, what)
		}
		return usageErr(err)
	}
	source, _ := os.ReadFile(file)
	logger := newLogger(e.stderr, f.verbose).With("scenario", s.Name)

	plan, routes, err := scenarioPlan(s)
	if err != nil {
		return usageErr(err)
	}
	tl, err := s.ChaosTimeline()
	if err != nil {
		return usageErr(err)
	}

	out := s.Out
	if out == "" {
		out = filepath.Join("out", s.Name)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return usagef("--out %s: %v", out, err)
	}
	outPath := filepath.Join(out, reports.FileName)

	// The target.
	tgt, upstream, nodes, err := openScenarioTarget(ctx, e, f, s, logger)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if cerr := tgt.close(cctx); cerr != nil {
			logger.Warn("closing the target", "err", cerr)
		}
	}()

	// The chaos proxies the cohorts are routed through.
	var proxies chaos.Proxies
	proxied := map[string]loadgen.Endpoint{}
	if len(routes) > 1 || routes[0].proxy != "" {
		if s.Target.Toxiproxy != "" {
			u, _ := url.Parse(s.Target.Toxiproxy)
			proxies = chaos.NewExternal(u.Host, chaos.ExternalOptions{})
		} else {
			emb := chaos.NewEmbedded(logger.With("component", "toxiproxy"), chaos.EmbeddedOptions{PreserveSourceIP: true})
			defer emb.Close()
			proxies = emb
		}
		for _, r := range routes {
			if r.proxy == "" {
				continue
			}
			info, err := proxies.Proxy(ctx, r.proxy, "127.0.0.1:0", upstream)
			if err != nil {
				return harnessErr(fmt.Errorf("proxy %s: %w", r.proxy, err))
			}
			if s.Target.Toxiproxy != "" {
				defer func() { _ = proxies.DeleteProxy(context.WithoutCancel(ctx), r.proxy) }()
			}
			proxied[r.proxy] = loadgen.Endpoint{URL: "ws://" + info.Listen + tgtPath(tgt)}
		}
	}
	var overhead *reports.ProxyOverhead
	if proxies != nil {
		o, err := chaos.MeasureOverhead(ctx, proxies, 2000)
		if err != nil {
			logger.Warn("measuring the proxy's overhead", "err", err)
		} else {
			ro := reports.OverheadFrom(o)
			overhead = &ro
		}
	}
	runner := &chaos.Runner{Nodes: nodes, Logger: logger.With("component", "chaos"), StepTimeout: time.Minute,
		// Behaviour switches travel in the plan (every worker applies them at the shared start
		// plus their time); the timeline's step only records the moment in the result.
		Handlers: map[chaos.Action]chaos.Handler{scenarios.ChaosBehaviour: {
			Params: []string{"cohort", "event"},
			Run:    func(context.Context, chaos.Step) error { return nil },
		}}}
	if proxies != nil {
		runner.Proxies = proxies
	}
	if err := runner.Validate(tl); err != nil {
		return usageErr(fmt.Errorf("scenario %s: %w", file, err))
	}

	// Every route's address answers before the run starts.
	direct := tgt.target.Endpoints()
	if err := probeTarget(ctx, tgt.target); err != nil {
		return harnessErr(err)
	}
	for _, r := range routes {
		if ep, ok := proxied[r.proxy]; ok {
			if err := probe(ctx, ep.URL, tgt.target.Secret()); err != nil {
				return harnessErr(fmt.Errorf("through proxy %s: %w", r.proxy, err))
			}
		}
	}

	// The plan's parts: the direct route split over as many workers as it needs, each proxied
	// route in one part of its own (a proxy carries a cohort, not a crowd).
	secret := string(tgt.target.Secret())
	var parts []loadgen.Plan
	var targets []targetSpec
	var routeOf []int // route index of each part
	directWorkers, proxiedClients := 0, 0
	for ri, r := range routes {
		p := planPart(plan, r.cohorts)
		if r.proxy != "" {
			parts = append(parts, p.Split(1)...)
			routeOf = append(routeOf, ri)
			targets = append(targets, targetSpec{Endpoints: []loadgen.Endpoint{proxied[r.proxy]}, Secret: secret})
			proxiedClients += p.Clients()
			continue
		}
		directWorkers = f.workers
		if len(f.agents) > 0 {
			directWorkers = len(f.agents)
		} else if directWorkers == 0 {
			directWorkers = workersFor(p, f.perProcess)
		}
		for _, q := range p.Split(directWorkers) {
			parts = append(parts, q)
			routeOf = append(routeOf, ri)
			targets = append(targets, targetSpec{Endpoints: direct, Secret: secret})
		}
	}
	if len(f.agents) > 0 && proxiedClients > 0 {
		return usagef("--agents: scenario %s routes cohorts through a chaos proxy in this process; run it on local workers", file)
	}

	// The workers, in the parts' order (direct parts first).
	token := f.token
	if token == "" {
		token = newToken()
	}
	var remotes []*agent.Remote
	var releases []func()
	defer func() {
		for _, r := range slices.Backward(releases) {
			r()
		}
	}()
	switch {
	case len(f.agents) > 0:
		if remotes, err = dialAgents(ctx, f.agents, token); err != nil {
			return err
		}
	default:
		// Proxied clients cost this process their socket and the proxy's two.
		localFDs := tgt.inProcessFDs() + 3*proxiedClients
		inProcess := directWorkers <= 1 && plan.Clients()+localFDs+64 <= f.perProcess
		n := 0
		if !inProcess && directWorkers > 0 {
			rs, err := agent.Spawn(ctx, directWorkers, agent.SpawnOptions{Token: token, Logger: logger, Args: workerArgs(f)})
			if err != nil {
				return harnessErr(fmt.Errorf("starting %d workers: %w", directWorkers, err))
			}
			releases = append(releases, func() { agent.Release(context.Background(), rs...) })
			remotes, n = append(remotes, rs...), len(rs)
		}
		for range parts[n:] {
			r, stop, err := inProcessAgent(ctx, token, logger)
			if err != nil {
				return harnessErr(err)
			}
			releases = append(releases, stop)
			remotes = append(remotes, r)
		}
	}

	fl := &faults{runner: runner, tl: tl}
	res, runErr := execute(ctx, e, f, runSpec{plan: plan, parts: parts, targets: targets, kind: tgt.kind, endpoints: direct, faults: fl}, remotes, logger)
	if res == nil {
		return runErr
	}
	res.ProxyOverhead = overhead
	res.Scenario = &reports.Scenario{File: file, Name: s.Name, Description: s.Description, TimeScale: s.TimeScale, Flaws: s.Target.Flaws, Source: string(source)}

	var verdicts []scenarios.Verdict
	if runErr == nil {
		src := scenarios.ResultSource{Result: res, Scenario: s, ServerMemory: tgt.ownProcess,
			CohortStats: cohortStats(res, plan, routes, routeOf)}
		verdicts = scenarios.Grade(s.SLOs, src)
		res.SLOs = scenarios.ReportVerdicts(verdicts)
	}
	if werr := res.WriteJSON(outPath); werr != nil {
		return harnessErr(werr)
	}
	printSummary(e.stdout, res, outPath)
	if o := res.ProxyOverhead; o != nil {
		fmt.Fprintf(e.stdout, "  the chaos proxy adds %v p50, %v p99 to a round trip (measured before the run; proxied cohorts' latencies include it)\n",
			o.AddedP50.Round(time.Microsecond), o.AddedP99.Round(time.Microsecond))
	}
	if runErr != nil {
		fmt.Fprintln(e.stdout, "SLOs not graded: the run did not complete")
		return runErr
	}
	fmt.Fprintln(e.stdout)
	if err := scenarios.WriteVerdicts(e.stdout, verdicts); err != nil {
		return harnessErr(err)
	}
	if s.StepRamp() { // a capacity run: each step graded on its own, and the knee
		fmt.Fprintln(e.stdout)
		if err := scenarios.WriteSteps(e.stdout, scenarios.Steps(s, res)); err != nil {
			return harnessErr(err)
		}
	}
	if code := scenarios.ExitCode(verdicts); code != scenarios.ExitOK {
		return &exitError{code, fmt.Errorf("scenario %s: SLO breached (result: %s)", s.Name, outPath)}
	}
	return nil
}

// cohortStats collects the client figures of every cohort that ran alone in its route, from the
// snapshots of that route's workers (a route with a lost worker, or with figures that do not merge,
// is left out: its figures are incomplete).
func cohortStats(res *reports.Result, plan loadgen.Plan, routes []route, routeOf []int) map[string]reports.Stats {
	out := map[string]reports.Stats{}
	for ri, r := range routes {
		if len(r.cohorts) != 1 {
			continue
		}
		var snaps []reports.Stats
		complete := true
		for i, w := range res.Workers {
			if i >= len(routeOf) || routeOf[i] != ri {
				continue
			}
			if w.Status != reports.WorkerOK || w.Stats == nil {
				complete = false
				break
			}
			snaps = append(snaps, *w.Stats)
		}
		if complete && len(snaps) > 0 {
			if merged, err := reports.MergeStats(snaps...); err == nil {
				out[plan.Cohorts[r.cohorts[0]].Name] = merged
			}
		}
	}
	return out
}

// scenarioPlan converts the scenario into the load generator's plan and its routes. Proxied
// cohorts are marked (Cohort.Proxy) and reach their proxy through the address their route's parts
// are given.
func scenarioPlan(s *scenarios.Scenario) (loadgen.Plan, []route, error) {
	cp := *s
	cp.Cohorts = slices.Clone(s.Cohorts)
	routes := []route{{proxy: ""}}
	for i := range cp.Cohorts {
		name := cp.Cohorts[i].Proxy
		cp.Cohorts[i].Proxy = ""
		k := slices.IndexFunc(routes, func(r route) bool { return r.proxy == name })
		if k < 0 {
			routes = append(routes, route{proxy: name})
			k = len(routes) - 1
		}
		routes[k].cohorts = append(routes[k].cohorts, i)
	}
	if len(routes[0].cohorts) == 0 {
		routes = routes[1:]
	}
	p, err := cp.Plan()
	if err != nil {
		return p, routes, err
	}
	for i := range p.Cohorts {
		// Marked, not routed by the runner: the route's parts dial the proxy's address.
		p.Cohorts[i].Proxy = s.Cohorts[i].Proxy != ""
	}
	if p.Switches, err = planSwitches(s, p); err != nil {
		return p, routes, err
	}
	return p, routes, p.Validate()
}

// planSwitches turns the timeline's behaviour switches into the plan's: each patch applies to the
// cohort's behaviour as the earlier switches left it.
func planSwitches(s *scenarios.Scenario, p loadgen.Plan) ([]loadgen.Switch, error) {
	cur := map[string]loadgen.Behaviour{}
	for _, c := range p.Cohorts {
		cur[c.Name] = c.Behaviour
	}
	idx := make([]int, 0, len(s.Timeline))
	for i, ev := range s.Timeline {
		if ev.Action == scenarios.ActionBehaviour && ev.Behaviour != nil {
			idx = append(idx, i)
		}
	}
	slices.SortStableFunc(idx, func(a, b int) int { return int(s.Timeline[a].At - s.Timeline[b].At) })
	var out []loadgen.Switch
	for _, i := range idx {
		ev := s.Timeline[i]
		b, ok := cur[ev.Cohort]
		if !ok {
			return nil, fmt.Errorf("scenarios: %s: timeline[%d]: unknown cohort %q", s.Name, i, ev.Cohort)
		}
		pt := ev.Behaviour
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
		if e := pt.Exit; e != nil {
			b.Exit = loadgen.Exit{Kind: loadgen.ExitKind(e.Kind), After: e.After, Jitter: e.Jitter, Share: e.Share}
		}
		if m := pt.Misbehave; m != nil {
			if m.ReorderWindow > 1 {
				return nil, fmt.Errorf("scenarios: %s: timeline[%d].behaviour.misbehave.reorder_window %d: the load generator holds a frame back by one only",
					s.Name, i, m.ReorderWindow)
			}
			b.Misbehave = loadgen.Misbehaviour{SwapEvery: m.ReorderEvery, DropEvery: m.DropEvery, DupeEvery: m.DupeEvery,
				IgnorePings: m.IgnorePings, HeartbeatFactor: m.HeartbeatFactor}
		}
		cur[ev.Cohort] = b
		b.Reconnect.Steps = slices.Clone(b.Reconnect.Steps)
		out = append(out, loadgen.Switch{At: ev.At, Cohort: ev.Cohort, Behaviour: b})
	}
	return out, nil
}

// planPart is the part of p made of the cohorts idx: rates and ramp targets are scaled by the
// part's share of the clients, so that the parts together run p's schedule.
func planPart(p loadgen.Plan, idx []int) loadgen.Plan {
	if len(idx) == len(p.Cohorts) {
		return p
	}
	q := p
	q.Cohorts = nil
	n := 0
	for _, i := range idx {
		q.Cohorts = append(q.Cohorts, p.Cohorts[i])
		n += p.Cohorts[i].Count
	}
	share := 0.0
	if total := p.Clients(); total > 0 {
		share = float64(n) / float64(total)
	}
	q.Phases = slices.Clone(p.Phases)
	for i := range q.Phases {
		q.Phases[i].Rate = p.Phases[i].Rate * share
		if t := p.Phases[i].Target; t > 0 {
			q.Phases[i].Target = max(1, int(math.Round(float64(t)*share)))
		}
	}
	q.Model.ArrivalRate = p.Model.ArrivalRate * share
	q.Switches = nil
	for _, sw := range p.Switches {
		if slices.ContainsFunc(q.Cohorts, func(c loadgen.Cohort) bool { return c.Name == sw.Cohort }) {
			q.Switches = append(q.Switches, sw)
		}
	}
	return q
}

// tgtPath is the WebSocket path of the target's first endpoint.
func tgtPath(t *openedTarget) string {
	eps := t.target.Endpoints()
	if len(eps) > 0 {
		if u, err := url.Parse(eps[0].URL); err == nil && u.Path != "" {
			return u.Path
		}
	}
	return protocol.PathWS
}

// openScenarioTarget starts the scenario's embedded gateway (or takes its URL) and returns it with
// the host:port proxies forward to and the nodes process faults act on.
func openScenarioTarget(ctx context.Context, e *env, f runFlags, s *scenarios.Scenario, logger *slog.Logger) (*openedTarget, string, map[string]chaos.Node, error) {
	if !s.Target.Embedded() {
		t, err := loadgen.ParseURLTarget(s.Target.URL)
		if err != nil {
			return nil, "", nil, usageErr(err)
		}
		t.MetricsURL = s.Target.MetricsURL
		u, _ := url.Parse(t.URL)
		return &openedTarget{target: t, kind: "url", ownProcess: true, close: func(context.Context) error { return nil }}, u.Host, nil, nil
	}
	opts, err := s.EmbeddedOptions()
	if err != nil {
		return nil, "", nil, usageErr(err)
	}
	opts.Logger = logger.With("component", "gateway")
	if f.verbose {
		opts.Stderr = e.stderr
	}
	// Every node runs in a process of its own: the gateway's memory in /metrics is then its alone
	// (an in-process node's would include the clients), its garbage collection and scheduling do
	// not show up as the generator's schedule lag, and a node can be paused (SIGSTOP).
	opts.Process = true
	emb, err := loadgen.StartEmbedded(ctx, opts)
	if err != nil {
		return nil, "", nil, harnessErr(fmt.Errorf("embedded gateway: %w", err))
	}
	nodes := map[string]chaos.Node{}
	for i, n := range emb.Nodes() {
		nodes[scenarios.NodeName(i)] = n
	}
	t := &openedTarget{target: emb, kind: "embedded", ownProcess: true, close: emb.Close}
	return t, emb.Nodes()[0].Addr(), nodes, nil
}

// faults runs a scenario's fault timeline beside the load: start it at the run's start instant,
// stop it when the load is over. Its goroutine is owned by start and ended by stop.
type faults struct {
	runner *chaos.Runner
	tl     chaos.Timeline

	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	events []chaos.Event
	err    error
}

// start runs the timeline from startAt; note is told about each step as it runs.
func (fl *faults) start(ctx context.Context, startAt time.Time, note func(string)) {
	ctx, fl.cancel = context.WithCancel(ctx)
	fl.done = make(chan struct{})
	fl.runner.OnEvent = func(ev chaos.Event) {
		if note != nil {
			note(fmt.Sprintf("fault at +%.1fs of the plan: %s", ev.Offset.Seconds(), faultText(ev)))
		}
	}
	go func() {
		defer close(fl.done)
		evs, err := fl.runner.Run(ctx, startAt, fl.tl)
		fl.mu.Lock()
		fl.events, fl.err = evs, err
		fl.mu.Unlock()
	}()
}

// stop ends the timeline (steps not yet run are dropped) and returns the steps that ran as result
// events.
func (fl *faults) stop() []reports.Event {
	if fl.cancel == nil {
		return nil
	}
	fl.cancel()
	<-fl.done
	fl.mu.Lock()
	defer fl.mu.Unlock()
	out := make([]reports.Event, 0, len(fl.events))
	for _, ev := range fl.events {
		f := reports.FaultFrom(ev)
		out = append(out, reports.Event{At: ev.Time, Kind: reports.EventFault, Message: faultText(ev), Fault: &f})
	}
	return out
}

// faultText is one line about a fault step: action, target, toxic and outcome.
func faultText(ev chaos.Event) string {
	var b strings.Builder
	b.WriteString(string(ev.Action))
	if t := ev.Params["toxic"]; t != "" {
		b.WriteString(" " + t)
		if typ := ev.Params["type"]; typ != "" && typ != t {
			b.WriteString(" (" + typ + ")")
		}
	}
	if ev.Target != "" {
		b.WriteString(" on " + ev.Target)
	}
	if ev.Error != "" {
		b.WriteString(": failed: " + ev.Error)
	}
	return b.String()
}
