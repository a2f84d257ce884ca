package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/refserver/protocol"
)

// Counter and histogram names loadgen records besides the ones stats defines.
const (
	CtrGhosts            = "presence_ghosts"        // exits whose leave some observer never saw
	CtrReconnectGaveUp   = "reconnect_gave_up"      // clients whose policy ran out of attempts
	CtrExits             = "exits"                  // tabs that left on purpose
	CtrApplyOrder        = "apply_order_violations" // own broadcasts echoed in another order than sent
	HistReconnectDelay   = "reconnect_delay"        // a drop to the next dial (the policy's delay as run)
	HistReconnectPlanned = "reconnect_planned"      // the delay the policy (or a retry hint) chose
)

// client states
const (
	stIdle uint8 = iota
	stConnecting
	stOpen
	stWaiting // between a drop and the next attempt
	stDone
)

// client is one simulated browser tab. Its connection is read by one goroutine at a time (the
// connection goroutine, which also dials); every timed action runs on a scheduler goroutine. Writes
// are serialised by wmu. mu guards the state below it, including the sequence fields of its
// memberships. Lock order: a room tracker's mu before a client's mu; never the other way.
type client struct {
	env    *runEnv
	coh    *cohortRT
	index  int32 // global client number (seeds, source address, rooms)
	userID string

	wmu sync.Mutex

	mu        sync.Mutex
	conn      *websocket.Conn
	navOld    *websocket.Conn // the connection a navigate exit replaces, closed once the new one is up
	gen       uint32          // connection generation; scheduled entries of older generations are skipped
	state     uint8
	exiting   bool
	vanished  bool
	finished  bool
	exitSet   bool          // the early exit is scheduled
	isReady   bool          // the current connection joined (or resumed) its rooms
	exitAfter time.Duration // open model: lifetime (overrides Exit.After)
	token     string        // generic adapter: the JWT for {{.Token}}
	seq       uint64        // last seq sent on this connection
	nextSend  int64         // intended time of the next broadcast (scheduler ns)
	attempt   int           // failed attempts since the last welcome
	dropAt    time.Time
	connectAt time.Time // first connection (exit timing)
	session   string
	hbEvery   time.Duration
	lastRecv  int64 // scheduler ns
	pingAt    int64 // unix ns of the outstanding app ping
	wsPingAt  int64
	mem       []*membership
	pend      []pendingSend
	held      []byte // a frame held back by the swap misbehaviour
	rng       rand.PCG
}

// pendingSend is a broadcast waiting for its ack and its own echo.
type pendingSend struct {
	seq     uint64
	room    *roomTracker
	roomSeq uint64
	acked   bool
	echoed  bool
}

// cohortRT is a cohort as the run uses it.
type cohortRT struct {
	Cohort
	rooms  [][]*roomTracker // per endpoint (one list when the endpoints share rooms)
	addrs  []netip.Addr
	exitAt bool // some clients exit before ramp-down
}

func (c *client) rand() *rand.Rand { return rand.New(&c.rng) }

func (c *client) behaviour() *Behaviour { return &c.coh.Behaviour }

// roomsOf lists the rooms client joins.
func (c *client) roomsOf() []*roomTracker {
	b := c.behaviour()
	rooms := c.coh.rooms[int(c.index)%len(c.env.eps)%len(c.coh.rooms)]
	n := min(max(b.RoomsPerClient, 1), len(rooms))
	out := make([]*roomTracker, 0, n)
	for k := range n {
		out = append(out, rooms[(int(c.index)+k)%len(rooms)])
	}
	return out
}

// start begins the client's life: its first connection.
func (c *client) start() {
	c.mu.Lock()
	if c.state != stIdle {
		c.mu.Unlock()
		return
	}
	c.state = stConnecting
	gen := c.gen
	c.mu.Unlock()
	c.env.rec.AddGauge(stats.GaugeClients, 1)
	c.env.goConnect(c, gen, false)
}

