package loadgen

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// PhaseKind names what a phase does.
type PhaseKind string

// Phase kinds.
const (
	// PhaseRamp opens connections at Rate per second until Target clients (0 = every client of the
	// plan) are connected, or, in the open model, lets clients arrive at Rate per second for Duration.
	PhaseRamp PhaseKind = "ramp"
	// PhaseHold keeps the clients connected and sending for Duration.
	PhaseHold PhaseKind = "hold"
	// PhaseRampDown ends clients at Rate per second (0 = all at once) with their cohort's exit kind.
	PhaseRampDown PhaseKind = "ramp-down"
)

// Phase is one step of a plan's schedule.
type Phase struct {
	Name     string        `json:"name,omitempty"`
	Kind     PhaseKind     `json:"kind"`
	Rate     float64       `json:"rate,omitempty"`     // connections (ramp) or exits (ramp-down) per second; 0 = at once
	Target   int           `json:"target,omitempty"`   // ramp: clients connected at the end (0 = all)
	Duration time.Duration `json:"duration,omitempty"` // hold; open-model ramp
}

// ModelKind is closed (fixed concurrency) or open (arrival rate).
type ModelKind string

// Load models.
const (
	ModelClosed ModelKind = "closed"
	ModelOpen   ModelKind = "open"
)

// Model says how clients enter the run. In the closed model every client of the plan connects during
// the ramp and stays until ramp-down. In the open model clients arrive at ArrivalRate per second during
// ramp and hold phases, each living Lifetime (then leaving with its cohort's exit kind); cohort counts
// bound how many can be alive at once.
type Model struct {
	Kind        ModelKind     `json:"kind,omitempty"`
	ArrivalRate float64       `json:"arrival_rate,omitempty"`
	Lifetime    time.Duration `json:"lifetime,omitempty"`
}

// ExitKind names how a tab goes away.
type ExitKind string

// Exits (DESIGN §3).
const (
	ExitClose    ExitKind = "close"     // clean close frame 1000
	ExitTabClose ExitKind = "tab-close" // TCP closed without a close frame
	ExitVanish   ExitKind = "vanish"    // stops reading and writing, TCP stays open (a sleeping laptop)
	ExitNavigate ExitKind = "navigate"  // a new connection opens before the old one closes (1001); the tab lives on
)

// Exit says how and when a tab leaves on its own. After 0 means only at ramp-down.
type Exit struct {
	Kind   ExitKind      `json:"kind,omitempty"`   // default close
	After  time.Duration `json:"after,omitempty"`  // time after the first connection; 0 = at ramp-down
	Jitter time.Duration `json:"jitter,omitempty"` // uniform spread added to After
	Share  float64       `json:"share,omitempty"`  // fraction of the cohort that takes this exit early (0 = all)
}

// Misbehaviour makes a client break the protocol on purpose, for escalation replay.
type Misbehaviour struct {
	// SwapEvery holds back every Nth sequenced frame and sends it after the next one (out of order).
	SwapEvery int `json:"swap_every,omitempty"`
	// DropEvery skips every Nth seq number (the frame is never sent).
	DropEvery int `json:"drop_every,omitempty"`
	// DupeEvery sends every Nth sequenced frame twice.
	DupeEvery int `json:"dupe_every,omitempty"`
	// IgnorePings leaves server WebSocket pings unanswered.
	IgnorePings bool `json:"ignore_pings,omitempty"`
	// HeartbeatFactor, when set, replaces Behaviour.HeartbeatInterval by this multiple of the
	// server's heartbeat interval from welcome (e.g. 0.5 faster, 2 slower than expected).
	HeartbeatFactor float64 `json:"heartbeat_factor,omitempty"`
}

