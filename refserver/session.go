package refserver

import (
	"crypto/rand"
	"encoding/hex"
	"slices"
	"sync"
	"time"
)

// session is what a client may continue after its connection ends: its id, its user, the rooms it
// is in and the connection that holds it now. When that connection ends the session is detached and
// kept for Config.SessionTTL, so that a new connection of the same user can continue it (hello with
// session) or resume its rooms (resume, see resume.go). Its fields are guarded by sessions.mu.
type session struct {
	id      string
	user    string
	created time.Time

	holder  *conn     // the connection holding it; nil while detached
	rooms   roomSet   // rooms joined under this session (explicit join/leave; resume adds)
	expires time.Time // while detached: when it is forgotten
	gen     uint64    // bumped at each detach, to recognise stale expiry entries
	taken   bool      // consumed by a resume or expired: never registered again
	sse     *sseLog   // the SSE stream log, for Last-Event-ID (sse_resume.go); nil until an SSE stream holds it
}

// sessions is the node's session registry. Safe for concurrent use; mu is a leaf lock (nothing is
// called with it held). Detached sessions wait in an expiry queue in detach order (the TTL is the
// same for all, so that is expiry order); a sweeper goroutine owned by the Server runs only while
// detached sessions exist and forgets each one when its TTL has passed.
type sessions struct {
	ttl  time.Duration
	max  int // detached sessions kept at most; beyond it the oldest is forgotten early
	wg   *sync.WaitGroup
	quit <-chan struct{}

	mu       sync.Mutex
	byID     map[string]*session
	held     int           // sessions with a holder
	expiry   []expiryEntry // detached sessions, oldest first; stale entries are skipped
	sweeping bool
	stopped  bool
}

type expiryEntry struct {
	s   *session
	gen uint64
}

func newSessions(ttl time.Duration, max int, wg *sync.WaitGroup, quit <-chan struct{}) *sessions {
	return &sessions{ttl: ttl, max: max, wg: wg, quit: quit, byID: map[string]*session{}}
}

// create registers a new session for user, held by c.
func (ss *sessions) create(user string, c *conn, now time.Time) *session {
	s := &session{id: newID(), user: user, created: now, holder: c}
	ss.mu.Lock()
	ss.byID[s.id] = s
	ss.held++
	ss.mu.Unlock()
	return s
}

// lookup returns the live session id of user, or nil when it is unknown, expired or another user's.
func (ss *sessions) lookup(id, user string, now time.Time) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.byID[id]
	if s == nil || s.user != user || (s.holder == nil && !now.Before(s.expires)) {
		return nil
	}
	return s
}

// attach makes c the holder of s (hello with session). It returns the previous holder, if any (a
// connection the server still counts as open, e.g. half-open after a network change), so that the
// caller can close it; nil when s was detached. ok is false when s is no longer registered.
func (ss *sessions) attach(s *session, c *conn) (prev *conn, ok bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if s.taken || ss.byID[s.id] != s {
		return nil, false
	}
	prev = s.holder
	if prev == nil {
		ss.held++
	}
	s.holder = c
	return prev, true
}

// take removes the live session id of user from the registry for a resume (which consumes it): no
// one else can take, attach or resume it afterwards. It returns the session and its previous
// holder, or nil when it is unknown, expired or another user's.
func (ss *sessions) take(id, user string, now time.Time) (s *session, prev *conn) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s = ss.byID[id]
	if s == nil || s.user != user || (s.holder == nil && !now.Before(s.expires)) {
		return nil, nil
	}
	delete(ss.byID, id)
	s.taken = true
	if s.holder != nil {
		ss.held--
	}
	prev, s.holder = s.holder, nil
	return s, prev
}

// roomsOf returns the rooms of s, sorted.
func (ss *sessions) roomsOf(s *session) []string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return slices.Clone(s.rooms)
}

// hasRoom reports whether s holds room.
func (ss *sessions) hasRoom(s *session, room string) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return s.rooms.has(room)
}

