package loadgen

// The socketio protocol: Socket.IO v4 over its WebSocket transport (Engine.IO v4 packets carrying
// Socket.IO packets), default namespace only. A client answers the open packet with a connect
// packet (its token as {"token": ...} in the auth payload), emits a subscribe event per room once
// connected, emits stamped publish events (room, payload) with an ack id, answers the server's
// pings, and reads delivery events (room, payload) for their stamps (stamps.go). The event names
// are the application's: SocketIOSpec names them. Socket.IO has no room sequence and no presence.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/squall-dev/squall/loadgen/stats"
)

// ProtocolSocketIO is the name of the Socket.IO protocol.
const ProtocolSocketIO = "socketio"

// SocketIOSpec names a Socket.IO application's events; the zero value is subscribe(room),
// publish(room, data) with an ack, and message(room, data) for deliveries.
type SocketIOSpec struct {
	Subscribe string `json:"subscribe,omitempty" yaml:"subscribe"` // event joining a room (default "subscribe")
	Publish   string `json:"publish,omitempty" yaml:"publish"`     // event publishing (room, payload) (default "publish")
	Delivery  string `json:"delivery,omitempty" yaml:"delivery"`   // event delivering (room, payload) (default "message")
	// LossTimeout is how long a message may take to come back to its sender before it is late
	// (default 5s).
	LossTimeout time.Duration `json:"loss_timeout,omitempty" yaml:"loss_timeout"`
}

type socketIOProtocol struct {
	evSubscribe, evPublish, evDelivery string
	timeout                            time.Duration
}

var (
	_ Protocol      = (*socketIOProtocol)(nil)
	_ relayProtocol = (*socketIOProtocol)(nil)
	_ urlAdjuster   = (*socketIOProtocol)(nil)
)

func newSocketIOProtocol(spec ProtocolSpec) (Protocol, error) {
	p := &socketIOProtocol{evSubscribe: "subscribe", evPublish: "publish", evDelivery: "message", timeout: DefaultLossTimeout}
	if s := spec.SocketIO; s != nil {
		p.evSubscribe, p.evPublish, p.evDelivery = cmpOr(s.Subscribe, p.evSubscribe), cmpOr(s.Publish, p.evPublish), cmpOr(s.Delivery, p.evDelivery)
		if s.LossTimeout < 0 {
			return nil, errors.New("protocol socketio: negative loss_timeout")
		}
		if s.LossTimeout > 0 {
			p.timeout = s.LossTimeout
		}
	}
	return p, nil
}

func (*socketIOProtocol) relayed() {}

func (*socketIOProtocol) Name() string { return ProtocolSocketIO }

// tokenPlace: the connect packet's auth payload.
func (*socketIOProtocol) tokenPlace() string { return PlaceFrame }

// Capabilities: the server's To(room) reaches the sender too, publishes are acked, it pings.
func (*socketIOProtocol) Capabilities() Capabilities {
	return Capabilities{CapEcho, CapAccounting, CapAcks, CapAppPing}
}

// adjustURL adds the Engine.IO query: version 4, WebSocket transport.
func (*socketIOProtocol) adjustURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	q.Set("EIO", "4")
	q.Set("transport", "websocket")
	u.RawQuery = q.Encode()
	return u.String()
}

// connectPacket is the Socket.IO connect to the default namespace, with the token.
func (*socketIOProtocol) connectPacket(token string) []byte {
	if token == "" {
		return []byte("40")
	}
	b := []byte(`40{"token":`)
	b = appendJSONString(b, token)
	return append(b, '}')
}

// event encodes an EVENT packet: 42[ackID]["name", args...].
func event(ackID uint32, name string, args ...[]byte) []byte {
	b := []byte("42")
	if ackID > 0 {
		b = strconv.AppendUint(b, uint64(ackID), 10)
	}
	b = append(b, '[')
	b = appendJSONString(b, name)
	for _, a := range args {
		b = append(b, ',')
		b = append(b, a...)
	}
	return append(b, ']')
}

func (p *socketIOProtocol) opened(c *client, _ uint32, now time.Time) {
	c.mu.Lock()
	c.relay.timeout = p.timeout
	c.relay.cmdID = 0
	if c.connectAt.IsZero() {
		c.connectAt = now
	}
	c.mu.Unlock()
	// The server speaks first (the open packet).
}

