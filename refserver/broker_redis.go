package refserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/squall-dev/squall/refserver/protocol"
)

// RedisBroker is the cluster Broker: every node of one gateway points at the same Redis
// (`--broker redis://host:port/db`) and the nodes share rooms, presence, the connection registry and
// per-user limits through it.
//
//   - Fan-out: one pub/sub channel per room. A broadcast is published by a Lua script that INCRs the
//     room's sequence key, stamps the frame with it and Redis's clock, appends it to the room's history
//     (a sorted set scored by roomSeq, bounded by HistorySize and expiring HistoryTTL after the last
//     broadcast) and PUBLISHes it — atomically, so publish order is roomSeq order on every node.
//   - Each node reads its channels on one connection, so it sees a room's broadcasts in order. When a
//     roomSeq arrives that is not the next one (the pub/sub connection dropped and came back), the
//     missing broadcasts are read from the history first: delivery stays gap-free while the history
//     covers the gap.
//   - Presence (presence_redis.go) and the connection registry (registry_redis.go) are keys whose
//     entries carry an expiry, refreshed every RefreshInterval while the node lives; a dead node's
//     entries lapse after RegistryTTL and the surviving nodes announce those users' leaves.
//
// Key layout (P = KeyPrefix): P+"seq:"+room (counter), P+"hist:"+room (sorted set), channel
// P+"db<N>:room:"+room (pub/sub ignores the database number, so it is in the name), P+"p:"+room
// (user → latest expiry), P+"pn:"+len(room)+":"+room+":"+user (node → expiry), P+"conns:"+user
// (node|conn → expiry), P+"node:"+id (liveness). Times are Redis's clock in Unix ms.
//
// Goroutines: a receive loop (started by the first Subscribe) and a refresh loop (started by the
// first registration or presence entry); Close ends both. Safe for concurrent use.
type RedisBroker struct {
	opt    RedisOptions
	log    *slog.Logger
	rdb    *redis.Client
	chanPx string

	// refreshMu keeps a refresh round from writing back an entry removed while it ran: a round
	// holds it for writing, Unregister and PresenceLeave for reading.
	refreshMu sync.RWMutex

	mu         sync.Mutex
	handler    BrokerHandler
	rooms      map[string]*redisRoom // subscribed rooms, by id
	ps         *redis.PubSub
	closed     bool
	receiving  bool
	refreshing bool
	conns      map[string]RegistryEntry // this node's registered connections, by member name
	present    map[presenceEntry]struct{}
	gaps       uint64 // broadcasts lost for good (history no longer covered a gap)
	catchUps   uint64 // gaps filled from the history
	maintErrs  uint64 // failed refresh or reap rounds
	quit       chan struct{}
	wg         sync.WaitGroup
}

// RedisOptions configure a RedisBroker. Zero fields take the defaults named.
type RedisOptions struct {
	// URL is redis://[user:password@]host:port/db (required; rediss:// for TLS).
	URL string
	// NodeID names this node in the registry (default: random).
	NodeID string
	// KeyPrefix starts every key and channel name (default "squall:").
	KeyPrefix string
	// RegistryTTL is how long presence and registry entries live without a refresh (default 60s):
	// within it after a node's last refresh, its users are announced gone by the other nodes
	// (presence entries are written to lapse one ReapInterval early for that) and its connections
	// stop counting towards per-user limits.
	RegistryTTL time.Duration
	// RefreshInterval is how often this node refreshes its entries (default RegistryTTL/3; at most
	// RegistryTTL/2).
	RefreshInterval time.Duration
	// ReapInterval is how often this node looks for lapsed presence entries in its rooms and
	// announces their leaves (default RegistryTTL/10, at least 50ms).
	ReapInterval time.Duration
	// HistorySize bounds the history kept per room in Redis (default 1000).
	HistorySize int
	// HistoryTTL drops a room's history that long after its last broadcast, and History ignores
	// entries older than it (default 5m).
	HistoryTTL time.Duration
	// OpTimeout bounds one subscription handshake or maintenance round trip (default 5s).
	OpTimeout time.Duration
	// Logger receives the broker's logs (nil: discard).
	Logger *slog.Logger
}

