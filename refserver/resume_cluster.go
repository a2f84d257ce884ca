package refserver

import (
	"context"
	"time"

	"github.com/squall-dev/squall/refserver/protocol"
)

// Resume in cluster mode. A node holds a room's history only while it holds the room: when the
// room's last local member left and the room was reaped, broadcasts from members on other nodes are
// no longer delivered here, so a client that resumes on this node would find a gap in the local
// history. When the broker keeps the history where every node can read it (HistorySource), resume
// then takes the missed broadcasts from there: they are fetched after the room is subscribed again,
// so together with what is delivered live from then on they cover everything after the client's
// last roomSeq.

// remoteHistory fetches the room's broadcasts after `after` from the broker when the local history
// does not cover them. It returns ok=false when there is nothing to fetch or nothing usable.
func (h *hub) remoteHistory(ctx context.Context, r *room, after, head uint64, now time.Time) ([]RoomEvent, bool) {
	hs, isHS := h.s.broker.(HistorySource)
	if !isHS {
		return nil, false
	}
	r.mu.Lock()
	r.hist.trim(now)
	_, covered := r.hist.since(after, max(head, r.head))
	r.mu.Unlock()
	if covered {
		return nil, false
	}
	evs, ok, err := hs.History(ctx, r.id, after)
	if err != nil {
		h.s.log.Warn("resume: room history from the broker failed", "room_id", r.id, "err", err)
		return nil, false
	}
	return evs, ok
}

// mergeRemoteHistory returns the broadcasts after `after` up to head (both roomSeq) from the remote
// events, completed by the local history for the part delivered here after the fetch, and whether
// together they cover the whole range. Called with the room locked.
func mergeRemoteHistory(remote []RoomEvent, local *history, after, head uint64) ([]historyEntry, bool) {
	out := make([]historyEntry, 0, len(remote))
	next := after + 1
	for i := range remote {
		seq := remote[i].Frame.RoomSeq
		if seq < next {
			continue
		}
		if seq != next || seq > head {
			break
		}
		payload, err := protocol.Encode(&remote[i].Frame)
		if err != nil {
			return nil, false
		}
		out = append(out, historyEntry{seq: seq, at: time.UnixMilli(remote[i].Frame.SentAt), payload: payload})
		next++
	}
	if next > head {
		return out, true
	}
	rest, ok := local.since(next-1, head)
	if !ok {
		return nil, false
	}
	return append(out, rest...), true
}
