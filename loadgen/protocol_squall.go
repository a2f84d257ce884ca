package loadgen

// The squall protocol: the reference gateway's (refserver/protocol). A tab dials with its token in
// the URL, is welcomed, joins its rooms (or resumes its session after a drop) with sequenced
// join_room frames, publishes sequenced broadcasts whose data stamps the sender, its connection
// generation, the seq and the intended send time, and checks every delivery against its room's
// roomSeq (order, gaps, duplicates) and every acknowledged broadcast for delivery.

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/refserver/protocol"
)

// squallProtocol speaks refserver's protocol. It has no settings.
type squallProtocol struct{}

var _ Protocol = squallProtocol{}

func newSquallProtocol(spec ProtocolSpec) (Protocol, error) {
	return squallProtocol{}, nil
}

func (squallProtocol) Name() string { return ProtocolSquall }

// Capabilities: the squall protocol shows everything the harness measures; its loss is counted
// per room sequence (gaps), not per stamped message.
func (squallProtocol) Capabilities() Capabilities {
	return Capabilities{CapPresence, CapServerSequence, CapAcks, CapResume, CapAppPing, CapEcho, CapHeartbeat, CapFallback}
}

// tokenPlace: the token query parameter (refserver also takes it in a first hello frame).
func (squallProtocol) tokenPlace() string { return PlaceQuery }

// opened waits for welcome: the server speaks first, once it has the token — from the URL, or
// from the hello frame sent here when the token's place is the first frame.
func (squallProtocol) opened(c *client, gen uint32, _ time.Time) {
	if c.env.place != PlaceFrame {
		return
	}
	c.mu.Lock()
	tok := c.token
	c.mu.Unlock()
	c.writeFrame(gen, &protocol.Frame{Type: protocol.TypeHello, Token: tok})
}

// probe waits for welcome (after a hello when the token goes in the first frame).
func (squallProtocol) probe(p *probeConn) error {
	if p.place == PlaceFrame {
		b, err := protocol.Encode(&protocol.Frame{Type: protocol.TypeHello, Token: p.token})
		if err != nil {
			return err
		}
		if err := p.write(b); err != nil {
			return err
		}
	}
	err := p.readUntil("a welcome frame", func(msg []byte) (bool, error) {
		var f protocol.Frame
		if err := protocol.DecodeInto(msg, protocol.ServerToClient, &f); err != nil {
			return false, fmt.Errorf("the first message is not a squall frame: %s", excerpt(msg))
		}
		if f.Type == protocol.TypeError && f.Code == protocol.ErrCodeUnauthorized {
			return false, fmt.Errorf("%w: error %s: %s", ErrCredentials, f.Code, f.Message)
		}
		if f.Type != protocol.TypeWelcome {
			return false, fmt.Errorf("the first frame is %q, not welcome", f.Type)
		}
		return true, nil
	})
	var ce *websocket.CloseError
	if errors.As(err, &ce) && ce.Code == int(protocol.CloseUnauthorized) {
		return fmt.Errorf("%w: %v", ErrCredentials, err)
	}
	return err
}

func (squallProtocol) received(c *client, msg []byte, rc *readCtx) {
	f := frames.Get().(*protocol.Frame)
	defer func() {
		*f = protocol.Frame{}
		frames.Put(f)
	}()
	if err := protocol.DecodeInto(msg, protocol.ServerToClient, f); err != nil {
		c.add(stats.ErrorCounter(stats.ErrProtocol), 1)
		return
	}
	if f.Type == protocol.TypeWelcome && !rc.cs.welcomed {
		rc.cs.welcomed = true
		c.env.userConn(c.userID, 1)
	}
	c.handle(f, rc.gen, rc.now, rc.reconnect)
}

func (squallProtocol) publish(c *client, gen uint32, at int64) { c.sendBroadcast(gen, at) }

func (squallProtocol) heartbeat(c *client, gen uint32, now time.Time) {
	ts := now.UnixNano()
	c.mu.Lock()
	c.pingAt = ts
	c.mu.Unlock()
	c.add(stats.CtrPingsSent, 1)
	c.writeFrame(gen, &protocol.Frame{Type: protocol.TypePing, Timestamp: ts / int64(time.Millisecond)})
}

// frames recycles decoded frames: nothing of a message is kept between messages, so an idle
// connection holds no buffer.
var frames = sync.Pool{New: func() any { return new(protocol.Frame) }}

