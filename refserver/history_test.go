package refserver

import (
	"fmt"
	"net"
	"testing"
	"time"
)

func TestHistory(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name      string
		max       int
		ttl       time.Duration
		unbounded bool
		adds      int
		step      time.Duration
		wantLen   int
		wantFirst uint64
	}{
		{"count bound", 3, time.Hour, false, 10, time.Millisecond, 3, 8},
		{"age bound", 100, 5 * time.Second, false, 10, time.Second, 6, 5},
		{"unbounded", 3, time.Second, true, 10, time.Second, 10, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHistory(tt.max, tt.ttl, tt.unbounded)
			for i := 1; i <= tt.adds; i++ {
				h.add(historyEntry{seq: uint64(i), at: t0.Add(time.Duration(i) * tt.step)})
			}
			if h.len() != tt.wantLen || h.entries[0].seq != tt.wantFirst {
				t.Fatalf("len %d first %d, want %d and %d", h.len(), h.entries[0].seq, tt.wantLen, tt.wantFirst)
			}
		})
	}
}

func TestHistorySince(t *testing.T) {
	h := newHistory(5, time.Hour, false)
	for i := 1; i <= 8; i++ { // keeps 4..8
		h.add(historyEntry{seq: uint64(i), at: time.Now()})
	}
	for _, tc := range []struct {
		after   uint64
		want    string
		covered bool
	}{
		{8, "[]", true}, {5, "[6 7 8]", true}, {3, "[4 5 6 7 8]", true}, {2, "[]", false}, {0, "[]", false},
	} {
		got, ok := h.since(tc.after, 8)
		seqs := []uint64{}
		for _, e := range got {
			seqs = append(seqs, e.seq)
		}
		if fmt.Sprint(seqs) != tc.want || ok != tc.covered {
			t.Errorf("since(%d) = %v %v, want %s %v", tc.after, seqs, ok, tc.want, tc.covered)
		}
	}
}

// fakeListener is a listener that claims an address and accepts nothing.
type fakeListener struct{ addr string }

func (l fakeListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (l fakeListener) Close() error              { return nil }
func (l fakeListener) Addr() net.Addr {
	a, _ := net.ResolveTCPAddr("tcp", l.addr)
	return a
}
