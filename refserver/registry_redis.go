package refserver

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The connection registry in Redis (RedisBroker's ConnRegistry), after the seed's
// `SET conn:usr_42 "ws-server-03" EX 60`, one sorted set per user so that a user's devices on
// several nodes are all listed: P+"conns:"+user maps "node|conn" → expiry (Redis clock, ms). Entries
// are refreshed every RefreshInterval while the node lives; a dead node's entries lapse after
// RegistryTTL. Registering is also the cluster-wide per-user limit: lapsed entries are pruned and the
// live ones counted in the same script. P+"node:"+id is the node's own liveness key.

func (b *RedisBroker) connsKey(user string) string { return b.opt.KeyPrefix + "conns:" + user }
func (b *RedisBroker) nodeKey() string             { return b.opt.KeyPrefix + "node:" + b.opt.NodeID }

func registryMember(e RegistryEntry) string { return e.NodeID + "|" + e.ConnID }

// registerScript adds a connection unless the user is at the limit. KEYS: conns. ARGV: member,
// ttl ms, max (<= 0: no limit), force (1: add even above the limit, for refreshes). Returns 1 when
// the entry is held.
var registerScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[4] ~= '1' and max > 0 and redis.call('ZSCORE', KEYS[1], ARGV[1]) == false and redis.call('ZCARD', KEYS[1]) >= max then
  return 0
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], 2 * ttl)
return 1
`)

// Register adds a connection to the registry if the user holds fewer than max live connections in
// the whole cluster (max <= 0: no limit). The entry is refreshed until Unregister.
func (b *RedisBroker) Register(ctx context.Context, e RegistryEntry, max int) (bool, error) {
	if b.isClosed() {
		return false, ErrBrokerClosed
	}
	if e.NodeID == "" {
		e.NodeID = b.opt.NodeID
	}
	n, err := registerScript.Run(ctx, b.rdb, []string{b.connsKey(e.UserID)},
		registryMember(e), b.entryLifetime().Milliseconds(), max, 0).Int()
	if err != nil {
		return false, err
	}
	if n != 1 {
		return false, nil
	}
	b.mu.Lock()
	b.conns[registryMember(e)] = e
	b.startRefreshLocked()
	b.mu.Unlock()
	return true, nil
}

// Unregister removes a connection from the registry.
func (b *RedisBroker) Unregister(ctx context.Context, e RegistryEntry) error {
	if e.NodeID == "" {
		e.NodeID = b.opt.NodeID
	}
	b.refreshMu.RLock()
	defer b.refreshMu.RUnlock()
	b.mu.Lock()
	delete(b.conns, registryMember(e))
	b.mu.Unlock()
	return b.rdb.ZRem(ctx, b.connsKey(e.UserID), registryMember(e)).Err()
}

// UserConnections lists a user's live connections on every node.
func (b *RedisBroker) UserConnections(ctx context.Context, userID string) ([]RegistryEntry, error) {
	now, err := b.rdb.Time(ctx).Result()
	if err != nil {
		return nil, err
	}
	members, err := b.rdb.ZRangeByScore(ctx, b.connsKey(userID), &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(now.UnixMilli(), 10), Max: "+inf",
	}).Result()
	if err != nil {
		return nil, err
	}
	out := make([]RegistryEntry, 0, len(members))
	for _, m := range members {
		out = append(out, decodeRegistryMember(userID, m))
	}
	return out, nil
}

// decodeRegistryMember reads a member of a user's connection registry: "<node>|<conn>" (node ids
// hold no '|'; a member without one is a connection of an unknown node).
func decodeRegistryMember(userID, m string) RegistryEntry {
	node, conn, _ := strings.Cut(m, "|")
	return RegistryEntry{UserID: userID, ConnID: conn, NodeID: node}
}

// startRefreshLocked starts the refresh loop once (b.mu held).
func (b *RedisBroker) startRefreshLocked() {
	if b.refreshing || b.closed {
		return
	}
	b.refreshing = true
	b.wg.Add(1)
	go b.refreshLoop()
}

// refreshLoop keeps this node's registry and presence entries alive every RefreshInterval and
// reaps lapsed presence in its rooms every ReapInterval, until Close.
func (b *RedisBroker) refreshLoop() {
	defer b.wg.Done()
	refresh := time.NewTicker(b.opt.RefreshInterval)
	defer refresh.Stop()
	reap := time.NewTicker(b.opt.ReapInterval)
	defer reap.Stop()
	var lastErr string
	report := func(what string, err error) {
		if err == nil {
			lastErr = ""
			return
		}
		b.mu.Lock()
		b.maintErrs++
		b.mu.Unlock()
		if err.Error() != lastErr { // once per distinct failure, not once per tick
			lastErr = err.Error()
			b.log.Warn(what+" failed", "err", err)
		}
	}
	b.refresh() // the node key, at once
	for {
		select {
		case <-b.quit:
			return
		case <-refresh.C:
			report("registry refresh", b.refresh())
		case <-reap.C:
			ctx, cancel := context.WithTimeout(context.Background(), b.opt.OpTimeout)
			_, err := b.reapPresence(ctx)
			cancel()
			report("presence reap", err)
		}
	}
}

// refresh renews every entry this node holds, in one pipeline.
func (b *RedisBroker) refresh() error {
	b.refreshMu.Lock()
	defer b.refreshMu.Unlock()
	b.mu.Lock()
	conns := make([]RegistryEntry, 0, len(b.conns))
	for _, e := range b.conns {
		conns = append(conns, e)
	}
	present := make([]presenceEntry, 0, len(b.present))
	for p := range b.present {
		present = append(present, p)
	}
	b.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), b.opt.OpTimeout)
	defer cancel()
	ttl := b.entryLifetime().Milliseconds()
	pipe := b.rdb.Pipeline()
	pipe.Set(ctx, b.nodeKey(), time.Now().UTC().Format(time.RFC3339), b.opt.RegistryTTL)
	for _, e := range conns {
		registerScript.Eval(ctx, pipe, []string{b.connsKey(e.UserID)}, registryMember(e), ttl, 0, 1)
	}
	for _, p := range present {
		// The join script refreshes; if the entry lapsed meanwhile (Redis unreachable for longer than
		// the TTL) and the user was announced gone, it announces the join again.
		b.presenceJoin(ctx, pipe, p.room, p.user, true)
	}
	cmds, err := pipe.Exec(ctx)
	if err != nil {
		for _, c := range cmds {
			if c.Err() != nil && !errors.Is(c.Err(), redis.Nil) {
				return c.Err()
			}
		}
		return err
	}
	return nil
}
