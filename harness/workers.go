package harness

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"time"

	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/agent"
	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/refserver"
)

// newToken is a fresh random token (local workers' shared secret, run ids).
func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// workersFor is how many processes p's clients need at perProcess open files each.
func workersFor(p loadgen.Plan, perProcess int) int {
	return max(1, (p.FDs()+perProcess-1)/perProcess)
}

// dialAgents connects to remote agents; an agent that rejects the token, or that would be spoken
// to in plain HTTP off loopback without permission, is a usage error.
func dialAgents(ctx context.Context, addrs []string, token string, o Options) ([]*agent.Remote, error) {
	var remotes []*agent.Remote
	for _, a := range addrs {
		r, err := agent.DialWith(ctx, a, token, agent.DialOptions{TLS: o.AgentTLS, Insecure: o.AgentsInsecure})
		if err != nil {
			if errors.Is(err, agent.ErrUnauthorized) || errors.Is(err, agent.ErrInsecure) || errors.Is(err, agent.ErrWantsTLS) {
				return nil, usageErr(err)
			}
			return nil, err
		}
		if r.Transport() == agent.TransportInsecure {
			o.Logger.Warn("agent spoken to in plain HTTP off loopback: the token and the jobs travel in clear", "agent", a)
			if o.OnNote != nil {
				o.OnNote(fmt.Sprintf("warning: agent %s is spoken to in plain HTTP off loopback (insecure): the token and its job travel in clear", a))
			}
		}
		remotes = append(remotes, r)
	}
	return remotes, nil
}

// shutdownAgents asks every agent to exit (each bounded by 5 s); an agent already gone is logged.
func shutdownAgents(ctx context.Context, remotes []*agent.Remote, o Options) {
	for _, r := range remotes {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := r.Shutdown(sctx); err != nil {
			o.Logger.Warn("asking an agent to exit", "agent", r.Addr, "err", err)
		}
		cancel()
	}
}

// spawnWorkers starts n local worker processes.
func spawnWorkers(ctx context.Context, n int, token string, o Options) ([]*agent.Remote, func(), error) {
	so := agent.SpawnOptions{Token: token, Logger: o.Logger}
	if len(o.WorkerCommand) > 0 {
		so.Exe, so.Args = o.WorkerCommand[0], o.WorkerCommand[1:]
	}
	rs, err := agent.Spawn(ctx, n, so)
	if err != nil {
		return nil, nil, fmt.Errorf("starting %d workers: %w", n, err)
	}
	return rs, func() { agent.Release(context.Background(), rs...) }, nil
}

// inProcessAgent serves an agent on loopback in this process and dials it, so that a run in one
// process takes the same path as a run across workers.
func inProcessAgent(ctx context.Context, token string, o Options) (*agent.Remote, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, fmt.Errorf("in-process worker: %w", err)
	}
	a := agent.New(token, RunJob(o.Logger), o.Logger, agent.Options{Version: o.Version})
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

