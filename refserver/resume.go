package refserver

import (
	"fmt"
	"sort"
	"time"

	"github.com/squall-dev/squall/refserver/protocol"
)

// Resume: a client whose connection dropped connects again (a new session is made for the new
// connection, as always) and sends resume with the old session's id and, per room, the last roomSeq
// it saw. If the old session is still known (within Config.SessionTTL of its connection's end),
// belongs to the same user, had joined every room named, and every room's history still holds every
// broadcast after the client's last roomSeq, then — atomically with respect to the rooms' live
// broadcasts — the connection becomes a member of those rooms, the missed broadcasts are queued in
// roomSeq order, and resumed follows with the number replayed per room. Every broadcast after that
// arrives live, so each is seen exactly once, in order. The old session is consumed: a second resume
// of it fails. Otherwise nothing is resumed and resume_failed names the reason (protocol.Resume*)
// and every room, which the client then joins afresh.
//
// A connection that continued the session with hello (session field) resumes it the same way, naming
// its own session id.

// resumeTries bounds the retries when a room is reaped between lookup and lock.
const resumeTries = 3

// resume handles a resume frame (the connection's handler goroutine).
func (c *conn) resume(f protocol.Frame) {
	now := time.Now()
	fail := func(reason, msg string) {
		c.s.metrics.resumes.WithLabelValues(reason).Inc()
		c.logger().Debug("resume failed", "session", f.Session, "reason", reason, "detail", msg)
		c.sendFrame(&protocol.Frame{Type: protocol.TypeResumeFailed, Reason: reason, Message: msg, Rooms: zeroRooms(f.Rooms)})
	}
	sess, prev := c.sess, (*conn)(nil)
	own := f.Session == c.sess.id
	if !own {
		if sess, prev = c.s.sessions.take(f.Session, c.user, now); sess == nil {
			sess = c.s.takeSharedSession(f.Session, c.user) // cluster mode: detached on another node
		} else if !c.s.claimSharedSession(f.Session, c.user) && prev == nil {
			sess = nil // cluster mode: resumed on another node already
		}
		if sess == nil {
			fail(protocol.ResumeSessionUnknown, "session "+f.Session+" is unknown, expired or already resumed")
			return
		}
	}
	ids := make([]string, 0, len(f.Rooms))
	for id := range f.Rooms {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if !c.s.sessions.hasRoom(sess, id) {
			fail(protocol.ResumeNotMember, "the session had not joined "+id)
			return
		}
		if c.rooms.get(id) != nil {
			fail(protocol.ResumeAlreadyJoined, "this connection already joined "+id)
			return
		}
	}
	if len(c.rooms)+len(ids) > c.s.cfg.MaxRoomsPerConn {
		fail(protocol.ResumeRoomLimit, fmt.Sprintf("%d rooms would exceed the limit of %d", len(c.rooms)+len(ids), c.s.cfg.MaxRoomsPerConn))
		return
	}
	replayed, reason, msg := c.s.hub.resume(c, ids, f.Rooms, now)
	if reason != "" {
		fail(reason, msg)
		return
	}
	if !own {
		for _, id := range ids {
			c.s.sessions.setRoom(c.sess, id, true)
		}
	}
	if prev != nil && prev != c {
		prev.kick(protocol.CloseSessionUnknown, protocol.ReasonSessionTaken, causeKicked)
	}
	c.s.metrics.resumes.WithLabelValues("ok").Inc()
	c.sendFrame(&protocol.Frame{Type: protocol.TypeResumed, Rooms: replayed})
}

// resume makes c a member of rooms ids again and queues what it missed after last[id], all or
// nothing. It returns the number of broadcasts replayed per room, or a protocol.Resume* reason and
// a message. Locking: the rooms are looked up (and subscribed) without locks, then locked all
// together in id order — the only place that holds more than one room lock, so the order cannot
// deadlock — so that the check and the replay are atomic with respect to live delivery.
func (h *hub) resume(c *conn, ids []string, last map[string]uint64, now time.Time) (map[string]uint64, string, string) {
	ctx := h.s.ctx
	for try := 0; try < resumeTries; try++ {
		rooms := make([]*room, len(ids))
		heads := make([]uint64, len(ids))
		remote, remoteOK := make([][]RoomEvent, len(ids)), make([]bool, len(ids))
		for i, id := range ids {
			r, err := h.acquireRoom(ctx, id)
			if err != nil {
				c.logger().Warn("resume: broker subscribe failed", "room_id", id, "err", err)
				return nil, protocol.ResumeInternal, "room " + id + " unavailable"
			}
			head, err := h.s.broker.HeadSeq(ctx, id)
			if err != nil {
				c.logger().Warn("resume: broker head failed", "room_id", id, "err", err)
				return nil, protocol.ResumeInternal, "room " + id + " unavailable"
			}
			rooms[i], heads[i] = r, head
			remote[i], remoteOK[i] = h.remoteHistory(ctx, r, last[id], head, now) // cluster mode, see resume_cluster.go
		}
		for _, r := range rooms {
			r.mu.Lock()
		}
		unlock := func() {
			for _, r := range rooms {
				r.mu.Unlock()
			}
		}
		if dead := func() bool {
			for _, r := range rooms {
				if r.dead {
					return true
				}
			}
			return false
		}(); dead {
			unlock()
			continue
		}
		replay := make([][]historyEntry, len(ids))
		for i, r := range rooms {
			if heads[i] > r.head {
				r.head = heads[i]
			}
			r.hist.trim(now)
			entries, ok := r.hist.since(last[ids[i]], r.head)
			if !ok && remoteOK[i] {
				entries, ok = mergeRemoteHistory(remote[i], r.hist, last[ids[i]], r.head)
			}
			if !ok {
				first := uint64(0)
				if r.hist.len() > 0 {
					first = r.hist.entries[0].seq
				}
				unlock()
				return nil, protocol.ResumeHistoryGap, fmt.Sprintf("room %s: history holds roomSeq %d..%d, the client saw up to %d",
					ids[i], first, r.head, last[ids[i]])
			}
			replay[i] = entries
		}
		replayed := make(map[string]uint64, len(ids))
		var firsts []string
		for i, r := range rooms {
			c.enqueueReplay(replay[i])
			replayed[ids[i]] = uint64(len(replay[i]))
			r.addMemberLocked(c, &h.orphaned)
			if r.presence.add(c.user) {
				firsts = append(firsts, ids[i])
			}
			c.rooms.add(r)
		}
		unlock()
		for _, id := range firsts {
			h.announceJoin(id, c.user) // through the cluster presence in cluster mode
		}
		return replayed, "", ""
	}
	return nil, protocol.ResumeInternal, "rooms kept changing"
}
