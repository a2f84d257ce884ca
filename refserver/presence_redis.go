package refserver

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/squall-dev/squall/refserver/protocol"
)

// Cluster presence in Redis (RedisBroker's ClusterPresence).
//
// For each room, P+"p:"+room maps user → the latest expiry among the nodes holding that user, and
// P+"pn:..."+user maps node → expiry. A user is present while some node's entry has not expired.
// Every change runs in one Lua script that also PUBLISHes the presence event on the room's channel
// when the user became present or absent cluster-wide, so that events are announced exactly once
// and in the order the changes happened. Expiries use Redis's clock, so nodes' clocks do not matter.

// presenceEntry is one (room, user) this node holds and refreshes.
type presenceEntry struct{ room, user string }

func (b *RedisBroker) presenceKey(room string) string { return b.opt.KeyPrefix + "p:" + room }

// presenceNodesPrefix is the prefix of a room's per-user node sets; the user id follows it.
func (b *RedisBroker) presenceNodesPrefix(room string) string {
	return b.opt.KeyPrefix + "pn:" + strconv.Itoa(len(room)) + ":" + room + ":"
}

// presenceJoinScript adds (or refreshes) this node's entry for a user; when the user had no live
// entry anywhere, it announces the join. KEYS: p, pn, channel. ARGV: node, ttl ms, user, event
// message. Returns 1 when announced.
var presenceJoinScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local had = redis.call('ZCARD', KEYS[2])
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[2], 2 * ttl)
redis.call('ZADD', KEYS[1], 'GT', now + ttl, ARGV[3])
redis.call('PEXPIRE', KEYS[1], 2 * ttl)
if had == 0 then
  redis.call('PUBLISH', KEYS[3], '0 0 ' .. ARGV[4])
  return 1
end
return 0
`)

// presenceLeaveScript removes this node's entry for a user; when no live entry is left anywhere
// (and nobody announced the leave already), it announces the leave. KEYS: p, pn, channel.
// ARGV: node, user, event message. Returns 1 when announced.
var presenceLeaveScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[2])
  if redis.call('ZREM', KEYS[1], ARGV[2]) == 1 then
    redis.call('PUBLISH', KEYS[3], '0 0 ' .. ARGV[3])
    return 1
  end
  return 0
end
local top = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('ZADD', KEYS[1], top[2], ARGV[2])
return 0
`)

// presenceReapScript removes the users of a room whose every entry lapsed and announces their
// leaves (reason timeout). KEYS: p, channel. ARGV: pn prefix, event message before the quoted user
// id, the rest of the message. Returns the users removed.
var presenceReapScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gone = {}
for _, u in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  local pn = ARGV[1] .. u
  redis.call('ZREMRANGEBYSCORE', pn, '-inf', now)
  if redis.call('ZCARD', pn) == 0 then
    redis.call('DEL', pn)
    redis.call('ZREM', KEYS[1], u)
    redis.call('PUBLISH', KEYS[2], '0 0 ' .. ARGV[2] .. cjson.encode(u) .. ARGV[3])
    table.insert(gone, u)
  else
    local top = redis.call('ZRANGE', pn, -1, -1, 'WITHSCORES')
    redis.call('ZADD', KEYS[1], top[2], u)
  end
end
return gone
`)

// presenceMembersScript lists a room's live users. KEYS: p.
var presenceMembersScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
`)

// entryLifetime is how long a presence or registry entry lives without a refresh: one reap interval
// short of the TTL, so that a dead node's entries are found and announced within the TTL.
func (b *RedisBroker) entryLifetime() time.Duration {
	return max(b.opt.RegistryTTL-b.opt.ReapInterval, b.opt.RegistryTTL/2)
}

func presenceMessage(room, event, user, reason string) (string, error) {
	b, err := json.Marshal(&protocol.Frame{Type: protocol.TypePresence, RoomID: room, Event: event, UserID: user, Reason: reason})
	return string(b), err
}

// PresenceJoin records that this node holds user in room, announcing the join if the user was
// absent from the whole cluster. The entry is refreshed until PresenceLeave.
func (b *RedisBroker) PresenceJoin(ctx context.Context, roomID, userID string) error {
	if b.isClosed() {
		return ErrBrokerClosed
	}
	b.mu.Lock()
	b.present[presenceEntry{roomID, userID}] = struct{}{}
	b.startRefreshLocked()
	b.mu.Unlock()
	return b.presenceJoin(ctx, b.rdb, roomID, userID, false).Err()
}

