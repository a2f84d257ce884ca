package refserver

import (
	"context"
	"sort"
	"time"

	"github.com/squall-dev/squall/refserver/protocol"
)

// Cluster mode: several nodes become one gateway when they share a Broker that also implements the
// capability interfaces below (RedisBroker does; MemoryBroker, a single node, needs none of them).
// The hub and the connection cleanup look them up with a type assertion, so a Broker stays the
// small interface of broker.go.

// ClusterPresence is implemented by brokers that hold presence for the whole cluster. A node calls
// PresenceJoin when a user's first connection on this node joins a room and PresenceLeave when the
// user's last connection on this node leaves it; the broker announces the presence event (through
// the room's channel, to every node) only when the user becomes present or absent cluster-wide. It
// keeps the node's entries alive while the node lives and expires them when it dies, announcing
// those leaves with reason timeout.
type ClusterPresence interface {
	PresenceJoin(ctx context.Context, roomID, userID string) error
	PresenceLeave(ctx context.Context, roomID, userID, reason string) error
	// PresenceMembers lists the users present in the room on any live node, sorted.
	PresenceMembers(ctx context.Context, roomID string) ([]string, error)
}

// ConnRegistry is implemented by brokers that keep the cluster's connection registry: which node
// holds which connection of which user, with a TTL refreshed while the node lives. Register is also
// the cluster-wide per-user limit: it refuses (false, nil) when the user already holds max live
// connections anywhere (max <= 0: no limit).
type ConnRegistry interface {
	Register(ctx context.Context, e RegistryEntry, max int) (bool, error)
	Unregister(ctx context.Context, e RegistryEntry) error
	// UserConnections lists the user's live connections in the cluster.
	UserConnections(ctx context.Context, userID string) ([]RegistryEntry, error)
}

// RegistryEntry is one connection in the cluster's registry.
type RegistryEntry struct {
	UserID string
	ConnID string
	NodeID string
}

// HistorySource is implemented by brokers that keep room history where every node can read it
// (resume on a node other than the one that delivered the broadcasts). History returns the room's
// broadcasts with RoomSeq > after, in order, and whether they cover everything after it (false when
// some were already trimmed by count or age).
type HistorySource interface {
	History(ctx context.Context, roomID string, after uint64) (events []RoomEvent, covered bool, err error)
}

// SessionStore is implemented by brokers that let a session detached on one node be resumed on
// another (see session_cluster.go). TakeSession consumes the session: it answers ok once.
type SessionStore interface {
	PutSession(ctx context.Context, s SharedSession, ttl time.Duration) error
	TakeSession(ctx context.Context, id, userID string) (s SharedSession, ok bool, err error)
}

// SharedSession is a detached session as the cluster shares it.
type SharedSession struct {
	ID     string
	UserID string
	Rooms  []string // rooms the session had joined, sorted
}

// NodeID returns this node's id (Config.NodeID, or a random one); connection ids end with it.
func (s *Server) NodeID() string { return s.nodeID }

// Broker returns the node's broker (MemoryBroker unless one was configured or injected).
func (s *Server) Broker() Broker { return s.broker }

// acquireUser takes a per-user connection slot: on this node, and in the cluster registry when the
// broker keeps one (the limit then counts the user's connections on every node). A registry that
// cannot be reached degrades to the node's own limit.
func (s *Server) acquireUser(c *conn, user string) bool {
	if !s.limits.acquireUser(user) {
		return false
	}
	reg, ok := s.broker.(ConnRegistry)
	if !ok {
		return true
	}
	max := s.cfg.MaxConnsPerClient
	if s.cfg.Flaws.Has(FlawNoConnLimit) {
		max = 0
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.HelloTimeout)
	defer cancel()
	ok, err := reg.Register(ctx, RegistryEntry{UserID: user, ConnID: c.id, NodeID: s.nodeID}, max)
	if err != nil {
		s.log.Warn("connection registry unavailable; per-user limit counted on this node only", "user_id", user, "err", err)
		return true
	}
	if !ok {
		s.limits.releaseUser(user)
	}
	return ok
}

// releaseUser returns what acquireUser took.
func (s *Server) releaseUser(c *conn) {
	s.limits.releaseUser(c.user)
	if reg, ok := s.broker.(ConnRegistry); ok {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), s.cfg.WriteTimeout)
		defer cancel()
		if err := reg.Unregister(ctx, RegistryEntry{UserID: c.user, ConnID: c.id, NodeID: s.nodeID}); err != nil {
			s.log.Debug("connection registry: unregister failed (the entry expires by TTL)", "conn_id", c.id, "err", err)
		}
	}
}

// clusterPresence returns the broker's ClusterPresence, or nil on a single node.
func (h *hub) clusterPresence() ClusterPresence {
	cp, _ := h.s.broker.(ClusterPresence)
	return cp
}

// clusterMembers returns the room's members on every node (nil on a single node or when the broker
// cannot answer: the caller then uses the node's own view).
func (h *hub) clusterMembers(id string) []string {
	cp := h.clusterPresence()
	if cp == nil {
		return nil
	}
	members, err := cp.PresenceMembers(h.s.ctx, id)
	if err != nil {
		h.s.log.Warn("cluster presence unavailable; member list from this node only", "room_id", id, "err", err)
		return nil
	}
	return members
}

// announceJoin makes user present in room id: through the cluster presence when there is one (it
// announces only a cluster-wide first), else as a presence event on the broker.
func (h *hub) announceJoin(id, user string) {
	if cp := h.clusterPresence(); cp != nil {
		if err := cp.PresenceJoin(h.s.ctx, id, user); err != nil {
			h.s.log.Warn("cluster presence join failed", "room_id", id, "user_id", user, "err", err)
		}
		return
	}
	h.publishPresence(id, protocol.PresenceJoin, user, protocol.ReasonJoined)
}

// announceLeave is announceJoin's counterpart.
func (h *hub) announceLeave(id, user, reason string) {
	if cp := h.clusterPresence(); cp != nil {
		if err := cp.PresenceLeave(context.WithoutCancel(h.s.ctx), id, user, reason); err != nil {
			h.s.log.Warn("cluster presence leave failed (the entry expires by TTL)", "room_id", id, "user_id", user, "err", err)
		}
		return
	}
	h.publishPresence(id, protocol.PresenceLeave, user, reason)
}

// mergeMembers returns the sorted union of two member lists.
func mergeMembers(a, b []string) []string {
	if len(a) == 0 {
		return b
	}
	seen := make(map[string]struct{}, len(a)+len(b))
	out := make([]string, 0, len(a)+len(b))
	for _, l := range [][]string{a, b} {
		for _, u := range l {
			if _, ok := seen[u]; !ok {
				seen[u] = struct{}{}
				out = append(out, u)
			}
		}
	}
	sort.Strings(out)
	return out
}
