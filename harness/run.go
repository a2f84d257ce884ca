package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/squall-dev/squall/chaos"
	"github.com/squall-dev/squall/internal/version"
	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/agent"
	"github.com/squall-dev/squall/loadgen/telemetry"
	"github.com/squall-dev/squall/loadgen/worker"
	"github.com/squall-dev/squall/reports"
	"github.com/squall-dev/squall/scenarios"
)

// ErrInterrupted is returned (wrapped, with the cause) when the run's context was cancelled before
// the plan ended: the clients were closed and the result holds what was measured until then.
var ErrInterrupted = errors.New("interrupted")

// Run runs spec end to end and returns its result (see the package documentation). The result is
// returned also when the run failed or was interrupted (with the error), so that it can be written;
// it is nil only when the run could not start.
func Run(ctx context.Context, spec Spec, o Options) (*reports.Result, error) {
	if err := o.validate(spec); err != nil {
		return nil, err
	}
	r := &runner{spec: spec, o: o}
	defer r.release()
	return r.run(ctx)
}

// runner is one Run: what it started, to be released in reverse order.
type runner struct {
	spec     Spec
	o        Options
	releases []func()
}

func (r *runner) release() {
	for _, f := range slices.Backward(r.releases) {
		f()
	}
}

func (r *runner) onRelease(f func()) { r.releases = append(r.releases, f) }

// part is one worker's share of the plan and where it connects.
type part struct {
	plan   loadgen.Plan
	target worker.JobTarget
	route  int // index into the routes
}

func (r *runner) run(ctx context.Context) (*reports.Result, error) {
	spec, o := r.spec, r.o
	logger := o.Logger
	if s := spec.Scenario; s != nil {
		logger = logger.With("scenario", s.Name)
	}

	// The plan, its routes and the fault timeline.
	var (
		plan   loadgen.Plan
		routes []scenarios.Route
		tl     chaos.Timeline
		err    error
	)
	if s := spec.Scenario; s != nil {
		if plan, routes, err = s.Plan(); err != nil {
			return nil, usageErr(err)
		}
		if tl, err = s.ChaosTimeline(); err != nil {
			return nil, usageErr(err)
		}
	} else {
		plan = spec.Plan
		if err := plan.Validate(); err != nil {
			return nil, usageErr(err)
		}
		routes = []scenarios.Route{{Cohorts: seq(len(plan.Cohorts))}}
	}
	proxiedClients := 0
	for _, rt := range routes {
		if rt.Proxy != "" {
			proxiedClients += plan.Part(rt.Cohorts).Clients()
		}
	}
	if len(o.Agents) > 0 && proxiedClients > 0 {
		return nil, usagef("agents: scenario %s routes cohorts through a chaos proxy in this process; run it on local workers", spec.File)
	}

	// Remote agents are checked first: one that rejects the token is a usage error, found before
	// anything starts.
	token := o.Token
	if token == "" {
		token = newToken()
	}
	var remotes []*agent.Remote
	if len(o.Agents) > 0 {
		if remotes, err = dialAgents(ctx, o.Agents, token, o); err != nil {
			return nil, err
		}
		if o.ShutdownAgents {
			r.onRelease(func() { shutdownAgents(context.WithoutCancel(ctx), remotes, o) })
		}
	}

	// The target.
	tgt, err := openTarget(ctx, spec, o)
	if err != nil {
		return nil, err
	}
	r.onRelease(func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if cerr := tgt.close(cctx); cerr != nil {
			logger.Warn("closing the target", "err", cerr)
		}
	})

	// The chaos proxies the cohorts are routed through, and the runner of the fault timeline.
	proxied, proxies, overhead, err := r.openProxies(ctx, routes, tgt)
	if err != nil {
		return nil, err
	}
	var fl *faults
	if spec.Scenario != nil {
		runner := &chaos.Runner{Nodes: tgt.nodes, Containers: o.Containers, Logger: logger.With("component", "chaos"), StepTimeout: time.Minute,
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
			return nil, usageErr(fmt.Errorf("scenario %s: %w", spec.File, err))
		}
		fl = &faults{runner: runner, tl: tl}
	}

	// Every route's address answers before the run starts.
	if err := probeTarget(ctx, tgt.target); err != nil {
		return nil, err
	}
	for name, pt := range proxied {
		if err := probeTarget(ctx, pt); err != nil {
			return nil, fmt.Errorf("through proxy %s: %w", name, err)
		}
	}

	// The plan's parts: the direct route split over as many workers as it needs, each proxied route
	// in one part of its own (a proxy carries a cohort, not a crowd).
	var parts []part
	directWorkers := 0
	for ri, rt := range routes {
		p := plan.Part(rt.Cohorts)
		if rt.Proxy != "" {
			parts = append(parts, part{plan: p.Split(1)[0], target: worker.JobTarget{Target: proxied[rt.Proxy]}, route: ri})
			continue
		}
		switch {
		case len(o.Agents) > 0:
			directWorkers = len(o.Agents)
		case o.Workers > 0:
			directWorkers = o.Workers
		default:
			directWorkers = workersFor(p, o.FDsPerProcess)
		}
		for _, q := range p.Split(directWorkers) {
			parts = append(parts, part{plan: q, target: worker.JobTarget{Target: tgt.target}, route: ri})
		}
	}
	// The workers, in the parts' order: the direct route comes first (scenarios.Scenario.Plan), so
	// its parts take the spawned workers.
	if remotes == nil {
		// Proxied clients cost this process their socket and the proxy's two.
		localFDs := tgt.localFDs + 3*proxiedClients
		inProcess := directWorkers <= 1 && plan.Clients()+localFDs+64 <= o.FDsPerProcess
		n := 0
		if !inProcess && directWorkers > 0 {
			rs, release, err := spawnWorkers(ctx, directWorkers, token, o)
			if err != nil {
				return nil, err
			}
			r.onRelease(release)
			remotes, n = append(remotes, rs...), len(rs)
		}
		for i := range parts[n:] {
			rm, stop, err := inProcessAgent(ctx, token, o)
			if err != nil {
				return nil, err
			}
			r.onRelease(stop)
			remotes = append(remotes, rm)
			parts[n+i].target.LocalFDs = tgt.localFDs
		}
	}

	res, runErr := r.execute(ctx, plan, parts, remotes, tgt, proxied, fl)
	if res == nil {
		return nil, runErr
	}
	if overhead != nil {
		ro := reports.OverheadFrom(*overhead)
		res.ProxyOverhead = &ro
	}
	if s := spec.Scenario; s != nil {
		res.Scenario = &reports.Scenario{File: spec.File, Name: s.Name, Description: s.Description, TimeScale: s.TimeScale,
			Flaws: s.Target.Flaws, Source: string(spec.Source)}
		if runErr == nil {
			src := scenarios.ResultSource{Result: res, Scenario: s, ServerMemory: tgt.ownProcess,
				CohortStats: cohortStats(res, plan, routes, parts)}
			res.SLOs = scenarios.ReportVerdicts(scenarios.Grade(s.SLOs, src))
			if s.StepRamp() { // a capacity run: each step graded on its own, and the knee
				res.StepRamp = scenarios.StepRampOf(scenarios.Steps(s, res))
			}
		}
	} else if runErr == nil {
		// A plan without a scenario is graded too, so that it cannot pass while its clients failed.
		src := scenarios.ResultSource{Result: res, ServerMemory: tgt.ownProcess}
		res.SLOs = scenarios.ReportVerdicts(scenarios.Grade(scenarios.PlanSLOs(plan), src))
	}
	res.Diagnosis = reports.Diagnose(res)
	return res, runErr
}

