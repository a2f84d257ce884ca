package refserver

import (
	"sort"
	"sync"

	"github.com/squall-dev/squall/refserver/protocol"
)

// sequencer puts one connection's sequenced client frames (join_room, leave_room, broadcast) in seq
// order. Frames that arrive early wait in a buffer bounded by window frames; frames already applied
// are reported as duplicates (to be acked again, not applied). The connection's reader calls offer;
// the gap timer (owned by the connection) calls gapOpenSince under the same mutex.
type sequencer struct {
	window int

	mu   sync.Mutex
	next uint64                    // the seq expected next; starts at 1
	held map[uint64]protocol.Frame // early frames, keyed by seq; nil when empty
	gen  uint64                    // bumps each time a gap opens or closes, to tell timers apart
}

// offerResult says what to do after a frame was offered.
type offerResult struct {
	apply     []protocol.Frame // frames to apply now, in order
	duplicate bool             // the frame was already applied (or is already held): ack it again
	violation bool             // the frame is beyond the window or the buffer is full: close 4003
	missing   uint64           // with violation: the seq that never came
	gapOpened bool             // a gap opened with this frame: start the gap timer for gen
	gen       uint64
}

func newSequencer(window int) *sequencer { return &sequencer{window: window, next: 1} }

// offer takes one sequenced frame.
func (s *sequencer) offer(f protocol.Frame) offerResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case f.Seq < s.next:
		return offerResult{duplicate: true}
	case f.Seq == s.next:
		hadGap := len(s.held) > 0
		res := offerResult{apply: []protocol.Frame{f}}
		s.next++
		for {
			g, ok := s.held[s.next]
			if !ok {
				break
			}
			delete(s.held, s.next)
			res.apply = append(res.apply, g)
			s.next++
		}
		if len(s.held) == 0 {
			s.held = nil
		}
		if hadGap {
			s.gen++ // the old gap closed (a new one may remain: restart its timer)
			if len(s.held) > 0 {
				res.gapOpened, res.gen = true, s.gen
			}
		}
		return res
	default:
		if _, dup := s.held[f.Seq]; dup {
			return offerResult{duplicate: true}
		}
		if f.Seq-s.next >= uint64(s.window) || len(s.held) >= s.window {
			return offerResult{violation: true, missing: s.next}
		}
		opened := len(s.held) == 0
		if s.held == nil {
			s.held = map[uint64]protocol.Frame{}
		}
		s.held[f.Seq] = f
		if opened {
			s.gen++
			return offerResult{gapOpened: true, gen: s.gen}
		}
		return offerResult{}
	}
}

// gapOpenSince reports whether the gap that opened at generation gen is still open, and the missing
// seq.
func (s *sequencer) gapOpenSince(gen uint64) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next, s.gen == gen && len(s.held) > 0
}

// heldSeqs returns the seqs waiting in the buffer, sorted (for tests and error messages).
func (s *sequencer) heldSeqs() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]uint64, 0, len(s.held))
	for q := range s.held {
		out = append(out, q)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
