package refserver

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/squall-dev/squall/refserver/protocol"
)

// hub is the node's registry of connections and rooms, and the place where room operations happen.
//
// Locking: hub.mu guards the two maps and is held only for map access; room.mu guards a room;
// lifeMu serialises room creation and removal together with the Broker subscription they imply. The
// broker's handler (deliver) takes hub.mu (read) then room.mu, so no Broker method is ever called
// with hub.mu or room.mu held.
type hub struct {
	s *Server

	mu    sync.RWMutex
	conns map[*conn]struct{}
	rooms map[string]*room

	orphaned atomic.Int64 // memberships of gone connections (see room.addMemberLocked)

	lifeMu sync.Mutex
}

func newHub(s *Server) *hub {
	return &hub{s: s, conns: map[*conn]struct{}{}, rooms: map[string]*room{}}
}

func (h *hub) addConn(c *conn) {
	h.mu.Lock()
	h.conns[c] = struct{}{}
	h.mu.Unlock()
}

func (h *hub) removeConn(c *conn) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
}

// orphan counts the memberships c still holds as orphaned; c is gone (finish). Those its cleanup
// then ends are uncounted again; those a leak leaves stay counted.
func (h *hub) orphan(c *conn) {
	for _, r := range c.rooms {
		r.mu.Lock()
		r.orphanLocked(c, &h.orphaned)
		r.mu.Unlock()
	}
}

// snapshotConns returns the registered (authenticated, live) connections.
func (h *hub) snapshotConns() []*conn {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		out = append(out, c)
	}
	return out
}

func (h *hub) room(id string) *room {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.rooms[id]
}

// acquireRoom returns the room with id, creating it and subscribing the node to it if needed.
func (h *hub) acquireRoom(ctx context.Context, id string) (*room, error) {
	if r := h.room(id); r != nil {
		return r, nil
	}
	h.lifeMu.Lock()
	defer h.lifeMu.Unlock()
	if r := h.room(id); r != nil {
		return r, nil
	}
	if err := h.s.broker.Subscribe(ctx, id); err != nil {
		return nil, err
	}
	r := newRoom(id, h.s.cfg)
	h.mu.Lock()
	h.rooms[id] = r
	h.mu.Unlock()
	return r, nil
}

// join adds c to room id and answers room_joined. It returns "" on success, or the error code to
// answer with (room_limit when c is at its room limit, internal when the broker failed). Joining a
// room c is already in answers room_joined again.
func (h *hub) join(c *conn, id string) string {
	if r := c.rooms.get(id); r != nil {
		cluster := h.clusterMembers(id) // nil on a single node
		r.mu.Lock()
		c.sendFrame(&protocol.Frame{Type: protocol.TypeRoomJoined, RoomID: id, Members: mergeMembers(cluster, r.presence.list()), HeadSeq: r.head})
		r.mu.Unlock()
		return ""
	}
	if len(c.rooms) >= h.s.cfg.MaxRoomsPerConn {
		return protocol.ErrCodeRoomLimit
	}
	ctx := h.s.ctx
	cluster := h.clusterMembers(id) // nil on a single node
	for {
		r, err := h.acquireRoom(ctx, id)
		if err != nil {
			c.logger().Warn("join: broker subscribe failed", "room_id", id, "err", err)
			return protocol.ErrCodeInternalError
		}
		head, err := h.s.broker.HeadSeq(ctx, id)
		if err != nil {
			c.logger().Warn("join: broker head failed", "room_id", id, "err", err)
			return protocol.ErrCodeInternalError
		}
		r.mu.Lock()
		if r.dead {
			r.mu.Unlock()
			continue
		}
		r.addMemberLocked(c, &h.orphaned)
		first := r.presence.add(c.user)
		if head > r.head {
			r.head = head
		}
		c.sendFrame(&protocol.Frame{Type: protocol.TypeRoomJoined, RoomID: id, Members: mergeMembers(cluster, r.presence.list()), HeadSeq: r.head})
		r.mu.Unlock()
		c.rooms.add(r)
		if first {
			h.announceJoin(id, c.user)
		}
		return ""
	}
}

