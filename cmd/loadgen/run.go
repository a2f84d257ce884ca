package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/agent"
	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/loadgen/telemetry"
	"github.com/squall-dev/squall/reports"
)

// fdsPerProcess is how many open files one worker or gateway node may use: the hard limit is
// 20 000 (DESIGN §8) and the rest is margin for listeners, files and the runtime.
const fdsPerProcess = 19000

// runFlags are the settings of `loadgen run`.
type runFlags struct {
	target       string
	nodes        int
	secret       string
	clients      int
	rooms        int
	ramp         float64
	hold         time.Duration
	sendInterval time.Duration
	payload      int
	seed         uint64
	out          string
	workers      int
	agents       []string
	token        string
	progress     string
	lagBound     time.Duration
	perProcess   int
	verbose      bool
	timeScale    float64
	flaws        string
}

func newRunCmd(e *env) *cobra.Command {
	f := runFlags{}
	cmd := &cobra.Command{
		Use:   "run [FILE]",
		Short: "Run a scenario file, or the built-in plan, against the embedded gateway or a ws:// URL",
		Long: `With FILE, run the scenario: start its target (the embedded gateway with the scenario's flaws,
or its URL), route its proxied cohorts through the embedded Toxiproxy, run its phases while the
fault timeline runs, grade its SLOs, write result.json into --out (default: the file's out, else
out/NAME) and print the verdict table. --time-scale and --flaw override the file's time scale and
the embedded gateway's flaws (--flaw "" runs the clean gateway).

Without FILE, run the built-in plan: --clients tabs spread over --rooms rooms connect at --ramp
per second, broadcast every --send-interval during --hold, then leave (no SLOs). The plan flags
apply to it only; a scenario sets its own.

Runs larger than one process may hold (~19 000 open files) are split across worker processes of
this binary; --agents runs them on remote agents instead. Ctrl-C stops the ramp, closes the
clients cleanly and still writes the result.

Exit codes: 0 ok (every SLO held), 1 the harness failed (unreachable target, refused upgrade,
every worker lost, interrupted), 2 usage or invalid input (bad flag, invalid scenario, unknown
target, invalid plan, an agent that rejects the token), 99 an SLO was breached.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("run takes one scenario file, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.token == "" {
				f.token = os.Getenv(agent.TokenEnv)
			}
			if len(args) == 1 {
				return runScenario(cmd.Context(), e, f, args[0], cmd.Flags())
			}
			for _, name := range []string{"time-scale", "flaw"} {
				if cmd.Flags().Changed(name) {
					return usagef("--%s applies to a scenario file (loadgen run FILE --%s ...)", name, name)
				}
			}
			return runRun(cmd.Context(), e, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.target, "target", "embedded", `"embedded" (the reference gateway, started by loadgen) or a ws:// URL`)
	fl.IntVar(&f.nodes, "nodes", 0, "embedded gateway nodes (0 = as many as the clients need)")
	fl.StringVar(&f.secret, "secret", "", "HS256 secret for client tokens of a URL target (default the dev secret)")
	fl.IntVar(&f.clients, "clients", 200, "simulated clients (browser tabs)")
	fl.IntVar(&f.rooms, "rooms", 4, "rooms the clients are spread over")
	fl.Float64Var(&f.ramp, "ramp", 100, "connections opened per second")
	fl.DurationVar(&f.hold, "hold", 10*time.Second, "how long every client stays connected and sending")
	fl.DurationVar(&f.sendInterval, "send-interval", time.Second, "one broadcast per client per interval (0 = none)")
	fl.IntVar(&f.payload, "payload", 64, "bytes of padding per broadcast")
	fl.Uint64Var(&f.seed, "seed", 1, "seed of every random choice")
	fl.StringVar(&f.out, "out", ".", "directory to write result.json into (a scenario: default its out:, else out/NAME)")
	fl.IntVar(&f.workers, "workers", 0, "local worker processes (0 = as many as the plan needs)")
	fl.StringSliceVar(&f.agents, "agents", nil, "remote agents host:port,... to run on instead of local workers")
	fl.StringVar(&f.token, "token", "", "shared token of the agents (default $"+agent.TokenEnv+")")
	fl.StringVar(&f.progress, "progress", "auto", "progress display: auto, bar, plain or none")
	fl.DurationVar(&f.lagBound, "lag-bound", 0, "schedule-lag p99 above which the run is unreliable (0 = plan default 50ms)")
	fl.IntVar(&f.perProcess, "fds-per-process", fdsPerProcess, "open files one worker may use")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "log to stderr")
	fl.Float64Var(&f.timeScale, "time-scale", 1, "scenario only: replace the file's time_scale (every duration times this factor)")
	fl.StringVar(&f.flaws, "flaw", "", `scenario only: replace the embedded gateway's flaws (comma-separated; "" = the clean gateway)`)
	_ = fl.MarkHidden("fds-per-process")
	return cmd
}

