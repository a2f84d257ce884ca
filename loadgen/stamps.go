package loadgen

// Payload stamps: delivery checks on any gateway that relays payloads. A protocol that publishes
// through a gateway squall did not write (generic, centrifugo) puts a stamp in every payload —
// sender, its connection, the room, a per-sender-per-room sequence, the intended send time and a
// correlation id — and hands every payload it receives back here. Without the gateway's
// cooperation that measures:
//
//   - fan-out latency: the intended send time to each receipt (stats.HistFanout), so that a
//     stalled generator shows as latency (coordinated omission);
//   - per-sender order, gaps and duplicates: each receiver follows each sender's sequence in each
//     room (stats.CtrOrderViolations, stats.CtrGaps at the delivery check, stats.CtrDuplicates);
//   - loss, message by message: every published message waits for its own copy to come back to
//     its sender (a relay delivers to every subscriber of the room, its sender included): it is
//     delivered (CtrDelivered) within the loss timeout, late (CtrLate) after it, or lost (CtrLost)
//     when it has not come back by the delivery check; a message whose sender's connection dropped
//     before its copy came back is unconfirmed (CtrUnconfirmed). A lost message the gateway had
//     acknowledged also counts in stats.CtrAckedUndelivered.
//
// Where the protocol also reads a server sequence per room (centrifugo's offset, a generic seq
// path), room-level order and gaps are checked as for the squall protocol's roomSeq.

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/squall-dev/squall/loadgen/stats"
)

// Counters of the stamp accounting.
const (
	CtrDelivered   = "messages_delivered"   // published messages whose own copy came back within the loss timeout
	CtrLate        = "messages_late"        // ... came back after it
	CtrLost        = "messages_lost"        // ... had not come back at the delivery check
	CtrUnconfirmed = "messages_unconfirmed" // ... could not come back: the sender's connection dropped first
)

// DefaultLossTimeout is how long a published message may take to come back before it is late.
const DefaultLossTimeout = 5 * time.Second

// stampMark is the field that tells a squall stamp from any other JSON object.
const stampMark = "squall"

// stamp is what squall writes into every payload it publishes through a relay.
type stamp struct {
	Mark   int    `json:"squall"` // always 1
	User   string `json:"u"`      // sender's user id
	Client int32  `json:"c"`      // sender's client number
	Gen    uint32 `json:"g"`      // sender's connection generation
	Room   string `json:"r"`      // the room it was published to
	Seq    uint64 `json:"s"`      // per sender connection and room: 1, 2, 3, ...
	Sent   int64  `json:"t"`      // intended send time, Unix ns
	ID     string `json:"id"`     // correlation id: user/gen/room/seq
	Pad    string `json:"p,omitempty"`
}

// appendStamp appends the stamp as a JSON object, padded with pad bytes.
func appendStamp(b []byte, s *stamp, pad int) []byte {
	b = append(b, `{"squall":1,"u":`...)
	b = appendJSONString(b, s.User)
	b = append(b, `,"c":`...)
	b = strconv.AppendInt(b, int64(s.Client), 10)
	b = append(b, `,"g":`...)
	b = strconv.AppendUint(b, uint64(s.Gen), 10)
	b = append(b, `,"r":`...)
	b = appendJSONString(b, s.Room)
	b = append(b, `,"s":`...)
	b = strconv.AppendUint(b, s.Seq, 10)
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, s.Sent, 10)
	b = append(b, `,"id":`...)
	b = appendJSONString(b, s.ID)
	if pad > 0 {
		b = append(b, `,"p":"`...)
		for range pad {
			b = append(b, 'x')
		}
		b = append(b, '"')
	}
	return append(b, '}')
}