// openProxies creates a chaos proxy in front of the gateway for every proxied route (in the
// embedded Toxiproxy, or the scenario's external one) and measures what a proxy adds to a round
// trip. It returns each proxy's endpoint by name.
func (r *runner) openProxies(ctx context.Context, routes []scenarios.Route, tgt *openedTarget) (map[string]loadgen.Target, chaos.Proxies, *chaos.Overhead, error) {
	s := r.spec.Scenario
	if s == nil {
		return nil, nil, nil, nil
	}
	external := s.Target.Toxiproxy != ""
	routed := slices.ContainsFunc(routes, func(rt scenarios.Route) bool { return rt.Proxy != "" })
	if !routed && external {
		// The timeline may still act on proxies of the external Toxiproxy that no cohort uses
		// (a gateway node's link to its Redis).
		u, err := url.Parse(s.Target.Toxiproxy)
		if err != nil {
			return nil, nil, nil, usagef("target.toxiproxy %q: %v", s.Target.Toxiproxy, err)
		}
		return nil, chaos.NewExternal(u.Host, chaos.ExternalOptions{}), nil, nil
	}
	if !routed {
		return nil, nil, nil, nil
	}
	var proxies chaos.Proxies
	if external {
		u, err := url.Parse(s.Target.Toxiproxy)
		if err != nil {
			return nil, nil, nil, usagef("target.toxiproxy %q: %v", s.Target.Toxiproxy, err)
		}
		proxies = chaos.NewExternal(u.Host, chaos.ExternalOptions{})
	} else {
		emb := chaos.NewEmbedded(r.o.Logger.With("component", "toxiproxy"), chaos.EmbeddedOptions{PreserveSourceIP: true})
		r.onRelease(func() { _ = emb.Close() })
		proxies = emb
	}
	proxied := map[string]loadgen.Target{}
	for _, rt := range routes {
		if rt.Proxy == "" {
			continue
		}
		info, err := proxies.Proxy(ctx, rt.Proxy, "127.0.0.1:0", tgt.upstream())
		if err != nil {
			return nil, nil, nil, fmt.Errorf("proxy %s: %w", rt.Proxy, err)
		}
		if external {
			name := rt.Proxy
			r.onRelease(func() { _ = proxies.DeleteProxy(context.WithoutCancel(ctx), name) })
		}
		proxied[rt.Proxy] = proxiedTarget(tgt.target, info.Listen)
	}
	var overhead *chaos.Overhead
	if o, err := chaos.MeasureOverhead(ctx, proxies, 2000); err != nil {
		r.o.Logger.Warn("measuring the proxy's overhead", "err", err)
	} else {
		overhead = &o
	}
	return proxied, proxies, overhead, nil
}

