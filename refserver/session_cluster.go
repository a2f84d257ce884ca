package refserver

import (
	"context"
)

// Sessions in cluster mode. A session lives on the node whose connection created it; when that
// connection ends, the node also publishes the detached session (user and rooms) to the broker's
// SessionStore for SessionTTL, so that the client may resume it on any node — after a node's drain
// or death the load balancer sends reconnects elsewhere. A session is resumed once in the whole
// cluster: taking it from the store consumes it, and a node that still holds the detached session
// locally checks the store before resuming it, so the two copies cannot both be resumed.
// Continuing a session with hello (session field) stays a same-node feature.

// shareSession publishes a session whose connection is ending (cluster mode; no-op otherwise). It
// runs before the local detach, so that a client resuming on this node at once never finds the
// local copy detached but the shared one not yet written.
func (s *Server) shareSession(sess *session) {
	st, ok := s.broker.(SessionStore)
	if !ok || sess == nil {
		return
	}
	s.sessions.mu.Lock()
	if sess.taken {
		s.sessions.mu.Unlock()
		return
	}
	shared := SharedSession{ID: sess.id, UserID: sess.user, Rooms: append([]string{}, sess.rooms...)}
	s.sessions.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), s.cfg.WriteTimeout)
	defer cancel()
	if err := st.PutSession(ctx, shared, s.cfg.SessionTTL); err != nil {
		s.log.Warn("cluster session store unavailable: the session can be resumed on this node only", "session", sess.id, "err", err)
	}
}

// takeSharedSession returns a session detached on another node, consuming it (nil when there is
// none for this user).
func (s *Server) takeSharedSession(id, user string) *session {
	st, ok := s.broker.(SessionStore)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.WriteTimeout)
	defer cancel()
	shared, ok, err := st.TakeSession(ctx, id, user)
	if err != nil {
		s.log.Warn("cluster session store unavailable", "session", id, "err", err)
		return nil
	}
	if !ok {
		return nil
	}
	sess := &session{id: shared.ID, user: shared.UserID, taken: true}
	for _, r := range shared.Rooms {
		sess.rooms.add(r)
	}
	return sess
}

// claimSharedSession consumes the published copy of a session this node is about to resume; false
// means there is none — for a detached session, that another node resumed it already. Without a store, or when the store cannot
// answer, the local copy is authoritative.
func (s *Server) claimSharedSession(id, user string) bool {
	st, ok := s.broker.(SessionStore)
	if !ok {
		return true
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.WriteTimeout)
	defer cancel()
	_, ok, err := st.TakeSession(ctx, id, user)
	if err != nil {
		s.log.Warn("cluster session store unavailable; resuming the local copy", "session", id, "err", err)
		return true
	}
	return ok
}
