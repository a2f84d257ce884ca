package refserver

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/squall-dev/squall/refserver/protocol"
)

// Acceptance: two users in a room see each other's presence, broadcasts arrive at every member with
// consecutive roomSeq, and the sender gets acks.
func TestRoomPresenceBroadcastAck(t *testing.T) {
	ts := startServer(t, testConfig())
	alice, w := connect(t, ts, "alice", dialOpts{})
	if w.UserID != "alice" || w.Session == "" || w.ConnID == "" || w.HeartbeatInterval != 200 || w.HeartbeatTimeout != 600 {
		t.Fatalf("welcome = %+v", w)
	}
	j := alice.join("r1")
	if joinStrings(j.Members) != "alice" || j.HeadSeq != 0 {
		t.Fatalf("room_joined = %+v", j)
	}
	alice.expectMatch(time.Second, "ack 1", func(f protocol.Frame) bool { return f.Type == protocol.TypeAck && f.Seq == 1 })

	bob, _ := connect(t, ts, "bob", dialOpts{})
	j = bob.join("r1")
	if joinStrings(j.Members) != "alice,bob" {
		t.Fatalf("bob's room_joined members = %v", j.Members)
	}
	p := alice.expect(protocol.TypePresence, time.Second)
	if p.Event != protocol.PresenceJoin || p.UserID != "bob" || p.RoomID != "r1" || p.Reason != protocol.ReasonJoined {
		t.Fatalf("alice saw presence %+v", p)
	}

	const n = 20
	for i := 0; i < n; i++ {
		sender := alice
		if i%2 == 1 {
			sender = bob
		}
		sender.send(protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "r1", Seq: sender.nextSeq(), Data: json.RawMessage(`{"i":` + itoa(i) + `}`)})
	}
	for _, c := range []*client{alice, bob} {
		var want uint64 = 1
		acks := 0
		for want <= n || acks < n/2 {
			f, ok := c.next(2 * time.Second)
			if !ok {
				t.Fatalf("missing frames: roomSeq %d, acks %d", want, acks)
			}
			switch f.Type {
			case protocol.TypeBroadcast:
				if f.RoomSeq != want {
					t.Fatalf("roomSeq %d, want %d", f.RoomSeq, want)
				}
				if f.SentAt == 0 || (f.From != "alice" && f.From != "bob") {
					t.Fatalf("broadcast %+v", f)
				}
				want++
			case protocol.TypeAck:
				acks++
			}
		}
	}
	// Bob leaves explicitly: alice sees the leave with reason "left".
	bob.send(protocol.Frame{Type: protocol.TypeLeaveRoom, RoomID: "r1", Seq: bob.nextSeq()})
	bob.expect(protocol.TypeRoomLeft, time.Second)
	p = alice.expect(protocol.TypePresence, time.Second)
	if p.Event != protocol.PresenceLeave || p.UserID != "bob" || p.Reason != protocol.ReasonLeft {
		t.Fatalf("alice saw %+v", p)
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }
