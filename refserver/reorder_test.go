package refserver

import (
	"fmt"
	"testing"
	"time"

	"github.com/squall-dev/squall/refserver/protocol"
)

func TestSequencer(t *testing.T) {
	type step struct {
		seq       uint64
		apply     []uint64
		duplicate bool
		violation bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"in order", []step{{seq: 1, apply: []uint64{1}}, {seq: 2, apply: []uint64{2}}}},
		{"1 3 2", []step{{seq: 1, apply: []uint64{1}}, {seq: 3}, {seq: 2, apply: []uint64{2, 3}}}},
		{"duplicate applied", []step{{seq: 1, apply: []uint64{1}}, {seq: 1, duplicate: true}}},
		{"duplicate held", []step{{seq: 2}, {seq: 2, duplicate: true}, {seq: 1, apply: []uint64{1, 2}}}},
		{"beyond window", []step{{seq: 5, violation: true}}},
		{"buffer full", []step{{seq: 2}, {seq: 3}, {seq: 4}, {seq: 5, violation: true}}},
		{"reverse within window", []step{{seq: 4}, {seq: 3}, {seq: 2}, {seq: 1, apply: []uint64{1, 2, 3, 4}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSequencer(4)
			for i, st := range tt.steps {
				res := s.offer(protocol.Frame{Type: protocol.TypeBroadcast, Seq: st.seq})
				var got []uint64
				for _, f := range res.apply {
					got = append(got, f.Seq)
				}
				if fmt.Sprint(got) != fmt.Sprint(st.apply) || res.duplicate != st.duplicate || res.violation != st.violation {
					t.Fatalf("step %d (seq %d): apply %v dup %v viol %v; want %v %v %v", i, st.seq, got, res.duplicate, res.violation, st.apply, st.duplicate, st.violation)
				}
			}
		})
	}
}

func TestSequencerGapGenerations(t *testing.T) {
	s := newSequencer(8)
	r := s.offer(protocol.Frame{Seq: 2})
	if !r.gapOpened {
		t.Fatal("gap not reported as opened")
	}
	if missing, open := s.gapOpenSince(r.gen); !open || missing != 1 {
		t.Fatalf("gapOpenSince = %d, %v", missing, open)
	}
	s.offer(protocol.Frame{Seq: 4}) // second hole (3) behind the first
	r2 := s.offer(protocol.Frame{Seq: 1})
	if !r2.gapOpened {
		t.Fatal("remaining gap (3) must restart the timer")
	}
	if _, open := s.gapOpenSince(r.gen); open {
		t.Fatal("old generation still open")
	}
	if missing, open := s.gapOpenSince(r2.gen); !open || missing != 3 {
		t.Fatalf("gapOpenSince = %d, %v; want 3 open", missing, open)
	}
	if got := fmt.Sprint(s.heldSeqs()); got != "[4]" {
		t.Fatalf("held %s", got)
	}
}

// applied collects the broadcasts of one room seen by a client, as data strings, and the acks.
func collect(t *testing.T, c *client, wantBroadcasts, wantAcks int) (data []string, acks []uint64) {
	t.Helper()
	for len(data) < wantBroadcasts || len(acks) < wantAcks {
		f, ok := c.next(2 * time.Second)
		if !ok {
			t.Fatalf("got %d broadcasts %v and acks %v; want %d and %d", len(data), data, acks, wantBroadcasts, wantAcks)
		}
		switch f.Type {
		case protocol.TypeBroadcast:
			data = append(data, string(f.Data))
		case protocol.TypeAck:
			acks = append(acks, f.Seq)
		}
	}
	return data, acks
}

// Acceptance: frames sent with seq 1, 3, 2 are applied as 1, 2, 3; a duplicate is acked once more and
// applied once.
func TestSeqReorderAndDuplicate(t *testing.T) {
	ts := startServer(t, testConfig())
	c, _ := connect(t, ts, "alice", dialOpts{})
	c.send(protocol.Frame{Type: protocol.TypeJoinRoom, RoomID: "r", Seq: 1})
	c.expect(protocol.TypeRoomJoined, time.Second)
	c.expectMatch(time.Second, "ack 1", func(f protocol.Frame) bool { return f.Type == protocol.TypeAck && f.Seq == 1 })
	for _, seq := range []uint64{2, 4, 3, 3} {
		c.send(protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "r", Seq: seq, Data: []byte(fmt.Sprint(seq))})
	}
	data, acks := collect(t, c, 3, 4)
	if fmt.Sprint(data) != "[2 3 4]" {
		t.Fatalf("applied %v, want [2 3 4]", data)
	}
	if fmt.Sprint(acks) != "[2 3 4 3]" {
		t.Fatalf("acks %v, want [2 3 4 3] (the duplicate 3 acked again)", acks)
	}
	if f, ok := c.next(200 * time.Millisecond); ok {
		t.Fatalf("extra frame after the duplicate: %+v", f)
	}
}

func TestSeqGapNeverFills(t *testing.T) {
	tests := []struct {
		name string
		seqs []uint64
	}{
		{"gap times out", []uint64{1, 3}},
		{"beyond window", []uint64{1, 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, testConfig())
			c, _ := connect(t, ts, "alice", dialOpts{})
			for _, seq := range tt.seqs {
				c.send(protocol.Frame{Type: protocol.TypeJoinRoom, RoomID: fmt.Sprint("r", seq), Seq: seq})
			}
			e := c.expect(protocol.TypeError, 2*time.Second)
			if e.Code != protocol.ErrCodeSeqGap || e.Seq != 2 {
				t.Fatalf("error frame %+v, want seq_gap for seq 2", e)
			}
			if code, _ := c.expectClose(2 * time.Second); code != int(protocol.CloseSeqViolation) {
				t.Fatalf("close %d, want 4003", code)
			}
			waitFor(t, time.Second, "cleanup", func() bool { st := ts.Stats(); return st.ActiveConns == 0 && st.Subscriptions == 0 })
		})
	}
}
