package loadgen

// The centrifugo protocol: Centrifugo v6's client protocol in JSON (the centrifuge protocol,
// newline-delimited commands and replies). A client sends connect with its token, subscribes to
// each of its rooms (channels) once connected, publishes stamped payloads to them in turn, answers
// the server's pings ({} with {}), and reads pushes: every publication's data holds a stamp
// (stamps.go), and its offset — present when the channel keeps history — is the room's server
// sequence. Publish replies are acks. Presence and resume (recovery) are not used.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
	"github.com/squall-dev/squall/loadgen/stats"
)

// ProtocolCentrifugo is the name of the Centrifugo protocol.
const ProtocolCentrifugo = "centrifugo"

// CentrifugoSpec configures the centrifugo protocol; the zero value is fine.
type CentrifugoSpec struct {
	// LossTimeout is how long a publication may take to come back to its publisher before it
	// counts as late (default 5s).
	LossTimeout time.Duration `json:"loss_timeout,omitempty" yaml:"loss_timeout"`
	// Name is the client name sent in connect (default "squall").
	Name string `json:"name,omitempty" yaml:"name"`
}

type centrifugoProtocol struct {
	timeout time.Duration
	name    string
}

var (
	_ Protocol      = (*centrifugoProtocol)(nil)
	_ relayProtocol = (*centrifugoProtocol)(nil)
)

func newCentrifugoProtocol(spec ProtocolSpec) (Protocol, error) {
	p := &centrifugoProtocol{timeout: DefaultLossTimeout, name: "squall"}
	if s := spec.Centrifugo; s != nil {
		if s.LossTimeout < 0 {
			return nil, errors.New("protocol centrifugo: negative loss_timeout")
		}
		if s.LossTimeout > 0 {
			p.timeout = s.LossTimeout
		}
		p.name = cmpOr(s.Name, p.name)
	}
	return p, nil
}

func (*centrifugoProtocol) relayed() {}

func (*centrifugoProtocol) Name() string { return ProtocolCentrifugo }

// tokenPlace: the connect command carries the token.
func (*centrifugoProtocol) tokenPlace() string { return PlaceFrame }

// Capabilities: its own copies come back, publish replies are acks, publication offsets are a
// per-channel sequence when the channel keeps history, and the server pings.
func (*centrifugoProtocol) Capabilities() Capabilities {
	return Capabilities{CapEcho, CapAccounting, CapAcks, CapServerSequence, CapAppPing}
}

// Centrifugo's command ids: connect is 1, subscribes follow, then publishes.
const cfConnectID = 1

