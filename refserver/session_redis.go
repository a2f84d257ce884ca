package refserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
)

// RedisBroker's SessionStore: a detached session is the key P+"sess:"+id holding
// {"u": user, "r": [rooms]}, expiring after the session TTL. Taking it is one script that checks the
// user and deletes the key, so a session is taken once.

var _ SessionStore = (*RedisBroker)(nil)

type sharedSessionJSON struct {
	User  string   `json:"u"`
	Rooms []string `json:"r"`
}

func (b *RedisBroker) sessionKey(id string) string { return b.opt.KeyPrefix + "sess:" + id }

// takeSessionScript returns and deletes the session if it belongs to the user. KEYS: sess. ARGV: user.
var takeSessionScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return false end
local ok, s = pcall(cjson.decode, v)
if not ok or s.u ~= ARGV[1] then return false end
redis.call('DEL', KEYS[1])
return v
`)

// PutSession publishes a detached session for ttl.
func (b *RedisBroker) PutSession(ctx context.Context, s SharedSession, ttl time.Duration) error {
	v, err := json.Marshal(sharedSessionJSON{User: s.UserID, Rooms: s.Rooms})
	if err != nil {
		return err
	}
	return b.rdb.Set(ctx, b.sessionKey(s.ID), v, ttl).Err()
}

// TakeSession consumes a published session of userID; ok is false when there is none (unknown,
// expired, taken, or another user's).
func (b *RedisBroker) TakeSession(ctx context.Context, id, userID string) (SharedSession, bool, error) {
	v, err := takeSessionScript.Run(ctx, b.rdb, []string{b.sessionKey(id)}, userID).Text()
	if errors.Is(err, redis.Nil) {
		return SharedSession{}, false, nil
	}
	if err != nil {
		return SharedSession{}, false, err
	}
	ss, err := decodeSharedSession(id, v)
	if err != nil {
		return SharedSession{}, false, err
	}
	return ss, true, nil
}

// decodeSharedSession reads a stored session (what PutSession writes): a JSON object with a
// non-empty user and room ids that are non-empty, valid UTF-8.
func decodeSharedSession(id, v string) (SharedSession, error) {
	var sj sharedSessionJSON
	if !utf8.ValidString(v) {
		return SharedSession{}, fmt.Errorf("session %.40q: not valid UTF-8", id)
	}
	if err := json.Unmarshal([]byte(v), &sj); err != nil {
		return SharedSession{}, fmt.Errorf("session %.40q: %w", id, err)
	}
	if sj.User == "" {
		return SharedSession{}, fmt.Errorf("session %.40q: no user", id)
	}
	for _, r := range sj.Rooms {
		if r == "" {
			return SharedSession{}, fmt.Errorf("session %.40q: an empty room id", id)
		}
	}
	return SharedSession{ID: id, UserID: sj.User, Rooms: sj.Rooms}, nil
}
