package refserver

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// room is one room on this node: its member connections, its presence, the last roomSeq delivered
// here and its bounded history. Its mutex guards every field; delivery into members' send queues
// happens under it, so every member sees the room's frames in the same order. No Broker method is
// called with the lock held.
type room struct {
	id string

	mu       sync.Mutex
	members  map[*conn]bool // memberships: true once counted in hub.orphaned (the connection is gone)
	presence presence
	head     uint64 // last roomSeq delivered on this node
	hist     *history
	dead     bool // removed from the hub; a joiner that finds it dead retries
}

func newRoom(id string, cfg Config) *room {
	return &room{
		id:      id,
		members: map[*conn]bool{},
		hist:    newHistory(cfg.HistorySize, cfg.HistoryTTL, cfg.Flaws.Has(FlawUnboundedHistory)),
	}
}

// roomCounts are the room's contribution to Stats (orphaned memberships are counted by the hub).
type roomCounts struct {
	subscriptions, presence, history int
}

func (r *room) counts() roomCounts {
	r.mu.Lock()
	defer r.mu.Unlock()
	return roomCounts{subscriptions: len(r.members), presence: r.presence.len(), history: r.hist.len()}
}

// Orphaned memberships — those of connections that are gone, which only a leak leaves behind
// (FlawLeakOnError) — are counted as they arise rather than by walking every member on each
// scrape: a membership is counted when it is added for a connection already gone, or when its
// connection goes (hub.orphan); it is uncounted when removed. The flag in members says whether
// it was counted, so that each is counted once whatever the order.

// addMemberLocked makes c a member (r.mu held).
func (r *room) addMemberLocked(c *conn, orphaned *atomic.Int64) {
	if _, ok := r.members[c]; ok {
		return
	}
	gone := c.isGone()
	r.members[c] = gone
	if gone {
		orphaned.Add(1)
	}
}

// removeMemberLocked ends c's membership, if any (r.mu held).
func (r *room) removeMemberLocked(c *conn, orphaned *atomic.Int64) {
	counted, ok := r.members[c]
	if !ok {
		return
	}
	if counted {
		orphaned.Add(-1)
	}
	delete(r.members, c)
}

// orphanLocked counts c's membership, if any, as orphaned (c is gone; r.mu held).
func (r *room) orphanLocked(c *conn, orphaned *atomic.Int64) {
	if counted, ok := r.members[c]; ok && !counted {
		r.members[c] = true
		orphaned.Add(1)
	}
}

// idle reports, after trimming history at now, whether the room holds nothing worth keeping; if so
// it marks the room dead (the caller removes it from the hub).
func (r *room) reapIfIdle(now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hist.trim(now)
	if len(r.members) > 0 || r.presence.len() > 0 || r.hist.len() > 0 {
		return false
	}
	r.dead = true
	return true
}

// connRooms is the rooms a connection is in (reader-owned). A connection is in few rooms
// (max-rooms-per-conn): a slice costs an idle connection far less than a map.
type connRooms []*room

// get returns the room with id, nil when the connection is not in it.
func (cr connRooms) get(id string) *room {
	for _, r := range cr {
		if r.id == id {
			return r
		}
	}
	return nil
}

// add records r (not in the set yet).
func (cr *connRooms) add(r *room) { *cr = append(*cr, r) }

// remove takes the room with id out and returns it, nil when the connection is not in it.
func (cr *connRooms) remove(id string) *room {
	for i, r := range *cr {
		if r.id == id {
			*cr = slices.Delete(*cr, i, i+1)
			if len(*cr) == 0 {
				*cr = nil
			}
			return r
		}
	}
	return nil
}

// ids returns the ids of the rooms, in a slice of their own.
func (cr connRooms) ids() []string {
	out := make([]string, len(cr))
	for i, r := range cr {
		out[i] = r.id
	}
	return out
}
