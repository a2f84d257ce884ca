// Package embedded starts squall's reference gateway (refserver) for a run: one node inside the
// calling process, or nodes as child processes of the calling binary, each on its own 127.0.0.1
// port, and gives the run their loadgen.Target. Each node is a chaos.Node: process faults (kill,
// restart, pause, resume, drain) act on it.
//
// A binary that starts child nodes must dispatch `<binary> __refserver-node <flags>` (NodeCommand)
// to RunNodeMain; cmd/loadgen does, and so must the TestMain of a test binary that starts them.
//
// Concurrency: Embedded and Node are safe for concurrent use; a Node's faults are serialised by
// the chaos package's process node for child processes and by the node's own mutex in-process.
// Whoever starts an Embedded closes it.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/squall-dev/squall/chaos"
	"github.com/squall-dev/squall/internal/childproc"
	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/refserver"
	"github.com/squall-dev/squall/refserver/protocol"
)

// NodeCommand is the hidden subcommand a binary runs a gateway node under when Start runs nodes
// as child processes of that binary (see the package documentation).
const NodeCommand = "__refserver-node"

// Options configures the embedded reference gateway.
type Options struct {
	// Nodes is the number of gateway nodes (default 1). Clients are spread over them.
	Nodes int
	// Config is every node's configuration (Addr is ignored: each node gets its own loopback port).
	// Without an AuthSecret the nodes run in dev mode (protocol.DevSecret).
	Config refserver.Config
	// Process runs the nodes as child processes even when there is one (they always are when
	// Nodes > 1, so that no process holds more than one node's sockets).
	Process bool
	// Binary, when set, is a refserver binary (bin/refserver) to run the nodes with (it takes the
	// same flags: NodeArgs); otherwise the current executable is re-executed with NodeCommand.
	// Either way a node is in a process group of its own and dies with this process (childproc).
	Binary string
	// Stderr receives the child processes' logs (nil discards).
	Stderr io.Writer
	// Logger receives node lifecycle events (nil discards).
	Logger *slog.Logger
}

// Embedded is the reference gateway started for a run: one node in-process or N child processes,
// each on its own 127.0.0.1 port. Target is what clients connect to; Nodes gives the nodes for
// faults.
type Embedded struct {
	nodes  []*Node
	secret string
}

var _ chaos.Node = (*Node)(nil)