// received handles one Engine.IO packet.
func (p *socketIOProtocol) received(c *client, msg []byte, rc *readCtx) {
	if len(msg) == 0 {
		return
	}
	switch msg[0] {
	case '0': // open: connect to the default namespace
		c.mu.Lock()
		tok := c.token
		c.mu.Unlock()
		c.writeRaw(rc.gen, p.connectPacket(tok))
	case '2': // ping
		c.writeRaw(rc.gen, []byte("3"))
		c.add(stats.CtrPongsReceived, 1)
	case '4':
		p.packet(c, msg[1:], rc)
	}
}

// packet handles one Socket.IO packet (default namespace).
func (p *socketIOProtocol) packet(c *client, b []byte, rc *readCtx) {
	if len(b) == 0 {
		return
	}
	kind, rest := b[0], b[1:]
	switch kind {
	case '0': // connected
		if !rc.cs.welcomed {
			rc.cs.welcomed = true
			c.env.userConn(c.userID, 1)
		}
		for _, t := range c.roomsOf() {
			c.writeRaw(rc.gen, event(0, p.evSubscribe, t.quoted))
		}
		c.ready(rc.gen, rc.now)
	case '3': // ack of a publish
		id, _ := splitAckID(rest)
		c.add(stats.CtrAcks, 1)
		c.mu.Lock()
		sid, ok := c.relay.pubIDs[id]
		delete(c.relay.pubIDs, id)
		c.mu.Unlock()
		if ok {
			c.stampAcked(sid)
		}
	case '2': // event
		room, s, ok := p.delivered(rest)
		if !ok {
			return
		}
		c.add(stats.CtrMessagesReceived, 1)
		if room != s.Room {
			c.add(stats.ErrorCounter("misrouted"), 1)
		}
		c.stampReceived(s, rc.gen, rc.now)
	case '4': // connect error
		c.add(stats.ErrorCounter("server_connect_error"), 1)
	}
}

// delivered decodes an EVENT packet's body (after its type): a delivery event's room and stamp.
func (p *socketIOProtocol) delivered(b []byte) (room string, s stamp, ok bool) {
	_, body := splitAckID(b)
	var args []json.RawMessage
	if json.Unmarshal(body, &args) != nil || len(args) < 3 {
		return "", s, false
	}
	var name string
	if json.Unmarshal(args[0], &name) != nil || name != p.evDelivery {
		return "", s, false
	}
	_ = json.Unmarshal(args[1], &room)
	s, ok = parseStamp([]byte(args[2]))
	return room, s, ok
}

// splitAckID splits a packet's leading ack id (digits) from its JSON.
func splitAckID(b []byte) (uint32, []byte) {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	n, _ := strconv.ParseUint(string(b[:i]), 10, 32)
	return uint32(n), b[i:]
}

// publish emits one stamped publish event with an ack id.
func (p *socketIOProtocol) publish(c *client, gen uint32, at int64) {
	room, s, _ := c.stampNextPublish(gen, at)
	if s == nil {
		return
	}
	c.mu.Lock()
	c.relay.cmdID++
	id := c.relay.cmdID
	if c.relay.pubIDs == nil {
		c.relay.pubIDs = map[uint32]string{}
	}
	if len(c.relay.pubIDs) < 4096 {
		c.relay.pubIDs[id] = s.ID
	}
	c.mu.Unlock()
	c.writeRaw(gen, event(id, p.evPublish, room.quoted, appendStamp(nil, s, c.behaviour().PayloadSize)))
	c.add(stats.CtrMessagesSent, 1)
}

// heartbeat: the server pings and the client answers.
func (*socketIOProtocol) heartbeat(*client, uint32, time.Time) {}

// probe waits for the open packet, connects and waits for the namespace's connect.
func (p *socketIOProtocol) probe(pc *probeConn) error {
	return pc.readUntil("a Socket.IO open and connect", func(msg []byte) (bool, error) {
		switch {
		case len(msg) > 0 && msg[0] == '0':
			return false, pc.write(p.connectPacket(pc.token))
		case bytes.HasPrefix(msg, []byte("40")):
			return true, nil
		case bytes.HasPrefix(msg, []byte("44")):
			return false, fmt.Errorf("%w: connect error %s", ErrCredentials, excerpt(msg[2:]))
		case len(msg) > 0 && msg[0] == '2':
			return false, pc.write([]byte("3"))
		}
		return false, fmt.Errorf("not an Engine.IO packet: %s", excerpt(msg))
	})
}
