package loadgen

// The generic protocol: any WebSocket gateway that relays payloads, declared in the scenario. A
// client sends its hello frames once connected, subscribes to each of its rooms, publishes one
// stamped payload per Behaviour.SendInterval to its rooms in turn, and runs an application ping
// when the profile has one. Incoming messages (several per frame when the gateway batches them
// with newlines) are sorted by JSON-path matchers into deliveries (room, payload, optional server
// sequence), acks and pongs; every delivered payload that holds a squall stamp is accounted for
// by the stamp machinery (stamps.go): fan-out latency, per-sender order, gaps, duplicates and
// loss. Presence and resume are notions this protocol cannot see; reconnect policies, exits, read
// timeouts and the schedule work as for every protocol.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/loadgen/stats"
)

// ProtocolGeneric is the name of the generic protocol.
const ProtocolGeneric = "generic"

// GenericSpec declares a gateway's protocol for the generic profile.
//
// Frame templates (text/template) see {{.Client}} (client number), {{.User}} (user id),
// {{.Token}} (the client's token), {{.Room}} (subscribe, unsubscribe, publish), and for publish
// {{.Payload}} (the stamp as a JSON object), {{.PayloadQuoted}} (the same as a JSON string, for
// gateways that carry text), {{.ID}} (the message's correlation id, for acks) and {{.Time}}
// (intended send time, Unix ms).
type GenericSpec struct {
	// Binary sends frames as binary messages (default text).
	Binary bool `json:"binary,omitempty" yaml:"binary"`
	// Batch is how the gateway packs several messages into one frame: "" (one per frame) or
	// "newline" (one per line, as gorilla/websocket's chat example does).
	Batch string `json:"batch,omitempty" yaml:"batch"`
	// Hello are the frames sent once connected (login, handshake), in order.
	Hello []string `json:"hello,omitempty" yaml:"hello"`
	// Subscribe is sent for each of the client's rooms after Hello (empty: the gateway has one
	// audience, and everyone receives everything; give the cohort one room).
	Subscribe string `json:"subscribe,omitempty" yaml:"subscribe"`
	// Unsubscribe is sent for each room before a clean (close) exit.
	Unsubscribe string `json:"unsubscribe,omitempty" yaml:"unsubscribe"`
	// Publish sends one message to a room; it must place {{.Payload}} or {{.PayloadQuoted}}.
	Publish string `json:"publish" yaml:"publish"`
	// Ping is an application ping, sent every behaviour heartbeat (empty: none).
	Ping string `json:"ping,omitempty" yaml:"ping"`
	// Delivery says which messages are deliveries (Match; empty: any message whose payload holds a
	// stamp), where their Payload is ("" or "$": the whole message), and optionally their Room
	// and a server sequence per room (Seq) for room-level order checks.
	Delivery GenericMatch `json:"delivery,omitzero" yaml:"delivery"`
	// Ack says which messages acknowledge a publish (Match) and where the publish's {{.ID}} is in
	// them (ID). Empty: the gateway does not acknowledge.
	Ack GenericMatch `json:"ack,omitzero" yaml:"ack"`
	// Pong says which messages answer Ping (Match).
	Pong GenericMatch `json:"pong,omitzero" yaml:"pong"`
	// NoEcho says the gateway does not deliver a publisher's own messages back to it: loss is
	// then seen only as gaps at other receivers.
	NoEcho bool `json:"no_echo,omitempty" yaml:"no_echo"`
	// LossTimeout is how long a published message may take to come back to its sender before it
	// counts as late (default 5s).
	LossTimeout time.Duration `json:"loss_timeout,omitempty" yaml:"loss_timeout"`
}

// GenericMatch selects messages and says where their parts are (JSON paths such as
// "$.push.channel", "data", "items[0]").
type GenericMatch struct {
	// Match maps paths to the value they must hold ("*": present with any value).
	Match map[string]string `json:"match,omitempty" yaml:"match"`
	// Room is the path of a delivery's room.
	Room string `json:"room,omitempty" yaml:"room"`
	// Payload is the path of a delivery's payload ("" or "$": the whole message).
	Payload string `json:"payload,omitempty" yaml:"payload"`
	// Seq is the path of a delivery's server sequence in its room (empty: none).
	Seq string `json:"seq,omitempty" yaml:"seq"`
	// ID is the path of the correlation id an ack carries.
	ID string `json:"id,omitempty" yaml:"id"`
}

// genericProtocol is a compiled GenericSpec.
type genericProtocol struct {
	mt                               int
	batch                            bool
	hello                            []*template.Template
	subscribe, unsubscribe, pub, png *template.Template
	delivery, ack, pong              matcher
	payload, room, seq, ackID        jsonPath
	hasRoom, hasSeq                  bool
	noEcho                           bool
	timeout                          time.Duration
}