// appendJSONString appends str as a JSON string.
func appendJSONString(b []byte, str string) []byte {
	for i := 0; i < len(str); i++ {
		if c := str[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(str)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, str...)
	return append(b, '"')
}

// parseStamp reads a stamp from a payload: a JSON object, or a JSON string holding one (gateways
// that carry text), or the raw text of one. ok is false for anything else.
func parseStamp(v any) (s stamp, ok bool) {
	var raw []byte
	switch x := v.(type) {
	case map[string]any:
		if _, has := x[stampMark]; !has {
			return s, false
		}
		b, err := json.Marshal(x)
		if err != nil {
			return s, false
		}
		raw = b
	case string:
		raw = []byte(strings.TrimSpace(x))
	case []byte:
		raw = x
	default:
		return s, false
	}
	if len(raw) == 0 || raw[0] != '{' {
		return s, false
	}
	if err := json.Unmarshal(raw, &s); err != nil || s.Mark != 1 || s.Seq == 0 || s.User == "" {
		return stamp{}, false
	}
	return s, true
}

func stampID(user string, gen uint32, room string, seq uint64) string {
	return user + "/" + strconv.FormatUint(uint64(gen), 10) + "/" + room + "/" + strconv.FormatUint(seq, 10)
}

// senderTrack is what one receiver knows of one sender's sequence in one room.
type senderTrack struct {
	last    uint64
	missing []uint64
}

// relayState is a client's stamp accounting, guarded by c.mu.
type relayState struct {
	pubSeq  map[string]uint64       // room → last seq published on the current connection
	senders map[string]*senderTrack // "user/gen/room" → the sender's sequence as this client saw it
	timeout time.Duration           // loss timeout

	cmdID       uint32            // centrifugo: the last command id of the connection
	pubIDs      map[uint32]string // centrifugo: publish command id → the stamp's id, until its reply
	subsPending int               // centrifugo: subscribe replies still awaited
}

// stampNextPublish picks the client's next room (round robin over its rooms) and stamps the next
// message to it, intended at the schedule time at. It returns a nil stamp when there is nothing to
// send: no room yet, or the connection of gen is gone (a send that found its connection gone
// counts as one sent, so that it is accounted for).
func (c *client) stampNextPublish(gen uint32, at int64) (*roomTracker, *stamp, time.Time) {
	rooms := c.roomsOf()
	if len(rooms) == 0 {
		return nil, nil, time.Time{}
	}
	c.mu.Lock()
	room := rooms[int(c.seq)%len(rooms)]
	c.mu.Unlock()
	intended := c.env.sched.time(at)
	s := c.stampPublish(gen, room, intended)
	if s == nil {
		c.add(stats.CtrMessagesSent, 1)
	}
	return room, s, intended
}

// stampPublish builds the stamp of the next message to room, intended at the given time, and
// records it as waiting for its own copy. It returns nil when the connection of gen is gone.
func (c *client) stampPublish(gen uint32, room *roomTracker, intended time.Time) *stamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen || c.conn == nil {
		return nil
	}
	if c.relay.pubSeq == nil {
		c.relay.pubSeq = map[string]uint64{}
	}
	c.relay.pubSeq[room.name]++
	seq := c.relay.pubSeq[room.name]
	c.seq++
	c.pend = append(c.pend, pendingSend{seq: seq, room: room, roomSeq: uint64(intended.UnixNano())})
	if len(c.pend) > 4096 { // a gateway that never relays: keep memory bounded, the oldest is lost
		c.pend = c.pend[1:]
		c.add(CtrLost, 1)
	}
	return &stamp{Mark: 1, User: c.userID, Client: c.index, Gen: gen, Room: room.name, Seq: seq,
		Sent: intended.UnixNano(), ID: stampID(c.userID, gen, room.name, seq)}
}

// stampReceived accounts for one delivered payload holding s, read at now on connection gen.
func (c *client) stampReceived(s stamp, gen uint32, now time.Time) {
	key := s.User + "/" + strconv.FormatUint(uint64(s.Gen), 10) + "/" + s.Room
	c.mu.Lock()
	if c.relay.senders == nil {
		c.relay.senders = map[string]*senderTrack{}
	}
	tr := c.relay.senders[key]
	var order, dup int64
	switch {
	case tr == nil:
		// The first message of this sender seen here: nothing before it is expected (the
		// receiver may have subscribed after the sender began).
		c.relay.senders[key] = &senderTrack{last: s.Seq}
	case s.Seq == tr.last+1:
		tr.last = s.Seq
	case s.Seq > tr.last+1:
		for q := tr.last + 1; q < s.Seq && len(tr.missing) < maxMissing; q++ {
			tr.missing = append(tr.missing, q)
		}
		tr.last = s.Seq
	default:
		found := false
		for i, q := range tr.missing {
			if q == s.Seq {
				tr.missing = append(tr.missing[:i], tr.missing[i+1:]...)
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
	own := dup == 0 && s.User == c.userID && s.Client == c.index && s.Gen == gen
	var ownSent int64
	if own {
		for i := range c.pend {
			p := &c.pend[i]
			if p.seq == s.Seq && p.room != nil && p.room.name == s.Room {
				ownSent = int64(p.roomSeq)
				c.pend = append(c.pend[:i], c.pend[i+1:]...)
				break
			}
		}
	}
	timeout := c.relay.timeout
	c.mu.Unlock()
	if order > 0 {
		c.add(stats.CtrOrderViolations, order)
	}
	if dup > 0 {
		c.add(stats.CtrDuplicates, dup)
		return
	}
	if s.Sent > 0 {
		c.record(stats.HistFanout, time.Duration(now.UnixNano()-s.Sent))
	}
	if ownSent != 0 {
		if time.Duration(now.UnixNano()-ownSent) <= timeout {
			c.add(CtrDelivered, 1)
		} else {
			c.add(CtrLate, 1)
		}
	}
}

// relayDropped accounts for the messages of a connection that dropped before their copies came
// back; c.mu is held.
func (c *client) relayDroppedLocked() {
	if n := len(c.pend); n > 0 {
		c.add(CtrUnconfirmed, int64(n))
	}
	c.relay.pubSeq = nil
	c.relay.pubIDs = nil
}

// stampAcked marks the published message with correlation id as acknowledged by the gateway: if
// it is then lost, the gateway broke a promise (stats.CtrAckedUndelivered).
func (c *client) stampAcked(id string) {
	parts := strings.Split(id, "/")
	if len(parts) < 4 {
		return
	}
	seq, err := strconv.ParseUint(parts[len(parts)-1], 10, 64)
	if err != nil {
		return
	}
	room := strings.Join(parts[2:len(parts)-1], "/")
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.pend {
		if p := &c.pend[i]; p.seq == seq && p.room != nil && p.room.name == room {
			p.acked = true
			return
		}
	}
}

// relayCheck ends the stamp accounting of c at the delivery check: messages still waiting for
// their copy are lost, sequences still missing at a receiver are gaps.
func (c *client) relayCheck() (lost, ackedLost, gaps int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	lost = int64(len(c.pend))
	for _, p := range c.pend {
		if p.acked {
			ackedLost++
		}
	}
	c.pend = c.pend[:0]
	for _, tr := range c.relay.senders {
		gaps += int64(len(tr.missing))
		tr.missing = nil
	}
	return lost, ackedLost, gaps
}