// cfReply is one reply or push of the server.
type cfReply struct {
	ID    uint32 `json:"id"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Connect *struct {
		Client string `json:"client"`
		Ping   int    `json:"ping"`
		Pong   bool   `json:"pong"`
	} `json:"connect"`
	Subscribe json.RawMessage `json:"subscribe"`
	Publish   json.RawMessage `json:"publish"`
	Push      *struct {
		Channel string `json:"channel"`
		Pub     *struct {
			Data   json.RawMessage `json:"data"`
			Offset uint64          `json:"offset"`
		} `json:"pub"`
		Disconnect *struct {
			Code   int    `json:"code"`
			Reason string `json:"reason"`
		} `json:"disconnect"`
	} `json:"push"`
}

// empty reports whether the reply is {} (a server ping).
func (r *cfReply) empty() bool {
	return r.ID == 0 && r.Error == nil && r.Connect == nil && r.Subscribe == nil && r.Publish == nil && r.Push == nil
}

func (p *centrifugoProtocol) connectFrame(token string) []byte {
	b := []byte(`{"id":1,"connect":{"token":`)
	b = appendJSONString(b, token)
	b = append(b, `,"name":`...)
	b = appendJSONString(b, p.name)
	return append(b, "}}"...)
}

// opened sends connect; the rest follows its reply.
func (p *centrifugoProtocol) opened(c *client, gen uint32, now time.Time) {
	c.mu.Lock()
	c.relay.timeout = p.timeout
	c.relay.cmdID = cfConnectID
	c.relay.subsPending = 0
	tok := c.token
	if c.connectAt.IsZero() {
		c.connectAt = now
	}
	c.mu.Unlock()
	c.writeRaw(gen, p.connectFrame(tok))
}

func (p *centrifugoProtocol) nextID(c *client) uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.relay.cmdID++
	return c.relay.cmdID
}

// received handles each reply or push of a frame (Centrifugo joins them with newlines).
func (p *centrifugoProtocol) received(c *client, msg []byte, rc *readCtx) {
	for line := range bytes.SplitSeq(msg, []byte{'\n'}) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var r cfReply
		if err := json.Unmarshal(line, &r); err != nil {
			c.add(stats.ErrorCounter(stats.ErrProtocol), 1)
			continue
		}
		p.reply(c, &r, rc)
	}
}

func (p *centrifugoProtocol) reply(c *client, r *cfReply, rc *readCtx) {
	switch {
	case r.empty():
		// The server's ping: answered with an empty command.
		c.writeRaw(rc.gen, []byte("{}"))
		c.add(stats.CtrPongsReceived, 1)
	case r.Error != nil:
		c.add(stats.ErrorCounter("server_"+strconv.Itoa(r.Error.Code)), 1)
	case r.Connect != nil:
		if !rc.cs.welcomed {
			rc.cs.welcomed = true
			c.env.userConn(c.userID, 1)
		}
		rooms := c.roomsOf()
		c.mu.Lock()
		c.relay.subsPending = len(rooms)
		c.mu.Unlock()
		if len(rooms) == 0 {
			c.ready(rc.gen, rc.now)
			return
		}
		for _, t := range rooms {
			b := []byte(`{"id":`)
			b = strconv.AppendUint(b, uint64(p.nextID(c)), 10)
			b = append(b, `,"subscribe":{"channel":`...)
			b = append(b, t.quoted...)
			b = append(b, "}}"...)
			c.writeRaw(rc.gen, b)
		}
	case r.Subscribe != nil:
		c.mu.Lock()
		c.relay.subsPending--
		all := c.relay.subsPending == 0
		c.mu.Unlock()
		if all {
			c.ready(rc.gen, rc.now)
		}
	case r.Publish != nil:
		c.add(stats.CtrAcks, 1)
		c.mu.Lock()
		id, ok := c.relay.pubIDs[r.ID]
		delete(c.relay.pubIDs, r.ID)
		c.mu.Unlock()
		if ok {
			c.stampAcked(id)
		}
	case r.Push != nil && r.Push.Pub != nil:
		s, ok := parseStamp([]byte(r.Push.Pub.Data))
		if !ok {
			return
		}
		c.add(stats.CtrMessagesReceived, 1)
		if s.Room != r.Push.Channel {
			c.add(stats.ErrorCounter("misrouted"), 1)
		}
		if r.Push.Pub.Offset > 0 {
			c.roomSeqReceived(r.Push.Channel, r.Push.Pub.Offset)
		}
		c.stampReceived(s, rc.gen, rc.now)
	case r.Push != nil && r.Push.Disconnect != nil:
		c.add(stats.ErrorCounter("server_disconnect_"+strconv.Itoa(r.Push.Disconnect.Code)), 1)
	}
}

// publish sends one stamped publication to the client's next channel.
func (p *centrifugoProtocol) publish(c *client, gen uint32, at int64) {
	room, s, _ := c.stampNextPublish(gen, at)
	if s == nil {
		return
	}
	cmd := p.nextID(c)
	c.mu.Lock()
	if c.relay.pubIDs == nil {
		c.relay.pubIDs = map[uint32]string{}
	}
	if len(c.relay.pubIDs) < 4096 {
		c.relay.pubIDs[cmd] = s.ID
	}
	c.mu.Unlock()
	b := []byte(`{"id":`)
	b = strconv.AppendUint(b, uint64(cmd), 10)
	b = append(b, `,"publish":{"channel":`...)
	b = append(b, room.quoted...)
	b = append(b, `,"data":`...)
	b = appendStamp(b, s, c.behaviour().PayloadSize)
	b = append(b, "}}"...)
	c.writeRaw(gen, b)
	c.add(stats.CtrMessagesSent, 1)
}

// heartbeat: the server pings and the client answers; there is nothing to send on a schedule.
func (*centrifugoProtocol) heartbeat(*client, uint32, time.Time) {}

// probe sends connect and waits for its reply.
func (p *centrifugoProtocol) probe(pc *probeConn) error {
	if err := pc.write(p.connectFrame(pc.token)); err != nil {
		return err
	}
	var refused error
	err := pc.readUntil("a connect reply", func(msg []byte) (bool, error) {
		for line := range bytes.SplitSeq(msg, []byte{'\n'}) {
			var r cfReply
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			if err := json.Unmarshal(line, &r); err != nil {
				return false, fmt.Errorf("not a Centrifugo reply: %s", excerpt(line))
			}
			switch {
			case r.ID == cfConnectID && r.Connect != nil:
				return true, nil
			case r.ID == cfConnectID && r.Error != nil:
				refused = fmt.Errorf("connect refused: %d %s", r.Error.Code, r.Error.Message)
				return false, fmt.Errorf("%w: %v", ErrCredentials, refused)
			case r.Push != nil && r.Push.Disconnect != nil:
				return false, fmt.Errorf("%w: disconnected: %d %s", ErrCredentials, r.Push.Disconnect.Code, r.Push.Disconnect.Reason)
			}
		}
		return false, nil
	})
	// Centrifugo closes a connection whose token it refuses with 3500 (invalid token).
	var ce *websocket.CloseError
	if errors.As(err, &ce) && ce.Code == 3500 {
		return fmt.Errorf("%w: %v", ErrCredentials, err)
	}
	return err
}
