package scenarios

import (
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/squall-dev/squall/chaos"
	"github.com/squall-dev/squall/loadgen"
)

// Scenario is one scenario file: who connects (Cohorts), how the population moves (Model, Phases),
// what goes wrong and when (Timeline), against what (Target), and how the run is graded (SLOs).
//
// Every field maps onto a YAML key of the same name in snake_case (the yaml tag). Durations are
// time.Duration values written as Go durations ("30s", "250ms"). After Load or Parse every default
// has been filled in, so a field that is zero means zero, not "unset", and the mapping onto the load
// generator's plan (package loadgen) is field by field.
type Scenario struct {
	// Name identifies the scenario in reports (default: the file name without extension).
	Name string `yaml:"name"`
	// Description says what the scenario reproduces and what it grades; free text.
	Description string `yaml:"description"`
	// TimeScale is the factor applied to every duration of the file (see ApplyTimeScale). In a file
	// it is the default factor (0 or absent means 1); after Load it is the factor that was applied,
	// so a loaded scenario's durations are the ones that will run.
	TimeScale float64 `yaml:"time_scale"`
	// Seed seeds every random choice of the run (jitter, room assignment, toxicity draws). 0 means
	// "pick one and record it in the result".
	Seed uint64 `yaml:"seed"`
	// Out is the directory the run writes result.json and its renderings to (default chosen by the
	// command line). Not a duration; WithOut overrides it.
	Out string `yaml:"out"`
	// ScheduleLagBound marks the run unreliable when the generator's schedule-lag p99 exceeds it
	// (default 50ms). It is not time-scaled: the generator's own lag does not follow the scenario's clock.
	ScheduleLagBound time.Duration `yaml:"schedule_lag_bound" scale:"-"`
	// ClientIO is how the generator reads its clients' WebSockets: epoll (the default: no
	// goroutine or read buffer per idle client) or goroutine (a reader goroutine each, the
	// design to compare with). wss:// targets are read by goroutines either way.
	ClientIO string `yaml:"client_io"`
	// Settle is how long ramp-down waits for in-flight broadcasts before checking delivery
	// (default 2s). Time-scaled.
	Settle time.Duration `yaml:"settle"`

	Target   Target   `yaml:"target"`
	Model    Model    `yaml:"model"`
	Cohorts  []Cohort `yaml:"cohorts"`
	Phases   []Phase  `yaml:"phases"`
	Timeline []Event  `yaml:"timeline"`
	SLOs     []SLO    `yaml:"slos"`

	// file and pos remember where each field came from, for error messages; nil for a Scenario built
	// in Go.
	file      string
	pos       positions
	overrides map[string]string // field path → command-line flag that set it
}