// execute runs the parts on the remotes while the fault timeline runs and builds the result. The
// result is returned also when the run failed or was interrupted, so that it can be written.
func (r *runner) execute(ctx context.Context, plan loadgen.Plan, parts []part, remotes []*agent.Remote, tgt *openedTarget,
	proxied map[string]loadgen.Target, fl *faults) (*reports.Result, error) {
	o := r.o
	n := len(remotes)
	if len(parts) != n {
		return nil, fmt.Errorf("%d plan parts for %d workers", len(parts), n)
	}
	lead := time.Second + time.Duration(n)*100*time.Millisecond
	startAt := time.Now().Add(lead).Truncate(time.Millisecond)
	plan.StartAt = startAt
	runID := newToken()[:8]
	jobs := make([]agent.Job, n)
	for i, p := range parts {
		p.plan.StartAt = startAt
		pj, err := json.Marshal(p.plan)
		if err != nil {
			return nil, fmt.Errorf("encoding the plan: %w", err)
		}
		tj, err := json.Marshal(p.target)
		if err != nil {
			return nil, fmt.Errorf("encoding the target: %w", err)
		}
		jobs[i] = agent.Job{ID: fmt.Sprintf("%s-%d", runID, i), Worker: i, Workers: n, StartAt: startAt, Plan: pj, Target: tj}
	}

	res := reports.New(plan.Name, plan.Seed)
	res.Tool = "loadgen " + o.Version
	_ = res.SetPlan(plan)
	eps := tgt.target.Endpoints
	res.Target = reports.Target{Kind: tgt.kind, Nodes: len(eps), OwnProcess: tgt.ownProcess}
	for _, ep := range eps {
		res.Target.URLs = append(res.Target.URLs, ep.URL)
		if ep.MetricsURL != "" {
			res.Target.MetricURLs = append(res.Target.MetricURLs, ep.MetricsURL)
		}
	}

	if o.OnStart != nil {
		st := Start{Name: plan.Name, Clients: plan.Clients(), Workers: n, Target: tgt.kind, URLs: res.Target.URLs, Plan: plan, At: startAt,
			Resolved: tgt.target.Describe()}
		for name, pt := range proxied {
			if st.Proxies == nil {
				st.Proxies = map[string]string{}
			}
			st.Proxies[name] = pt.Endpoints[0].URL
		}
		o.OnStart(st)
	}

	// Telemetry runs beside the workers and ends after them.
	// Targets run on this machine (the embedded gateway, or a loopback URL): the kernel's TCP memory
	// is theirs and the clients'.
	scraper := telemetry.New(telemetry.Config{URLs: res.Target.MetricURLs, Start: startAt, Kernel: len(o.Agents) == 0}, o.Logger)
	telCtx, stopTel := context.WithCancel(context.WithoutCancel(ctx))
	telDone := make(chan struct{})
	go func() {
		defer close(telDone)
		scraper.Run(telCtx)
	}()

	ctrl := &agent.Controller{Logger: o.Logger, OnUpdate: o.OnUpdate, StopGrace: time.Minute, LostAfter: o.LostAfter}
	res.Started = startAt
	if fl != nil {
		fl.start(ctx, startAt, o.OnNote)
	}
	out, runErr := ctrl.Run(ctx, remotes, jobs)
	if fl != nil {
		res.Events = append(res.Events, fl.stop()...)
	}
	stopTel()
	<-telDone
	res.Ended = time.Now()
	res.Duration = res.Ended.Sub(res.Started)
	res.Telemetry = reports.TelemetryFrom(scraper.Result())
	res.Env.Loadgen = reports.Build{Name: "loadgen", Version: version.Version, Commit: version.Commit(), GoVersion: runtime.Version()}
	res.Env.Gateway = gatewayBuild(res, tgt.kind)

	res.Stats = reports.StatsFrom(out.Merged)
	var serr error
	if res.Series, serr = reports.SeriesFrom(out.Series); serr != nil {
		o.Logger.Warn("the time series lost histograms", "err", serr)
	}
	for _, ev := range out.Events {
		res.Events = append(res.Events, reports.Event{At: ev.At, Kind: ev.Kind, Message: strings.TrimSpace(ev.Name + " " + ev.Detail), Worker: ev.Worker})
		if ev.Kind == reports.EventPhase && ev.Worker == 0 {
			if k := len(res.Phases); k > 0 && res.Phases[k-1].End.IsZero() {
				res.Phases[k-1].End = ev.At
			}
			res.Phases = append(res.Phases, reports.Phase{Name: ev.Name, Start: ev.At})
		}
	}
	if k := len(res.Phases); k > 0 && res.Phases[k-1].End.IsZero() {
		res.Phases[k-1].End = res.Ended
	}
	slices.SortStableFunc(res.Events, func(a, b reports.Event) int { return a.At.Compare(b.At) })
	lost := 0
	for i, w := range out.Workers {
		rw := reports.Worker{Index: w.Index, Addr: w.Addr, PID: w.PID, Clients: parts[i].plan.Clients(), Status: w.Status, Error: w.Err,
			Kind: workerKind(remotes[i], len(o.Agents) > 0), Transport: remotes[i].Transport()}
		if rw.Transport == agent.TransportInsecure {
			res.Events = append(res.Events, reports.Event{At: res.Started, Kind: reports.EventWarning, Worker: w.Index,
				Message: fmt.Sprintf("worker %d: agent %s spoken to in plain HTTP off loopback (insecure): the token and its job travelled in clear", w.Index, w.Addr)})
		}
		if rw.Summary, serr = reports.DecodeWorkerSummary(w.Summary); serr != nil {
			o.Logger.Warn("worker summary", "worker", w.Index, "err", serr)
		}
		if w.Snapshot.Hists != nil || w.Snapshot.Counters != nil {
			s := reports.StatsFrom(w.Snapshot)
			rw.Stats = &s
		}
		if w.Status != agent.StatusOK {
			lost++
		}
		res.Workers = append(res.Workers, rw)
	}
	slices.SortStableFunc(res.Events, func(a, b reports.Event) int { return a.At.Compare(b.At) })
	res.Judge(plan.LagBound())

	switch {
	case runErr != nil:
		res.StopReason = reports.StopFailed
		res.Error = oneLine(runErr.Error())
		return res, runErr
	case ctx.Err() != nil:
		res.StopReason = reports.StopInterrupted
		return res, fmt.Errorf("%w (%v): the clients were closed and the result holds what was measured", ErrInterrupted, context.Cause(ctx))
	case lost == n:
		res.StopReason = reports.StopAllLost
		res.Error = oneLine(out.Workers[0].Err)
		return res, fmt.Errorf("every worker failed: %s", out.Workers[0].Err)
	default:
		res.StopReason = reports.StopCompleted
		return res, nil
	}
}

