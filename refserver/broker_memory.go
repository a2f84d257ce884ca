package refserver

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/squall-dev/squall/refserver/protocol"
)

// MemoryBroker is the single-node Broker: events are stamped and delivered synchronously inside
// Publish, under a per-room lock, so a room's broadcasts reach the handler in RoomSeq order. A room's
// sequence counter outlives its subscribers so that roomSeq never restarts while the node lives.
type MemoryBroker struct {
	now func() time.Time

	mu      sync.Mutex
	handler BrokerHandler
	topics  map[string]*memTopic
	closed  bool
}

type memTopic struct {
	mu         sync.Mutex
	seq        uint64
	subscribed bool
}

var _ Broker = (*MemoryBroker)(nil)

// ErrBrokerClosed is returned by a Broker after Close.
var ErrBrokerClosed = errors.New("broker closed")

// NewMemoryBroker returns an empty MemoryBroker.
func NewMemoryBroker() *MemoryBroker {
	return &MemoryBroker{now: time.Now, topics: map[string]*memTopic{}}
}

// Bind sets the handler.
func (b *MemoryBroker) Bind(h BrokerHandler) {
	b.mu.Lock()
	b.handler = h
	b.mu.Unlock()
}

func (b *MemoryBroker) topic(roomID string) (*memTopic, BrokerHandler, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, nil, ErrBrokerClosed
	}
	t := b.topics[roomID]
	if t == nil {
		t = &memTopic{}
		b.topics[roomID] = t
	}
	return t, b.handler, nil
}

// Publish stamps a broadcast and delivers ev to the handler if the room is subscribed.
func (b *MemoryBroker) Publish(ctx context.Context, ev *RoomEvent) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t, h, err := b.topic(ev.RoomID)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if ev.Frame.Type == protocol.TypeBroadcast {
		t.seq++
		ev.Frame.RoomSeq = t.seq
		ev.Frame.SentAt = b.now().UnixMilli()
	}
	if t.subscribed && h != nil {
		h(ev)
	}
	return nil
}

// Subscribe makes this node receive the room's events.
func (b *MemoryBroker) Subscribe(ctx context.Context, roomID string) error {
	return b.setSubscribed(ctx, roomID, true)
}

// Unsubscribe stops delivery of the room's events to this node.
func (b *MemoryBroker) Unsubscribe(ctx context.Context, roomID string) error {
	return b.setSubscribed(ctx, roomID, false)
}

func (b *MemoryBroker) setSubscribed(ctx context.Context, roomID string, on bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t, _, err := b.topic(roomID)
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.subscribed = on
	t.mu.Unlock()
	return nil
}

// HeadSeq returns the room's last stamped roomSeq.
func (b *MemoryBroker) HeadSeq(ctx context.Context, roomID string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	t, _, err := b.topic(roomID)
	if err != nil {
		return 0, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.seq, nil
}

// Close makes every later call fail with ErrBrokerClosed.
func (b *MemoryBroker) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}