var (
	_ Protocol      = (*genericProtocol)(nil)
	_ relayProtocol = (*genericProtocol)(nil)
	_ leaver        = (*genericProtocol)(nil)
)

func (*genericProtocol) relayed() {}

func newGenericProtocol(spec ProtocolSpec) (Protocol, error) {
	g := spec.Generic
	if g == nil {
		return nil, errors.New("protocol generic: no settings (generic: with a publish template at least)")
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("protocol generic: "+format, a...)) }
	tmpl := func(name, text string) *template.Template {
		if text == "" {
			return nil
		}
		t, err := template.New(name).Option("missingkey=error").Parse(text)
		if err != nil {
			bad("%s template: %v", name, err)
			return nil
		}
		return t
	}
	p := &genericProtocol{mt: websocket.TextMessage, noEcho: g.NoEcho, timeout: g.LossTimeout}
	if g.Binary {
		p.mt = websocket.BinaryMessage
	}
	switch g.Batch {
	case "":
	case "newline":
		p.batch = true
	default:
		bad("batch %q: want newline or nothing", g.Batch)
	}
	if p.timeout <= 0 {
		p.timeout = DefaultLossTimeout
	}
	for i, h := range g.Hello {
		if t := tmpl(fmt.Sprintf("hello[%d]", i), h); t != nil {
			p.hello = append(p.hello, t)
		}
	}
	p.subscribe = tmpl("subscribe", g.Subscribe)
	p.unsubscribe = tmpl("unsubscribe", g.Unsubscribe)
	p.png = tmpl("ping", g.Ping)
	if !strings.Contains(g.Publish, ".Payload") {
		bad("the publish template must place {{.Payload}} or {{.PayloadQuoted}} (the stamp that makes delivery measurable)")
	} else {
		p.pub = tmpl("publish", g.Publish)
	}
	path := func(name, s string) jsonPath {
		jp, err := parsePath(s)
		if err != nil {
			bad("%s: %v", name, err)
		}
		return jp
	}
	match := func(name string, m map[string]string) matcher {
		mt, err := newMatcher(m)
		if err != nil {
			bad("%s.match: %v", name, err)
		}
		return mt
	}
	p.delivery = match("delivery", g.Delivery.Match)
	p.payload = path("delivery.payload", g.Delivery.Payload)
	p.room, p.hasRoom = path("delivery.room", g.Delivery.Room), g.Delivery.Room != ""
	p.seq, p.hasSeq = path("delivery.seq", g.Delivery.Seq), g.Delivery.Seq != ""
	p.ack = match("ack", g.Ack.Match)
	p.ackID = path("ack.id", g.Ack.ID)
	if p.ack.empty() != (g.Ack.ID == "") {
		bad("ack: match and id go together (which messages are acks, and where the publish's {{.ID}} is)")
	}
	p.pong = match("pong", g.Pong.Match)
	if (p.png == nil) != p.pong.empty() && g.Ping != "" {
		bad("pong: a ping template needs a pong matcher (which messages answer it)")
	}
	for name, m := range map[string]GenericMatch{"ack": g.Ack, "pong": g.Pong} {
		if m.Room != "" || m.Payload != "" || m.Seq != "" {
			bad("%s: room, payload and seq belong to delivery", name)
		}
	}
	if g.Delivery.ID != "" || g.Pong.ID != "" {
		bad("id belongs to ack")
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *genericProtocol) Name() string { return ProtocolGeneric }

// tokenPlace: the templates place the token ({{.Token}}) unless the auth says otherwise.
func (p *genericProtocol) tokenPlace() string { return PlaceFrame }

// Capabilities: acks when the profile matches them, a server sequence when deliveries carry one.
func (p *genericProtocol) Capabilities() Capabilities {
	var c Capabilities
	if !p.ack.empty() {
		c = append(c, CapAcks)
	}
	if p.hasSeq {
		c = append(c, CapServerSequence)
	}
	if p.png != nil {
		c = append(c, CapAppPing)
	}
	if !p.noEcho {
		c = append(c, CapEcho, CapAccounting)
	}
	return c
}

// templateData is what frame, header and claim templates see.
type templateData struct {
	Client        int
	User          string
	Room          string
	Token         string
	Payload       string
	PayloadQuoted string
	ID            string
	Time          int64
}

func (c *client) templateData() templateData {
	d := templateData{Client: int(c.index), User: c.userID}
	c.mu.Lock()
	d.Token = c.token
	c.mu.Unlock()
	return d
}

// frame executes t with d; a failed template is counted and yields nil.
func (c *client) frame(t *template.Template, d templateData) []byte {
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		c.add(stats.ErrorCounter("template"), 1)
		return nil
	}
	return b.Bytes()
}