// Behaviour is what every client of a cohort does.
type Behaviour struct {
	RoomsPerClient    int           `json:"rooms_per_client,omitempty"`   // rooms each client joins (default 1)
	RoomCount         int           `json:"room_count,omitempty"`         // rooms of the cohort (default from RoomSize, else 1)
	RoomSize          int           `json:"room_size,omitempty"`          // clients per room; sets RoomCount when that is 0
	RoomPrefix        string        `json:"room_prefix,omitempty"`        // room names are prefix + index (default "room-")
	SendInterval      time.Duration `json:"send_interval,omitempty"`      // one broadcast per interval per client (0 = none)
	PayloadSize       int           `json:"payload_size,omitempty"`       // bytes of padding in each broadcast
	HeartbeatInterval time.Duration `json:"heartbeat_interval,omitempty"` // application ping interval (0 = none)
	// HeartbeatPhase places the first heartbeat of a connection: HeartbeatPhaseConnect (also "")
	// or HeartbeatPhaseRandom.
	HeartbeatPhase string          `json:"heartbeat_phase,omitempty"`
	PingInterval   time.Duration   `json:"ping_interval,omitempty"` // client WebSocket ping interval (0 = none)
	ReadTimeout    time.Duration   `json:"read_timeout,omitempty"`  // drop the connection after this long without any frame (0 = never)
	Reconnect      ReconnectPolicy `json:"reconnect"`
	Resume         bool            `json:"resume,omitempty"` // resume the session after a drop instead of re-joining
	Exit           Exit            `json:"exit"`
	TabsPerUser    int             `json:"tabs_per_user,omitempty"` // consecutive clients sharing a user id (default 1)
	Misbehave      Misbehaviour    `json:"misbehave"`
	// Transport is the tier the tabs connect with: "" (a WebSocket, recording nothing per tier),
	// websocket, sse or poll (the reference gateway's fallback tiers), or ladder (WebSocket,
	// falling back to SSE when the upgrade is refused or cut before anything came through, then
	// to long polling). Anything but "" records per-tier figures (transport_fallback.go).
	Transport string `json:"transport,omitempty"`
	// BlockUpgrade makes the tabs' WebSocket attempts go through a proxy that strips the Upgrade
	// header (a corporate proxy): the gateway sees a plain GET and refuses it.
	BlockUpgrade bool `json:"block_upgrade,omitempty"`
}

// Cohort is a group of clients with one behaviour.
type Cohort struct {
	Name      string    `json:"name"`
	Count     int       `json:"count"`
	Behaviour Behaviour `json:"behaviour"`
	// SourceIPs is a CIDR on 127.0.0.0/8 whose addresses the cohort's connections are spread over
	// (default 127.1.0.0/16); the gateway allows few connections per remote IP.
	SourceIPs string `json:"source_ips,omitempty"`
	// Proxy says the cohort's connections pass through a chaos proxy: the caller points the
	// target's endpoints at it (RunLocal starts none). Its abrupt drops may be the proxy's faults,
	// so they are not taken for false disconnects.
	Proxy bool `json:"proxy,omitempty"`
	// UserOffset is added to user numbers; Split sets it so workers' users are disjoint.
	UserOffset int `json:"user_offset,omitempty"`
	// IndexOffset is added to client numbers (and so to seeds); Split sets it.
	IndexOffset int `json:"index_offset,omitempty"`
}

// Plan is a load test as a value: cohorts of clients, the phases they go through and the load model.
// It round-trips through JSON.
type Plan struct {
	Name    string    `json:"name"`
	Seed    uint64    `json:"seed"`
	Cohorts []Cohort  `json:"cohorts"`
	Phases  []Phase   `json:"phases"`
	Model   Model     `json:"model"`
	StartAt time.Time `json:"start_at,omitzero"` // shared start instant; zero = now
	// ScheduleLagBound marks the run unreliable when the schedule-lag p99 exceeds it (default 50 ms).
	ScheduleLagBound time.Duration `json:"schedule_lag_bound,omitempty"`
	// Settle is how long ramp-down waits for in-flight broadcasts before checking delivery (default
	// 2 s; longer — up to four times it, and at least 5 s — while receivers are still catching up).
	Settle time.Duration `json:"settle,omitempty"`
	// Switches replace cohorts' behaviours during the run (a timeline's behaviour switches).
	Switches []Switch `json:"switches,omitempty"`
	// ClientIO is how the clients' WebSockets are read: ClientIOEpoll (the default: the run's
	// epoll loops, no goroutine per idle client) or ClientIOGoroutine (a reader goroutine each).
	ClientIO string `json:"client_io,omitempty"`
	// Worker and Workers identify this part of a split plan (0 of 1 when not split).
	Worker  int `json:"worker,omitempty"`
	Workers int `json:"workers,omitempty"`
}

// Switch replaces the behaviour of cohort Cohort At after the run's start, in every part of the plan
// (each part holds the switch and applies it at the shared start instant plus At). Behaviour is the
// whole new behaviour; rooms and tabs per user cannot change (the cohort's own stay). Tabs connected
// at the switch re-arm their sends, heartbeats, read-timeout checks and pings with the new
// intervals; the reconnect policy, resume, seq misbehaviours, ignoring pings, payload size and the
// exit kind apply from their next use; exit timing (After, Jitter, Share) applies to tabs whose
// first connection comes after the switch.
type Switch struct {
	At        time.Duration `json:"at"`
	Cohort    string        `json:"cohort"`
	Behaviour Behaviour     `json:"behaviour"`
}