// setRoom records that s joined (in = true) or left room.
func (ss *sessions) setRoom(s *session, room string, in bool) {
	if s == nil {
		return
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if in {
		s.rooms.add(room)
	} else {
		s.rooms.remove(room)
	}
}

// roomSet is a set of room ids, sorted. A connection is in few rooms (max-rooms-per-conn): a slice
// costs an idle connection's session far less than a map.
type roomSet []string

func (rs roomSet) has(room string) bool {
	_, ok := slices.BinarySearch(rs, room)
	return ok
}

func (rs *roomSet) add(room string) {
	if i, ok := slices.BinarySearch(*rs, room); !ok {
		*rs = slices.Insert(*rs, i, room)
	}
}

func (rs *roomSet) remove(room string) {
	if i, ok := slices.BinarySearch(*rs, room); ok {
		*rs = slices.Delete(*rs, i, i+1)
	}
}

// detach ends c's hold on s when c's cleanup runs: s is kept for the TTL so that resume can find it.
// It does nothing when c no longer holds s (a newer connection took it over).
func (ss *sessions) detach(s *session, c *conn, now time.Time) {
	if s == nil {
		return
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if s.holder != c {
		return
	}
	s.holder = nil
	ss.held--
	if s.taken || ss.stopped {
		delete(ss.byID, s.id)
		return
	}
	s.gen++
	s.expires = now.Add(ss.ttl)
	ss.expiry = append(ss.expiry, expiryEntry{s: s, gen: s.gen})
	// A churn of connections must not hold unbounded memory for a whole TTL: past the cap the
	// oldest detached sessions go first (they would have expired first anyway).
	for len(ss.byID)-ss.held > ss.max && len(ss.expiry) > 0 {
		e := ss.expiry[0]
		ss.expiry[0] = expiryEntry{}
		ss.expiry = ss.expiry[1:]
		if e.gen == e.s.gen && e.s.holder == nil && !e.s.taken {
			e.s.taken = true
			delete(ss.byID, e.s.id)
		}
	}
	if !ss.sweeping {
		ss.sweeping = true
		ss.wg.Add(1)
		go ss.sweep()
	}
}

// sweep forgets detached sessions as they expire; it ends when none is left or the server closes.
func (ss *sessions) sweep() {
	defer ss.wg.Done()
	tick := min(max(ss.ttl/8, 5*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ss.quit:
			ss.mu.Lock()
			ss.sweeping = false
			ss.mu.Unlock()
			return
		case now := <-t.C:
			if !ss.expire(now) {
				return
			}
		}
	}
}

// expire forgets the sessions expired at now and reports whether detached sessions remain (if not,
// the sweeper stops).
func (ss *sessions) expire(now time.Time) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	i := 0
	for ; i < len(ss.expiry); i++ {
		e := ss.expiry[i]
		if e.gen != e.s.gen || e.s.holder != nil || e.s.taken {
			continue // re-attached, re-detached later, or consumed
		}
		if now.Before(e.s.expires) {
			break
		}
		e.s.taken = true
		delete(ss.byID, e.s.id)
	}
	clear(ss.expiry[:i])
	ss.expiry = ss.expiry[i:]
	if len(ss.expiry) == 0 {
		ss.expiry = nil
		ss.sweeping = false
		return false
	}
	return true
}

// stop forgets every detached session (server closing); later detaches forget at once.
func (ss *sessions) stop() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.stopped = true
	for id, s := range ss.byID {
		if s.holder == nil {
			s.taken = true
			delete(ss.byID, id)
		}
	}
	ss.expiry = nil
}

// counts returns the sessions held by a connection and the detached ones.
func (ss *sessions) counts() (held, detached int) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.held, len(ss.byID) - ss.held
}

// newID returns 16 random hex characters.
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// recentUsers remembers when each user's last connection ended, to count reconnects. Entries older
// than the window are dropped by sweep. Safe for concurrent use.
type recentUsers struct {
	window time.Duration
	mu     sync.Mutex
	last   map[string]time.Time
}

func newRecentUsers(window time.Duration) *recentUsers {
	return &recentUsers{window: window, last: map[string]time.Time{}}
}

// left records that a connection of user ended at now.
func (r *recentUsers) left(user string, now time.Time) {
	r.mu.Lock()
	r.last[user] = now
	r.mu.Unlock()
}

// isReconnect reports whether a connection of user ended within the window before now.
func (r *recentUsers) isReconnect(user string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.last[user]
	return ok && now.Sub(t) <= r.window
}

// sweep drops entries older than the window.
func (r *recentUsers) sweep(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for u, t := range r.last {
		if now.Sub(t) > r.window {
			delete(r.last, u)
		}
	}
}