// presenceJoin runs the join script on c; inPipeline sends the script's body (EVAL) because a
// pipeline cannot fall back from EVALSHA when Redis does not know the script yet.
func (b *RedisBroker) presenceJoin(ctx context.Context, c redis.Scripter, roomID, userID string, inPipeline bool) *redis.Cmd {
	msg, err := presenceMessage(roomID, protocol.PresenceJoin, userID, protocol.ReasonJoined)
	if err != nil {
		cmd := redis.NewCmd(ctx)
		cmd.SetErr(err)
		return cmd
	}
	run := presenceJoinScript.Run
	if inPipeline {
		run = presenceJoinScript.Eval
	}
	return run(ctx, c,
		[]string{b.presenceKey(roomID), b.presenceNodesPrefix(roomID) + userID, b.channel(roomID)},
		b.opt.NodeID, b.entryLifetime().Milliseconds(), userID, msg)
}

// PresenceLeave drops this node's entry for user in room, announcing the leave (with reason) if no
// other node holds the user.
func (b *RedisBroker) PresenceLeave(ctx context.Context, roomID, userID, reason string) error {
	b.refreshMu.RLock()
	defer b.refreshMu.RUnlock()
	b.mu.Lock()
	delete(b.present, presenceEntry{roomID, userID})
	b.mu.Unlock()
	msg, err := presenceMessage(roomID, protocol.PresenceLeave, userID, reason)
	if err != nil {
		return err
	}
	return presenceLeaveScript.Run(ctx, b.rdb,
		[]string{b.presenceKey(roomID), b.presenceNodesPrefix(roomID) + userID, b.channel(roomID)},
		b.opt.NodeID, userID, msg).Err()
}

// PresenceMembers lists the users present in room on any live node, sorted.
func (b *RedisBroker) PresenceMembers(ctx context.Context, roomID string) ([]string, error) {
	users, err := presenceMembersScript.Run(ctx, b.rdb, []string{b.presenceKey(roomID)}).StringSlice()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	slices.Sort(users)
	return users, nil
}

// reapPresence announces the leaves of users whose entries lapsed in the rooms this node is
// subscribed to (refresh loop). It returns how many users it removed.
func (b *RedisBroker) reapPresence(ctx context.Context) (int, error) {
	b.mu.Lock()
	rooms := make([]string, 0, len(b.rooms))
	for id, rr := range b.rooms {
		if rr.live {
			rooms = append(rooms, id)
		}
	}
	b.mu.Unlock()
	if len(rooms) == 0 {
		return 0, nil
	}
	pipe := b.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(rooms))
	for i, room := range rooms {
		head, err := presenceMessage(room, protocol.PresenceLeave, "", protocol.ReasonTimeout)
		if err != nil {
			return 0, err
		}
		// Split the encoded frame where the user id goes: `..."event":"leave",` + `"userId":"u"` + `,...}`.
		prefix, rest, ok := cutJSONField(head, "event", protocol.PresenceLeave)
		if !ok {
			return 0, errors.New("reap: cannot place the user id in the presence frame")
		}
		cmds[i] = presenceReapScript.Eval(ctx, pipe, []string{b.presenceKey(room), b.channel(room)},
			b.presenceNodesPrefix(room), prefix+`"userId":`, ","+rest)
	}
	_, _ = pipe.Exec(ctx)
	removed := 0
	var errs []error
	for i, cmd := range cmds {
		users, err := cmd.StringSlice()
		if err != nil && !errors.Is(err, redis.Nil) {
			errs = append(errs, err)
			continue
		}
		for _, u := range users {
			b.log.Info("presence lapsed: user announced gone", "room_id", rooms[i], "user_id", u)
		}
		removed += len(users)
	}
	return removed, errors.Join(errs...)
}

// cutJSONField splits an encoded JSON object right after the member "name":"value", (comma
// included), returning the text up to there and the text after it.
func cutJSONField(obj, name, value string) (before, after string, ok bool) {
	member := `"` + name + `":"` + value + `",`
	before, after, ok = strings.Cut(obj, member)
	return before + member, after, ok
}
