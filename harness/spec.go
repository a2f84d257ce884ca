package harness

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"time"

	"github.com/squall-dev/squall/chaos"
	"github.com/squall-dev/squall/internal/usage"
	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/agent"
	"github.com/squall-dev/squall/refserver"
	"github.com/squall-dev/squall/scenarios"
)

// DefaultFDsPerProcess is how many open files one worker or gateway node may use: the hard limit is
// 20 000 (DESIGN §8) and the rest is margin for listeners, files and the runtime.
const DefaultFDsPerProcess = 19000

// Spec is what a run runs: a scenario, or a plan against a target.
type Spec struct {
	// Scenario, when set, is the scenario to run, loaded with its overrides applied: its target,
	// cohorts, phases, timeline and SLOs say everything, and Plan and Target must be zero.
	Scenario *scenarios.Scenario
	// File and Source are the scenario's file and its text as written (kept in the result so that
	// the run can be reproduced).
	File   string
	Source []byte

	// Plan is the plan to run without a scenario (no timeline, no SLOs).
	Plan loadgen.Plan
	// Target is where Plan runs.
	Target Target
}

// Target is where a plan without a scenario runs: the embedded reference gateway (URL empty) or a
// running gateway at URL.
type Target struct {
	// URL of a running gateway (ws:// or wss://host:port/path); empty starts the embedded gateway.
	URL string
	// Protocol, Auth and Conn are what the clients speak at URL, their credentials and how they
	// open their connections (TLS, headers): see loadgen.Target. URL targets only.
	Protocol loadgen.ProtocolSpec
	Auth     loadgen.AuthSpec
	Conn     loadgen.ConnSpec
	// Nodes is the number of embedded gateway nodes (0: as many as the clients need, each holding
	// at most Options.FDsPerProcess connections).
	Nodes int
	// Gateway is the embedded gateway's configuration (zero fields are refserver's defaults; dev
	// mode unless it has an auth secret).
	Gateway refserver.Config
}

// Options are how a run is carried out and watched; none of them changes what is measured.
type Options struct {
	// Logger receives the run's log (nil discards).
	Logger *slog.Logger
	// GatewayLog receives the logs of gateway nodes in child processes (nil discards).
	GatewayLog io.Writer
	// NodeBinary, when set, is a refserver binary to run the embedded gateway's child nodes with,
	// instead of this executable's node mode: the gateway then costs what a deployed refserver
	// costs (this executable's code and data, far larger, are not in its memory).
	NodeBinary string

	// Workers is the number of local worker processes for the plan's direct cohorts (0: as many
	// as the open-file limit requires; a plan that fits runs in this process).
	Workers int
	// Agents are remote agents (host:port) to run the plan on instead of local workers.
	Agents []string
	// Token is the agents' shared token (required with Agents; local workers get a fresh one).
	Token string
	// AgentTLS, when set, makes the controller speak HTTPS to the Agents and verify their
	// certificates with it (RootCAs: the agents' CA bundle).
	AgentTLS *tls.Config
	// AgentsInsecure allows plain HTTP to Agents off loopback (recorded in the result: every such
	// worker's transport is "http-insecure", and a warning event says so); without it, or
	// AgentTLS, such an agent is refused before the run starts.
	AgentsInsecure bool
	// Containers are containers the caller started for this run (gateway nodes, Redis, Toxiproxy,
	// agents), by the name a scenario's container faults use; the timeline acts on these and on no
	// other container. Package chaos/dockerchaos makes them from testcontainers-go containers.
	Containers map[string]chaos.Container
	// ShutdownAgents asks every agent of Agents to exit once the run is over (agents run as a
	// Kubernetes Job then complete).
	ShutdownAgents bool
	// LostAfter is how long a worker may stay unheard (its stream broken, no answer) before it
	// counts as lost and the run goes on without it (0: 45 s). A local worker whose process
	// exits is lost at once.
	LostAfter time.Duration
	// FDsPerProcess is the open files one worker or gateway node may use (default
	// DefaultFDsPerProcess).
	FDsPerProcess int
	// WorkerCommand is the command line a local worker process is started with; it must serve
	// ServeAgent on the loopback address it picks and print agent.ListenPrefix and the address on
	// stdout (default: this executable with "agent --listen 127.0.0.1:0", as cmd/loadgen does).
	WorkerCommand []string
	// Version is the harness's version, recorded in the result.
	Version string
	// OnStart is told what the run is about to do, once everything is up and before the first
	// client connects.
	OnStart func(Start)
	// OnUpdate receives the merged live figures about once a second.
	OnUpdate func(agent.Update)
	// OnNote receives one line about something that happened (a fault of the timeline, a lost
	// worker) as it happens.
	OnNote func(string)
}

// Start says what a run is about to do.
type Start struct {
	Name    string // the scenario's or the plan's name
	Clients int    // simulated clients in the plan
	Workers int    // processes (or agents) the clients run in
	Target  string // "embedded" or "url"
	// Resolved says what the clients connect to and how (loadgen.Target.Describe).
	Resolved string
	URLs     []string          // every address the clients connect to (direct and through proxies)
	Plan     loadgen.Plan      // the whole plan
	At       time.Time         // the shared start instant
	Proxies  map[string]string // chaos proxy name → its listen address
}

// UsageError is an error in what was asked — the spec, the options, a target that refuses the
// clients' credentials — rather than in running it (exit code 2 of DESIGN §6).
type UsageError = usage.Error

func usageErr(err error) error { return usage.Wrap(err) }

func usagef(format string, a ...any) error { return usage.Errorf(format, a...) }

// IsUsage reports whether err is (or wraps) a UsageError.
func IsUsage(err error) bool { return usage.Is(err) }

// validate checks the spec and options together and fills in defaults.
func (o *Options) validate(spec Spec) error {
	var errs []string
	if spec.Scenario == nil && len(spec.Plan.Cohorts) == 0 {
		errs = append(errs, "nothing to run: neither a scenario nor a plan")
	}
	if spec.Scenario != nil && (len(spec.Plan.Cohorts) > 0 || spec.Target.URL != "" || spec.Target.Nodes != 0) {
		errs = append(errs, "a scenario sets its own plan and target")
	}
	if t := spec.Target; t.URL == "" && (!reflect.ValueOf(t.Conn).IsZero() || (t.Protocol.Name != "" && t.Protocol.Name != loadgen.ProtocolSquall) ||
		t.Protocol.Generic != nil || !reflect.DeepEqual(t.Auth, loadgen.AuthSpec{Secret: t.Auth.Secret})) {
		errs = append(errs, "TLS, headers, origin, subprotocols, protocol and auth settings apply to a URL target (the embedded gateway speaks squall over ws://)")
	}
	if o.Workers < 0 || spec.Target.Nodes < 0 {
		errs = append(errs, "workers and nodes must not be negative")
	}
	if len(o.Agents) > 0 && o.Workers > 0 {
		errs = append(errs, "agents and local workers exclude each other")
	}
	if len(o.Agents) > 0 && o.Token == "" {
		errs = append(errs, "agents need their shared token")
	}
	if o.FDsPerProcess == 0 {
		o.FDsPerProcess = DefaultFDsPerProcess
	}
	if o.FDsPerProcess < 100 {
		errs = append(errs, fmt.Sprintf("%d open files per process: want at least 100", o.FDsPerProcess))
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if len(errs) > 0 {
		return usagef("%s", strings.Join(errs, "; "))
	}
	return nil
}
