package harness

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
	"time"

	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/agent"
	"github.com/squall-dev/squall/loadgen/stats"
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

// dialAgents connects to remote agents; an agent that rejects the token is a usage error.
func dialAgents(ctx context.Context, addrs []string, token string) ([]*agent.Remote, error) {
	var remotes []*agent.Remote
	for _, a := range addrs {
		r, err := agent.Dial(ctx, a, token)
		if err != nil {
			if errors.Is(err, agent.ErrUnauthorized) {
				return nil, usageErr(err)
			}
			return nil, err
		}
		remotes = append(remotes, r)
	}
	return remotes, nil
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
// job's target with loadgen.RunLocal and reports its phases as events.
func RunJob(logger *slog.Logger) agent.RunFunc {
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
	// Listen is the address to serve on (host:port; port 0 picks one).
	Listen string
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
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a := agent.New(o.Token, RunJob(logger), logger, agent.Options{Version: o.Version, OnShutdown: cancel, OnSent: o.OnSent})
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
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