// DefaultSourceIPs is the source range of a cohort that names none.
const DefaultSourceIPs = "127.1.0.0/16"

// DefaultScheduleLagBound is the schedule-lag p99 above which a run is unreliable.
const DefaultScheduleLagBound = 50 * time.Millisecond

// LagBound returns ScheduleLagBound or its default.
func (p Plan) LagBound() time.Duration {
	if p.ScheduleLagBound > 0 {
		return p.ScheduleLagBound
	}
	return DefaultScheduleLagBound
}

// Clients returns the number of clients of the plan.
func (p Plan) Clients() int {
	n := 0
	for _, c := range p.Cohorts {
		n += c.Count
	}
	return n
}

// Validate reports every problem with p at once.
func (p Plan) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("plan: "+format, a...)) }
	if len(p.Cohorts) == 0 {
		bad("no cohorts")
	}
	if p.ClientIO != "" && !slices.Contains(ClientIOs, p.ClientIO) {
		bad("client_io %q: want one of %s", p.ClientIO, strings.Join(ClientIOs, ", "))
	}
	names := map[string]bool{}
	for i, c := range p.Cohorts {
		where := fmt.Sprintf("cohorts[%d] %q", i, c.Name)
		if c.Name == "" {
			bad("cohorts[%d]: empty name", i)
		} else if names[c.Name] {
			bad("%s: duplicate name", where)
		}
		names[c.Name] = true
		if c.Count < 0 {
			bad("%s: negative count %d", where, c.Count)
		}
		errs = append(errs, validateBehaviour(where, c.Behaviour)...)
		if _, err := sourcePrefix(c.SourceIPs); err != nil {
			bad("%s: %v", where, err)
		}
	}
	for i, sw := range p.Switches {
		where := fmt.Sprintf("switches[%d]", i)
		if !names[sw.Cohort] {
			bad("%s: unknown cohort %q", where, sw.Cohort)
		}
		if sw.At < 0 {
			bad("%s: negative at", where)
		}
		errs = append(errs, validateBehaviour(where, sw.Behaviour)...)
	}
	if len(p.Phases) == 0 {
		bad("no phases")
	}
	for i, ph := range p.Phases {
		switch ph.Kind {
		case PhaseRamp, PhaseHold, PhaseRampDown:
		default:
			bad("phases[%d]: unknown kind %q (want ramp, hold or ramp-down)", i, ph.Kind)
		}
		if ph.Rate < 0 || ph.Duration < 0 || ph.Target < 0 || math.IsNaN(ph.Rate) || math.IsInf(ph.Rate, 0) {
			bad("phases[%d]: negative or invalid rate, duration or target", i)
		}
		if ph.Kind == PhaseHold && ph.Duration == 0 {
			bad("phases[%d]: hold without duration", i)
		}
	}
	switch p.Model.Kind {
	case "", ModelClosed:
	case ModelOpen:
		if p.Model.ArrivalRate <= 0 || p.Model.Lifetime <= 0 {
			bad("open model needs arrival_rate and lifetime above 0")
		}
	default:
		bad("unknown model %q (want closed or open)", p.Model.Kind)
	}
	if p.ScheduleLagBound < 0 || p.Settle < 0 {
		bad("negative schedule_lag_bound or settle")
	}
	if p.Workers < 0 || p.Worker < 0 || (p.Workers > 0 && p.Worker >= p.Workers) {
		bad("worker %d of %d", p.Worker, p.Workers)
	}
	return errors.Join(errs...)
}

