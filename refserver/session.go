package refserver

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"
)

// session is what a client may continue after its connection ends (issue 3's resume builds on it):
// its id, its user and the connection that holds it now.
type session struct {
	id      string
	user    string
	created time.Time
}

// sessions is the node's session registry. Safe for concurrent use. Today a session ends with its
// connection's cleanup; issue 3 keeps it for --session-ttl so that resume can find it.
type sessions struct {
	mu   sync.Mutex
	byID map[string]*session
}

func newSessions() *sessions { return &sessions{byID: map[string]*session{}} }

// create registers a new session for user.
func (ss *sessions) create(user string, now time.Time) *session {
	s := &session{id: newID(), user: user, created: now}
	ss.mu.Lock()
	ss.byID[s.id] = s
	ss.mu.Unlock()
	return s
}

// get returns the session with id, or nil.
func (ss *sessions) get(id string) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.byID[id]
}

// release ends a session when its connection is cleaned up.
func (ss *sessions) release(s *session) {
	if s == nil {
		return
	}
	ss.mu.Lock()
	delete(ss.byID, s.id)
	ss.mu.Unlock()
}

func (ss *sessions) len() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.byID)
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
