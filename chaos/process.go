package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// ProcessOptions configures a ProcessNode.
type ProcessOptions struct {
	// Command returns a new, unstarted command for every start (an exec.Cmd
	// cannot be started twice). It must not use exec.CommandContext: the
	// node owns the process's lifetime. Nor may it use StdoutPipe or
	// StderrPipe: the node calls Wait as soon as the process starts, which
	// closes those pipes; give an *os.File (os.Pipe) or an io.Writer
	// instead. Required.
	Command func() *exec.Cmd
	// Ready, if set, is called after every start and must return nil once
	// the process serves (for a gateway: /healthz answers). An error stops
	// the new process and fails the Start or Restart.
	Ready func(ctx context.Context) error
	// GracePeriod is how long Restart and Stop wait after SIGTERM before
	// SIGKILL. Zero means 10 s.
	GracePeriod time.Duration
	// Logger receives one line per fault. Nil discards.
	Logger *slog.Logger
}

// ProcessNode is a [Node] backed by an operating-system process started
// from an exec.Cmd. It is safe for concurrent use; faults on one node are
// serialised. Each started process has one goroutine waiting for its exit,
// which ends when the process does; Stop ends the process.
type ProcessNode struct {
	name string
	opts ProcessOptions
	log  *slog.Logger

	ops sync.Mutex // serialises faults
	mu  sync.Mutex // guards cur
	cur *procInstance
}

type procInstance struct {
	cmd    *exec.Cmd
	done   chan struct{} // closed when the process has exited
	err    error         // cmd.Wait's result, set before done is closed
	paused bool          // guarded by ProcessNode.mu
}