// workerKind says what ran a worker's part: an agent the run was given, a local worker process
// it spawned, or this process.
func workerKind(r *agent.Remote, agents bool) string {
	switch {
	case agents:
		return reports.WorkerAgent
	case r.Spawned():
		return reports.WorkerSpawned
	default:
		return reports.WorkerInProcess
	}
}

// gatewayBuild is the gateway's build as its /metrics says (ws_build_info); for the embedded
// gateway that says nothing (no telemetry), loadgen's own build, which it is part of. Nodes of
// different builds are named together.
func gatewayBuild(res *reports.Result, kind string) *reports.Build {
	for _, p := range res.Telemetry.Points {
		bs := telemetry.BuildsOf(p.Values)
		if len(bs) == 0 {
			continue
		}
		b := &reports.Build{Name: "refserver", Version: bs[0].Version, Commit: bs[0].Commit, GoVersion: bs[0].GoVersion}
		for _, o := range bs[1:] {
			b.Version += " / " + o.Version
			b.Commit += " / " + o.Commit
		}
		return b
	}
	if kind == "embedded" {
		b := res.Env.Loadgen
		b.Name = "refserver (embedded)"
		return &b
	}
	return nil
}

// cohortStats collects the client figures of every cohort that ran alone in its route, from the
// snapshots of that route's workers (a route with a lost worker, or whose figures do not merge, is
// left out: its figures are incomplete).
func cohortStats(res *reports.Result, plan loadgen.Plan, routes []scenarios.Route, parts []part) map[string]reports.Stats {
	out := map[string]reports.Stats{}
	for ri, rt := range routes {
		if len(rt.Cohorts) != 1 {
			continue
		}
		var snaps []reports.Stats
		complete := true
		for i, w := range res.Workers {
			if i >= len(parts) || parts[i].route != ri {
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
				out[plan.Cohorts[rt.Cohorts[0]].Name] = merged
			}
		}
	}
	return out
}

// oneLine flattens an error message to one line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, "\r", "")
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
