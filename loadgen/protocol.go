package loadgen

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Protocol is what a simulated client speaks on the wire once its WebSocket is open: how it dials
// (where the token goes), what it sends first, how it reads what the server sends, how it publishes
// a message and how it runs its application heartbeat. Everything else — dialling, reconnect
// policies, exits, the schedule, read timeouts, WebSocket pings, counting and recording — is the
// client's and the same for every protocol.
//
// Each protocol is one file (protocol_squall.go, protocol_generic.go, protocol_centrifugo.go,
// protocol_socketio.go), registered by name in
// protocols; a ProtocolSpec names one and carries its settings, so that a plan's target can travel
// to workers as JSON. The methods run on the client's goroutines: opened and received on the
// connection's reader, publish and heartbeat on a scheduler goroutine; a protocol keeps its
// per-client state in the client (under c.mu) and shares nothing else that is mutable.
type Protocol interface {
	// Name is the protocol's name in specs, scenario files and results.
	Name() string
	// Capabilities is what a client speaking the protocol can observe.
	Capabilities() Capabilities
	// tokenPlace is where the protocol puts a client's token unless the target's auth says
	// otherwise (PlaceQuery, PlaceHeader or PlaceFrame).
	tokenPlace() string
	// probe checks, on one fresh connection, that the server speaks the protocol (see Probe).
	probe(p *probeConn) error
	// opened runs once connection gen is upgraded, before anything is read from it.
	opened(c *client, gen uint32, now time.Time)
	// received handles one message from the server.
	received(c *client, msg []byte, rc *readCtx)
	// publish sends one scheduled message, intended at scheduler time at.
	publish(c *client, gen uint32, at int64)
	// heartbeat sends one application-level ping on connection gen.
	heartbeat(c *client, gen uint32, now time.Time)
}

// relayProtocol marks the protocols whose payloads carry stamps (stamps.go): their published
// messages are accounted for by the stamp machinery.
type relayProtocol interface{ relayed() }

// urlAdjuster is a protocol whose endpoint URL needs more than the target's (a query of its own).
type urlAdjuster interface{ adjustURL(raw string) string }

// leaver is a protocol that sends frames before a clean exit's close frame (unsubscribes).
type leaver interface {
	leaveFrames(c *client) (messageType int, frames [][]byte)
}

// Capability is something a protocol lets a client observe, on which some measurements depend.
type Capability string

// The capabilities (the one list; scenarios' metric catalogue says which each metric needs).
const (
	CapPresence       Capability = "presence"         // join/leave events of room members
	CapServerSequence Capability = "server_sequence"  // a server-assigned sequence per room (room-level order, gaps)
	CapAcks           Capability = "acks"             // the server acknowledges what a client publishes
	CapResume         Capability = "resume"           // a reconnecting client resumes its session and missed messages
	CapAppPing        Capability = "app_ping"         // an application-level ping with its pong
	CapEcho           Capability = "echo"             // a publisher receives its own messages back (per-message loss)
	CapHeartbeat      Capability = "server_heartbeat" // the server announces and runs a heartbeat a client can check
	// CapAccounting: every published message is accounted for by its stamp (delivered, late,
	// lost, unconfirmed) — the relay profiles, whose own copies come back to their senders.
	CapAccounting Capability = "message_accounting"
	// CapFallback: the protocol runs on the reference gateway's fallback tiers (SSE, long
	// polling) as well as the WebSocket.
	CapFallback Capability = "fallback_tiers"
)

// AllCapabilities lists every capability.
var AllCapabilities = []Capability{CapPresence, CapServerSequence, CapAcks, CapResume, CapAppPing, CapEcho, CapHeartbeat, CapAccounting, CapFallback}

// Capabilities is a set of capabilities.
type Capabilities []Capability

// Has reports whether c holds want.
func (c Capabilities) Has(want Capability) bool { return slices.Contains(c, want) }

// readCtx is what a protocol's received knows about the message it handles.
type readCtx struct {
	gen       uint32    // the connection's generation
	now       time.Time // when the message was read
	upgraded  time.Time // when the connection was upgraded
	reconnect bool      // the connection follows a drop of this client
	first     bool      // the first message of the connection
	cs        *connState
}

// ProtocolSpec names a protocol and carries its settings; the zero value is the squall protocol.
type ProtocolSpec struct {
	// Name is one of Protocols() ("" means squall).
	Name string `json:"name,omitempty" yaml:"name"`
	// Generic configures the generic protocol.
	Generic *GenericSpec `json:"generic,omitempty" yaml:"generic"`
	// Centrifugo configures the centrifugo protocol (optional).
	Centrifugo *CentrifugoSpec `json:"centrifugo,omitempty" yaml:"centrifugo"`
	// SocketIO configures the socketio protocol (optional).
	SocketIO *SocketIOSpec `json:"socketio,omitempty" yaml:"socketio"`
}

// ProtocolSquall is the name of the reference gateway's protocol (refserver/protocol).
const ProtocolSquall = "squall"

// protocols builds each protocol from its spec; the one list of protocols.
var protocols = map[string]func(ProtocolSpec) (Protocol, error){
	ProtocolSquall:     newSquallProtocol,
	ProtocolGeneric:    newGenericProtocol,
	ProtocolCentrifugo: newCentrifugoProtocol,
	ProtocolSocketIO:   newSocketIOProtocol,
}

// Protocols lists the protocol names in sorted order.
func Protocols() []string {
	names := make([]string, 0, len(protocols))
	for n := range protocols {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// NewProtocol builds the protocol spec names, checking its settings.
func NewProtocol(spec ProtocolSpec) (Protocol, error) {
	name := spec.Name
	if name == "" {
		name = ProtocolSquall
	}
	build, ok := protocols[name]
	if !ok {
		return nil, fmt.Errorf("protocol %q: unknown (want %s)", spec.Name, strings.Join(Protocols(), " or "))
	}
	for _, o := range []struct {
		name string
		set  bool
	}{{ProtocolGeneric, spec.Generic != nil}, {ProtocolCentrifugo, spec.Centrifugo != nil}, {ProtocolSocketIO, spec.SocketIO != nil}} {
		if o.set && o.name != name {
			return nil, fmt.Errorf("protocol %s: takes no %s settings", name, o.name)
		}
	}
	return build(spec)
}
