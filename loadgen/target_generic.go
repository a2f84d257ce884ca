package loadgen

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

// HistEcho is the generic adapter's latency: from a message's intended send time to the receipt of
// a frame that echoes its correlation id.
const HistEcho = "echo"

// GenericTarget drives any WebSocket server through templated text frames: clients connect to URL,
// send the OnConnect frames, then one Send frame per Behaviour.SendInterval, and measure latency by
// a correlation id the server echoes back in CorrelationField of any JSON frame it sends. Rooms,
// acks, presence and reconnect-resume are refserver notions the adapter does not use; reconnect
// policies, exits and the schedule work as for refserver clients.
//
// Templates (text/template) see {{.Client}} (client number), {{.User}} (user id), {{.Room}} (the
// client's first room name), {{.ID}} (the correlation id, Send only), {{.Time}} (intended send time,
// Unix ms) and {{.Token}} (a JWT for the user signed with AuthSecret).
type GenericTarget struct {
	URL        string   // ws://host:port/path
	MetricsURL string   // optional
	OnConnect  []string // frames sent after every connect
	Send       string   // the message template; must contain {{.ID}}
	// CorrelationField names the JSON field (top level) of a received frame carrying an echoed id
	// (default "id").
	CorrelationField string
	AuthSecret       []byte // for {{.Token}}

	onConnect []*template.Template
	send      *template.Template
	field     string
}

var _ Target = (*GenericTarget)(nil)

// NewGenericTarget checks and compiles the templates.
func NewGenericTarget(g GenericTarget) (*GenericTarget, error) {
	u, err := ParseURLTarget(g.URL)
	if err != nil {
		return nil, err
	}
	out := g
	out.URL = u.URL
	if g.Send == "" || !strings.Contains(g.Send, ".ID") {
		return nil, errors.New("generic target: the Send template must contain {{.ID}} to correlate replies")
	}
	if out.send, err = template.New("send").Option("missingkey=error").Parse(g.Send); err != nil {
		return nil, fmt.Errorf("generic target: Send template: %w", err)
	}
	for i, s := range g.OnConnect {
		t, err := template.New("connect").Option("missingkey=error").Parse(s)
		if err != nil {
			return nil, fmt.Errorf("generic target: OnConnect[%d] template: %w", i, err)
		}
		out.onConnect = append(out.onConnect, t)
	}
	out.field = g.CorrelationField
	if out.field == "" {
		out.field = "id"
	}
	return &out, nil
}

// Endpoints implements Target.
func (g *GenericTarget) Endpoints() []Endpoint {
	return []Endpoint{{URL: g.URL, MetricsURL: g.MetricsURL}}
}

// Secret implements Target.
func (g *GenericTarget) Secret() []byte { return g.AuthSecret }

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
	return d
}

// genericStart sends the OnConnect frames and starts the client's schedule.
func (c *client) genericStart(gen uint32, now time.Time) {
	g := c.env.generic
	d := c.templateData()
	if len(g.AuthSecret) > 0 {
		d.Token = c.token
	}
	var b bytes.Buffer
	for _, t := range g.onConnect {
		b.Reset()
		if err := t.Execute(&b, d); err != nil {
			c.add(stats.ErrorCounter("template"), 1)
			continue
		}
		c.writeRaw(gen, append([]byte(nil), b.Bytes()...))
	}
	c.ready(gen, now)
}

// sendGeneric sends one Send frame with a fresh correlation id.
func (c *client) sendGeneric(gen uint32, at int64) {
	env := c.env
	intended := env.sched.time(at)
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
	if err := env.generic.send.Execute(&b, d); err != nil {
		c.add(stats.ErrorCounter("template"), 1)
		return
	}
	c.writeRaw(gen, b.Bytes())
	c.add(stats.CtrMessagesSent, 1)
}

// handleGeneric looks for an echoed correlation id in a received frame.
func (c *client) handleGeneric(b []byte, now time.Time) {
	env := c.env
	c.add(stats.CtrMessagesReceived, 1)
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return
	}
	raw, ok := m[env.generic.field]
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
	for i, p := range c.pend {
		if p.seq == seq {
			intended = int64(p.roomSeq)
			c.pend = append(c.pend[:i], c.pend[i+1:]...)
			break
		}
	}
	c.mu.Unlock()
	if intended != 0 {
		c.record(HistEcho, time.Duration(now.UnixNano()-intended))
	}
}