// connect dials, waits for welcome, joins or resumes, then reads until the connection ends. It runs
// on its own goroutine, owned by the run's wait group.
func (c *client) connect(ctx context.Context, gen uint32, reconnect bool) {
	env := c.env
	rec := env.rec
	ep := env.endpoint(int(c.index))
	tok, err := protocol.SignToken(env.secret, c.userID, time.Now().Add(24*time.Hour))
	if err != nil {
		env.logger.Error("mint token", "user_id", c.userID, "err", err)
		c.finish()
		return
	}
	rec.Add(stats.CtrConnectAttempts, 1)
	if reconnect {
		rec.Add(stats.CtrReconnectAttempts, 1)
	}
	addr := c.coh.addrs[int(c.index)%len(c.coh.addrs)]
	dctx := context.WithValue(ctx, localAddrKey{}, addr)
	dctx, cancel := context.WithTimeout(dctx, 10*time.Second)
	start := time.Now()
	url := ep.URL + "?" + protocol.TokenQueryParam + "=" + tok
	if env.generic != nil {
		url = ep.URL
		c.token = tok
	}
	conn, resp, err := env.dialer.DialContext(dctx, url, nil)
	cancel()
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		rec.Add(stats.CtrConnectErrors, 1)
		rec.Add(stats.ErrorCounter(dialClass(err)), 1)
		var hint time.Duration
		if resp != nil {
			if s := resp.Header.Get("Retry-After"); s != "" {
				if n, e := strconv.Atoi(s); e == nil {
					hint = time.Duration(n) * time.Second
				}
			}
		}
		c.dropped(gen, false, 0, hint)
		return
	}
	upgraded := time.Now()
	env.record(stats.HistUpgrade, upgraded.Sub(start))
	conn.SetReadLimit(1 << 20)
	if c.behaviour().Misbehave.IgnorePings {
		conn.SetPingHandler(func(string) error { return nil })
	}
	conn.SetPongHandler(func(string) error { c.pong(); return nil })

	c.mu.Lock()
	if c.gen != gen || c.state == stDone || env.ctx.Err() != nil {
		c.mu.Unlock()
		conn.Close()
		return
	}
	c.conn = conn
	c.state = stOpen
	c.isReady = false
	c.seq = 0
	c.pend = c.pend[:0]
	c.held = nil
	c.lastRecv = env.sched.ns(upgraded)
	c.mu.Unlock()
	rec.AddGauge(stats.GaugeConnections, 1)
	rec.Add(stats.CtrConnects, 1)
	// The reader runs on a fresh goroutine: the dial's deep stack is not kept for the connection's life.
	env.wg.Add(1)
	go func() {
		defer env.wg.Done()
		c.serve(conn, gen, upgraded, reconnect)
	}()
	if env.generic != nil {
		c.genericStart(gen, upgraded)
	}
}

// serve reads a connection until it ends, then handles the drop.
func (c *client) serve(conn *websocket.Conn, gen uint32, upgraded time.Time, reconnect bool) {
	env := c.env
	rec := env.rec
	code, reason, rerr := c.readLoop(conn, gen, upgraded, reconnect)
	rec.AddGauge(stats.GaugeConnections, -1)
	c.mu.Lock()
	vanished := c.vanished && c.gen == gen
	c.mu.Unlock()
	if vanished {
		// A vanished tab keeps its TCP connection open until the run ends.
		env.keepOpen(conn)
		c.finish()
		return
	}
	conn.Close()
	if code != 0 {
		rec.Add(stats.CloseCodeCounter(code), 1)
	} else if rerr != nil {
		rec.Add(stats.ErrorCounter(stats.ErrRead), 1)
	}
	var hint time.Duration
	if h, ok := protocol.ParseRetryAfter(reason); ok {
		hint = h
	}
	c.dropped(gen, true, code, hint)
}

// readLoop reads frames until the connection ends and returns the close code (0 when there was no
// close frame, e.g. TCP closed) and reason.
func (c *client) readLoop(conn *websocket.Conn, gen uint32, upgraded time.Time, reconnect bool) (int, string, error) {
	first := true
	for {
		_, r, err := conn.NextReader()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code, ce.Text, err
			}
			return 0, "", err
		}
		if err := c.readFrame(r, gen, upgraded, reconnect, first); err != nil {
			return 0, "", err
		}
		first = false
	}
}

// frames recycles decoded frames: nothing of a message is kept between messages, so an idle
// connection holds no buffer.
var frames = sync.Pool{New: func() any { return new(protocol.Frame) }}