// smokePlan is the Go-defined plan `run` executes until scenarios plug in.
func smokePlan(f runFlags) loadgen.Plan {
	return loadgen.Plan{
		Name: "smoke",
		Seed: f.seed,
		Cohorts: []loadgen.Cohort{{
			Name:  "tabs",
			Count: f.clients,
			Behaviour: loadgen.Behaviour{
				RoomsPerClient: 1,
				RoomCount:      f.rooms,
				SendInterval:   f.sendInterval,
				PayloadSize:    f.payload,
			},
		}},
		Phases: []loadgen.Phase{
			{Name: "ramp", Kind: loadgen.PhaseRamp, Rate: f.ramp},
			{Name: "hold", Kind: loadgen.PhaseHold, Duration: f.hold},
			{Name: "ramp-down", Kind: loadgen.PhaseRampDown},
		},
		ScheduleLagBound: f.lagBound,
	}
}

func (f runFlags) validate() error {
	var errs []string
	if f.clients <= 0 {
		errs = append(errs, fmt.Sprintf("--clients %d: want at least 1", f.clients))
	}
	if f.rooms <= 0 {
		errs = append(errs, fmt.Sprintf("--rooms %d: want at least 1", f.rooms))
	}
	if f.ramp <= 0 {
		errs = append(errs, fmt.Sprintf("--ramp %v: want a rate above 0", f.ramp))
	}
	if f.hold <= 0 {
		errs = append(errs, fmt.Sprintf("--hold %v: want a duration above 0", f.hold))
	}
	if f.workers < 0 || f.nodes < 0 {
		errs = append(errs, "--workers and --nodes must not be negative")
	}
	if len(f.agents) > 0 && f.workers > 0 {
		errs = append(errs, "--agents and --workers exclude each other")
	}
	if len(f.agents) > 0 && f.token == "" {
		errs = append(errs, "--agents needs --token (or $"+agent.TokenEnv+")")
	}
	switch f.progress {
	case "auto", "bar", "plain", "none":
	default:
		errs = append(errs, fmt.Sprintf("--progress %q: want auto, bar, plain or none", f.progress))
	}
	if f.perProcess < 100 {
		errs = append(errs, "--fds-per-process below 100")
	}
	if len(errs) > 0 {
		return usagef("%s", strings.Join(errs, "; "))
	}
	return nil
}

// targetSpec is the target as a job carries it to a worker.
type targetSpec struct {
	Endpoints []loadgen.Endpoint `json:"endpoints"`
	Secret    string             `json:"secret"`
}

// specTarget makes a targetSpec a loadgen.Target.
type specTarget struct{ s targetSpec }

func (t specTarget) Endpoints() []loadgen.Endpoint { return t.s.Endpoints }
func (t specTarget) Secret() []byte                { return []byte(t.s.Secret) }

