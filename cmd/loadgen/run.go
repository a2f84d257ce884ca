package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/squall-dev/squall/harness"
	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/agent"
	"github.com/squall-dev/squall/scenarios"
)

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
	agentCA      string
	agentsInsec  bool
	agentsExit   bool
	progress     string
	lagBound     time.Duration
	clientIO     string
	nodeBinary   string
	workerBinary string
	perProcess   int
	verbose      bool
	timeScale    float64
	flaws        string
	tls          loadgen.TLSSpec
	headers      []string
	origin       string
	subprotocols []string
	protocol     string
}

// planFlags shape the built-in plan; a scenario file sets all of them itself.
var planFlags = []string{"clients", "rooms", "ramp", "hold", "send-interval", "payload", "seed", "target", "nodes", "secret", "lag-bound",
	"tls-ca", "tls-cert", "tls-key", "tls-server-name", "tls-insecure-skip-verify", "header", "origin", "subprotocol", "protocol"}

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
every worker lost), 2 usage or invalid input (bad flag, invalid scenario, unknown target, invalid
plan, an agent that rejects the token), 99 an SLO was breached, 130 interrupted (Ctrl-C, SIGTERM;
the partial result is written).`,
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
			if err := f.validate(); err != nil {
				return err
			}
			if len(args) == 1 {
				s, spec, err := scenarioSpec(e, f, args[0], cmd.Flags())
				if err != nil {
					return err
				}
				out := s.Out
				if out == "" {
					out = filepath.Join("out", s.Name)
				}
				return runSpec(cmd.Context(), e, f, spec, out)
			}
			for _, name := range []string{"time-scale", "flaw"} {
				if cmd.Flags().Changed(name) {
					return usagef("--%s applies to a scenario file (loadgen run FILE --%s ...)", name, name)
				}
			}
			return runSpec(cmd.Context(), e, f, planSpec(f), f.out)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.target, "target", "embedded", `"embedded" (the reference gateway, started by loadgen) or a ws:// or wss:// URL on any host`)
	fl.IntVar(&f.nodes, "nodes", 0, "embedded gateway nodes (0 = as many as the clients need)")
	fl.StringVar(&f.secret, "secret", "", "HS256 secret for client tokens of a URL target (default the dev secret)")
	fl.StringVar(&f.tls.CAFile, "tls-ca", "", "wss:// target: PEM bundle of the CAs that sign the gateway's certificate (default the system's)")
	fl.StringVar(&f.tls.CertFile, "tls-cert", "", "wss:// target: PEM client certificate (mutual TLS; with --tls-key)")
	fl.StringVar(&f.tls.KeyFile, "tls-key", "", "wss:// target: PEM key of --tls-cert")
	fl.StringVar(&f.tls.ServerName, "tls-server-name", "", "wss:// target: name the gateway's certificate must carry (default the URL's host)")
	fl.BoolVar(&f.tls.InsecureSkipVerify, "tls-insecure-skip-verify", false, "wss:// target: accept any certificate (encrypted, NOT authenticated)")
	fl.StringArrayVar(&f.headers, "header", nil, `URL target: "Name: value" added to every upgrade request (value templated: {{.Token}}, {{.User}}); repeatable`)
	fl.StringVar(&f.origin, "origin", "", "URL target: Origin header of every upgrade request")
	fl.StringSliceVar(&f.subprotocols, "subprotocol", nil, "URL target: WebSocket subprotocols to offer, in order")
	fl.StringVar(&f.protocol, "protocol", "", "URL target: protocol the clients speak (squall; generic and centrifugo need settings only a scenario file holds)")
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
	fl.StringVar(&f.agentCA, "agent-ca", "", "PEM CA bundle the agents' TLS certificates chain to: speak HTTPS to --agents and verify them")
	fl.BoolVar(&f.agentsExit, "shutdown-agents", false, "ask every agent of --agents to exit once the run is over (agents run as a Job then complete)")
	fl.BoolVar(&f.agentsInsec, "agents-insecure", false, "allow plain HTTP to --agents off loopback (token and jobs in clear; the result records it)")
	fl.StringVar(&f.progress, "progress", "auto", "progress display: auto, bar, plain or none")
	fl.DurationVar(&f.lagBound, "lag-bound", 0, "schedule-lag p99 above which the run is unreliable (0 = plan default 50ms)")
	fl.StringVar(&f.clientIO, "io", "", "how the generator reads its clients' WebSockets: epoll (default; no goroutine or read buffer per idle client) or goroutine (one reader goroutine each); replaces a scenario's client_io")
	fl.StringVar(&f.workerBinary, "worker-binary", "", "start worker processes from this loadgen-worker binary (bin/loadgen-worker: the worker side only, ~14 MB less resident per worker) instead of re-executing this binary as `loadgen agent`")
	fl.StringVar(&f.nodeBinary, "node-binary", "", "embedded gateway: run its child nodes with this refserver binary (it takes the same flags) instead of this binary's node mode, so that a node costs what a deployed refserver costs; a single node running inside this process ignores it")
	fl.IntVar(&f.perProcess, "fds-per-process", harness.DefaultFDsPerProcess, "open files one worker may use")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "log to stderr")
	fl.Float64Var(&f.timeScale, "time-scale", 1, "scenario only: replace the file's time_scale (every duration times this factor)")
	fl.StringVar(&f.flaws, "flaw", "", `scenario only: replace the embedded gateway's flaws (comma-separated; "" = the clean gateway)`)
	_ = fl.MarkHidden("fds-per-process")
	return cmd
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
	if (f.agentCA != "" || f.agentsInsec || f.agentsExit) && len(f.agents) == 0 {
		errs = append(errs, "--agent-ca, --agents-insecure and --shutdown-agents apply to --agents")
	}
	switch f.progress {
	case "auto", "bar", "plain", "none":
	default:
		errs = append(errs, fmt.Sprintf("--progress %q: want auto, bar, plain or none", f.progress))
	}
	for _, h := range f.headers {
		if n, _, ok := strings.Cut(h, ":"); !ok || strings.TrimSpace(n) == "" {
			errs = append(errs, fmt.Sprintf("--header %q: want \"Name: value\"", h))
		}
	}
	if f.clientIO != "" && !slices.Contains(loadgen.ClientIOs, f.clientIO) {
		errs = append(errs, fmt.Sprintf("--io %q: want one of %s", f.clientIO, strings.Join(loadgen.ClientIOs, ", ")))
	}
	for _, b := range []struct{ flag, path string }{{"--node-binary", f.nodeBinary}, {"--worker-binary", f.workerBinary}} {
		if b.path == "" {
			continue
		}
		if st, err := os.Stat(b.path); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", b.flag, err))
		} else if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
			errs = append(errs, fmt.Sprintf("%s %s: not an executable file", b.flag, b.path))
		}
	}
	if f.perProcess < 100 {
		errs = append(errs, "--fds-per-process below 100")
	}
	if len(errs) > 0 {
		return usagef("%s", strings.Join(errs, "; "))
	}
	return nil
}