// Target is the system under test: the embedded reference gateway (the default) or a running gateway
// at URL. The gateway settings apply to the embedded target only; each is the refserver flag its
// gateway tag names. After Load every duration and rate setting of an embedded target holds the
// gateway's default when the file left it out, so that time_scale reaches it too.
type Target struct {
	// URL of a running gateway's WebSocket endpoint (ws:// or wss://, any host). Empty means the
	// embedded gateway. Mutually exclusive with every embedded setting below.
	URL string `yaml:"url"`
	// Protocol is what the clients speak there (default: squall, the reference gateway's; the
	// embedded gateway speaks nothing else). See loadgen.ProtocolSpec.
	Protocol loadgen.ProtocolSpec `yaml:"protocol"`
	// Auth is where the clients' tokens come from (minted JWTs, a token file, none) and where they
	// go (query, header, first frame). URL targets only. See loadgen.AuthSpec.
	Auth loadgen.AuthSpec `yaml:"auth"`
	// TLS configures a wss:// URL: CA bundle, client certificate, server name,
	// insecure_skip_verify. Relative file names are taken from the scenario file's directory.
	TLS loadgen.TLSSpec `yaml:"tls"`
	// Headers are added to every upgrade request (values are templates: {{.Token}}, {{.User}},
	// {{.Client}}); Origin and Subprotocols likewise. URL targets only.
	Headers      map[string]string `yaml:"headers"`
	Origin       string            `yaml:"origin"`
	Subprotocols []string          `yaml:"subprotocols"`
	// URLs are the nodes of one running gateway (instead of URL): clients are spread over them,
	// and each node's /metrics on the same host:port is scraped unless MetricsURL is set.
	URLs []string `yaml:"urls"`
	// MetricsURL is the Prometheus endpoint scraped during the run (default for the embedded gateway:
	// its own /metrics; for a URL target: none unless set).
	MetricsURL string `yaml:"metrics_url"`
	// Toxiproxy is the control API of an external Toxiproxy (http://host:8474). Empty means the
	// embedded one inside the loadgen process.
	Toxiproxy string `yaml:"toxiproxy"`

	// Nodes is the number of embedded gateway nodes (default 1); with more than one they share rooms
	// through the broker, and clients are spread over them.
	Nodes int `yaml:"nodes"`
	// Flaws switched on in every embedded node (see refserver --help): no-server-ping,
	// leak-on-error, no-presence-leave, no-seq-order, no-conn-limit, unbounded-history,
	// no-auth-cache, no-drain.
	Flaws []string `yaml:"flaws" gateway:"flaw"`

	// The gateway settings: each the refserver flag its gateway tag names (--heartbeat-interval for
	// heartbeat_interval), mapped onto refserver.Config by GatewayConfig. Zero means the gateway's
	// default; after Load the durations and rates hold it, so that time_scale reaches them.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval" gateway:"heartbeat-interval"`   // server WebSocket ping period (default 30s)
	HeartbeatTimeout  time.Duration `yaml:"heartbeat_timeout" gateway:"heartbeat-timeout"`     // silence before the server closes (default 60s)
	FlawSweepInterval time.Duration `yaml:"flaw_sweep_interval" gateway:"flaw-sweep-interval"` // slow sweep under no-server-ping (default 30s)
	HelloTimeout      time.Duration `yaml:"hello_timeout" gateway:"hello-timeout"`             // time to send hello without a URL token (default 10s)
	WriteTimeout      time.Duration `yaml:"write_timeout" gateway:"write-timeout"`             // bound of one write to a client (default 10s)
	ReorderTimeout    time.Duration `yaml:"reorder_timeout" gateway:"reorder-timeout"`         // how long a seq gap may stay open (default 2s)
	HistoryTTL        time.Duration `yaml:"history_ttl" gateway:"history-ttl"`                 // room history age bound (default 5m)
	ReconnectWindow   time.Duration `yaml:"reconnect_window" gateway:"reconnect-window"`       // a new connection within it counts as a reconnect (default 1m)
	DrainSpread       time.Duration `yaml:"drain_spread" gateway:"drain-spread"`               // spread of retry_after_ms hints on drain (default 10s)
	SessionTTL        time.Duration `yaml:"session_ttl" gateway:"session-ttl"`                 // how long a session outlives its connection (default 2m)
	AuthLatency       time.Duration `yaml:"auth_latency" gateway:"auth-latency"`               // latency of the auth backend (default 0)
	AuthCacheTTL      time.Duration `yaml:"auth_cache_ttl" gateway:"auth-cache-ttl"`           // validated-token cache lifetime (default 5m)

	MaxConnsPerClient int     `yaml:"max_conns_per_client" gateway:"max-conns-per-client"`      // per user id (default 5)
	MaxConnsPerIP     int     `yaml:"max_conns_per_ip" gateway:"max-conns-per-ip"`              // per remote IP (default: max_conns_per_client; -1 = none)
	MaxConns          int     `yaml:"max_conns" gateway:"max-conns"`                            // per node (default 50000)
	SendQueue         int     `yaml:"send_queue" gateway:"send-queue"`                          // frames queued per connection before slow_consumer (default 256)
	ReorderWindow     int     `yaml:"reorder_window" gateway:"reorder-window"`                  // frames held waiting for a missing seq (default 32)
	HistorySize       int     `yaml:"history_size" gateway:"history-size"`                      // room history count bound (default 1000)
	AcceptRate        float64 `yaml:"accept_rate" scale:"rate" gateway:"accept-rate"`           // admission token bucket, connections/s (default 2000)
	AcceptBurst       int     `yaml:"accept_burst" gateway:"accept-burst"`                      // admission bucket size (default 1000)
	StormAlertRate    float64 `yaml:"storm_alert_rate" scale:"rate" gateway:"storm-alert-rate"` // reconnects/s that raise ws_storm_active (default 100)
	StormAlertBurst   int     `yaml:"storm_alert_burst" gateway:"storm-alert-burst"`            // reconnects within one second that raise it (default 50)
	AuthFailureRate   float64 `yaml:"auth_failure_rate" gateway:"auth-fail-rate"`               // share of auth calls that fail, 0..1 (default 0)
	IO                string  `yaml:"io" gateway:"io"`                                          // WebSocket I/O model: goroutine (default) or nbio
	SocketBuffer      int     `yaml:"socket_buffer" gateway:"socket-buffer"`                    // SO_RCVBUF/SO_SNDBUF of WebSocket sockets, bytes (0 = kernel default)
}

