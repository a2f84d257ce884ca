package refserver

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/squall-dev/squall/refserver/protocol"
)

// SSE resume. Every frame event of an SSE stream carries an id, "<session>:<n>", n counting the
// events of the session from 1. A proxy with a short read timeout cuts the stream now and then; the
// browser's EventSource reconnects on its own and sends the id of the last event it received as
// Last-Event-ID. The gateway then continues that session (instead of starting a new one) and
// replays what the client missed:
//
//  1. welcome (a new connId for /send, the same session);
//  2. the events written after n that the cut lost, from the session's stream log (the last
//     sseLogMax events, payloads shared with the rooms' histories);
//  3. every broadcast of the session's rooms after the last one written to the old stream, from the
//     rooms' histories, then resumed (exactly as the resume frame does: atomic with live delivery,
//     so each broadcast arrives once, in order) — or resume_failed when a history no longer covers
//     the gap, and the client joins those rooms afresh.
//
// When the session is unknown, expired or another user's, or n is older than the log, the stream
// starts a new session (welcome names it; the client joins its rooms afresh) instead of closing,
// which would make EventSource retry the same id forever. Frames other than broadcasts that were
// queued but not yet written when the stream was cut (acks, presence) are not replayed. The log is
// kept with the session (for --session-ttl after its connection ended) on the node that wrote it.

// sseLogMax bounds the events (and sseLogBytes their bytes) an SSE session's log keeps.
const (
	sseLogMax   = 256
	sseLogBytes = 1 << 20
)

// sseEvent is one logged event of an SSE stream.
type sseEvent struct {
	n    uint64
	data []byte // the encoded frame (shared, never modified)
}

// sseLog is a session's SSE stream log: the last events written, and per room the last roomSeq
// written (a broadcast's roomSeq, or room_joined's headSeq). Safe for concurrent use (a stream's
// writer appends while a newer stream of the same session reads it).
type sseLog struct {
	mu      sync.Mutex
	next    uint64 // the number of the next event
	events  []sseEvent
	bytes   int
	lastSeq map[string]uint64
}

func newSSELog() *sseLog { return &sseLog{next: 1, lastSeq: map[string]uint64{}} }

// roomFields are the fields of a frame the log tracks.
type roomFields struct {
	Type    protocol.Type `json:"type"`
	RoomID  string        `json:"roomId"`
	RoomSeq uint64        `json:"roomSeq"`
	HeadSeq uint64        `json:"headSeq"`
}

// append logs one frame written to the stream and returns its event number.
func (l *sseLog) append(data []byte) uint64 {
	var rf roomFields
	_ = json.Unmarshal(data, &rf) // the gateway's own frames: they decode
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.next
	l.next++
	switch rf.Type {
	case protocol.TypeBroadcast:
		l.lastSeq[rf.RoomID] = max(l.lastSeq[rf.RoomID], rf.RoomSeq)
	case protocol.TypeRoomJoined:
		l.lastSeq[rf.RoomID] = max(l.lastSeq[rf.RoomID], rf.HeadSeq)
	case protocol.TypeRoomLeft:
		delete(l.lastSeq, rf.RoomID)
	}
	l.events = append(l.events, sseEvent{n: n, data: data})
	l.bytes += len(data)
	for len(l.events) > sseLogMax || (l.bytes > sseLogBytes && len(l.events) > 1) {
		l.bytes -= len(l.events[0].data)
		l.events[0] = sseEvent{}
		l.events = l.events[1:]
	}
	return n
}

// since returns the frames logged after event n and the last roomSeq written per room; ok is false
// when the log no longer holds every event after n (or n is in the future).
func (l *sseLog) since(n uint64) (frames [][]byte, lastSeq map[string]uint64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n >= l.next {
		return nil, nil, false
	}
	first := l.next
	if len(l.events) > 0 {
		first = l.events[0].n
	}
	if n+1 < first {
		return nil, nil, false
	}
	for _, e := range l.events {
		if e.n > n {
			frames = append(frames, e.data)
		}
	}
	lastSeq = make(map[string]uint64, len(l.lastSeq))
	for r, s := range l.lastSeq {
		lastSeq[r] = s
	}
	return frames, lastSeq, true
}

// sseEventID is the SSE id of event n of a session.
func sseEventID(session string, n uint64) string {
	return session + ":" + strconv.FormatUint(n, 10)
}

// parseLastEventID reads a Last-Event-ID written by sseEventID. ok is false for anything else.
func parseLastEventID(s string) (session string, n uint64, ok bool) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 || len(s) > 128 {
		return "", 0, false
	}
	n, err := strconv.ParseUint(s[i+1:], 10, 64)
	if err != nil || n == 0 {
		return "", 0, false
	}
	session = s[:i]
	for _, r := range session {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-' || r == '_') {
			return "", 0, false
		}
	}
	return session, n, true
}

// sseLogOf returns the stream log of s, making it on first use.
func (ss *sessions) sseLogOf(s *session) *sseLog {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if s.sse == nil {
		s.sse = newSSELog()
	}
	return s.sse
}

// continueSSE continues the session a reconnecting SSE stream names in Last-Event-ID (c is
// authenticated as the session's user; authentication goroutine). It reports false, with nothing
// changed, when the session cannot be continued from event n: c then starts a new session.
func (c *conn) continueSSE(id string, n uint64) (replay [][]byte, lastSeq map[string]uint64, ok bool) {
	s := c.s.sessions.lookup(id, c.user, time.Now())
	if s == nil {
		return nil, nil, false
	}
	log := c.s.sessions.sseLogOf(s)
	if replay, lastSeq, ok = log.since(n); !ok {
		return nil, nil, false
	}
	prev, ok := c.s.sessions.attach(s, c)
	if !ok {
		return nil, nil, false
	}
	c.sess = s
	if prev != nil && prev != c {
		// The old stream (half-open: the proxy cut it, the gateway has not noticed yet) no longer
		// writes to the log: what it still writes goes nowhere, and the rooms' histories cover it.
		if pt, ok := prev.t.(*sseTransport); ok {
			pt.log.Store(nil)
		}
		prev.kick(protocol.CloseSessionUnknown, protocol.ReasonSessionTaken, causeKicked)
	}
	return replay, lastSeq, true
}

// resumeSSE queues what a resumed SSE stream missed (after welcome): the logged events, then the
// rooms' broadcasts after the last written (see the comment at the top of this file).
func (c *conn) resumeSSE(replay [][]byte, lastSeq map[string]uint64) {
	c.enqueueFrames(replay)
	rooms := map[string]uint64{}
	for _, id := range c.s.sessions.roomsOf(c.sess) {
		seq, written := lastSeq[id]
		if !written {
			// The client never got room_joined: the room is not the client's.
			c.s.sessions.setRoom(c.sess, id, false)
			continue
		}
		rooms[id] = seq
	}
	c.resume(protocol.Frame{Type: protocol.TypeResume, Session: c.sess.id, Rooms: rooms})
}

// enqueueFrames queues encoded frames outside the send-queue bound (a replay, bounded by its log).
func (c *conn) enqueueFrames(frames [][]byte) {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if c.closeQueued || c.writeFailed || c.gone.Load() {
		return
	}
	for _, b := range frames {
		c.replaying++
		c.pushLocked(outItem{kind: itemText, replay: true, data: b})
	}
}