// planSpec is the built-in plan the flags shape, against --target.
func planSpec(f runFlags) harness.Spec {
	p := loadgen.Plan{
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
		ClientIO:         f.clientIO,
	}
	t := harness.Target{Nodes: f.nodes, Auth: loadgen.AuthSpec{Secret: f.secret}, Protocol: loadgen.ProtocolSpec{Name: f.protocol},
		Conn: loadgen.ConnSpec{TLS: f.tls, Origin: f.origin, Subprotocols: f.subprotocols}}
	for _, h := range f.headers {
		n, v, _ := strings.Cut(h, ":")
		if t.Conn.Headers == nil {
			t.Conn.Headers = map[string]string{}
		}
		t.Conn.Headers[strings.TrimSpace(n)] = strings.TrimSpace(v)
	}
	if f.target != "embedded" {
		t.URL = f.target
	}
	return harness.Spec{Plan: p, Target: t}
}

// scenarioSpec loads FILE with the command line's overrides; a problem of the file is printed one
// line each and is a usage error.
func scenarioSpec(e *env, f runFlags, file string, flags *pflag.FlagSet) (*scenarios.Scenario, harness.Spec, error) {
	for _, name := range planFlags {
		if flags.Changed(name) {
			return nil, harness.Spec{}, usagef("--%s shapes the built-in plan; scenario %s sets its own (edit the file)", name, file)
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
	if flags.Changed("io") {
		opts = append(opts, scenarios.WithClientIO(f.clientIO))
	}
	source, err := scenarios.ReadFile(file)
	var s *scenarios.Scenario
	if err == nil {
		s, err = scenarios.Parse(file, source, opts...)
	}
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
			return nil, harness.Spec{}, usagef("scenario %s is invalid (%s, listed above)", file, what)
		}
		return nil, harness.Spec{}, usageErr(err)
	}
	return s, harness.Spec{Scenario: s, File: file, Source: source}, nil
}

// parsePrefixes reads CIDR ranges ("10.0.0.0/8"); a bare address is its own /32 or /128.
func parsePrefixes(ss []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ss {
		s = strings.TrimSpace(s)
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q: want a network such as 10.0.0.0/8", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// agentTLS reads the agents' CA bundle into the controller's TLS configuration.
func agentTLS(caFile string) (*tls.Config, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, usagef("--agent-ca: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, usagef("--agent-ca %s: no PEM certificate in it", caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

func newLogger(w io.Writer, verbose bool) *slog.Logger {
	if !verbose {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
