package refserver

import (
	"context"

	"github.com/squall-dev/squall/refserver/protocol"
)

// Broker carries room events between the nodes that together form one gateway. The default is
// MemoryBroker (a single node); RedisBroker joins several nodes behind the same interface.
//
// Contract:
//   - Publish of a broadcast stamps Frame.RoomSeq with the room's next sequence number (1, 2, 3, ...
//     gap-free per room across all nodes) and Frame.SentAt with the stamping time (Unix ms), then
//     delivers the event to the handler of every node subscribed to the room, this one included.
//     Each node's handler sees a room's broadcasts in RoomSeq order, each once.
//   - Other events (presence) are delivered as published, without a RoomSeq.
//   - HeadSeq returns the last RoomSeq stamped for the room (0 if none).
//   - The handler may be called from any goroutine, also synchronously inside Publish; the caller
//     therefore holds no lock the handler takes while it calls any Broker method.
//
// Implementations are safe for concurrent use.
type Broker interface {
	// Bind sets the handler that receives this node's events; it is called once, before any other
	// method.
	Bind(h BrokerHandler)
	Publish(ctx context.Context, ev *RoomEvent) error
	Subscribe(ctx context.Context, roomID string) error
	Unsubscribe(ctx context.Context, roomID string) error
	HeadSeq(ctx context.Context, roomID string) (uint64, error)
	Close() error
}

// BrokerHandler receives the room events of the rooms a node subscribed to. It must not block.
type BrokerHandler func(ev *RoomEvent)

// RoomEvent is one event of a room as it travels between nodes.
type RoomEvent struct {
	RoomID string
	// Frame is the frame every member receives (TypeBroadcast or TypePresence). The handler treats
	// it as read-only.
	Frame protocol.Frame
}