// readFrame reads, decodes and handles one message with pooled buffers.
func (c *client) readFrame(r io.Reader, gen uint32, upgraded time.Time, reconnect, first bool) error {
	env := c.env
	buf := env.getBuf()
	defer env.putBuf(buf)
	if _, err := buf.ReadFrom(r); err != nil {
		return err
	}
	now := time.Now()
	if env.generic != nil {
		c.mu.Lock()
		c.lastRecv = env.sched.ns(now)
		c.mu.Unlock()
		c.handleGeneric(buf.Bytes(), now)
		return nil
	}
	f := frames.Get().(*protocol.Frame)
	defer func() {
		*f = protocol.Frame{}
		frames.Put(f)
	}()
	if err := protocol.DecodeInto(buf.Bytes(), protocol.ServerToClient, f); err != nil {
		env.rec.Add(stats.ErrorCounter(stats.ErrProtocol), 1)
		return nil
	}
	c.mu.Lock()
	c.lastRecv = env.sched.ns(now)
	stale := c.gen != gen
	c.mu.Unlock()
	if stale {
		// A navigate exit replaced this connection; the new one does the work.
		return nil
	}
	if first {
		env.record(stats.HistFirstFrame, now.Sub(upgraded))
	}
	c.handle(f, gen, now, reconnect)
	return nil
}

func (c *client) handle(f *protocol.Frame, gen uint32, now time.Time, reconnect bool) {
	env := c.env
	rec := env.rec
	switch f.Type {
	case protocol.TypeWelcome:
		c.welcome(f, gen, now, reconnect)
	case protocol.TypeRoomJoined:
		c.joined(f.RoomID, f.HeadSeq, gen, now)
	case protocol.TypeBroadcast:
		c.broadcast(f, gen, now)
	case protocol.TypeAck:
		rec.Add(stats.CtrAcks, 1)
		c.ack(f.Seq)
	case protocol.TypePong:
		c.mu.Lock()
		at := c.pingAt
		c.pingAt = 0
		c.mu.Unlock()
		rec.Add(stats.CtrPongsReceived, 1)
		if at != 0 && f.Timestamp == at/int64(time.Millisecond) {
			env.record(stats.HistAppPingRTT, time.Duration(now.UnixNano()-at))
		}
	case protocol.TypePresence:
		if f.Event == protocol.PresenceLeave {
			if t := c.roomTracker(f.RoomID); t != nil {
				if d, ok := t.sawLeave(f.UserID, c, now); ok {
					env.record(stats.HistPresence, d)
				}
			}
		}
	case protocol.TypeResumed:
		rec.Add(stats.CtrResumes, 1)
		for _, m := range c.memberships() {
			m.room.join(m)
			c.mu.Lock()
			m.joined = true
			c.mu.Unlock()
		}
		c.ready(gen, now)
	case protocol.TypeResumeFailed:
		rec.Add(stats.CtrResumeFailures, 1)
		c.rejoin(gen)
	case protocol.TypeError:
		rec.Add(stats.ErrorCounter("server_"+f.Code), 1)
	}
}

// welcome starts a connection's session: resume the previous session or join the rooms.
func (c *client) welcome(f *protocol.Frame, gen uint32, now time.Time, reconnect bool) {
	c.mu.Lock()
	old := c.session
	c.session = f.Session
	if c.connectAt.IsZero() {
		c.connectAt = now
	}
	b := c.behaviour()
	c.hbEvery = b.HeartbeatInterval
	if b.Misbehave.HeartbeatFactor > 0 && f.HeartbeatInterval > 0 {
		c.hbEvery = time.Duration(b.Misbehave.HeartbeatFactor * float64(time.Duration(f.HeartbeatInterval)*time.Millisecond))
	}
	resume := reconnect && b.Resume && old != "" && len(c.mem) > 0
	var rooms map[string]uint64
	if resume {
		rooms = make(map[string]uint64, len(c.mem))
		for _, m := range c.mem {
			rooms[m.room.name] = m.last
		}
	}
	c.mu.Unlock()
	if resume {
		c.writeFrame(gen, &protocol.Frame{Type: protocol.TypeResume, Session: old, Rooms: rooms})
		return
	}
	c.rejoin(gen)
}

// rejoin ends the previous memberships and joins every room afresh.
func (c *client) rejoin(gen uint32) {
	for _, m := range c.memberships() {
		m.room.leave(m, time.Time{})
	}
	rooms := c.roomsOf()
	mem := make([]*membership, len(rooms))
	for i, t := range rooms {
		mem[i] = &membership{c: c, room: t}
	}
	c.mu.Lock()
	if c.gen != gen {
		c.mu.Unlock()
		return
	}
	c.mem = mem
	c.mu.Unlock()
	for _, t := range rooms {
		c.writeSeq(gen, func(seq uint64) *protocol.Frame {
			return &protocol.Frame{Type: protocol.TypeJoinRoom, RoomID: t.name, Seq: seq}
		})
	}
}