// RunJob is the agent.RunFunc of every worker: it runs the job's part of the plan against the
// job's target with loadgen.RunLocal and reports its phases as events. The clients connect to the
// endpoints the job names and nowhere else; with allow, a job naming an endpoint outside those
// networks is refused before any client starts.
func RunJob(logger *slog.Logger, allow ...netip.Prefix) agent.RunFunc {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return func(ctx context.Context, job agent.Job, rec *stats.Recorder, emit func(agent.Event)) (json.RawMessage, error) {
		var p loadgen.Plan
		if err := json.Unmarshal(job.Plan, &p); err != nil {
			return nil, fmt.Errorf("job %s: plan: %w", job.ID, err)
		}
		var t jobTarget
		if err := json.Unmarshal(job.Target, &t); err != nil {
			return nil, fmt.Errorf("job %s: target: %w", job.ID, err)
		}
		if err := checkTargets(ctx, t.Target, allow); err != nil {
			return nil, fmt.Errorf("job %s: %w", job.ID, err)
		}
		sum, err := loadgen.RunLocal(ctx, p, t.Target, rec, loadgen.RunOptions{
			Logger:   logger.With("worker", job.Worker),
			StartAt:  job.StartAt,
			LocalFDs: t.LocalFDs,
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

// checkTargets refuses a target with no endpoint, or (with allow) one whose endpoints resolve
// outside the allowed networks.
func checkTargets(ctx context.Context, t loadgen.Target, allow []netip.Prefix) error {
	if len(t.Endpoints) == 0 {
		return errors.New("target: no endpoint")
	}
	if len(allow) == 0 {
		return nil
	}
	for _, ep := range t.Endpoints {
		u, err := url.Parse(ep.URL)
		if err != nil {
			return fmt.Errorf("target %s: %w", ep.URL, err)
		}
		addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", u.Hostname())
		if err != nil {
			return fmt.Errorf("target %s: %w", ep.URL, err)
		}
		for _, a := range addrs {
			if !slices.ContainsFunc(allow, func(p netip.Prefix) bool { return p.Contains(a.Unmap()) }) {
				return fmt.Errorf("target %s (%s) is outside the networks this agent may load (%v)", ep.URL, a, allow)
			}
		}
	}
	return nil
}

// jobTarget is the target as a job carries it to a worker, with the open files the worker's
// process holds besides its clients' (an in-process gateway's sockets).
type jobTarget struct {
	loadgen.Target
	LocalFDs int `json:"local_fds,omitempty"`
}

func phaseName(ph loadgen.Phase) string {
	if ph.Name != "" {
		return ph.Name
	}
	return string(ph.Kind)
}

// AgentOptions configure ServeAgent.
type AgentOptions struct {
	// Listen is the address to serve on (host:port; port 0 picks one). Off loopback the agent
	// needs TLSCert and TLSKey, or Insecure.
	Listen string
	// TLSCert and TLSKey are PEM files of the agent's certificate (with its chain) and key: the
	// agent then serves HTTPS only, and a controller speaking plain HTTP is refused.
	TLSCert, TLSKey string
	// Insecure lets an agent without TLS listen off loopback: the token and every job then travel
	// in clear. The agent warns on Warn when it does so, and reports it to controllers, which
	// record it in the result.
	Insecure bool
	// Warn receives the warning of an insecure agent (besides Logger, which may discard).
	Warn io.Writer
	// Shard, when set, is the only shard (job worker index) the agent runs.
	Shard *int
	// AllowTargets, when set, are the only networks the agent's clients may connect to: a job
	// whose target has an endpoint elsewhere is refused. Whatever it is, an agent connects only
	// to the endpoints its controller's job names.
	AllowTargets []netip.Prefix
	// Token is the shared token every request must carry.
	Token string
	// Stdout receives the one line agent.ListenPrefix + address once the agent listens (a
	// controller that spawned the process reads it).
	Stdout io.Writer
	// Logger receives the agent's log (nil discards).
	Logger *slog.Logger
	// Version is reported by the agent's info endpoint.
	Version string
	// OnSent, when set, sees every message a job sends to its controller once it is flushed.
	OnSent func(agent.Message)
	// SnapshotEvery is how many ticks apart a tick carries the cumulative snapshot
	// (agent.Options.SnapshotEvery; 0 is its default).
	SnapshotEvery int
}

// ServeAgent serves the controller/agent protocol and runs the jobs a controller sends, until ctx
// ends or a controller asks the agent to shut down. A running job is stopped cleanly (clients
// closed, its last report sent) before it returns.
func ServeAgent(ctx context.Context, o AgentOptions) error {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("pid", os.Getpid())
	if o.Token == "" {
		return usagef("agent needs a token")
	}
	useTLS := o.TLSCert != "" || o.TLSKey != ""
	if useTLS && (o.TLSCert == "" || o.TLSKey == "") {
		return usagef("agent: TLS needs both a certificate and a key")
	}
	var tlsConf *tls.Config
	if useTLS {
		cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			return usagef("agent: TLS certificate %s and key %s: %v", o.TLSCert, o.TLSKey, err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	loopback := refserver.IsLoopbackAddr(o.Listen)
	insecure := !useTLS && !loopback
	if insecure && !o.Insecure {
		return usagef("agent: --listen %s is not a loopback address: refusing plain HTTP there (give a TLS certificate and key, or --insecure to send the token and jobs in clear)", o.Listen)
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if insecure {
		msg := fmt.Sprintf("WARNING: agent serving plain HTTP on %s (--insecure): the token and every job travel in clear; controllers record it in the result", ln.Addr())
		logger.Warn(msg)
		if o.Warn != nil {
			fmt.Fprintln(o.Warn, msg)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a := agent.New(o.Token, RunJob(logger, o.AllowTargets...), logger,
		agent.Options{Version: o.Version, OnShutdown: cancel, OnSent: o.OnSent, SnapshotEvery: o.SnapshotEvery, TLS: useTLS, Insecure: insecure, Shard: o.Shard})
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second, TLSConfig: tlsConf,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)} // refused handshakes, plain HTTP to TLS
	served := make(chan error, 1)
	go func() {
		if tlsConf != nil {
			served <- srv.ServeTLS(ln, "", "")
			return
		}
		served <- srv.Serve(ln)
	}()
	if o.Stdout != nil {
		fmt.Fprintf(o.Stdout, "%s%s\n", agent.ListenPrefix, ln.Addr())
	}
	logger.Info("agent listening", "addr", ln.Addr().String())
	select {
	case <-ctx.Done():
	case err = <-served:
	}
	// Stop a running job cleanly (clients closed), then the server.
	a.Close()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}
