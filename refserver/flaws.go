package refserver

import (
	"fmt"
	"sort"
	"strings"
)

// Flaw names one defect from the source incidents that the gateway can switch back on, so that a
// scenario can be shown to catch it. Flaws are off by default.
type Flaw string

// The flaws. Each constant's comment states the exact bad behaviour it brings back.
const (
	// FlawNoServerPing: the server never sends WebSocket pings; staleness is only checked by a slow
	// sweep every Config.FlawSweepInterval (30 s by default), so a silent connection lives up to
	// heartbeat-timeout + sweep interval, and clients that expect server pings time out on their side.
	FlawNoServerPing Flaw = "no-server-ping"
	// FlawLeakOnError: a connection that ends abnormally (without a close handshake: TCP closed, read
	// or write error, heartbeat timeout) is only dropped from the connection table and its limits are
	// released; its room subscriptions, presence entries and session stay behind
	// (ws_orphaned_subscriptions grows, ghosts stay in member lists, no leave is announced). Clean
	// closes and server kicks still clean up.
	FlawLeakOnError Flaw = "leak-on-error"
	// FlawNoPresenceLeave: presence leave events are never sent, and a user whose connection ends stays
	// in the room's presence (a ghost in every later member list). Subscriptions are still released.
	FlawNoPresenceLeave Flaw = "no-presence-leave"
	// FlawNoSeqOrder: client frames are applied in arrival order; seq is neither ordered nor
	// de-duplicated (a duplicate is applied and acked twice), and gaps are never reported.
	FlawNoSeqOrder Flaw = "no-seq-order"
	// FlawNoConnLimit: no per-user, per-IP or per-node connection limits.
	FlawNoConnLimit Flaw = "no-conn-limit"
	// FlawUnboundedHistory: room history is never trimmed, neither by count nor by age.
	FlawUnboundedHistory Flaw = "unbounded-history"
	// FlawNoAuthCache: every connection calls the auth backend, reconnects included: the cache of
	// validated tokens is off.
	FlawNoAuthCache Flaw = "no-auth-cache"
	// FlawNoDrain: a drain (SIGTERM, POST /admin/drain, Shutdown) drops every connection at once,
	// without a close frame and so without a retry hint: every client sees 1006 and reconnects at
	// once, all together. New connections are still refused while it happens.
	FlawNoDrain Flaw = "no-drain"
)

// FlawInfo describes one flaw for --help and documentation.
type FlawInfo struct {
	Flaw        Flaw
	Description string
}

var flawTable = []FlawInfo{
	{FlawNoServerPing, "server never pings; staleness only checked by a slow sweep (--flaw-sweep-interval)"},
	{FlawLeakOnError, "abnormal closes skip cleanup: subscriptions, presence and memory stay"},
	{FlawNoPresenceLeave, "presence leaves are never announced; departed users stay present (ghosts)"},
	{FlawNoSeqOrder, "client frames applied in arrival order, duplicates applied again"},
	{FlawNoConnLimit, "no per-user, per-IP or per-node connection limits"},
	{FlawUnboundedHistory, "room history is never trimmed"},
	{FlawNoAuthCache, "every connection calls the auth backend (no token cache)"},
	{FlawNoDrain, "shutdown drops everyone at once, no close frame, no retry hint"},
}

// AllFlaws lists every flaw with a one-line description, in a stable order.
func AllFlaws() []FlawInfo {
	out := make([]FlawInfo, len(flawTable))
	copy(out, flawTable)
	return out
}

// Flaws is a set of flaws. The zero value is the empty set; it is read-only once a Server holds it.
type Flaws map[Flaw]bool

// Has reports whether f is in the set.
func (fs Flaws) Has(f Flaw) bool { return fs[f] }

// String lists the set comma-separated in sorted order ("" for none); ParseFlaws reads it back.
func (fs Flaws) String() string {
	names := make([]string, 0, len(fs))
	for f, on := range fs {
		if on {
			names = append(names, string(f))
		}
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// ParseFlaws reads a comma-separated list of flaw names ("" and "none" give the empty set). Unknown
// names are an error that lists the known ones.
func ParseFlaws(s string) (Flaws, error) {
	fs := Flaws{}
	s = strings.TrimSpace(s)
	if s == "" || s == "none" {
		return fs, nil
	}
	var unknown []string
	for _, part := range strings.Split(s, ",") {
		name := Flaw(strings.TrimSpace(part))
		if name == "" {
			continue
		}
		if !knownFlaw(name) {
			unknown = append(unknown, string(name))
			continue
		}
		fs[name] = true
	}
	if len(unknown) > 0 {
		known := make([]string, len(flawTable))
		for i, fi := range flawTable {
			known[i] = string(fi.Flaw)
		}
		return nil, fmt.Errorf("unknown flaw %s (known: %s)", strings.Join(unknown, ", "), strings.Join(known, ", "))
	}
	return fs, nil
}

func (fs Flaws) sorted() []Flaw {
	out := make([]Flaw, 0, len(fs))
	for f, on := range fs {
		if on {
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func knownFlaw(f Flaw) bool {
	for _, fi := range flawTable {
		if fi.Flaw == f {
			return true
		}
	}
	return false
}