// Embedded reports whether the target is the embedded reference gateway.
func (t Target) Embedded() bool { return t.URL == "" && len(t.URLs) == 0 }

// Addresses are the target's WebSocket URLs (URL, or URLs).
func (t Target) Addresses() []string {
	if t.URL != "" {
		return []string{t.URL}
	}
	return t.URLs
}

// urlOnly are the target settings that apply to a URL target and to nothing embedded.
var urlOnly = []string{"url", "urls", "metrics_url", "toxiproxy", "protocol", "auth", "tls", "headers", "origin", "subprotocols"}

// LoadgenTarget is the load generator's target for a URL target: its endpoint, protocol,
// credentials and connection settings, with relative file names taken from the scenario file's
// directory.
func (s *Scenario) LoadgenTarget() (loadgen.Target, error) {
	t := s.Target
	var lt loadgen.Target
	for i, raw := range t.Addresses() {
		ep, err := loadgen.ParseURL(raw)
		if err != nil {
			if t.URL != "" {
				return loadgen.Target{}, fmt.Errorf("target.url: %w", err)
			}
			return loadgen.Target{}, fmt.Errorf("target.urls[%d]: %w", i, err)
		}
		lt.Endpoints = append(lt.Endpoints, ep)
	}
	if len(lt.Endpoints) == 0 {
		return loadgen.Target{}, fmt.Errorf("target.url: missing")
	}
	if t.URL != "" || t.MetricsURL != "" {
		// One URL: its metrics only when the file names them. Several nodes: each node's own
		// /metrics (ParseURL's default), unless the file names one endpoint for the whole gateway.
		for i := range lt.Endpoints {
			lt.Endpoints[i].MetricsURL = ""
		}
		lt.Endpoints[0].MetricsURL = t.MetricsURL
	}
	dir := ""
	if s.file != "" {
		dir = filepath.Dir(s.file)
	}
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) || dir == "" {
			return p
		}
		return filepath.Join(dir, p)
	}
	lt.Protocol = t.Protocol
	lt.Auth = t.Auth
	lt.Auth.KeyFile, lt.Auth.TokenFile = rel(t.Auth.KeyFile), rel(t.Auth.TokenFile)
	lt.Conn = loadgen.ConnSpec{TLS: t.TLS, Headers: t.Headers, Origin: t.Origin, Subprotocols: t.Subprotocols}
	lt.Conn.TLS.CAFile, lt.Conn.TLS.CertFile, lt.Conn.TLS.KeyFile = rel(t.TLS.CAFile), rel(t.TLS.CertFile), rel(t.TLS.KeyFile)
	return lt, nil
}

// ModelKind is how clients enter the run: the load generator's model kinds.
type ModelKind = loadgen.ModelKind

// Load models.
const (
	// ModelClosed: fixed concurrency. Every client connects during the ramp phases and stays until
	// ramp-down (or its own exit).
	ModelClosed = loadgen.ModelClosed
	// ModelOpen: clients arrive at ArrivalRate per second during ramp and hold phases and live for
	// Lifetime; cohort counts bound how many are alive at once.
	ModelOpen = loadgen.ModelOpen
)

// Model is the load model. In YAML it is either a word ("model: closed") or a mapping
// ("model: {kind: open, arrival_rate: 20, lifetime: 30s}").
type Model struct {
	Kind        ModelKind     `yaml:"kind"`                      // closed (default) or open
	ArrivalRate float64       `yaml:"arrival_rate" scale:"rate"` // open: clients per second
	Lifetime    time.Duration `yaml:"lifetime"`                  // open: how long each client stays
}

func (m *Model) fromScalar(s string) { m.Kind = ModelKind(s) }

