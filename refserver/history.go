package refserver

import "time"

// historyEntry is one delivered broadcast as it went on the wire.
type historyEntry struct {
	seq     uint64
	at      time.Time
	payload []byte // the encoded broadcast frame, shared with the send queues (read-only)
}

// history is a room's bounded record of recent broadcasts, trimmed by count and by age, kept in
// roomSeq order. Resume replays from it. Not safe for concurrent use: the room's lock
// guards it.
type history struct {
	max       int
	ttl       time.Duration
	unbounded bool // FlawUnboundedHistory: never trim
	entries   []historyEntry
}

func newHistory(max int, ttl time.Duration, unbounded bool) *history {
	return &history{max: max, ttl: ttl, unbounded: unbounded}
}

// add appends an entry (seq must be the previous one + 1) and trims.
func (h *history) add(e historyEntry) {
	h.entries = append(h.entries, e)
	h.trim(e.at)
}

// trim drops entries beyond the count bound and older than the TTL at now.
func (h *history) trim(now time.Time) {
	if h.unbounded || len(h.entries) == 0 {
		return
	}
	drop := 0
	if over := len(h.entries) - h.max; over > 0 {
		drop = over
	}
	cutoff := now.Add(-h.ttl)
	for drop < len(h.entries) && h.entries[drop].at.Before(cutoff) {
		drop++
	}
	if drop == 0 {
		return
	}
	n := copy(h.entries, h.entries[drop:])
	for i := n; i < len(h.entries); i++ {
		h.entries[i] = historyEntry{}
	}
	h.entries = h.entries[:n]
	if cap(h.entries) > 2*h.max+16 { // give back memory after a burst
		h.entries = append([]historyEntry(nil), h.entries...)
	}
}

// len returns the number of entries held.
func (h *history) len() int { return len(h.entries) }

// since returns the entries with seq > after, in order, and whether the history covers the range
// (false when entries the caller missed were already trimmed).
func (h *history) since(after, head uint64) ([]historyEntry, bool) {
	if after >= head {
		return nil, true
	}
	if len(h.entries) == 0 || h.entries[0].seq > after+1 {
		return nil, false
	}
	i := int(after + 1 - h.entries[0].seq)
	out := make([]historyEntry, len(h.entries)-i)
	copy(out, h.entries[i:])
	return out, true
}