func (c *client) memberships() []*membership {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*membership(nil), c.mem...)
}

func (c *client) membershipOf(room string) *membership {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.mem {
		if m.room.name == room {
			return m
		}
	}
	return nil
}

func (c *client) roomTracker(room string) *roomTracker {
	if m := c.membershipOf(room); m != nil {
		return m.room
	}
	return nil
}

// joined handles room_joined.
func (c *client) joined(room string, head uint64, gen uint32, now time.Time) {
	m := c.membershipOf(room)
	if m == nil {
		return
	}
	c.mu.Lock()
	if !m.joined {
		m.joined = true
		m.joinedAt = now
		m.joinHead = head
		if m.last < head {
			m.last = head
		}
	}
	all := true
	for _, o := range c.mem {
		all = all && o.joined
	}
	c.mu.Unlock()
	m.room.cancelGhost(c.userID)
	m.room.join(m)
	if head > 0 {
		m.room.seen(head)
	}
	if all {
		c.ready(gen, now)
	}
}

// ready runs once a connection has joined (or resumed) every room: it records the reconnect time,
// closes a connection this one replaces, and schedules the client's timed actions.
func (c *client) ready(gen uint32, now time.Time) {
	env := c.env
	b := c.behaviour()
	b0 := b
	c.mu.Lock()
	if c.gen != gen {
		c.mu.Unlock()
		return
	}
	dropAt := c.dropAt
	c.dropAt = time.Time{}
	c.attempt = 0
	c.isReady = true
	exitSet := c.exitSet
	c.exitSet = true
	exitAfter, early := b0.Exit.After, c.exitsEarly()
	if c.exitAfter > 0 {
		exitAfter, early = c.exitAfter, true
	}
	old := c.navOld
	c.navOld = nil
	nowNS := env.sched.ns(now)
	if b.SendInterval > 0 {
		c.nextSend = nowNS + c.rand().Int64N(int64(b.SendInterval))
	}
	hb := c.hbEvery
	first := c.connectAt
	c.mu.Unlock()
	if !dropAt.IsZero() {
		env.record(stats.HistReconnect, now.Sub(dropAt))
		env.rec.Add(stats.CtrReconnects, 1)
	}
	if old != nil {
		closeConn(old, protocol.CloseDraining, "")
	}
	if b.SendInterval > 0 {
		env.sched.add(entry{at: c.nextSend, c: c, gen: gen, kind: taskSend})
	}
	if hb > 0 || b.ReadTimeout > 0 {
		every := hb
		if every <= 0 {
			every = b.ReadTimeout / 2
		}
		env.sched.add(entry{at: nowNS + int64(every), c: c, gen: gen, kind: taskHeartbeat})
	}
	if b.PingInterval > 0 {
		env.sched.add(entry{at: nowNS + int64(b.PingInterval), c: c, gen: gen, kind: taskPing})
	}
	if exitAfter > 0 && early && !exitSet {
		at := first.Add(exitAfter)
		if b.Exit.Jitter > 0 {
			c.mu.Lock()
			at = at.Add(time.Duration(c.rand().Int64N(int64(b.Exit.Jitter))))
			c.mu.Unlock()
		}
		env.sched.add(entry{at: env.sched.ns(at), c: c, gen: gen, kind: taskExit})
	}
}

