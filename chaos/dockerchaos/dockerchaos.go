// Package dockerchaos acts on Docker containers for the fault timeline: it implements
// chaos.Container (stop, start, kill, restart, pause, resume, disconnect from and reconnect to a
// network) with the Docker client testcontainers-go brings, for containers the run started
// (typically with testcontainers-go). It is kept out of package chaos so that the loadgen binary
// does not carry a Docker client.
//
// A Container is safe for concurrent use; its faults are serialised. It starts no goroutines.
package dockerchaos

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"

	"github.com/squall-dev/squall/chaos"
)

// Engine is what a Container needs of the Docker client (a *client.Client, or testcontainers-go's
// DockerClient, satisfies it).
type Engine interface {
	ContainerStop(ctx context.Context, id string, o client.ContainerStopOptions) (client.ContainerStopResult, error)
	ContainerStart(ctx context.Context, id string, o client.ContainerStartOptions) (client.ContainerStartResult, error)
	ContainerKill(ctx context.Context, id string, o client.ContainerKillOptions) (client.ContainerKillResult, error)
	ContainerRestart(ctx context.Context, id string, o client.ContainerRestartOptions) (client.ContainerRestartResult, error)
	ContainerPause(ctx context.Context, id string, o client.ContainerPauseOptions) (client.ContainerPauseResult, error)
	ContainerUnpause(ctx context.Context, id string, o client.ContainerUnpauseOptions) (client.ContainerUnpauseResult, error)
	ContainerInspect(ctx context.Context, id string, o client.ContainerInspectOptions) (client.ContainerInspectResult, error)
	ContainerWait(ctx context.Context, id string, o client.ContainerWaitOptions) client.ContainerWaitResult
	NetworkDisconnect(ctx context.Context, net string, o client.NetworkDisconnectOptions) (client.NetworkDisconnectResult, error)
	NetworkConnect(ctx context.Context, net string, o client.NetworkConnectOptions) (client.NetworkConnectResult, error)
}

// Options configure a Container.
type Options struct {
	// StopTimeout is how long Stop and Restart wait after SIGTERM before SIGKILL; zero means 10 s.
	StopTimeout time.Duration
	// Logger receives one line per fault; nil discards.
	Logger *slog.Logger
}

// Container is one container faults act on.
type Container struct {
	engine Engine
	id     string
	name   string
	opts   Options
	log    *slog.Logger

	mu   sync.Mutex                           // serialises faults; guards gone
	gone map[string]*network.EndpointSettings // what Disconnect took away, by network
}

var _ chaos.Container = (*Container)(nil)

// New returns the container id (name is for messages) driven through engine.
func New(engine Engine, id, name string, o Options) *Container {
	if o.StopTimeout <= 0 {
		o.StopTimeout = 10 * time.Second
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if name == "" {
		name = id
	}
	return &Container{engine: engine, id: id, name: name, opts: o, log: log.With("container", name),
		gone: map[string]*network.EndpointSettings{}}
}

// NewEngine opens the Docker client testcontainers-go uses (its configuration, DOCKER_HOST, ...).
// Close it when done.
func NewEngine(ctx context.Context) (*testcontainers.DockerClient, error) {
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return nil, fmt.Errorf("dockerchaos: no Docker engine: %w", err)
	}
	return cli, nil
}

// FromTestcontainer wraps a container started with testcontainers-go.
func FromTestcontainer(engine Engine, c testcontainers.Container, name string, o Options) *Container {
	return New(engine, c.GetContainerID(), name, o)
}

// Name is the container's name as given to New.
func (c *Container) Name() string { return c.name }

func (c *Container) fault(name string, f func() error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := f(); err != nil {
		return fmt.Errorf("dockerchaos: container %s: %s: %w", c.name, name, err)
	}
	c.log.Info("container fault", "fault", name)
	return nil
}

func (c *Container) timeoutSeconds() *int {
	s := int((c.opts.StopTimeout + time.Second - 1) / time.Second)
	return &s
}

// Stop implements chaos.Container.
func (c *Container) Stop(ctx context.Context) error {
	return c.fault("stop", func() error {
		_, err := c.engine.ContainerStop(ctx, c.id, client.ContainerStopOptions{Timeout: c.timeoutSeconds()})
		return err
	})
}

// Start implements chaos.Container.
func (c *Container) Start(ctx context.Context) error {
	return c.fault("start", func() error {
		_, err := c.engine.ContainerStart(ctx, c.id, client.ContainerStartOptions{})
		return err
	})
}

// Kill implements chaos.Container: SIGKILL, then wait until the engine reports the exit.
func (c *Container) Kill(ctx context.Context) error {
	return c.fault("kill", func() error {
		wait := c.engine.ContainerWait(ctx, c.id, client.ContainerWaitOptions{Condition: "not-running"})
		if _, err := c.engine.ContainerKill(ctx, c.id, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
			return err
		}
		select {
		case <-wait.Result:
			return nil
		case err := <-wait.Error:
			return fmt.Errorf("waiting for the exit: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	})
}

// Restart implements chaos.Container.
func (c *Container) Restart(ctx context.Context) error {
	return c.fault("restart", func() error {
		_, err := c.engine.ContainerRestart(ctx, c.id, client.ContainerRestartOptions{Timeout: c.timeoutSeconds()})
		return err
	})
}

// Pause implements chaos.Container.
func (c *Container) Pause(ctx context.Context) error {
	return c.fault("pause", func() error {
		_, err := c.engine.ContainerPause(ctx, c.id, client.ContainerPauseOptions{})
		return err
	})
}

// Resume implements chaos.Container.
func (c *Container) Resume(ctx context.Context) error {
	return c.fault("resume", func() error {
		_, err := c.engine.ContainerUnpause(ctx, c.id, client.ContainerUnpauseOptions{})
		return err
	})
}

// Disconnect implements chaos.Container. It remembers the container's address and aliases on the
// network so that Connect restores them.
func (c *Container) Disconnect(ctx context.Context, net string) error {
	return c.fault("disconnect from "+net, func() error {
		in, err := c.engine.ContainerInspect(ctx, c.id, client.ContainerInspectOptions{})
		if err != nil {
			return err
		}
		var ep *network.EndpointSettings
		if ns := in.Container.NetworkSettings; ns != nil {
			ep = ns.Networks[net]
		}
		if ep == nil {
			return fmt.Errorf("not on network %q", net)
		}
		keep := &network.EndpointSettings{Aliases: ep.Aliases}
		if ep.IPAMConfig != nil { // a static address (the network has a subnet): keep it
			keep.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: ep.IPAMConfig.IPv4Address, IPv6Address: ep.IPAMConfig.IPv6Address}
		}
		if _, err := c.engine.NetworkDisconnect(ctx, net, client.NetworkDisconnectOptions{Container: c.id, Force: true}); err != nil {
			return err
		}
		c.gone[net] = keep
		return nil
	})
}

// Connect implements chaos.Container: it undoes Disconnect.
func (c *Container) Connect(ctx context.Context, net string) error {
	return c.fault("connect to "+net, func() error {
		keep, ok := c.gone[net]
		if !ok {
			return fmt.Errorf("network %q: %w", net, chaos.ErrUnknownNetwork)
		}
		if _, err := c.engine.NetworkConnect(ctx, net, client.NetworkConnectOptions{Container: c.id, EndpointConfig: keep}); err != nil {
			return err
		}
		delete(c.gone, net)
		return nil
	})
}