// Cohort is a group of clients that behave alike.
type Cohort struct {
	// Name identifies the cohort in SLOs, timeline events and reports (required, unique).
	Name string `yaml:"name"`
	// Count is the number of simulated tabs (closed model: all connected at once after the ramp;
	// open model: at most this many alive at once).
	Count int `yaml:"count"`
	// Behaviour is what every client of the cohort does.
	Behaviour Behaviour `yaml:"behaviour"`
	// SourceIPs is a CIDR inside 127.0.0.0/8 whose addresses the cohort's connections are spread
	// over (default 127.1.0.0/16).
	SourceIPs string `yaml:"source_ips"`
	// Proxy names the chaos proxy the cohort is routed through (empty: direct to the gateway).
	// Timeline toxic and proxy events act on a proxy by this name.
	Proxy string `yaml:"proxy"`
}

// Behaviour is what a simulated tab does. After Load every zero means "off" except where a default
// is named.
type Behaviour struct {
	Rooms Rooms `yaml:"rooms"`
	// SendInterval is the time between two broadcasts of one client (0 = never sends).
	SendInterval time.Duration `yaml:"send_interval"`
	// Payload is the size in bytes of the padding in each broadcast.
	Payload int `yaml:"payload"`
	// Heartbeat is the application heartbeat: a ping frame every Heartbeat (0 = none).
	Heartbeat time.Duration `yaml:"heartbeat"`
	// HeartbeatPhase places a connection's first heartbeat: "connect" (default) one interval after
	// the connection is ready, so that tabs that connected together beat together (a ramp's or a
	// reconnect storm's tabs); "random" at a uniformly random point of the first interval (never
	// later), as in a population of tabs that connected over hours.
	HeartbeatPhase string `yaml:"heartbeat_phase"`
	// WSPing is the client's WebSocket ping interval (0 = none).
	WSPing time.Duration `yaml:"ws_ping"`
	// ReadTimeout makes the client drop a connection it has heard nothing on for this long, and
	// reconnect (0 = never): the client-side half of a heartbeat.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// Reconnect is the policy after a drop.
	Reconnect Reconnect `yaml:"reconnect"`
	// Resume resumes the session after a drop instead of joining afresh.
	Resume bool `yaml:"resume"`
	// Exit says how and when a tab leaves on its own (default: a clean close at ramp-down).
	Exit Exit `yaml:"exit"`
	// TabsPerUser is how many consecutive tabs share one user id (default 1).
	TabsPerUser int `yaml:"tabs_per_user"`
	// Misbehave breaks the protocol on purpose (escalation replay).
	Misbehave Misbehave `yaml:"misbehave"`
	// Transport is the tier the tabs connect with: websocket, sse, poll (the reference gateway's
	// fallback tiers) or ladder (WebSocket, then SSE when the upgrade is refused or cut, then long
	// polling). Set, it records delivery, latency and cost per tier (the tier_* metrics). Empty
	// means a WebSocket with no per-tier figures. The squall protocol only.
	Transport string `yaml:"transport"`
	// BlockUpgrade sends the tabs' WebSocket attempts through a proxy that strips the Upgrade
	// header, as a corporate proxy does (transport websocket or ladder).
	BlockUpgrade bool `yaml:"block_upgrade"`
}

// Rooms says which rooms a client joins. Rooms are named Prefix + index and shared by name across
// cohorts, so an observer cohort and a leaving cohort with the same prefix meet in the same rooms.
type Rooms struct {
	PerClient int    `yaml:"per_client"` // rooms each client joins (default 1)
	Count     int    `yaml:"count"`      // rooms of the cohort (default: from Size, else PerClient)
	Size      int    `yaml:"size"`       // clients per room; sets Count when Count is 0
	Prefix    string `yaml:"prefix"`     // default "room-"
}

// Policy names a reconnect policy: the load generator's policies (DESIGN §3).
type Policy = loadgen.PolicyKind

// Reconnect policies.
const (
	PolicyBackoff   = loadgen.PolicyBackoff   // 1s, x1.5, cap 30s, jitter up to 1s, 7 attempts (the fix)
	PolicyLadder    = loadgen.PolicyLadder    // 0, 1, 2, 5, 10, 30s, the last step repeating
	PolicyConstant  = loadgen.PolicyConstant  // 1s every time, 100 attempts (the escalation's bug)
	PolicyImmediate = loadgen.PolicyImmediate // at once, without limit unless max_attempts is set
)

