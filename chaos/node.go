package chaos

import (
	"context"
	"errors"
)

// Node is a gateway node that process faults act on. The load generator's
// embedded gateway nodes implement it; [ProcessNode] implements it for an
// operating-system process.
//
// Every method takes a context that bounds how long it may block.
type Node interface {
	// Kill ends the node at once with no cleanup (SIGKILL for a process):
	// clients see their connections drop without a close frame. It returns
	// once the node is gone.
	Kill(ctx context.Context) error
	// Restart stops the node — gracefully if it does so within the
	// implementation's grace period, else by killing it — and starts it
	// again, returning once the new instance is ready. Restarting a node
	// that is not running just starts it.
	Restart(ctx context.Context) error
	// Pause freezes the node (SIGSTOP): sockets stay open, nothing is read,
	// written or timed, so clients see a half-open peer.
	Pause(ctx context.Context) error
	// Resume undoes Pause (SIGCONT).
	Resume(ctx context.Context) error
	// Drain asks the node to shut down gracefully (SIGTERM): the reference
	// gateway closes every connection with 1001 and a retry hint, then
	// exits. Drain returns once the request is delivered, not once the node
	// has exited. A paused node is resumed so it can drain.
	Drain(ctx context.Context) error
}

// ErrNotRunning is returned by a fault on a node that is not running.
var ErrNotRunning = errors.New("node not running")

var _ Node = (*ProcessNode)(nil)