func (c *client) handle(f *protocol.Frame, gen uint32, now time.Time, reconnect bool) {
	switch f.Type {
	case protocol.TypeWelcome:
		c.welcome(f, gen, now, reconnect)
	case protocol.TypeRoomJoined:
		c.joined(f.RoomID, f.HeadSeq, gen, now)
	case protocol.TypeBroadcast:
		c.broadcast(f, gen, now)
	case protocol.TypeAck:
		c.add(stats.CtrAcks, 1)
		c.ack(f.Seq)
	case protocol.TypePong:
		c.mu.Lock()
		at := c.pingAt
		c.pingAt = 0
		c.mu.Unlock()
		c.add(stats.CtrPongsReceived, 1)
		if at != 0 && f.Timestamp == at/int64(time.Millisecond) {
			c.record(stats.HistAppPingRTT, time.Duration(now.UnixNano()-at))
		}
	case protocol.TypePresence:
		if f.Event == protocol.PresenceLeave {
			if t := c.roomTracker(f.RoomID); t != nil {
				// Recorded under the departed user's cohort: it is that cohort's exit that converged.
				if d, coh, ok := t.sawLeave(f.UserID, c, now); ok {
					c.env.record(stats.HistPresence, d)
					c.env.rec.Record(coh.key(stats.HistPresence), d)
				}
			}
		}
	case protocol.TypeResumed:
		c.add(stats.CtrResumes, 1)
		for _, m := range c.memberships() {
			m.room.join(m)
			c.mu.Lock()
			m.joined = true
			c.mu.Unlock()
		}
		c.ready(gen, now)
	case protocol.TypeResumeFailed:
		c.add(stats.CtrResumeFailures, 1)
		c.rejoin(gen)
	case protocol.TypeError:
		c.add(stats.ErrorCounter("server_"+f.Code), 1)
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
	confirmed := c.suspect && reconnect
	c.suspect = false
	c.srvHB = time.Duration(f.HeartbeatInterval) * time.Millisecond
	c.hbEvery = b.heartbeatEvery(c.srvHB)
	resume := reconnect && b.Resume && old != "" && len(c.mem) > 0
	var rooms map[string]uint64
	if resume {
		rooms = make(map[string]uint64, len(c.mem))
		for _, m := range c.mem {
			rooms[m.room.name] = m.last
		}
	}
	c.mu.Unlock()
	if confirmed {
		c.add(CtrFalseDisconnects, 1)
	}
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

// broadcast handles a delivered broadcast: order, gaps, duplicates, latency, own echo.
func (c *client) broadcast(f *protocol.Frame, gen uint32, now time.Time) {
	c.add(stats.CtrMessagesReceived, 1)
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
	// The payload's client number is unique within a plan part's cohort only; the sender's user id
	// (stamped by the server) tells apart clients of other cohorts and other parts of the run.
	own := d.ok && d.client == c.index && d.gen == gen && f.From == c.userID
	var markAcked uint64
	if own && dup == 0 {
		if d.seq < m.lastEcho {
			c.add(CtrApplyOrder, 1)
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
		c.add(stats.CtrOrderViolations, order)
	}
	if dup > 0 {
		c.add(stats.CtrDuplicates, dup)
		return
	}
	if d.ok && d.intended > 0 {
		c.record(stats.HistFanout, time.Duration(now.UnixNano()-d.intended))
		if b := c.behaviour(); b.Transport != "" {
			c.record(TierKey(HistTierFanout, c.currentTier(b)), time.Duration(now.UnixNano()-d.intended))
		}
	}
	if f.SentAt > 0 {
		c.record(stats.HistFanoutServer, time.Duration(now.UnixNano()-f.SentAt*int64(time.Millisecond)))
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

// sendBroadcast sends one broadcast to the client's next room, intended at the scheduler time at.
func (c *client) sendBroadcast(gen uint32, at int64) {
	env := c.env
	c.mu.Lock()
	if len(c.mem) == 0 {
		c.mu.Unlock()
		return
	}
	ri := int(c.seq) % len(c.mem)
	room := c.mem[ri].room
	c.mu.Unlock()
	intended := env.sched.time(at).UnixNano()
	pad := c.behaviour().PayloadSize
	n := c.writeSeq(gen, func(seq uint64, w []byte) []byte {
		w = append(w, `{"type":"broadcast","roomId":`...)
		w = append(w, room.quoted...)
		w = append(w, `,"seq":`...)
		w = strconv.AppendUint(w, seq, 10)
		w = append(w, `,"data":{"c":`...)
		w = strconv.AppendInt(w, int64(c.index), 10)
		w = append(w, `,"g":`...)
		w = strconv.AppendUint(w, uint64(gen), 10)
		w = append(w, `,"s":`...)
		w = strconv.AppendUint(w, seq, 10)
		w = append(w, `,"t":`...)
		w = strconv.AppendInt(w, intended, 10)
		if pad > 0 {
			w = append(w, `,"p":"`...)
			for range pad {
				w = append(w, 'x')
			}
			w = append(w, '"')
		}
		w = append(w, "}}"...)
		c.mu.Lock()
		c.pend = append(c.pend, pendingSend{seq: seq, room: room})
		if len(c.pend) > 4096 { // a server that never acks: keep memory bounded
			c.pend = c.pend[1:]
		}
		c.mu.Unlock()
		return w
	})
	c.add(stats.CtrMessagesSent, int64(max(n, 1))) // a send that found its connection gone counts as one
}

// writeFrame sends an unsequenced frame.
func (c *client) writeFrame(gen uint32, f *protocol.Frame) {
	b, err := protocol.Encode(f)
	if err != nil {
		return
	}
	c.writeRaw(gen, b)
}