// Reconnect is a reconnect policy with its parameters. In YAML either the policy name alone
// ("reconnect: constant") or a mapping. After Load every parameter of the policy holds its value
// (defaults filled in), so that time_scale reaches the delays.
type Reconnect struct {
	Policy      Policy          `yaml:"policy"`       // default backoff
	Initial     time.Duration   `yaml:"initial"`      // backoff: first delay; constant: every delay
	Multiplier  float64         `yaml:"multiplier"`   // backoff: growth per attempt
	Max         time.Duration   `yaml:"max"`          // backoff: cap before jitter
	Jitter      time.Duration   `yaml:"jitter"`       // backoff: uniform jitter upper bound
	Steps       []time.Duration `yaml:"steps"`        // ladder: delays
	MaxAttempts int             `yaml:"max_attempts"` // consecutive failed attempts before giving up; -1 = unlimited
}

func (r *Reconnect) fromScalar(s string) { r.Policy = Policy(s) }

// ExitKind is how a tab goes away: the load generator's exits (DESIGN §3).
type ExitKind = loadgen.ExitKind

// Exits.
const (
	ExitClose    = loadgen.ExitClose    // clean close frame 1000
	ExitTabClose = loadgen.ExitTabClose // TCP closed without a close frame
	ExitVanish   = loadgen.ExitVanish   // stops reading and writing, TCP stays open (a sleeping laptop)
	ExitNavigate = loadgen.ExitNavigate // a new connection opens before the old one closes
)

// Exit says how and when a tab leaves on its own. In YAML either the kind alone ("exit: tab-close",
// leaving at ramp-down) or a mapping.
type Exit struct {
	Kind   ExitKind      `yaml:"kind"`   // default close
	After  time.Duration `yaml:"after"`  // after the tab's first connection; 0 = at ramp-down
	Jitter time.Duration `yaml:"jitter"` // uniform spread added to After
	Share  float64       `yaml:"share"`  // fraction of the cohort that exits early, 0..1 (0 = all)
}

func (e *Exit) fromScalar(s string) { e.Kind = ExitKind(s) }

// Misbehave makes clients break the protocol on purpose. Zero fields are off.
type Misbehave struct {
	// ReorderEvery holds back every Nth sequenced frame and sends it ReorderWindow frames late
	// (out-of-order seq).
	ReorderEvery  int `yaml:"reorder_every"`
	ReorderWindow int `yaml:"reorder_window"` // default 1 when ReorderEvery is set
	// DropEvery skips every Nth seq number: the frame is never sent (a gap).
	DropEvery int `yaml:"drop_every"`
	// DupeEvery sends every Nth sequenced frame twice.
	DupeEvery int `yaml:"dupe_every"`
	// IgnorePings leaves the server's WebSocket pings unanswered.
	IgnorePings bool `yaml:"ignore_pings"`
	// HeartbeatFactor is the wrong heartbeat: the application heartbeat runs at this multiple of the
	// interval the server announces in welcome (0.5 = twice as often, 2 = half as often as expected),
	// replacing Behaviour.Heartbeat.
	HeartbeatFactor float64 `yaml:"heartbeat_factor"`
}

// PhaseKind is what a phase does: the load generator's phase kinds.
type PhaseKind = loadgen.PhaseKind

// Phase kinds.
const (
	// PhaseRamp opens connections at Rate per second until Target clients are connected (closed
	// model; Target 0 = every client), or lets clients arrive for Duration (open model).
	PhaseRamp = loadgen.PhaseRamp
	// PhaseHold keeps the population for Duration.
	PhaseHold = loadgen.PhaseHold
	// PhaseRampDown ends clients at Rate per second (0 = all at once) with their cohort's exit kind.
	PhaseRampDown = loadgen.PhaseRampDown
)

// Phase is one step of the schedule. Phases run one after the other from the start of the run.
type Phase struct {
	Name     string        `yaml:"name"`              // label in reports (default: the kind)
	Kind     PhaseKind     `yaml:"kind"`              // ramp, hold or ramp-down
	Rate     float64       `yaml:"rate" scale:"rate"` // connections (ramp) or exits (ramp-down) per second; 0 = at once
	Target   int           `yaml:"target"`            // ramp (closed model): clients connected at the end (0 = all)
	Duration time.Duration `yaml:"duration"`          // hold; open-model ramp; optional cap elsewhere
}