// validateBehaviour checks a cohort's (or a switch's) behaviour; where names it in messages.
func validateBehaviour(where string, b Behaviour) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("plan: "+format, a...)) }
	if b.RoomsPerClient < 0 || b.RoomCount < 0 || b.RoomSize < 0 || b.PayloadSize < 0 || b.TabsPerUser < 0 {
		bad("%s: negative room, payload or tab setting", where)
	}
	switch b.Transport {
	case "", TierWebSocket, TierSSE, TierPoll, TransportLadder:
	default:
		bad("%s: transport %q (want websocket, sse, poll or ladder)", where, b.Transport)
	}
	if b.BlockUpgrade && b.Transport != TransportLadder && b.Transport != TierWebSocket {
		bad("%s: block_upgrade needs transport websocket or ladder", where)
	}
	if b.RoomCount > 0 && b.RoomsPerClient > b.RoomCount {
		bad("%s: rooms_per_client %d exceeds room_count %d", where, b.RoomsPerClient, b.RoomCount)
	}
	if b.SendInterval < 0 || b.HeartbeatInterval < 0 || b.PingInterval < 0 || b.ReadTimeout < 0 {
		bad("%s: negative interval", where)
	}
	switch b.HeartbeatPhase {
	case "", HeartbeatPhaseConnect, HeartbeatPhaseRandom:
	default:
		bad("%s: heartbeat_phase %q (want connect or random)", where, b.HeartbeatPhase)
	}
	if b.PayloadSize > 60_000 {
		bad("%s: payload_size %d above 60000", where, b.PayloadSize)
	}
	if err := b.Reconnect.Validate(); err != nil {
		bad("%s: %v", where, err)
	}
	switch b.Exit.Kind {
	case "", ExitClose, ExitTabClose, ExitVanish, ExitNavigate:
	default:
		bad("%s: unknown exit %q (want close, tab-close, vanish or navigate)", where, b.Exit.Kind)
	}
	if b.Exit.After < 0 || b.Exit.Jitter < 0 || b.Exit.Share < 0 || b.Exit.Share > 1 {
		bad("%s: exit after/jitter negative or share outside [0,1]", where)
	}
	m := b.Misbehave
	if m.SwapEvery < 0 || m.DropEvery < 0 || m.DupeEvery < 0 || m.HeartbeatFactor < 0 {
		bad("%s: negative misbehaviour setting", where)
	}
	return errs
}

// sourcePrefix parses a cohort's SourceIPs (default DefaultSourceIPs) and checks it is on 127.0.0.0/8.
func sourcePrefix(s string) (netip.Prefix, error) {
	if s == "" {
		s = DefaultSourceIPs
	}
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("source_ips: %w", err)
	}
	pfx = pfx.Masked()
	if !pfx.Addr().Is4() || pfx.Bits() < 8 || pfx.Addr().As4()[0] != 127 {
		return netip.Prefix{}, fmt.Errorf("source_ips %s: must be inside 127.0.0.0/8", s)
	}
	return pfx, nil
}

// sourceAddrs lists the usable addresses of a prefix (host byte 0 and 255 skipped), at most limit.
func sourceAddrs(pfx netip.Prefix, limit int) []netip.Addr {
	var out []netip.Addr
	for a := pfx.Addr(); pfx.Contains(a) && len(out) < limit; a = a.Next() {
		b := a.As4()
		if b[3] == 0 || b[3] == 255 {
			continue
		}
		out = append(out, a)
	}
	return out
}

// FDs returns the open files the plan needs in one process that runs its clients (one socket per tab,
// one more per navigating tab, plus a margin for listeners, files and the runtime). A gateway in the
// same process needs as many again; RunLocal counts that for an in-process embedded target.
func (p Plan) FDs() int {
	n := 64
	for _, c := range p.Cohorts {
		n += c.Count
		if c.Behaviour.Exit.Kind == ExitNavigate {
			n += c.Count
		}
	}
	return n
}

// Split divides p into parts for workers processes: client counts and rates are divided (the first
// parts take the remainder), users are disjoint (UserOffset/IndexOffset), rooms are shared by name, and
// each part gets a disjoint slice of every cohort's source range. Every part keeps the plan's seed,
// phases and start instant; Worker and Workers name the part.
func (p Plan) Split(workers int) []Plan {
	if workers <= 1 {
		q := p.clone()
		q.Worker, q.Workers = 0, 1
		return []Plan{q}
	}
	parts := make([]Plan, workers)
	for w := range parts {
		q := p.clone()
		q.Worker, q.Workers = w, workers
		for i := range q.Phases {
			q.Phases[i].Rate = p.Phases[i].Rate / float64(workers)
			if t := p.Phases[i].Target; t > 0 {
				q.Phases[i].Target = share(t, workers, w)
			}
		}
		q.Model.ArrivalRate = p.Model.ArrivalRate / float64(workers)
		parts[w] = q
	}
	for ci, c := range p.Cohorts {
		tabs := max(c.Behaviour.TabsPerUser, 1)
		// Divide whole users so that a user's tabs stay in one worker.
		users := (c.Count + tabs - 1) / tabs
		pfx, _ := sourcePrefix(c.SourceIPs)
		done := 0
		for w := range parts {
			u := share(users, workers, w)
			n := min(u*tabs, c.Count-done)
			cc := &parts[w].Cohorts[ci]
			cc.Count = n
			cc.Behaviour.RoomCount = c.Behaviour.roomCount(c.Count)
			cc.IndexOffset = c.IndexOffset + done
			cc.UserOffset = c.UserOffset + done/tabs
			cc.SourceIPs = subPrefix(pfx, workers, w).String()
			done += n
		}
	}
	return parts
}