// opened sends the hello frames and a subscribe per room, then starts the client's schedule: the
// profile has no handshake to wait for.
func (p *genericProtocol) opened(c *client, gen uint32, now time.Time) {
	c.mu.Lock()
	c.relay.timeout = p.timeout
	if p.png != nil {
		c.hbEvery = c.behaviour().heartbeatEvery(0)
	}
	if c.connectAt.IsZero() {
		c.connectAt = now
	}
	c.mu.Unlock()
	d := c.templateData()
	for _, t := range p.hello {
		if b := c.frame(t, d); b != nil {
			c.writeRawType(gen, p.mt, b)
		}
	}
	if p.subscribe != nil {
		for _, r := range c.roomsOf() {
			d.Room = r.name
			if b := c.frame(p.subscribe, d); b != nil {
				c.writeRawType(gen, p.mt, b)
			}
		}
	}
	c.ready(gen, now)
}

// leaveFrames are an unsubscribe per room, sent before a clean exit's close frame.
func (p *genericProtocol) leaveFrames(c *client) (int, [][]byte) {
	if p.unsubscribe == nil {
		return p.mt, nil
	}
	d := c.templateData()
	var out [][]byte
	for _, r := range c.roomsOf() {
		d.Room = r.name
		if b := c.frame(p.unsubscribe, d); b != nil {
			out = append(out, b)
		}
	}
	return p.mt, out
}

// publish sends one stamped payload to the client's next room.
func (p *genericProtocol) publish(c *client, gen uint32, at int64) {
	room, s, intended := c.stampNextPublish(gen, at)
	if s == nil {
		return
	}
	payload := appendStamp(nil, s, c.behaviour().PayloadSize)
	d := c.templateData()
	d.Room, d.ID, d.Time = room.name, s.ID, intended.UnixMilli()
	d.Payload = string(payload)
	q, _ := json.Marshal(d.Payload)
	d.PayloadQuoted = string(q)
	if b := c.frame(p.pub, d); b != nil {
		c.writeRawType(gen, p.mt, b)
	}
	c.add(stats.CtrMessagesSent, 1)
}

// heartbeat sends the application ping.
func (p *genericProtocol) heartbeat(c *client, gen uint32, now time.Time) {
	if p.png == nil {
		return
	}
	c.mu.Lock()
	c.pingAt = now.UnixNano()
	c.mu.Unlock()
	c.add(stats.CtrPingsSent, 1)
	if b := c.frame(p.png, c.templateData()); b != nil {
		c.writeRawType(gen, p.mt, b)
	}
}

// received sorts each message of a frame into a pong, an ack or a delivery.
func (p *genericProtocol) received(c *client, msg []byte, rc *readCtx) {
	if p.batch && bytes.IndexByte(msg, '\n') >= 0 {
		for line := range bytes.SplitSeq(msg, []byte{'\n'}) {
			if len(bytes.TrimSpace(line)) > 0 {
				p.message(c, line, rc)
			}
		}
		return
	}
	p.message(c, msg, rc)
}

func (p *genericProtocol) message(c *client, msg []byte, rc *readCtx) {
	v, ok := decodeJSON(msg)
	if !ok {
		// Not JSON: a delivery only when the whole message is the payload.
		if len(p.payload) == 0 && p.delivery.empty() {
			if s, ok := parseStamp(msg); ok {
				c.add(stats.CtrMessagesReceived, 1)
				c.stampReceived(s, rc.gen, rc.now)
			}
		}
		return
	}
	if !p.pong.empty() && p.pong.match(v) {
		c.appPong(rc.now)
		return
	}
	if !p.ack.empty() && p.ack.match(v) {
		c.add(stats.CtrAcks, 1)
		if idv, ok := p.ackID.get(v); ok {
			if id, ok := scalarString(idv); ok {
				c.stampAcked(id)
			}
		}
		return
	}
	if !p.delivery.empty() && !p.delivery.match(v) {
		return
	}
	pv, ok := p.payload.get(v)
	if !ok {
		return
	}
	s, ok := parseStamp(pv)
	if !ok {
		return
	}
	c.add(stats.CtrMessagesReceived, 1)
	if p.hasRoom {
		if r, ok := p.room.get(v); ok {
			if name, _ := scalarString(r); name != s.Room {
				c.add(stats.ErrorCounter("misrouted"), 1)
			}
		}
	}
	if p.hasSeq {
		if sv, ok := p.seq.get(v); ok {
			if str, ok := scalarString(sv); ok {
				if n, err := strconv.ParseUint(str, 10, 64); err == nil {
					c.roomSeqReceived(s.Room, n)
				}
			}
		}
	}
	c.stampReceived(s, rc.gen, rc.now)
}

// decodeJSON decodes a message into a generic value, numbers kept as json.Number.
func decodeJSON(msg []byte) (any, bool) {
	msg = bytes.TrimSpace(msg)
	if len(msg) == 0 || (msg[0] != '{' && msg[0] != '[') {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(msg))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return nil, false
	}
	return v, true
}