func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newLogger(w io.Writer, verbose bool) *slog.Logger {
	if !verbose {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// workersFor is how many processes the plan's clients need.
func workersFor(p loadgen.Plan, perProcess int) int {
	return max(1, (p.FDs()+perProcess-1)/perProcess)
}

func runRun(ctx context.Context, e *env, f runFlags) (err error) {
	if err := f.validate(); err != nil {
		return err
	}
	logger := newLogger(e.stderr, f.verbose)
	plan := smokePlan(f)
	if err := plan.Validate(); err != nil {
		return usageErr(err)
	}
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return usagef("--out %s: %v", f.out, err)
	}
	outPath := filepath.Join(f.out, reports.FileName)

	// How many processes the clients need, unless agents were named.
	workers := f.workers
	if len(f.agents) > 0 {
		workers = len(f.agents)
	} else if workers == 0 {
		workers = workersFor(plan, f.perProcess)
	}

	// The workers: remote agents are checked first (a rejected token is a usage error), local
	// ones are started once the target is known.
	token := f.token
	if token == "" {
		token = newToken()
	}
	var remotes []*agent.Remote
	release := func() {}
	if len(f.agents) > 0 {
		if remotes, err = dialAgents(ctx, f.agents, token); err != nil {
			return err
		}
	}

	// The target.
	tgt, err := openTarget(ctx, e, f, plan, workers, logger)
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
	if err := probeTarget(ctx, tgt.target); err != nil {
		return harnessErr(err)
	}

	if remotes == nil {
		if remotes, release, err = openWorkers(ctx, f, workers, token, tgt.inProcessFDs(), logger); err != nil {
			return err
		}
	}
	defer release()

	parts := plan.Split(len(remotes))
	ts := targetSpec{Endpoints: tgt.target.Endpoints(), Secret: string(tgt.target.Secret())}
	specs := make([]targetSpec, len(parts))
	for i := range specs {
		specs[i] = ts
	}
	res, err := execute(ctx, e, f, runSpec{plan: plan, parts: parts, targets: specs, kind: tgt.kind, endpoints: ts.Endpoints}, remotes, logger)
	if res != nil {
		if werr := res.WriteJSON(outPath); werr != nil {
			return harnessErr(werr)
		}
		printSummary(e.stdout, res, outPath)
	}
	return err
}

// dialAgents connects to remote agents; an agent that rejects the token is a usage error.
func dialAgents(ctx context.Context, addrs []string, token string) ([]*agent.Remote, error) {
	var remotes []*agent.Remote
	for _, a := range addrs {
		r, err := agent.Dial(ctx, a, token)
		if err != nil {
			if errors.Is(err, agent.ErrUnauthorized) {
				return nil, usageErr(err)
			}
			return nil, harnessErr(err)
		}
		remotes = append(remotes, r)
	}
	return remotes, nil
}

// openWorkers returns the local agents the run uses: spawned worker processes, or one agent in
// this process.
func openWorkers(ctx context.Context, f runFlags, workers int, token string, localFDs int, logger *slog.Logger) ([]*agent.Remote, func(), error) {
	clients := f.clients
	// One process can run it all when its clients and the in-process gateway fit.
	if workers == 1 && clients+localFDs+64 <= f.perProcess {
		r, stop, err := inProcessAgent(ctx, token, logger)
		if err != nil {
			return nil, nil, harnessErr(err)
		}
		return []*agent.Remote{r}, stop, nil
	}
	remotes, err := agent.Spawn(ctx, workers, agent.SpawnOptions{Token: token, Logger: logger, Args: workerArgs(f)})
	if err != nil {
		return nil, nil, harnessErr(fmt.Errorf("starting %d workers: %w", workers, err))
	}
	return remotes, func() { agent.Release(context.Background(), remotes...) }, nil
}

// workerArgs are the arguments of a spawned worker.
func workerArgs(f runFlags) []string {
	args := []string{"agent", "--listen", "127.0.0.1:0"}
	if f.verbose {
		args = append(args, "--verbose")
	}
	return args
}

// inProcessAgent serves an agent on loopback in this process and dials it, so that a run in one
// process takes the same path as a run across workers.
func inProcessAgent(ctx context.Context, token string, logger *slog.Logger) (*agent.Remote, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, fmt.Errorf("in-process worker: %w", err)
	}
	a := agent.New(token, runJob(logger), logger, agent.Options{Version: version, OnSent: testSentHook})
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() { // ends when srv is closed below
		defer close(done)
		_ = srv.Serve(ln)
	}()
	stop := func() {
		a.Close()
		_ = srv.Close()
		<-done
	}
	r, err := agent.Dial(ctx, ln.Addr().String(), token)
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("in-process worker: %w", err)
	}
	return r, stop, nil
}

