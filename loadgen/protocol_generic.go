package loadgen

// The generic protocol: any WebSocket server, driven by templated text frames. A client sends the
// OnConnect frames once connected, then one Send frame per Behaviour.SendInterval, and measures the
// latency of a message by a correlation id the server echoes back in any JSON frame it sends.
// Rooms, acks, presence and resume are notions of the squall protocol this one does not use;
// reconnect policies, exits, read timeouts and the schedule work as for every protocol.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/squall-dev/squall/loadgen/stats"
)

// ProtocolGeneric is the name of the generic protocol.
const ProtocolGeneric = "generic"

// HistEcho is the generic protocol's latency: from a message's intended send time to the receipt
// of a frame that echoes its correlation id.
const HistEcho = "echo"

// GenericSpec configures the generic protocol.
//
// Templates (text/template) see {{.Client}} (client number), {{.User}} (user id), {{.Room}} (the
// client's first room name), {{.ID}} (the correlation id, Send only), {{.Time}} (intended send
// time, Unix ms) and {{.Token}} (a JWT for the user signed with the target's secret).
type GenericSpec struct {
	OnConnect []string `json:"on_connect,omitempty"` // frames sent after every connect
	Send      string   `json:"send"`                 // the message template; must contain {{.ID}}
	// CorrelationField names the top-level JSON field of a received frame that carries an echoed
	// id (default "id").
	CorrelationField string `json:"correlation_field,omitempty"`
}

// genericProtocol is a compiled GenericSpec.
type genericProtocol struct {
	onConnect []*template.Template
	send      *template.Template
	field     string
}

var _ Protocol = (*genericProtocol)(nil)

func newGenericProtocol(spec ProtocolSpec) (Protocol, error) {
	g := spec.Generic
	if g == nil {
		return nil, errors.New("protocol generic: no settings (a send template at least)")
	}
	if g.Send == "" || !strings.Contains(g.Send, ".ID") {
		return nil, errors.New("protocol generic: the send template must contain {{.ID}} to correlate replies")
	}
	p := &genericProtocol{field: g.CorrelationField}
	var err error
	if p.send, err = template.New("send").Option("missingkey=error").Parse(g.Send); err != nil {
		return nil, fmt.Errorf("protocol generic: send template: %w", err)
	}
	for i, s := range g.OnConnect {
		t, err := template.New("connect").Option("missingkey=error").Parse(s)
		if err != nil {
			return nil, fmt.Errorf("protocol generic: on_connect[%d] template: %w", i, err)
		}
		p.onConnect = append(p.onConnect, t)
	}
	if p.field == "" {
		p.field = "id"
	}
	return p, nil
}

func (p *genericProtocol) Name() string { return ProtocolGeneric }

// tokenPlace: the templates place the token ({{.Token}}).
func (p *genericProtocol) tokenPlace() string { return PlaceFrame }

// templateData is what the templates see.
type templateData struct {
	Client int
	User   string
	Room   string
	ID     string
	Time   int64
	Token  string
}

func (c *client) templateData() templateData {
	d := templateData{Client: int(c.index), User: c.userID}
	if rooms := c.roomsOf(); len(rooms) > 0 {
		d.Room = rooms[0].name
	}
	c.mu.Lock()
	d.Token = c.token
	c.mu.Unlock()
	return d
}

// opened sends the OnConnect frames and starts the client's schedule: there is no handshake to
// wait for.
func (p *genericProtocol) opened(c *client, gen uint32, now time.Time) {
	d := c.templateData()
	var b bytes.Buffer
	for _, t := range p.onConnect {
		b.Reset()
		if err := t.Execute(&b, d); err != nil {
			c.add(stats.ErrorCounter("template"), 1)
			continue
		}
		c.writeRaw(gen, append([]byte(nil), b.Bytes()...))
	}
	c.ready(gen, now)
}

// publish sends one Send frame with a fresh correlation id.
func (p *genericProtocol) publish(c *client, gen uint32, at int64) {
	intended := c.env.sched.time(at)
	c.mu.Lock()
	c.seq++
	id := strconv.Itoa(int(c.index)) + "-" + strconv.FormatUint(c.seq, 10)
	c.pend = append(c.pend, pendingSend{seq: c.seq, roomSeq: uint64(intended.UnixNano())})
	if len(c.pend) > 4096 {
		c.pend = c.pend[1:]
	}
	c.mu.Unlock()
	d := c.templateData()
	d.ID, d.Time = id, intended.UnixMilli()
	var b bytes.Buffer
	if err := p.send.Execute(&b, d); err != nil {
		c.add(stats.ErrorCounter("template"), 1)
		return
	}
	c.writeRaw(gen, b.Bytes())
	c.add(stats.CtrMessagesSent, 1)
}

// probe: sends the OnConnect frames; the server must keep the connection open.
func (p *genericProtocol) probe(*probeConn) error { return nil }

// heartbeat: the generic protocol has no application ping.
func (p *genericProtocol) heartbeat(*client, uint32, time.Time) {}

// received looks for an echoed correlation id in a frame.
func (p *genericProtocol) received(c *client, msg []byte, rc *readCtx) {
	c.add(stats.CtrMessagesReceived, 1)
	var m map[string]json.RawMessage
	if json.Unmarshal(msg, &m) != nil {
		return
	}
	raw, ok := m[p.field]
	if !ok {
		return
	}
	var id string
	if json.Unmarshal(raw, &id) != nil {
		id = string(raw)
	}
	prefix := strconv.Itoa(int(c.index)) + "-"
	if !strings.HasPrefix(id, prefix) {
		return
	}
	seq, err := strconv.ParseUint(id[len(prefix):], 10, 64)
	if err != nil {
		return
	}
	c.mu.Lock()
	var intended int64
	for i, pd := range c.pend {
		if pd.seq == seq {
			intended = int64(pd.roomSeq)
			c.pend = append(c.pend[:i], c.pend[i+1:]...)
			break
		}
	}
	c.mu.Unlock()
	if intended != 0 {
		c.record(HistEcho, time.Duration(rc.now.UnixNano()-intended))
	}
}