// broadcast handles a delivered broadcast: order, gaps, duplicates, latency, own echo.
func (c *client) broadcast(f *protocol.Frame, gen uint32, now time.Time) {
	env := c.env
	rec := env.rec
	rec.Add(stats.CtrMessagesReceived, 1)
	m := c.membershipOf(f.RoomID)
	if m == nil {
		return
	}
	var d payload
	_ = d.parse(f.Data)
	c.mu.Lock()
	rs := f.RoomSeq
	if m.joined && rs <= m.joinHead && !slices.Contains(m.missing, rs) {
		// Stamped before this member joined (room_joined's headSeq covers it): not part of its stream.
		c.mu.Unlock()
		return
	}
	var order, dup int64
	switch {
	case rs == m.last+1 || (m.last == 0 && !m.joined):
		m.last = rs
	case rs > m.last+1:
		for s := m.last + 1; s < rs && len(m.missing) < maxMissing; s++ {
			m.missing = append(m.missing, s)
		}
		m.last = rs
	default:
		found := false
		for i, s := range m.missing {
			if s == rs {
				m.missing = append(m.missing[:i], m.missing[i+1:]...)
				found = true
				break
			}
		}
		if found {
			order++
		} else {
			dup++
		}
	}
	own := d.ok && d.client == c.index && d.gen == gen
	var markAcked uint64
	if own && dup == 0 {
		if d.seq < m.lastEcho {
			rec.Add(CtrApplyOrder, 1)
			order++
		}
		m.lastEcho = max(m.lastEcho, d.seq)
		for i := range c.pend {
			p := &c.pend[i]
			if p.seq == d.seq {
				p.echoed, p.roomSeq = true, rs
				if p.acked {
					markAcked = rs
					c.pend = append(c.pend[:i], c.pend[i+1:]...)
				}
				break
			}
		}
	}
	c.mu.Unlock()
	m.room.seen(rs)
	if markAcked != 0 {
		m.room.markAcked(markAcked)
	}
	if order > 0 {
		rec.Add(stats.CtrOrderViolations, order)
	}
	if dup > 0 {
		rec.Add(stats.CtrDuplicates, dup)
		return
	}
	if d.ok && d.intended > 0 {
		env.record(stats.HistFanout, time.Duration(now.UnixNano()-d.intended))
	}
	if f.SentAt > 0 {
		env.record(stats.HistFanoutServer, time.Duration(now.UnixNano()-f.SentAt*int64(time.Millisecond)))
	}
}

// ack handles an ack of a client frame.
func (c *client) ack(seq uint64) {
	c.mu.Lock()
	var t *roomTracker
	var rs uint64
	for i := range c.pend {
		p := &c.pend[i]
		if p.seq == seq {
			p.acked = true
			if p.echoed {
				t, rs = p.room, p.roomSeq
				c.pend = append(c.pend[:i], c.pend[i+1:]...)
			}
			break
		}
	}
	c.mu.Unlock()
	if t != nil {
		t.markAcked(rs)
	}
}

// outstanding returns broadcasts waiting for an ack or echo, and those acknowledged but not echoed.
func (c *client) outstanding() (waiting, ackedOnly int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stOpen {
		return 0, 0
	}
	for _, p := range c.pend {
		waiting++
		if p.acked && !p.echoed {
			ackedOnly++
		}
	}
	return waiting, ackedOnly
}

func (c *client) pong() {
	c.mu.Lock()
	at := c.wsPingAt
	c.wsPingAt = 0
	c.mu.Unlock()
	if at != 0 {
		c.env.record(stats.HistPingRTT, time.Duration(time.Now().UnixNano()-at))
	}
}

// run executes a scheduled entry on a scheduler goroutine.
func (c *client) run(e entry, now time.Time) {
	env := c.env
	c.mu.Lock()
	if e.gen != c.gen {
		c.mu.Unlock()
		return
	}
	state := c.state
	c.mu.Unlock()
	env.rec.Record(stats.HistScheduleLag, now.Sub(env.sched.time(e.at)))
	switch e.kind {
	case taskReconnect:
		c.mu.Lock()
		if c.state != stWaiting || c.exiting {
			c.mu.Unlock()
			return
		}
		c.state = stConnecting
		dropAt := c.dropAt
		c.mu.Unlock()
		if !dropAt.IsZero() {
			env.record(HistReconnectDelay, now.Sub(dropAt))
		}
		env.goConnect(c, e.gen, true)
		return
	case taskExit:
		c.exit(c.behaviour().Exit.Kind)
		return
	}
	if state != stOpen {
		return
	}
	b := c.behaviour()
	switch e.kind {
	case taskSend:
		if env.sending.Load() {
			c.sendBroadcast(e.gen, e.at)
		}
		c.mu.Lock()
		c.nextSend = e.at + int64(b.SendInterval)
		next := c.nextSend
		c.mu.Unlock()
		env.sched.add(entry{at: next, c: c, gen: e.gen, kind: taskSend})
	case taskHeartbeat:
		c.mu.Lock()
		hb := c.hbEvery
		silent := time.Duration(env.sched.ns(now) - c.lastRecv)
		conn := c.conn
		c.mu.Unlock()
		if b.ReadTimeout > 0 && silent > b.ReadTimeout {
			env.rec.Add(stats.ErrorCounter("read_timeout"), 1)
			conn.NetConn().Close()
			return
		}
		every := hb
		if hb > 0 {
			ts := now.UnixNano()
			c.mu.Lock()
			c.pingAt = ts
			c.mu.Unlock()
			env.rec.Add(stats.CtrPingsSent, 1)
			c.writeFrame(e.gen, &protocol.Frame{Type: protocol.TypePing, Timestamp: ts / int64(time.Millisecond)})
		} else {
			every = b.ReadTimeout / 2
		}
		env.sched.add(entry{at: e.at + int64(every), c: c, gen: e.gen, kind: taskHeartbeat})
	case taskPing:
		c.mu.Lock()
		conn := c.conn
		c.wsPingAt = now.UnixNano()
		c.mu.Unlock()
		_ = conn.WriteControl(websocket.PingMessage, nil, now.Add(writeTimeout))
		env.sched.add(entry{at: e.at + int64(b.PingInterval), c: c, gen: e.gen, kind: taskPing})
	}
}