// Start starts the nodes and returns once every one answers /healthz.
func Start(ctx context.Context, opts Options) (*Embedded, error) {
	n := max(opts.Nodes, 1)
	cfg := opts.Config
	if cfg.AuthSecret == "" {
		cfg.Dev = true
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	e := &Embedded{secret: cfg.AuthSecret}
	if cfg.Dev && cfg.AuthSecret == "" {
		e.secret = protocol.DevSecret
	}
	for i := range n {
		addr, err := freeLoopbackPort()
		if err != nil {
			_ = e.Close(context.Background())
			return nil, err
		}
		nd := &Node{name: "node-" + strconv.Itoa(i), addr: addr, cfg: cfg, log: logger}
		nd.cfg.Addr = addr
		if n > 1 || opts.Process {
			if err := nd.startProcess(ctx, opts); err != nil {
				_ = e.Close(context.Background())
				return nil, err
			}
		} else if err := nd.startInProcess(ctx); err != nil {
			_ = e.Close(context.Background())
			return nil, err
		}
		e.nodes = append(e.nodes, nd)
	}
	return e, nil
}

// Target is the gateway as clients see it: every node's endpoint and the secret tokens are signed
// with. The nodes hold separate rooms unless they share a broker.
func (e *Embedded) Target() loadgen.Target {
	t := loadgen.Target{Auth: loadgen.AuthSpec{Secret: e.secret}}
	for _, n := range e.nodes {
		t.Endpoints = append(t.Endpoints, loadgen.Endpoint{URL: n.URL(), MetricsURL: n.MetricsURL()})
		t.SharedRooms = t.SharedRooms || n.cfg.Broker != ""
	}
	return t
}

// InProcess reports whether a node runs in this process (it then holds the server end of its
// clients' connections among this process's open files).
func (e *Embedded) InProcess() bool {
	for _, n := range e.nodes {
		if n.proc == nil {
			return true
		}
	}
	return false
}

// Nodes returns the gateway nodes.
func (e *Embedded) Nodes() []*Node { return e.nodes }

// Close stops every node (gracefully, bounded by ctx).
func (e *Embedded) Close(ctx context.Context) error {
	var errs []error
	for _, n := range e.nodes {
		errs = append(errs, n.Stop(ctx))
	}
	return errors.Join(errs...)
}

// Node is one gateway node of the embedded target. It implements chaos.Node: Kill, Restart, Pause,
// Resume and Drain act on the child process by signals (SIGKILL, SIGSTOP, SIGCONT, SIGTERM). An
// in-process node supports Kill (an immediate shutdown), Drain and Restart, not Pause or Resume.
type Node struct {
	name string
	addr string
	cfg  refserver.Config
	log  *slog.Logger

	proc *chaos.ProcessNode // child process, or nil

	mu     sync.Mutex // in-process instance
	srv    *refserver.Server
	cancel context.CancelFunc
	done   chan struct{}
}

// Name is the node's name (node-0, node-1, ...).
func (n *Node) Name() string { return n.name }

// Addr is the node's host:port.
func (n *Node) Addr() string { return n.addr }

// URL is the node's WebSocket URL.
func (n *Node) URL() string { return "ws://" + n.addr + protocol.PathWS }

// MetricsURL is the node's Prometheus endpoint.
func (n *Node) MetricsURL() string { return "http://" + n.addr + protocol.PathMetrics }

// PID is the child process's id (the current process's for an in-process node).
func (n *Node) PID() int {
	if n.proc != nil {
		return n.proc.PID()
	}
	return os.Getpid()
}

// Server returns the in-process server (nil for a child process).
func (n *Node) Server() *refserver.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv
}

// ErrInProcess is returned by faults an in-process node cannot take (pause and resume).
var ErrInProcess = errors.New("loadgen: an in-process gateway node cannot be paused; use Options.Process")

