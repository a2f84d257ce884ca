package refserver

import (
	"time"

	"github.com/squall-dev/squall/refserver/protocol"
)

// continueSession attaches the session id named in hello to c (authentication goroutine). A
// session that is unknown, expired or another user's is answered with error session_invalid and
// close 4002; false is returned and c stays unauthenticated. A connection that still held the
// session (half-open, or a duplicate) is closed with 4002 session_taken.
func (c *conn) continueSession(id string, now time.Time) bool {
	s := c.s.sessions.lookup(id, c.user, now)
	var prev *conn
	ok := s != nil
	if ok {
		prev, ok = c.s.sessions.attach(s, c)
	}
	if !ok {
		c.sendError(protocol.ErrCodeSessionInvalid, "session "+id+" is unknown or expired", 0)
		c.kick(protocol.CloseSessionUnknown, protocol.ResumeSessionUnknown, causeKicked)
		return false
	}
	c.sess = s
	if prev != nil && prev != c {
		prev.kick(protocol.CloseSessionUnknown, protocol.ReasonSessionTaken, causeKicked)
	}
	return true
}