// appPong records the round trip of the outstanding application ping.
func (c *client) appPong(now time.Time) {
	c.mu.Lock()
	at := c.pingAt
	c.pingAt = 0
	c.mu.Unlock()
	c.add(stats.CtrPongsReceived, 1)
	if at != 0 {
		c.record(stats.HistAppPingRTT, time.Duration(now.UnixNano()-at))
	}
}

// roomSeqReceived checks a server sequence of room: order, gaps and duplicates of the room's
// stream as this client sees it (from the first one it sees).
func (c *client) roomSeqReceived(room string, seq uint64) {
	key := "#room/" + room
	c.mu.Lock()
	if c.relay.senders == nil {
		c.relay.senders = map[string]*senderTrack{}
	}
	tr := c.relay.senders[key]
	var order, dup int64
	switch {
	case tr == nil:
		c.relay.senders[key] = &senderTrack{last: seq}
	case seq == tr.last+1:
		tr.last = seq
	case seq > tr.last+1:
		for q := tr.last + 1; q < seq && len(tr.missing) < maxMissing; q++ {
			tr.missing = append(tr.missing, q)
		}
		tr.last = seq
	default:
		if i := slices.Index(tr.missing, seq); i >= 0 {
			tr.missing = slices.Delete(tr.missing, i, i+1)
			order++
		} else {
			dup++
		}
	}
	c.mu.Unlock()
	if order > 0 {
		c.add(stats.CtrOrderViolations, order)
	}
	if dup > 0 {
		c.add(stats.CtrDuplicates, dup)
	}
}

// probe sends the hello frames, subscribes to a probe room and publishes one stamped message,
// which must come back (or be acknowledged, for a gateway that does not echo; or the ping
// answered when there is neither).
func (p *genericProtocol) probe(pc *probeConn) error {
	d := templateData{User: "loadgen-probe", Token: pc.token, Room: "squall-probe"}
	exec := func(t *template.Template) ([]byte, error) {
		var b bytes.Buffer
		err := t.Execute(&b, d)
		return b.Bytes(), err
	}
	send := func(t *template.Template, what string) error {
		if t == nil {
			return nil
		}
		b, err := exec(t)
		if err != nil {
			return fmt.Errorf("%s template: %w", what, err)
		}
		return pc.writeType(p.mt == websocket.BinaryMessage, b)
	}
	for _, t := range p.hello {
		if err := send(t, "hello"); err != nil {
			return err
		}
	}
	if err := send(p.subscribe, "subscribe"); err != nil {
		return err
	}
	s := stamp{Mark: 1, User: d.User, Room: d.Room, Seq: 1, Sent: time.Now().UnixNano(), ID: stampID(d.User, 0, d.Room, 1)}
	d.Payload = string(appendStamp(nil, &s, 0))
	q, _ := json.Marshal(d.Payload)
	d.PayloadQuoted, d.ID, d.Time = string(q), s.ID, time.Now().UnixMilli()
	var what string
	var done func(any, []byte) bool
	switch {
	case !p.noEcho:
		what = "the probe message delivered back (check target.protocol.generic: publish, delivery)"
		if err := send(p.pub, "publish"); err != nil {
			return err
		}
		done = func(v any, raw []byte) bool {
			if v == nil {
				got, ok := parseStamp(raw)
				return ok && got.ID == s.ID
			}
			if !p.delivery.empty() && !p.delivery.match(v) {
				return false
			}
			pv, ok := p.payload.get(v)
			if !ok {
				return false
			}
			got, ok := parseStamp(pv)
			return ok && got.ID == s.ID
		}
	case !p.ack.empty():
		what = "an ack of the probe message (check target.protocol.generic: publish, ack)"
		if err := send(p.pub, "publish"); err != nil {
			return err
		}
		done = func(v any, _ []byte) bool {
			if v == nil || !p.ack.match(v) {
				return false
			}
			id, ok := p.ackID.get(v)
			str, _ := scalarString(id)
			return ok && str == s.ID
		}
	case p.png != nil:
		what = "a pong (check target.protocol.generic: ping, pong)"
		if err := send(p.png, "ping"); err != nil {
			return err
		}
		done = func(v any, _ []byte) bool { return v != nil && p.pong.match(v) }
	default:
		return nil // nothing the gateway is bound to answer
	}
	return pc.readUntil(what, func(msg []byte) (bool, error) {
		lines := [][]byte{msg}
		if p.batch {
			lines = bytes.Split(msg, []byte{'\n'})
		}
		for _, l := range lines {
			v, _ := decodeJSON(l)
			if done(v, l) {
				return true, nil
			}
		}
		return false, nil
	})
}