const writeTimeout = 5 * time.Second

// dropped handles the end of a connection of generation gen (connected: it was open; code: its
// close code, 0 without a close frame) or a failed attempt (connected false), and schedules the next
// attempt per the reconnect policy, at least hint later.
func (c *client) dropped(gen uint32, connected bool, code int, hint time.Duration) {
	env := c.env
	now := time.Now()
	c.mu.Lock()
	if c.gen != gen || c.state == stDone {
		c.mu.Unlock()
		return
	}
	c.gen++
	c.conn = nil
	c.pend = c.pend[:0]
	exiting := c.exiting
	resume := c.behaviour().Resume && c.session != ""
	mem := c.mem
	if !resume || exiting {
		c.mem = nil
	}
	if c.dropAt.IsZero() {
		c.dropAt = now
	}
	reconnect := !exiting && env.ctx.Err() == nil && !env.stopping.Load()
	if reconnect && connected && code != 0 {
		reconnect = protocol.CloseInfo(protocol.CloseCode(code)).Reconnect
	}
	var delay time.Duration
	if reconnect {
		c.attempt++
		d, ok := c.behaviour().Reconnect.Delay(c.attempt, c.rand())
		if !ok {
			reconnect = false
			env.rec.Add(CtrReconnectGaveUp, 1)
		}
		delay = max(d, hint)
	}
	if reconnect {
		env.record(HistReconnectPlanned, delay)
		c.state = stWaiting
	} else {
		c.state = stDone
	}
	newGen := c.gen
	c.mu.Unlock()
	if connected {
		env.rec.Add(stats.CtrDisconnects, 1)
	}
	for _, m := range mem {
		if resume && reconnect {
			m.room.suspend(m) // back on resumed; ended for good if the resume fails
		} else {
			m.room.leave(m, time.Time{})
		}
	}
	if !reconnect {
		c.finish()
		return
	}
	env.sched.add(entry{at: env.sched.ns(now.Add(delay)), c: c, gen: newGen, kind: taskReconnect})
}

// finish marks the client done (once).
func (c *client) finish() {
	c.mu.Lock()
	if c.finished {
		c.mu.Unlock()
		return
	}
	c.finished = true
	c.state = stDone
	mem := c.mem
	c.mem = nil
	c.mu.Unlock()
	for _, m := range mem {
		m.room.leave(m, time.Time{})
	}
	c.env.clientDone(c)
}

// closeConn sends a close frame and closes the TCP connection.
func closeConn(conn *websocket.Conn, code protocol.CloseCode, reason string) {
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(int(code), reason), time.Now().Add(time.Second))
	conn.Close()
}

// payload is the data of a loadgen broadcast: sender, connection generation, seq, intended send time.
type payload struct {
	client   int32
	gen      uint32
	seq      uint64
	intended int64
	ok       bool
}

func (p *payload) parse(b json.RawMessage) error {
	var v struct {
		C int32  `json:"c"`
		G uint32 `json:"g"`
		S uint64 `json:"s"`
		T int64  `json:"t"`
	}
	if len(b) == 0 || b[0] != '{' {
		return errors.New("not a loadgen payload")
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*p = payload{client: v.C, gen: v.G, seq: v.S, intended: v.T, ok: v.S != 0}
	return nil
}

// dialClass names the error class of a failed dial.
func dialClass(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, websocket.ErrBadHandshake):
		return stats.ErrUpgradeRefused
	case errors.Is(err, syscall.ECONNREFUSED):
		return stats.ErrDialRefused
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return stats.ErrDialTimeout
	case errors.As(err, &ne) && ne.Timeout():
		return stats.ErrDialTimeout
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return stats.ErrHandshake
	}
	return stats.ErrDialOther
}

// localAddrKey carries the source address of a dial in its context.
type localAddrKey struct{}