// NewProcessNode returns a node named name; it is not started.
func NewProcessNode(name string, opts ProcessOptions) (*ProcessNode, error) {
	if opts.Command == nil {
		return nil, fmt.Errorf("chaos: process node %q: Command is required", name)
	}
	if opts.GracePeriod == 0 {
		opts.GracePeriod = 10 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ProcessNode{name: name, opts: opts, log: log.With("node", name)}, nil
}

// Name is the node's name.
func (n *ProcessNode) Name() string { return n.name }

// Start starts the process if it is not running and waits for Ready.
func (n *ProcessNode) Start(ctx context.Context) error {
	n.ops.Lock()
	defer n.ops.Unlock()
	if p := n.running(); p != nil {
		return nil
	}
	return n.start(ctx)
}

func (n *ProcessNode) start(ctx context.Context) error {
	cmd := n.opts.Command()
	if cmd == nil {
		return fmt.Errorf("chaos: node %s: Command returned nil", n.name)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("chaos: node %s: start: %w", n.name, err)
	}
	p := &procInstance{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	n.mu.Lock()
	n.cur = p
	n.mu.Unlock()
	n.log.Debug("node started", "pid", cmd.Process.Pid)
	if n.opts.Ready != nil {
		if err := n.opts.Ready(ctx); err != nil {
			_ = cmd.Process.Kill()
			<-p.done
			return fmt.Errorf("chaos: node %s: not ready: %w", n.name, err)
		}
	}
	return nil
}

// running returns the current process if it has not exited.
func (n *ProcessNode) running() *procInstance {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cur == nil {
		return nil
	}
	select {
	case <-n.cur.done:
		return nil
	default:
		return n.cur
	}
}

// PID is the current process's id, or 0 when none was started.
func (n *ProcessNode) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cur == nil {
		return 0
	}
	return n.cur.cmd.Process.Pid
}

// Wait waits for the current process to exit and returns cmd.Wait's error
// (nil for exit status 0), or ctx's error. It returns ErrNotRunning when no
// process was ever started.
func (n *ProcessNode) Wait(ctx context.Context) error {
	n.mu.Lock()
	p := n.cur
	n.mu.Unlock()
	if p == nil {
		return ErrNotRunning
	}
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (n *ProcessNode) signal(p *procInstance, sig syscall.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil {
		if errors.Is(err, syscall.ESRCH) || errors.Is(err, os.ErrProcessDone) {
			return ErrNotRunning
		}
		return err
	}
	return nil
}

func (n *ProcessNode) fault(name string, f func(p *procInstance) error) error {
	n.ops.Lock()
	defer n.ops.Unlock()
	p := n.running()
	if p == nil {
		return fmt.Errorf("chaos: node %s: %s: %w", n.name, name, ErrNotRunning)
	}
	if err := f(p); err != nil {
		return fmt.Errorf("chaos: node %s: %s: %w", n.name, name, err)
	}
	n.log.Info("node fault", "fault", name, "pid", p.cmd.Process.Pid)
	return nil
}

// Kill implements [Node]: SIGKILL, then wait for the exit.
func (n *ProcessNode) Kill(ctx context.Context) error {
	return n.fault("kill", func(p *procInstance) error {
		if err := n.signal(p, syscall.SIGKILL); err != nil {
			return err
		}
		select {
		case <-p.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
}

// Pause implements [Node]: SIGSTOP.
func (n *ProcessNode) Pause(ctx context.Context) error {
	return n.fault("pause", func(p *procInstance) error {
		if err := n.signal(p, syscall.SIGSTOP); err != nil {
			return err
		}
		n.mu.Lock()
		p.paused = true
		n.mu.Unlock()
		return nil
	})
}

// Resume implements [Node]: SIGCONT.
func (n *ProcessNode) Resume(ctx context.Context) error {
	return n.fault("resume", func(p *procInstance) error {
		if err := n.signal(p, syscall.SIGCONT); err != nil {
			return err
		}
		n.mu.Lock()
		p.paused = false
		n.mu.Unlock()
		return nil
	})
}

// Drain implements [Node]: SIGTERM (and SIGCONT if paused, so the signal is
// handled).
func (n *ProcessNode) Drain(ctx context.Context) error {
	return n.fault("drain", func(p *procInstance) error { return n.terminate(p) })
}

func (n *ProcessNode) terminate(p *procInstance) error {
	if err := n.signal(p, syscall.SIGTERM); err != nil {
		return err
	}
	n.mu.Lock()
	paused := p.paused
	p.paused = false
	n.mu.Unlock()
	if paused {
		return n.signal(p, syscall.SIGCONT)
	}
	return nil
}

// Restart implements [Node].
func (n *ProcessNode) Restart(ctx context.Context) error {
	n.ops.Lock()
	defer n.ops.Unlock()
	if p := n.running(); p != nil {
		if err := n.stop(ctx, p); err != nil {
			return fmt.Errorf("chaos: node %s: restart: %w", n.name, err)
		}
	}
	if err := n.start(ctx); err != nil {
		return err
	}
	n.log.Info("node fault", "fault", "restart", "pid", n.PID())
	return nil
}

// Stop ends the process: SIGTERM, then SIGKILL after the grace period or
// when ctx ends, and waits for the exit. Stopping a node that is not
// running is a no-op.
func (n *ProcessNode) Stop(ctx context.Context) error {
	n.ops.Lock()
	defer n.ops.Unlock()
	p := n.running()
	if p == nil {
		return nil
	}
	return n.stop(ctx, p)
}

func (n *ProcessNode) stop(ctx context.Context, p *procInstance) error {
	if err := n.terminate(p); err != nil && !errors.Is(err, ErrNotRunning) {
		return err
	}
	grace := time.NewTimer(n.opts.GracePeriod)
	defer grace.Stop()
	select {
	case <-p.done:
		return nil
	case <-grace.C:
	case <-ctx.Done():
	}
	if err := n.signal(p, syscall.SIGKILL); err != nil && !errors.Is(err, ErrNotRunning) {
		return err
	}
	<-p.done // SIGKILL cannot be ignored
	return ctx.Err()
}