// leave removes c from room id. explicit is true for a leave_room frame (answered with room_left)
// and false for cleanup. It returns false when c was not a member.
func (h *hub) leave(c *conn, id, reason string, explicit bool) bool {
	r := c.rooms.remove(id)
	if r == nil {
		return false
	}
	ghosts := h.s.cfg.Flaws.Has(FlawNoPresenceLeave)
	r.mu.Lock()
	r.removeMemberLocked(c, &h.orphaned)
	last := false
	if explicit || !ghosts {
		last = r.presence.remove(c.user)
	}
	members, head := r.presence.list(), r.head
	r.mu.Unlock()
	// c is no longer a member: nothing of the room is queued to it after this point, so room_left
	// may follow the leave announcement (which, in cluster mode, settles the member list).
	if last && !ghosts {
		h.announceLeave(id, c.user, reason)
	}
	if explicit {
		c.sendFrame(&protocol.Frame{Type: protocol.TypeRoomLeft, RoomID: id, Members: mergeMembers(h.clusterMembers(id), members), HeadSeq: head})
	}
	return true
}

func (h *hub) publishPresence(id, event, user, reason string) {
	ev := &RoomEvent{RoomID: id, Frame: protocol.Frame{Type: protocol.TypePresence, RoomID: id, Event: event, UserID: user, Reason: reason}}
	if err := h.s.broker.Publish(h.s.ctx, ev); err != nil {
		h.s.log.Warn("publish presence failed", "room_id", id, "user_id", user, "err", err)
	}
}

// broadcast publishes data from c to room id; the broker stamps roomSeq and delivers it back.
func (h *hub) broadcast(c *conn, id string, data json.RawMessage) error {
	ev := &RoomEvent{RoomID: id, Frame: protocol.Frame{Type: protocol.TypeBroadcast, RoomID: id, From: c.user, Data: data}}
	return h.s.broker.Publish(h.s.ctx, ev)
}

// deliver is the Broker handler: it encodes the event once and queues the same bytes to every
// member of the local room, under the room lock so every member sees the same order.
func (h *hub) deliver(ev *RoomEvent) {
	r := h.room(ev.RoomID)
	if r == nil {
		return
	}
	payload, err := protocol.Encode(&ev.Frame)
	if err != nil {
		h.s.log.Error("encode room event", "room_id", ev.RoomID, "err", err)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dead {
		return
	}
	if ev.Frame.Type == protocol.TypeBroadcast {
		if ev.Frame.RoomSeq <= r.head {
			return // already delivered here
		}
		r.head = ev.Frame.RoomSeq
		r.hist.add(historyEntry{seq: ev.Frame.RoomSeq, at: time.UnixMilli(ev.Frame.SentAt), payload: payload})
		for m := range r.members {
			m.enqueue(payload)
		}
		return
	}
	for m := range r.members {
		if ev.Frame.Type == protocol.TypePresence && m.user == ev.Frame.UserID {
			continue // the subject learns of its own join through room_joined
		}
		m.enqueue(payload)
	}
}

// janitor trims histories and removes rooms that hold nothing any more.
func (h *hub) janitor(now time.Time) {
	h.mu.RLock()
	rooms := make([]*room, 0, len(h.rooms))
	for _, r := range h.rooms {
		rooms = append(rooms, r)
	}
	h.mu.RUnlock()
	for _, r := range rooms {
		h.lifeMu.Lock()
		if r.reapIfIdle(now) {
			h.mu.Lock()
			if h.rooms[r.id] == r {
				delete(h.rooms, r.id)
			}
			h.mu.Unlock()
			if err := h.s.broker.Unsubscribe(h.s.ctx, r.id); err != nil {
				h.s.log.Debug("unsubscribe failed", "room_id", r.id, "err", err)
			}
		}
		h.lifeMu.Unlock()
	}
}

// hubCounts are the hub's part of Stats.
type hubCounts struct {
	conns, rooms, subscriptions, orphaned, presence, history int
}

func (h *hub) stats() hubCounts {
	h.mu.RLock()
	hc := hubCounts{conns: len(h.conns), rooms: len(h.rooms), orphaned: int(h.orphaned.Load())}
	rooms := make([]*room, 0, len(h.rooms))
	for _, r := range h.rooms {
		rooms = append(rooms, r)
	}
	h.mu.RUnlock()
	for _, r := range rooms {
		rc := r.counts()
		hc.subscriptions += rc.subscriptions
		hc.presence += rc.presence
		hc.history += rc.history
	}
	return hc
}
