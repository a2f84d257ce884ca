// Package worker is a worker process of a run: it serves the controller/agent protocol
// (loadgen/agent) and runs each job it is sent with loadgen.RunLocal against the job's target.
// `loadgen agent` and the lean `loadgen-worker` executable are both this package behind a command
// line; harness runs it in process and spawns it.
//
// Concurrency: Serve may be called from several goroutines, each with its own listener; it owns
// the goroutines it starts and has ended them when it returns. RunJob's function is called by the
// agent once per job.
package worker

import (
	"context"
	"crypto/tls"
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
	"runtime"
	"slices"
	"time"

	"github.com/squall-dev/squall/internal/cpuprofile"
	"github.com/squall-dev/squall/internal/gctarget"
	"github.com/squall-dev/squall/internal/loopback"
	"github.com/squall-dev/squall/internal/usage"
	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/agent"
	"github.com/squall-dev/squall/loadgen/stats"
)

// DefaultGCPercent is a worker's default garbage-collector target: its heap is mostly long-lived
// client state, and below Go's 100 it holds less memory per client for a little CPU.
const DefaultGCPercent = 25

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
		var t JobTarget
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

// JobTarget is the target as a job carries it to a worker, with the open files the worker's
// process holds besides its clients' (an in-process gateway's sockets).
type JobTarget struct {
	loadgen.Target
	LocalFDs int `json:"local_fds,omitempty"`
}

func phaseName(ph loadgen.Phase) string {
	if ph.Name != "" {
		return ph.Name
	}
	return string(ph.Kind)
}

// Options configure Serve.
type Options struct {
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

// Serve serves the controller/agent protocol and runs the jobs a controller sends, until ctx
// ends or a controller asks the agent to shut down. A running job is stopped cleanly (clients
// closed, its last report sent) before it returns.
func Serve(ctx context.Context, o Options) error {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("pid", os.Getpid())
	if o.Token == "" {
		return usage.Errorf("agent needs a token")
	}
	useTLS := o.TLSCert != "" || o.TLSKey != ""
	if useTLS && (o.TLSCert == "" || o.TLSKey == "") {
		return usage.Errorf("agent: TLS needs both a certificate and a key")
	}
	var tlsConf *tls.Config
	if useTLS {
		cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			return usage.Errorf("agent: TLS certificate %s and key %s: %v", o.TLSCert, o.TLSKey, err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	loopback := loopback.IsAddr(o.Listen)
	insecure := !useTLS && !loopback
	if insecure && !o.Insecure {
		return usage.Errorf("agent: --listen %s is not a loopback address: refusing plain HTTP there (give a TLS certificate and key, or --insecure to send the token and jobs in clear)", o.Listen)
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

// TuneProcess sets this process up as a worker: the garbage collector's target (gcPercent, held
// while the heap is large, see internal/gctarget; 0 keeps $GOGC or Go's default, and $GOGC wins
// unless explicit says the percentage was asked for)
// and no heap-profile sampling unless $SQUALL_CPU_PROFILE_DIR asks for profiles (a worker serves
// no heap profile: its tables are ~1.5 MB of waste).
// Call it once from main, before Serve.
func TuneProcess(gcPercent int, explicit bool) {
	if gcPercent > 0 && (explicit || os.Getenv("GOGC") == "") {
		gctarget.Set(gcPercent) // at least 8 MB of headroom while the heap is small
	}
	if os.Getenv(cpuprofile.Env) == "" {
		runtime.MemProfileRate = 0
	}
}
