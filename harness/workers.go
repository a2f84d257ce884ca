package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/agent"
	"github.com/squall-dev/squall/loadgen/worker"
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
	a := agent.New(token, worker.RunJob(o.Logger), o.Logger, agent.Options{Version: o.Version})
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

// AgentOptions configure ServeAgent (worker.Options).
type AgentOptions = worker.Options

// ServeAgent is worker.Serve, its mistakes in what was asked reported as UsageError.
func ServeAgent(ctx context.Context, o AgentOptions) error { return worker.Serve(ctx, o) }