// Action is what a timeline event does.
type Action string

// Timeline actions.
const (
	ActionToxicAdd     Action = "toxic-add"     // add toxic Toxic of Type to Proxy
	ActionToxicRemove  Action = "toxic-remove"  // remove toxic Toxic from Proxy
	ActionProxyDisable Action = "proxy-disable" // every connection on Proxy drops, new dials refused
	ActionProxyEnable  Action = "proxy-enable"  // Proxy accepts again
	ActionNodeKill     Action = "node-kill"     // SIGKILL gateway node Node
	ActionNodeRestart  Action = "node-restart"  // stop node Node (gracefully, else kill) and start it again
	ActionNodePause    Action = "node-pause"    // SIGSTOP node Node
	ActionNodeResume   Action = "node-resume"   // SIGCONT node Node
	ActionNodeDrain    Action = "node-drain"    // SIGTERM node Node: close everyone with 1001 and a retry hint
	ActionBehaviour    Action = "behaviour"     // switch Cohort's behaviour by Behaviour

	// Container faults act on the run's own containers (harness.Options.Containers), by Container.
	ActionContainerStop       Action = "container-stop"       // stop Container (SIGTERM, then SIGKILL)
	ActionContainerStart      Action = "container-start"      // start a stopped or killed Container again
	ActionContainerKill       Action = "container-kill"       // SIGKILL Container
	ActionContainerRestart    Action = "container-restart"    // stop Container gracefully and start it again
	ActionContainerPause      Action = "container-pause"      // freeze Container (cgroup freezer)
	ActionContainerResume     Action = "container-resume"     // unfreeze Container
	ActionContainerDisconnect Action = "container-disconnect" // take Container off Network: a partition
	ActionContainerConnect    Action = "container-connect"    // put Container back on Network, same address
)

// ToxicType is a Toxiproxy toxic: the chaos package's types.
type ToxicType = chaos.ToxicType

// Toxic types (Toxiproxy v2), in the order the documentation and messages list them.
const (
	ToxicLatency   = chaos.Latency
	ToxicBandwidth = chaos.Bandwidth
	ToxicSlowClose = chaos.SlowClose
	ToxicTimeout   = chaos.Timeout
	ToxicResetPeer = chaos.ResetPeer
	ToxicLimitData = chaos.LimitData
	ToxicSlicer    = chaos.Slicer
)

// Event is one entry of the timeline, at a time measured from the start of the first phase. Which
// fields apply depends on Action (see the constants).
type Event struct {
	At     time.Duration `yaml:"at"`
	Action Action        `yaml:"action"`
	// Duration, when set on toxic-add, proxy-disable, node-pause, container-stop, container-kill,
	// container-pause or container-disconnect, reverts the action after it (toxic removed, proxy
	// enabled, node resumed, container started, resumed or reconnected).
	Duration time.Duration `yaml:"duration"`

	// Proxy the toxic or proxy action applies to (default: the only proxy the cohorts use).
	Proxy string `yaml:"proxy"`
	// Toxic names the toxic to add or remove (default: the type).
	Toxic string `yaml:"toxic"`
	// Type, Stream, Toxicity and Attributes describe the toxic of a toxic-add.
	Type       ToxicType  `yaml:"type"`
	Stream     string     `yaml:"stream"`   // upstream (client to gateway) or downstream (default)
	Toxicity   float64    `yaml:"toxicity"` // share of connections affected, 0..1 (0 or absent = 1)
	Attributes ToxicAttrs `yaml:"attributes"`

	// Node is the index of the embedded gateway node a node action applies to (default 0).
	Node int `yaml:"node"`

	// Container is the name of the run's container a container action applies to; Network is the
	// Docker network container-disconnect and container-connect act on.
	Container string `yaml:"container"`
	Network   string `yaml:"network"`

	// Cohort and Behaviour describe a behaviour switch: the fields set in Behaviour replace the
	// cohort's from this moment on (for clients connected and still to come).
	Cohort    string          `yaml:"cohort"`
	Behaviour *BehaviourPatch `yaml:"behaviour"`
}

