package loadgen

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/squall-dev/squall/loadgen/stats"
)

// A room tracker follows one room across every client of the run: who is a member, which roomSeqs
// were acknowledged to their senders, and which tabs' exits still wait for observers to see the
// user's presence leave. Its fields are guarded by mu; a membership's sequence fields are guarded by
// its client's mu (they are written by that client's reader).

type roomTracker struct {
	name   string
	quoted []byte // the name as a JSON string, for hand-encoded frames

	mu       sync.Mutex
	members  map[*membership]struct{}
	userTabs map[string]int    // joined connections per user id
	departed []*membership     // ended memberships that had missing roomSeqs
	acked    []uint64          // bitset of roomSeqs acknowledged to their sender and echoed to it
	head     uint64            // highest roomSeq any member saw
	pending  map[string]*ghost // user id → exit waiting for observers
	unacked  int64             // acknowledged broadcasts whose sender never saw them (counted at check)
}

// membership is one connection's stay in a room.
type membership struct {
	c        *client
	room     *roomTracker
	joinedAt time.Time
	joinHead uint64   // the room's headSeq when the member joined
	last     uint64   // highest roomSeq seen
	missing  []uint64 // roomSeqs skipped over and not (yet) seen, bounded
	lastEcho uint64   // seq of the last own broadcast seen echoed (apply order)
	joined   bool     // room_joined (or resumed) received
}

const maxMissing = 1024

// ghost is a user whose last tab left a room, waiting for every observer to see the leave.
type ghost struct {
	coh       *cohortRT // the departed user's cohort
	exit      time.Time
	observers map[*client]struct{}
}

func newRoomTracker(name string) *roomTracker {
	q, _ := json.Marshal(name)
	return &roomTracker{
		name: name, quoted: q,
		members:  map[*membership]struct{}{},
		userTabs: map[string]int{},
		pending:  map[string]*ghost{},
	}
}

// rooms is the run's set of room trackers, created on first use, keyed by endpoint and name.
type rooms struct {
	mu sync.Mutex
	m  map[roomKey]*roomTracker
}

type roomKey struct {
	name     string
	endpoint int
}

func (r *rooms) get(name string, endpoint int) *roomTracker {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[roomKey]*roomTracker{}
	}
	k := roomKey{name, endpoint}
	t := r.m[k]
	if t == nil {
		t = newRoomTracker(name)
		r.m[k] = t
	}
	return t
}

func (r *rooms) all() []*roomTracker {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*roomTracker, 0, len(r.m))
	for _, t := range r.m {
		out = append(out, t)
	}
	return out
}

// join registers m as a member (on room_joined or a successful resume).
func (t *roomTracker) join(m *membership) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.members[m]; ok {
		return
	}
	t.members[m] = struct{}{}
	t.userTabs[m.c.userID]++
}

// leave ends m. exit is set when the tab left on purpose (an exit, not a drop): then, when it was the
// user's last connection in the room, the exit waits for every other member to see the leave.
func (t *roomTracker) leave(m *membership, exit time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.members[m]; !ok {
		return
	}
	delete(t.members, m)
	u := m.c.userID
	t.userTabs[u]--
	if t.userTabs[u] <= 0 {
		delete(t.userTabs, u)
		if !exit.IsZero() {
			g := &ghost{coh: m.c.coh, exit: exit, observers: map[*client]struct{}{}}
			for o := range t.members {
				if o.c.userID != u && o.joined {
					g.observers[o.c] = struct{}{}
				}
			}
			if len(g.observers) > 0 {
				t.pending[u] = g
			}
		}
	}
	m.c.mu.Lock()
	keep := len(m.missing) > 0
	m.c.mu.Unlock()
	if keep {
		t.departed = append(t.departed, m)
	}
	t.dropObserver(m.c)
}

// dropObserver forgets c as an observer of pending exits: a member that is gone can no longer see
// anyone's leave. An exit nobody is left to observe is forgotten.
func (t *roomTracker) dropObserver(c *client) {
	for u, g := range t.pending {
		delete(g.observers, c)
		if len(g.observers) == 0 {
			delete(t.pending, u)
		}
	}
}

// suspend takes m out of the room while its client reconnects to resume; join puts it back.
func (t *roomTracker) suspend(m *membership) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.members[m]; !ok {
		return
	}
	delete(t.members, m)
	if t.userTabs[m.c.userID]--; t.userTabs[m.c.userID] <= 0 {
		delete(t.userTabs, m.c.userID)
	}
	t.dropObserver(m.c)
}

// sawLeave records that observer saw user's presence leave; returns the convergence time and the
// departed user's cohort when the observer was the last one that user's exit waited for.
func (t *roomTracker) sawLeave(user string, observer *client, now time.Time) (time.Duration, *cohortRT, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.pending[user]
	if g == nil {
		return 0, nil, false
	}
	delete(g.observers, observer)
	if len(g.observers) > 0 {
		return 0, nil, false
	}
	delete(t.pending, user)
	return now.Sub(g.exit), g.coh, true
}

// takeGhosts removes and returns the exits still waiting for observers.
func (t *roomTracker) takeGhosts() []*ghost {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*ghost, 0, len(t.pending))
	for u, g := range t.pending {
		out = append(out, g)
		delete(t.pending, u)
	}
	return out
}

// cancelGhost forgets a pending exit when the user comes back into the room.
func (t *roomTracker) cancelGhost(user string) {
	t.mu.Lock()
	delete(t.pending, user)
	t.mu.Unlock()
}

// markAcked records that the broadcast stamped roomSeq was acknowledged to its sender.
func (t *roomTracker) markAcked(roomSeq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := int(roomSeq / 64)
	for len(t.acked) <= w {
		t.acked = append(t.acked, 0)
	}
	t.acked[w] |= 1 << (roomSeq % 64)
}

func (t *roomTracker) isAcked(roomSeq uint64) bool {
	w := int(roomSeq / 64)
	return w < len(t.acked) && t.acked[w]&(1<<(roomSeq%64)) != 0
}

// seen raises the room's head.
func (t *roomTracker) seen(roomSeq uint64) {
	t.mu.Lock()
	if roomSeq > t.head {
		t.head = roomSeq
	}
	t.mu.Unlock()
}

// deliveryCheck is what check found in one room.
type deliveryCheck struct {
	gaps, ackedUndelivered int64
}

// check counts, once the room is quiet: roomSeqs members never received (gaps: missing in the middle
// for every membership, and the tail up to the room's head for members still joined), the acknowledged
// ones among them, and exits whose leave some observer has not seen (ghosts).
func (t *roomTracker) check() deliveryCheck {
	t.mu.Lock()
	defer t.mu.Unlock()
	var d deliveryCheck
	count := func(m *membership, tail bool) {
		m.c.mu.Lock()
		defer m.c.mu.Unlock()
		for _, s := range m.missing {
			d.gaps++
			if t.isAcked(s) {
				d.ackedUndelivered++
			}
		}
		if tail && m.joined {
			for s := m.last + 1; s <= t.head; s++ {
				d.gaps++
				if t.isAcked(s) {
					d.ackedUndelivered++
				}
			}
		}
	}
	for m := range t.members {
		count(m, true)
	}
	for _, m := range t.departed {
		count(m, false)
	}
	d.ackedUndelivered += t.unacked * int64(max(len(t.members), 1))
	return d
}

// recordCheck adds a check's findings to rec.
func (d deliveryCheck) record(rec *stats.Recorder) {
	rec.Add(stats.CtrGaps, d.gaps)
	rec.Add(stats.CtrAckedUndelivered, d.ackedUndelivered)
}