func share(total, parts, i int) int {
	n := total / parts
	if i < total%parts {
		n++
	}
	return n
}

// subPrefix returns the i-th of n disjoint slices of pfx (as a prefix at least 1/n of it, rounded
// down to a power of two); when pfx is too small, slices wrap around.
func subPrefix(pfx netip.Prefix, n, i int) netip.Prefix {
	extra := 0
	for 1<<extra < n {
		extra++
	}
	bits := pfx.Bits() + extra
	if bits > 30 {
		bits = 30
	}
	slices := 1 << (bits - pfx.Bits())
	idx := uint32(i % max(slices, 1))
	b := pfx.Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += idx << (32 - bits)
	out := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	return netip.PrefixFrom(out, bits)
}

// Part is the part of p made of the cohorts idx (indexes into p.Cohorts): rates and ramp targets
// are scaled by the part's share of the clients and only the part's cohorts' switches are kept, so
// that the parts of a plan together run its schedule. A part of every cohort is p itself.
func (p Plan) Part(idx []int) Plan {
	if len(idx) == len(p.Cohorts) {
		return p
	}
	q := p.clone()
	all := q.Cohorts
	q.Cohorts = nil
	n := 0
	for _, i := range idx {
		q.Cohorts = append(q.Cohorts, all[i])
		n += p.Cohorts[i].Count
	}
	share := 0.0
	if total := p.Clients(); total > 0 {
		share = float64(n) / float64(total)
	}
	for i := range q.Phases {
		q.Phases[i].Rate = p.Phases[i].Rate * share
		if t := p.Phases[i].Target; t > 0 {
			q.Phases[i].Target = max(1, int(math.Round(float64(t)*share)))
		}
	}
	q.Model.ArrivalRate = p.Model.ArrivalRate * share
	q.Switches = slices.DeleteFunc(q.Switches, func(sw Switch) bool {
		return !slices.ContainsFunc(q.Cohorts, func(c Cohort) bool { return c.Name == sw.Cohort })
	})
	return q
}

func (p Plan) clone() Plan {
	q := p
	q.Cohorts = append([]Cohort(nil), p.Cohorts...)
	for i := range q.Cohorts {
		q.Cohorts[i].Behaviour.Reconnect.Steps = append([]time.Duration(nil), p.Cohorts[i].Behaviour.Reconnect.Steps...)
	}
	q.Phases = append([]Phase(nil), p.Phases...)
	q.Switches = append([]Switch(nil), p.Switches...)
	for i := range q.Switches {
		q.Switches[i].Behaviour.Reconnect.Steps = append([]time.Duration(nil), p.Switches[i].Behaviour.Reconnect.Steps...)
	}
	return q
}

// heartbeatEvery is the application heartbeat interval against a server whose heartbeat interval
// (from welcome) is srv: HeartbeatInterval, or the misbehaviour's multiple of srv.
// Heartbeat phases (Behaviour.HeartbeatPhase).
const (
	// HeartbeatPhaseConnect: the first heartbeat one interval after the connection is ready.
	HeartbeatPhaseConnect = "connect"
	// HeartbeatPhaseRandom: the first heartbeat at a uniformly random point of the first interval.
	HeartbeatPhaseRandom = "random"
)

func (b *Behaviour) heartbeatEvery(srv time.Duration) time.Duration {
	if b.Misbehave.HeartbeatFactor > 0 && srv > 0 {
		return time.Duration(b.Misbehave.HeartbeatFactor * float64(srv))
	}
	return b.HeartbeatInterval
}

// roomCount returns how many rooms a cohort spreads its clients over.
func (b Behaviour) roomCount(count int) int {
	if b.RoomCount > 0 {
		return b.RoomCount
	}
	rpc := max(b.RoomsPerClient, 1)
	if b.RoomSize > 0 {
		return max((count*rpc+b.RoomSize-1)/b.RoomSize, rpc)
	}
	return rpc
}