func (o RedisOptions) withDefaults() RedisOptions {
	if o.NodeID == "" {
		o.NodeID = newID()[:6]
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = "squall:"
	}
	if o.RegistryTTL <= 0 {
		o.RegistryTTL = 60 * time.Second
	}
	if o.RefreshInterval <= 0 || o.RefreshInterval > o.RegistryTTL/2 {
		o.RefreshInterval = o.RegistryTTL / 3
	}
	if o.ReapInterval <= 0 {
		o.ReapInterval = max(o.RegistryTTL/10, 50*time.Millisecond)
	}
	if o.HistorySize <= 0 {
		o.HistorySize = 1000
	}
	if o.HistoryTTL <= 0 {
		o.HistoryTTL = 5 * time.Minute
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// redisRoom is the receive loop's state of one subscribed room. Guarded by RedisBroker.mu.
type redisRoom struct {
	live      bool          // the subscription is confirmed and delivered is set
	delivered uint64        // the last roomSeq handed to the handler (or the head when subscribed)
	ready     chan struct{} // closed once live (or failed)
	err       error         // why the subscription failed
}

var (
	_ Broker          = (*RedisBroker)(nil)
	_ ClusterPresence = (*RedisBroker)(nil)
	_ ConnRegistry    = (*RedisBroker)(nil)
	_ HistorySource   = (*RedisBroker)(nil)
)

// NewRedisBroker returns a broker on the Redis at opt.URL. It does not connect yet (Ping does).
func NewRedisBroker(opt RedisOptions) (*RedisBroker, error) {
	opt = opt.withDefaults()
	ro, err := redis.ParseURL(opt.URL)
	if err != nil {
		return nil, fmt.Errorf("refserver: broker url: %w", err)
	}
	ro.DisableIdentity = true          // no CLIENT SETINFO: works with every server version
	ro.PoolSize = max(ro.PoolSize, 32) // cleanup of many connections at once registers in parallel
	return &RedisBroker{
		opt:     opt,
		log:     opt.Logger.With("broker", "redis", "node", opt.NodeID),
		rdb:     redis.NewClient(ro),
		chanPx:  opt.KeyPrefix + "db" + strconv.Itoa(ro.DB) + ":room:",
		rooms:   map[string]*redisRoom{},
		conns:   map[string]RegistryEntry{},
		present: map[presenceEntry]struct{}{},
		quit:    make(chan struct{}),
	}, nil
}

// ParseBrokerURL reports whether a --broker value is usable: "" or "memory" (the single-node
// MemoryBroker) or a redis:// / rediss:// URL.
func ParseBrokerURL(u string) (redisURL string, err error) {
	if u == "" || u == "memory" {
		return "", nil
	}
	if !strings.HasPrefix(u, "redis://") && !strings.HasPrefix(u, "rediss://") {
		return "", fmt.Errorf("want memory or redis://host:port/db, got %q", u)
	}
	if _, err := redis.ParseURL(u); err != nil {
		return "", err
	}
	return u, nil
}

// NodeID returns the node id this broker registers under.
func (b *RedisBroker) NodeID() string { return b.opt.NodeID }

// Ping checks that Redis answers.
func (b *RedisBroker) Ping(ctx context.Context) error {
	return b.rdb.Ping(ctx).Err()
}

// Bind sets the handler.
func (b *RedisBroker) Bind(h BrokerHandler) {
	b.mu.Lock()
	b.handler = h
	b.mu.Unlock()
}

func (b *RedisBroker) seqKey(room string) string  { return b.opt.KeyPrefix + "seq:" + room }
func (b *RedisBroker) histKey(room string) string { return b.opt.KeyPrefix + "hist:" + room }
func (b *RedisBroker) channel(room string) string { return b.chanPx + room }

// publishScript stamps, records and publishes one broadcast atomically. KEYS: seq, hist, channel.
// ARGV: frame JSON without roomSeq/sentAt, history size, history TTL (ms), floor. The message on the
// channel (and in the history) is "<roomSeq> <sentAt ms> <frame JSON>". floor is the last roomSeq the
// publishing node delivered: should Redis have lost the counter (a restart without persistence), the
// room continues after it instead of starting again at 1, which every node would drop as old.
var publishScript = redis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(ARGV[4])
if cur < floor then
  redis.call('SET', KEYS[1], floor)
end
local seq = redis.call('INCR', KEYS[1])
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local msg = string.format('%d %d ', seq, ms) .. ARGV[1]
redis.call('ZADD', KEYS[2], seq, msg)
local n = tonumber(ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -n - 1)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PUBLISH', KEYS[3], msg)
return {seq, ms}
`)

// Publish stamps a broadcast with the room's next roomSeq (cluster-wide) and publishes it; other
// events are published as they are. Delivery to the handlers, this node's included, is
// asynchronous (through the subscription).
func (b *RedisBroker) Publish(ctx context.Context, ev *RoomEvent) error {
	if b.isClosed() {
		return ErrBrokerClosed
	}
	f := ev.Frame
	f.RoomSeq, f.SentAt = 0, 0
	body, err := json.Marshal(&f)
	if err != nil {
		return err
	}
	if ev.Frame.Type != protocol.TypeBroadcast {
		return b.rdb.Publish(ctx, b.channel(ev.RoomID), "0 0 "+string(body)).Err()
	}
	var floor uint64
	b.mu.Lock()
	if rr := b.rooms[ev.RoomID]; rr != nil && rr.live {
		floor = rr.delivered
	}
	b.mu.Unlock()
	res, err := publishScript.Run(ctx, b.rdb,
		[]string{b.seqKey(ev.RoomID), b.histKey(ev.RoomID), b.channel(ev.RoomID)},
		string(body), b.opt.HistorySize, b.opt.HistoryTTL.Milliseconds(), floor).Int64Slice()
	if err != nil {
		return fmt.Errorf("publish to room %s: %w", ev.RoomID, err)
	}
	if len(res) != 2 {
		return fmt.Errorf("publish to room %s: unexpected script answer %v", ev.RoomID, res)
	}
	ev.Frame.RoomSeq, ev.Frame.SentAt = uint64(res[0]), res[1]
	return nil
}

// Subscribe makes this node receive the room's events. It returns once Redis has confirmed the
// subscription; from then on every broadcast after HeadSeq reaches the handler.
func (b *RedisBroker) Subscribe(ctx context.Context, roomID string) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrBrokerClosed
	}
	rr := b.rooms[roomID]
	fresh := rr == nil
	if fresh {
		rr = &redisRoom{ready: make(chan struct{})}
		b.rooms[roomID] = rr
	}
	ps := b.pubsubLocked()
	b.mu.Unlock()
	if fresh {
		if err := ps.Subscribe(ctx, b.channel(roomID)); err != nil {
			b.dropRoom(roomID, rr)
			return fmt.Errorf("subscribe to room %s: %w", roomID, err)
		}
	}
	t := time.NewTimer(b.opt.OpTimeout)
	defer t.Stop()
	select {
	case <-rr.ready:
		b.mu.Lock()
		err := rr.err
		b.mu.Unlock()
		return err
	case <-ctx.Done():
		err := ctx.Err()
		b.failRoom(roomID, rr, err)
		return err
	case <-t.C:
		err := fmt.Errorf("subscribe to room %s: not confirmed within %s", roomID, b.opt.OpTimeout)
		b.failRoom(roomID, rr, err)
		return err
	case <-b.quit:
		return ErrBrokerClosed
	}
}

// failRoom gives up a subscription that was not confirmed in time.
func (b *RedisBroker) failRoom(roomID string, rr *redisRoom, err error) {
	b.mu.Lock()
	if !rr.live && rr.err == nil {
		rr.err = err
		close(rr.ready)
	}
	b.mu.Unlock()
	b.dropRoom(roomID, rr)
}

// dropRoom forgets rr (if it is still the room's state) and unsubscribes.
func (b *RedisBroker) dropRoom(roomID string, rr *redisRoom) {
	b.mu.Lock()
	if b.rooms[roomID] != rr {
		b.mu.Unlock()
		return
	}
	delete(b.rooms, roomID)
	ps := b.ps
	b.mu.Unlock()
	if ps != nil {
		ctx, cancel := context.WithTimeout(context.Background(), b.opt.OpTimeout)
		defer cancel()
		_ = ps.Unsubscribe(ctx, b.channel(roomID))
	}
}

// Unsubscribe stops delivery of the room's events to this node.
func (b *RedisBroker) Unsubscribe(ctx context.Context, roomID string) error {
	b.mu.Lock()
	rr := b.rooms[roomID]
	ps := b.ps
	if rr != nil {
		delete(b.rooms, roomID)
	}
	b.mu.Unlock()
	if rr == nil || ps == nil {
		return nil
	}
	return ps.Unsubscribe(ctx, b.channel(roomID))
}

// HeadSeq returns, for a room this node is subscribed to, the last roomSeq delivered to the handler
// (or the room's counter when the subscription began, if nothing was delivered since) — never a
// roomSeq whose broadcast is still on its way to this node; for other rooms, the room's counter.
func (b *RedisBroker) HeadSeq(ctx context.Context, roomID string) (uint64, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return 0, ErrBrokerClosed
	}
	if rr := b.rooms[roomID]; rr != nil && rr.live {
		d := rr.delivered
		b.mu.Unlock()
		return d, nil
	}
	b.mu.Unlock()
	return b.counter(ctx, roomID)
}

func (b *RedisBroker) counter(ctx context.Context, roomID string) (uint64, error) {
	n, err := b.rdb.Get(ctx, b.seqKey(roomID)).Uint64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return n, err
}

// History returns the room's broadcasts after roomSeq after, from Redis (see HistorySource).
func (b *RedisBroker) History(ctx context.Context, roomID string, after uint64) ([]RoomEvent, bool, error) {
	head, err := b.counter(ctx, roomID)
	if err != nil {
		return nil, false, err
	}
	if after >= head {
		return nil, true, nil
	}
	evs, err := b.historyRange(ctx, roomID, after+1, head)
	if err != nil {
		return nil, false, err
	}
	cutoff := time.Now().Add(-b.opt.HistoryTTL).UnixMilli()
	for len(evs) > 0 && evs[0].Frame.SentAt < cutoff {
		evs = evs[1:]
	}
	covered := len(evs) > 0 && evs[0].Frame.RoomSeq == after+1
	return evs, covered, nil
}

// historyRange reads the stored broadcasts with from <= roomSeq <= to, in order.
func (b *RedisBroker) historyRange(ctx context.Context, roomID string, from, to uint64) ([]RoomEvent, error) {
	msgs, err := b.rdb.ZRangeByScore(ctx, b.histKey(roomID), &redis.ZRangeBy{
		Min: strconv.FormatUint(from, 10), Max: strconv.FormatUint(to, 10),
	}).Result()
	if err != nil {
		return nil, err
	}
	out := make([]RoomEvent, 0, len(msgs))
	for _, m := range msgs {
		ev, err := decodeEnvelope(roomID, m)
		if err != nil {
			b.log.Warn("bad history entry", "room_id", roomID, "err", err)
			continue
		}
		out = append(out, ev)
	}
	return out, nil
}

// decodeEnvelope reads "<roomSeq> <sentAt> <frame JSON>" (a pub/sub message or history entry): the
// frame must be valid UTF-8 and, with the roomSeq and sentAt filled in, a server frame with the
// fields its type requires.
func decodeEnvelope(roomID, msg string) (RoomEvent, error) {
	seqStr, rest, ok1 := strings.Cut(msg, " ")
	msStr, body, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 {
		return RoomEvent{}, fmt.Errorf("malformed message %.40q", msg)
	}
	seq, err1 := strconv.ParseUint(seqStr, 10, 64)
	ms, err2 := strconv.ParseInt(msStr, 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return RoomEvent{}, fmt.Errorf("malformed message %.40q: %w", msg, err)
	}
	if !utf8.ValidString(body) {
		return RoomEvent{}, errors.New("malformed frame: not valid UTF-8")
	}
	ev := RoomEvent{RoomID: roomID}
	if err := json.Unmarshal([]byte(body), &ev.Frame); err != nil {
		return RoomEvent{}, fmt.Errorf("malformed frame: %w", err)
	}
	if ev.Frame.RoomID == "" {
		ev.Frame.RoomID = roomID
	}
	if seq > 0 {
		ev.Frame.RoomSeq, ev.Frame.SentAt = seq, ms
	}
	// What goes on to the room's members must be a frame they can decode.
	if err := ev.Frame.Check(protocol.ServerToClient); err != nil {
		return RoomEvent{}, err
	}
	return ev, nil
}

// pubsubLocked returns the node's pub/sub connection, starting it and the receive loop on first use.
func (b *RedisBroker) pubsubLocked() *redis.PubSub {
	if b.ps == nil {
		b.ps = b.rdb.Subscribe(context.Background())
	}
	if !b.receiving {
		b.receiving = true
		b.wg.Add(1)
		go b.receiveLoop(b.ps)
	}
	return b.ps
}

func (b *RedisBroker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// receiveLoop reads the node's pub/sub connection until Close. go-redis reconnects and
// re-subscribes by itself after an error; a second confirmation of a live room therefore means
// messages may have been missed, and the room catches up from its history.
func (b *RedisBroker) receiveLoop(ps *redis.PubSub) {
	defer b.wg.Done()
	ctx := context.Background()
	var failures int
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			if b.isClosed() {
				return
			}
			failures++
			if failures == 1 || failures%100 == 0 {
				b.log.Warn("pub/sub receive failed; reconnecting", "err", err, "failures", failures)
			}
			select {
			case <-b.quit:
				return
			case <-time.After(min(time.Duration(failures)*50*time.Millisecond, time.Second)):
			}
			continue
		}
		failures = 0
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				b.confirmed(strings.TrimPrefix(m.Channel, b.chanPx))
			}
		case *redis.Message:
			b.dispatch(strings.TrimPrefix(m.Channel, b.chanPx), m.Payload)
		}
	}
}

// confirmed handles Redis's confirmation of a room's subscription (receive loop).
func (b *RedisBroker) confirmed(roomID string) {
	b.mu.Lock()
	rr := b.rooms[roomID]
	b.mu.Unlock()
	if rr == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.opt.OpTimeout)
	defer cancel()
	head, err := b.counter(ctx, roomID)
	b.mu.Lock()
	if !rr.live {
		if rr.err == nil {
			if err != nil {
				rr.err = fmt.Errorf("subscribe to room %s: read head: %w", roomID, err)
			} else {
				rr.live, rr.delivered = true, head
			}
			close(rr.ready)
		}
		b.mu.Unlock()
		return
	}
	last := rr.delivered
	b.mu.Unlock()
	if err == nil && head > last {
		b.log.Info("pub/sub re-subscribed; catching up from history", "room_id", roomID, "from", last+1, "to", head)
		b.catchUp(roomID, rr, last, head+1)
	}
}

// dispatch hands one message of a room to the handler (receive loop), filling a roomSeq gap from
// the history first.
func (b *RedisBroker) dispatch(roomID, payload string) {
	ev, err := decodeEnvelope(roomID, payload)
	if err != nil {
		b.log.Warn("bad pub/sub message", "room_id", roomID, "err", err)
		return
	}
	b.mu.Lock()
	h := b.handler
	rr := b.rooms[roomID]
	if rr == nil || !rr.live || h == nil {
		b.mu.Unlock()
		return
	}
	last := rr.delivered
	b.mu.Unlock()
	seq := ev.Frame.RoomSeq
	if seq == 0 { // presence and other unsequenced events
		h(&ev)
		return
	}
	if seq <= last {
		return // delivered already (through a catch-up) or from before the subscription
	}
	if seq > last+1 {
		b.catchUp(roomID, rr, last, seq)
	}
	b.deliverSeq(rr, h, &ev)
}

// catchUp delivers the stored broadcasts last < roomSeq < until (receive loop).
func (b *RedisBroker) catchUp(roomID string, rr *redisRoom, last, until uint64) {
	b.mu.Lock()
	h := b.handler
	b.mu.Unlock()
	if h == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.opt.OpTimeout)
	defer cancel()
	evs, err := b.historyRange(ctx, roomID, last+1, until-1)
	if err != nil {
		b.log.Warn("catch-up from history failed", "room_id", roomID, "err", err)
	}
	b.mu.Lock()
	b.catchUps++
	b.mu.Unlock()
	want := last + 1
	for i := range evs {
		if evs[i].Frame.RoomSeq != want {
			b.noteGap(roomID, want, evs[i].Frame.RoomSeq-1)
		}
		b.deliverSeq(rr, h, &evs[i])
		want = evs[i].Frame.RoomSeq + 1
	}
	if want < until {
		b.noteGap(roomID, want, until-1)
	}
}

func (b *RedisBroker) noteGap(roomID string, from, to uint64) {
	b.mu.Lock()
	b.gaps += to - from + 1
	b.mu.Unlock()
	b.log.Warn("broadcasts lost: history no longer covers them", "room_id", roomID, "from", from, "to", to)
}

// ClusterStats reports the broker's counts (ws_cluster_* metrics).
func (b *RedisBroker) ClusterStats() ClusterStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return ClusterStats{GapFills: b.catchUps, LostBroadcasts: b.gaps, MaintenanceErrors: b.maintErrs, SubscribedRooms: len(b.rooms)}
}

// LostBroadcasts counts broadcasts this node could not deliver because a gap in its subscription
// outlasted the room's history (0 in a healthy cluster).
func (b *RedisBroker) LostBroadcasts() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.gaps
}

// deliverSeq hands a sequenced broadcast to the handler, then records it as delivered.
func (b *RedisBroker) deliverSeq(rr *redisRoom, h BrokerHandler, ev *RoomEvent) {
	h(ev)
	b.mu.Lock()
	if ev.Frame.RoomSeq > rr.delivered {
		rr.delivered = ev.Frame.RoomSeq
	}
	b.mu.Unlock()
}

// Close stops the loops, removes this node's liveness key and closes the connections. Presence and
// registry entries still held (connections not cleaned up) lapse after RegistryTTL.
func (b *RedisBroker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.quit)
	ps, wroteNodeKey := b.ps, b.refreshing
	for id, rr := range b.rooms {
		if !rr.live && rr.err == nil {
			rr.err = ErrBrokerClosed
			close(rr.ready)
		}
		delete(b.rooms, id)
	}
	b.mu.Unlock()
	var errs []error
	if ps != nil {
		if err := ps.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	b.wg.Wait()
	if wroteNodeKey {
		ctx, cancel := context.WithTimeout(context.Background(), b.opt.OpTimeout)
		_ = b.rdb.Del(ctx, b.nodeKey()).Err()
		cancel()
	}
	if err := b.rdb.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