// runJob is the agent's RunFunc: it runs its part of the plan with loadgen.RunLocal.
func runJob(logger *slog.Logger) agent.RunFunc {
	return func(ctx context.Context, job agent.Job, rec *stats.Recorder, emit func(agent.Event)) (json.RawMessage, error) {
		var p loadgen.Plan
		if err := json.Unmarshal(job.Plan, &p); err != nil {
			return nil, fmt.Errorf("job %s: plan: %w", job.ID, err)
		}
		var ts targetSpec
		if err := json.Unmarshal(job.Target, &ts); err != nil {
			return nil, fmt.Errorf("job %s: target: %w", job.ID, err)
		}
		sum, err := loadgen.RunLocal(ctx, p, specTarget{ts}, rec, loadgen.RunOptions{
			Logger:  logger.With("worker", job.Worker),
			StartAt: job.StartAt,
			OnPhase: func(_ int, ph loadgen.Phase, at time.Time) {
				emit(agent.Event{At: at, Kind: "phase", Name: phaseName(ph)})
			},
		})
		b, merr := json.Marshal(sum)
		if merr != nil {
			return nil, errors.Join(err, merr)
		}
		return b, err
	}
}

func phaseName(ph loadgen.Phase) string {
	if ph.Name != "" {
		return ph.Name
	}
	return string(ph.Kind)
}

// runSpec is what execute runs: the whole plan (for the result), its parts — one per remote —
// with the target each part connects to, and the faults to inject meanwhile.
type runSpec struct {
	plan      loadgen.Plan
	parts     []loadgen.Plan
	targets   []targetSpec // per part: the gateway, or a chaos proxy in front of it
	kind      string       // target kind for the result
	endpoints []loadgen.Endpoint
	faults    *faults // nil: no fault timeline
}