// ToxicAttrs are the attributes of a toxic; each type reads only its own (see README).
type ToxicAttrs struct {
	Latency       time.Duration `yaml:"latency"`           // latency: added delay
	Jitter        time.Duration `yaml:"jitter"`            // latency: uniform spread
	Rate          int           `yaml:"rate" scale:"rate"` // bandwidth: KB/s
	Delay         time.Duration `yaml:"delay"`             // slow_close: delay of the close; slicer: delay between slices
	Timeout       time.Duration `yaml:"timeout"`           // timeout, reset_peer: when to cut (0 = never, for timeout)
	Bytes         int           `yaml:"bytes"`             // limit_data: bytes before the connection is closed
	AverageSize   int           `yaml:"average_size"`      // slicer: average slice size in bytes
	SizeVariation int           `yaml:"size_variation"`    // slicer: spread of slice sizes
}

// BehaviourPatch is a behaviour switch: nil fields keep the cohort's current value.
type BehaviourPatch struct {
	SendInterval *time.Duration `yaml:"send_interval"`
	Payload      *int           `yaml:"payload"`
	Heartbeat    *time.Duration `yaml:"heartbeat"`
	WSPing       *time.Duration `yaml:"ws_ping"`
	ReadTimeout  *time.Duration `yaml:"read_timeout"`
	Reconnect    *Reconnect     `yaml:"reconnect"`
	Resume       *bool          `yaml:"resume"`
	Exit         *Exit          `yaml:"exit"`
	Misbehave    *Misbehave     `yaml:"misbehave"`
}

// Op is the comparison of an SLO bound.
type Op string

// Comparisons.
const (
	OpLT Op = "<"
	OpLE Op = "<="
	OpGT Op = ">"
	OpGE Op = ">="
	OpEQ Op = "=="
)

// Bound is "observed Op Value": Value is in the metric's base unit (seconds, bytes, count, per
// second). In YAML it is one string, "<= 45s", "< 16KiB", "== 0", "< 5/s".
type Bound struct {
	Op    Op
	Value float64
	text  string // as written, parsed once the metric (and so the unit) is known
}

func (b *Bound) fromScalar(s string) { b.text = s }

// Holds reports whether observed satisfies the bound.
func (b Bound) Holds(observed float64) bool {
	switch b.Op {
	case OpLT:
		return observed < b.Value
	case OpLE:
		return observed <= b.Value
	case OpGT:
		return observed > b.Value
	case OpGE:
		return observed >= b.Value
	case OpEQ:
		return observed == b.Value
	}
	return false
}

// SLO is one graded objective: Agg of Metric (restricted to Cohort, and to Label for labelled
// metrics) must satisfy Bound.
type SLO struct {
	// Name labels the SLO in reports (default: metric, label and agg, e.g. "close_codes{1006} count").
	Name   string `yaml:"name"`
	Metric string `yaml:"metric"`
	// Label selects one series of a labelled metric (close_codes: the close code, "1006").
	Label string `yaml:"label"`
	// Agg is the aggregation (default: the metric's default, see Metrics).
	Agg    Agg    `yaml:"agg"`
	Bound  Bound  `yaml:"bound"`
	Cohort string `yaml:"cohort"` // empty: every client
	// Optional SLOs pass when the run produced no data for them; others fail.
	Optional bool `yaml:"optional"`
	// TimeScaled overrides whether time_scale changes the bound (default: from the metric catalogue:
	// durations that follow the scenario's clock scale, latencies of the network do not).
	TimeScaled *bool `yaml:"time_scaled"`
	// Catches lists the gateway flaws this SLO is meant to break under (the flaw matrix runs the
	// scenario with each and expects one of the SLOs that name it to fail, and every SLO to hold on
	// the clean gateway).
	Catches []string `yaml:"catches"`
}

// Catches returns the flaws the scenario's SLOs are meant to catch, sorted, each once.
func (s *Scenario) Catches() []string {
	var out []string
	for _, o := range s.SLOs {
		for _, f := range o.Catches {
			if !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	slices.Sort(out)
	return out
}

// SLOsCatching returns the indexes of the SLOs that name flaw in Catches.
func (s *Scenario) SLOsCatching(flaw string) []int {
	var out []int
	for i, o := range s.SLOs {
		if slices.Contains(o.Catches, flaw) {
			out = append(out, i)
		}
	}
	return out
}
