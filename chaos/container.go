package chaos

import (
	"context"
	"errors"
)

// Container is a container of the run that container faults act on: one the run (or its caller)
// started, never an arbitrary container of the host. Package dockerchaos implements it with the
// Docker client testcontainers-go brings.
//
// Every method takes a context that bounds how long it may block, and returns once the engine has
// done what was asked.
type Container interface {
	// Stop stops the container gracefully: SIGTERM, then SIGKILL after the implementation's grace
	// period. It returns once the container has exited.
	Stop(ctx context.Context) error
	// Start starts a stopped or killed container again (its network addresses are kept).
	Start(ctx context.Context) error
	// Kill ends the container at once (SIGKILL): its peers see their connections drop without a
	// close.
	Kill(ctx context.Context) error
	// Restart stops the container gracefully and starts it again.
	Restart(ctx context.Context) error
	// Pause freezes every process of the container (the cgroup freezer): sockets stay open and
	// nothing is read or written, so peers see a half-open connection.
	Pause(ctx context.Context) error
	// Resume undoes Pause.
	Resume(ctx context.Context) error
	// Disconnect takes the container off network (a partition: it can no longer reach, nor be
	// reached by, anything on that network); Connect puts it back with the same address and aliases.
	Disconnect(ctx context.Context, network string) error
	Connect(ctx context.Context, network string) error
}

// ErrUnknownNetwork is returned by Container.Connect for a network the container was never
// disconnected from (and so has no address on to restore).
var ErrUnknownNetwork = errors.New("no address known on that network")

// ParamNetwork is the parameter of the network actions: the network's name.
const ParamNetwork = "network"