// execute runs the plan's parts on the remotes and builds the result. The result is returned also
// when the run failed or was interrupted, so that it can be written.
func execute(ctx context.Context, e *env, f runFlags, spec runSpec, remotes []*agent.Remote, logger *slog.Logger) (*reports.Result, error) {
	plan, parts := spec.plan, spec.parts
	n := len(remotes)
	if len(parts) != n || len(spec.targets) != n {
		return nil, harnessErr(fmt.Errorf("%d plan parts and %d targets for %d workers", len(parts), len(spec.targets), n))
	}
	lead := time.Second + time.Duration(n)*100*time.Millisecond
	startAt := time.Now().Add(lead).Truncate(time.Millisecond)
	plan.StartAt = startAt
	runID := newToken()[:8]
	jobs := make([]agent.Job, n)
	for i, p := range parts {
		p.StartAt = startAt
		pj, err := json.Marshal(p)
		if err != nil {
			return nil, harnessErr(fmt.Errorf("encoding the plan: %w", err))
		}
		tj, err := json.Marshal(spec.targets[i])
		if err != nil {
			return nil, harnessErr(fmt.Errorf("encoding the target: %w", err))
		}
		jobs[i] = agent.Job{ID: fmt.Sprintf("%s-%d", runID, i), Worker: i, Workers: n, StartAt: startAt, Plan: pj, Target: tj}
	}

	res := reports.New(plan.Name, plan.Seed)
	res.Tool = "loadgen " + version
	_ = res.SetPlan(plan)
	res.Target = reports.Target{Kind: spec.kind, Nodes: len(spec.endpoints)}
	for _, ep := range spec.endpoints {
		res.Target.URLs = append(res.Target.URLs, ep.URL)
		if ep.MetricsURL != "" {
			res.Target.MetricURLs = append(res.Target.MetricURLs, ep.MetricsURL)
		}
	}

	// Telemetry runs beside the workers and ends after them.
	scraper := telemetry.New(telemetry.Config{URLs: res.Target.MetricURLs, Start: startAt}, logger)
	telCtx, stopTel := context.WithCancel(context.WithoutCancel(ctx))
	telDone := make(chan struct{})
	go func() {
		defer close(telDone)
		scraper.Run(telCtx)
	}()

	prog := newProgress(e.stdout, f.progress, plan.Clients(), n)
	ctrl := &agent.Controller{Logger: logger, OnUpdate: prog.update, StopGrace: time.Minute}
	res.Started = startAt
	if spec.faults != nil {
		spec.faults.start(ctx, startAt, prog.note)
	}
	out, runErr := ctrl.Run(ctx, remotes, jobs)
	if spec.faults != nil {
		res.Events = append(res.Events, spec.faults.stop()...)
	}
	prog.done()
	stopTel()
	<-telDone
	res.Ended = time.Now()
	res.Duration = res.Ended.Sub(res.Started)
	res.Telemetry = reports.TelemetryFrom(scraper.Result())

	res.Stats = reports.StatsFrom(out.Merged)
	var serr error
	if res.Series, serr = reports.SeriesFrom(out.Series); serr != nil {
		logger.Warn("the time series lost histograms", "err", serr)
	}
	for _, ev := range out.Events {
		res.Events = append(res.Events, reports.Event{At: ev.At, Kind: ev.Kind, Message: strings.TrimSpace(ev.Name + " " + ev.Detail), Worker: ev.Worker})
		if ev.Kind == "phase" && ev.Worker == 0 {
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
		rw := reports.Worker{Index: w.Index, Addr: w.Addr, PID: w.PID, Clients: parts[i].Clients(), Status: w.Status, Error: w.Err}
		if rw.Summary, serr = reports.DecodeWorkerSummary(w.Summary); serr != nil {
			logger.Warn("worker summary", "worker", w.Index, "err", serr)
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
	res.Judge(plan.LagBound())

	switch {
	case runErr != nil:
		res.StopReason = reports.StopFailed
		res.Error = oneLine(runErr.Error())
		return res, harnessErr(runErr)
	case ctx.Err() != nil:
		res.StopReason = reports.StopInterrupted
		return res, harnessErr(fmt.Errorf("interrupted (%v): the clients were closed and the partial result was written", context.Cause(ctx)))
	case lost == n:
		res.StopReason = reports.StopAllLost
		res.Error = oneLine(out.Workers[0].Err)
		return res, harnessErr(fmt.Errorf("every worker failed: %s", out.Workers[0].Err))
	default:
		res.StopReason = reports.StopCompleted
		if lost > 0 {
			fmt.Fprintf(e.stderr, "loadgen: warning: %d of %d workers lost; the result keeps what they reported\n", lost, n)
		}
		return res, nil
	}
}

// printSummary prints a few lines about the result.
func printSummary(w io.Writer, r *reports.Result, path string) {
	s := r.Stats
	errs := int64(0)
	for k, v := range s.Counters {
		if strings.HasPrefix(k, stats.PrefixError) {
			errs += v
		}
	}
	fmt.Fprintf(w, "%s %s in %v: %d clients on %d worker(s), %d connects, %d errors\n",
		r.Name, r.StopReason, r.Duration.Round(100*time.Millisecond), clientsOf(r), len(r.Workers), s.Counter(stats.CtrConnects), errs)
	fmt.Fprintf(w, "  connect p50 %v p99 %v | fanout p50 %v p99 %v | sent %d received %d | order violations %d, acked-undelivered %d\n",
		ms(s.Percentile(stats.HistConnect, 50)), ms(s.Percentile(stats.HistConnect, 99)),
		ms(s.Percentile(stats.HistFanout, 50)), ms(s.Percentile(stats.HistFanout, 99)),
		s.Counter(stats.CtrMessagesSent), s.Counter(stats.CtrMessagesReceived),
		s.Counter(stats.CtrOrderViolations), s.Counter(stats.CtrAckedUndelivered))
	if !r.Reliable {
		fmt.Fprintf(w, "  unreliable: %s\n", r.UnreliableReason)
	}
	fmt.Fprintf(w, "  result: %s\n", path)
}

func clientsOf(r *reports.Result) int {
	n := 0
	for _, w := range r.Workers {
		n += w.Clients
	}
	return n
}

func ms(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	default:
		return d.Round(10 * time.Microsecond).String()
	}
}

// testSentHook, when set (by tests only), sees every report a worker of this process has sent.
var testSentHook func(agent.Message)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"