func (n *Node) startInProcess(ctx context.Context) error {
	srv, err := refserver.New(n.cfg, n.log.With("node", n.name))
	if err != nil {
		return fmt.Errorf("embedded gateway: %w", err)
	}
	ln, err := refserver.Listen(ctx, n.addr)
	if err != nil {
		return fmt.Errorf("embedded gateway: listen %s: %w", n.addr, err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(sctx, ln); err != nil {
			n.log.Warn("embedded gateway stopped", "node", n.name, "err", err)
		}
	}()
	n.mu.Lock()
	n.srv, n.cancel, n.done = srv, cancel, done
	n.mu.Unlock()
	return waitHealthy(ctx, n.addr)
}

func (n *Node) startProcess(ctx context.Context, opts Options) error {
	args := NodeArgs(n.cfg)
	stderr := opts.Stderr
	if stderr == nil {
		stderr = io.Discard
	}
	command := func() *exec.Cmd {
		var cmd *exec.Cmd
		if opts.Binary != "" {
			cmd = exec.Command(opts.Binary, args...)
		} else {
			exe, err := os.Executable()
			if err != nil {
				exe = os.Args[0]
			}
			cmd = exec.Command(exe, append([]string{NodeCommand}, args...)...)
		}
		cmd.Stderr = stderr
		cmd.SysProcAttr = childproc.Attr()
		return cmd
	}
	p, err := chaos.NewProcessNode(n.name, chaos.ProcessOptions{
		Command:     command,
		Ready:       func(ctx context.Context) error { return waitHealthy(ctx, n.addr) },
		GracePeriod: 5 * time.Second,
		Logger:      n.log,
	})
	if err != nil {
		return err
	}
	n.proc = p
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := p.Start(sctx); err != nil {
		return fmt.Errorf("embedded gateway %s: %w", n.name, err)
	}
	return nil
}

// Kill implements chaos.Node.
func (n *Node) Kill(ctx context.Context) error {
	if n.proc != nil {
		return n.proc.Kill(ctx)
	}
	return n.stopInProcess(ctx, true)
}

// Pause implements chaos.Node (child processes only).
func (n *Node) Pause(ctx context.Context) error {
	if n.proc != nil {
		return n.proc.Pause(ctx)
	}
	return ErrInProcess
}

// Resume implements chaos.Node (child processes only).
func (n *Node) Resume(ctx context.Context) error {
	if n.proc != nil {
		return n.proc.Resume(ctx)
	}
	return ErrInProcess
}

// Drain implements chaos.Node: the node closes every connection with 1001 and a retry hint, then
// exits. It returns once the drain started.
func (n *Node) Drain(ctx context.Context) error {
	if n.proc != nil {
		return n.proc.Drain(ctx)
	}
	n.mu.Lock()
	srv := n.srv
	n.mu.Unlock()
	if srv == nil {
		return chaos.ErrNotRunning
	}
	go func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return nil
}

// Restart implements chaos.Node: stop (gracefully within a grace period) and start again on the same
// port.
func (n *Node) Restart(ctx context.Context) error {
	if n.proc != nil {
		return n.proc.Restart(ctx)
	}
	if err := n.stopInProcess(ctx, false); err != nil && !errors.Is(err, chaos.ErrNotRunning) {
		return err
	}
	return n.startInProcess(ctx)
}

// Stop ends the node gracefully (bounded by ctx).
func (n *Node) Stop(ctx context.Context) error {
	if n.proc != nil {
		return n.proc.Stop(ctx)
	}
	err := n.stopInProcess(ctx, false)
	if errors.Is(err, chaos.ErrNotRunning) {
		return nil
	}
	return err
}

func (n *Node) stopInProcess(ctx context.Context, now bool) error {
	n.mu.Lock()
	srv, cancel, done := n.srv, n.cancel, n.done
	n.srv, n.cancel, n.done = nil, nil, nil
	n.mu.Unlock()
	if srv == nil {
		return chaos.ErrNotRunning
	}
	if now {
		kctx, kcancel := context.WithCancel(ctx)
		kcancel() // no grace: Shutdown aborts what is left
		_ = srv.Shutdown(kctx)
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// RunNodeMain runs one gateway node with the flags NodeArgs writes, until ctx is cancelled (the
// caller cancels it on SIGTERM or SIGINT: the node then drains and returns nil). It is what a loadgen
// binary's hidden NodeCommand subcommand calls.
func RunNodeMain(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, level, format, err := parseNodeArgs(args, stderr)
	if err != nil {
		return err
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	ho := &slog.HandlerOptions{Level: lv}
	var logger *slog.Logger
	switch format {
	case "text":
		logger = slog.New(slog.NewTextHandler(stderr, ho))
	case "json":
		logger = slog.New(slog.NewJSONHandler(stderr, ho))
	default:
		return fmt.Errorf("--log-format: want text or json, got %q", format)
	}
	srv, err := refserver.New(cfg, logger)
	if err != nil {
		return err
	}
	cfg.ApplyGC(os.Getenv) // a child node's process is the gateway's own
	ln, err := refserver.Listen(ctx, cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	return srv.Serve(ctx, ln)
}

// freeLoopbackPort returns a 127.0.0.1 address with a port that was free a moment ago.
func freeLoopbackPort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("embedded gateway: find a free port: %w", err)
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// waitHealthy polls /healthz until it answers 200 or ctx ends.
func waitHealthy(ctx context.Context, addr string) error {
	url := "http://" + addr + protocol.PathHealthz
	client := &http.Client{Timeout: time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gateway %s not healthy: %w", addr, context.Cause(ctx))
		case <-time.After(20 * time.Millisecond):
		}
	}
}
