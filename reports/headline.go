package reports

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/stats"
)

// Headline is the handful of figures a run is summed up by — the terminal's end summary, the
// headline of summary.md and the headline rows of a baseline comparison all read them here, so that
// a name means one thing everywhere.
//
// Errors is honest: it counts every connection attempt that failed (refused, timed out, HTTP 503 or
// another status instead of 101, no welcome) and every connection that ended other than cleanly —
// a close code other than 1000 (normal) and 1001 (going away, a drain with its retry hint), which
// includes 1006 (abnormal: no close frame), 1008 (policy: connection limit, slow consumer), 1011
// and 1013 (overloaded, shed), and the 4xxx codes —, a connection that died without a close (read
// or write error), and a connection the client cut because it heard nothing for its read timeout.
// False disconnects (live clients cut for a heartbeat reason) are among those and are also shown on
// their own. Error frames the server sends before a close (4003) are not counted twice: the close
// counts.
type Headline struct {
	// Clients is the number of simulated clients the plan started.
	Clients int `json:"clients"`
	// ConnectAttempts are dials, first connections and reconnections alike; Connects those that
	// were upgraded.
	ConnectAttempts int64 `json:"connect_attempts"`
	Connects        int64 `json:"connects"`
	// PeakConnections is the most connections open at once (one-second series).
	PeakConnections int64 `json:"peak_connections"`
	// Errors is the sum of ErrorKinds (see the type's documentation).
	Errors int64 `json:"errors"`
	// ErrorKinds break Errors down, largest first.
	ErrorKinds []ErrorKind `json:"error_kinds,omitempty"`
	// FalseDisconnects are live, well-behaved clients cut for a heartbeat reason (among Errors).
	FalseDisconnects int64 `json:"false_disconnects"`
	// AbnormalCloses are connections that ended without a clean close: every close code other than
	// 1000 and 1001, and connections that died without a close frame (among Errors).
	AbnormalCloses int64 `json:"abnormal_closes"`
	// ErrorRate is Errors / ConnectAttempts (0 without attempts).
	ErrorRate float64 `json:"error_rate"`
	// DisconnectRate is AbnormalCloses / Connects (0 without connects).
	DisconnectRate float64 `json:"disconnect_rate"`
	// MessagesSent and MessagesReceived are broadcasts sent by the clients and fan-out receipts.
	MessagesSent     int64 `json:"messages_sent"`
	MessagesReceived int64 `json:"messages_received"`
	// ConnectTime is connect_time, from dialling to the upgraded connection (TCP connect and HTTP
	// upgrade: the same span as the connect_time SLO). Fanout is fanout_latency, PingRTT ping_rtt,
	// Reconnect reconnect_time (a drop to the next welcome).
	ConnectTime Latency `json:"connect_time"`
	Fanout      Latency `json:"fanout_latency"`
	PingRTT     Latency `json:"ping_rtt"`
	Reconnect   Latency `json:"reconnect_time"`
	// MemoryPerConnection is the gateway's resident memory per open connection at the peak of
	// connections (0 without telemetry).
	MemoryPerConnection float64 `json:"memory_per_connection_bytes"`
}

// ErrorKind is one kind of error and how many there were.
type ErrorKind struct {
	// Kind is a close code ("close 1006") or an error class ("dial_refused", "upgrade_refused",
	// "read", "read_timeout", ...), as the counters name it.
	Kind  string `json:"kind"`
	Count int64  `json:"count"`
}

// Latency is a latency histogram's count and percentiles.
type Latency struct {
	Count int64         `json:"count"`
	P50   time.Duration `json:"p50_ns"`
	P99   time.Duration `json:"p99_ns"`
	Max   time.Duration `json:"max_ns"`
}

// cleanClose reports whether a close code is a clean end of a connection, not an error: 1000 (normal)
// and 1001 (going away, a draining node with its retry hint).
func cleanClose(code int) bool { return code == 1000 || code == 1001 }

// serverErrorFrame is the error class prefix of an error frame the server sent (loadgen counts
// them as "error:server_CODE"); the close that follows is what counts as the error.
const serverErrorFrame = "server_"

// connectionLost are the error classes of a connection that ended without a close frame.
var connectionLost = map[string]bool{stats.ErrRead: true, stats.ErrWrite: true, "read_timeout": true}

// HeadlineOf reads the headline figures of r.
func HeadlineOf(r *Result) Headline {
	s := r.Stats
	h := Headline{
		ConnectAttempts:  s.Counter(stats.CtrConnectAttempts),
		Connects:         s.Counter(stats.CtrConnects),
		FalseDisconnects: s.Counter(loadgen.CtrFalseDisconnects),
		MessagesSent:     s.Counter(stats.CtrMessagesSent),
		MessagesReceived: s.Counter(stats.CtrMessagesReceived),
		ConnectTime:      latencyOf(s, stats.HistUpgrade),
		Fanout:           latencyOf(s, stats.HistFanout),
		PingRTT:          latencyOf(s, stats.HistPingRTT),
		Reconnect:        latencyOf(s, stats.HistReconnect),

		MemoryPerConnection: r.Telemetry.Summary.MemoryPerConnAtPeak,
	}
	h.Clients = r.Clients()
	for _, iv := range r.Series {
		h.PeakConnections = max(h.PeakConnections, iv.Gauges[stats.GaugeConnections])
	}
	h.PeakConnections = max(h.PeakConnections, s.Gauge(stats.GaugeConnections))
	h.ErrorKinds, h.Errors, h.AbnormalCloses = CountErrors(s.Counters)
	if h.ConnectAttempts > 0 {
		h.ErrorRate = float64(h.Errors) / float64(h.ConnectAttempts)
	}
	if h.Connects > 0 {
		h.DisconnectRate = float64(h.AbnormalCloses) / float64(h.Connects)
	}
	return h
}

// CountErrors counts the errors among a run's counters (the overall ones; per-cohort copies are
// left out) as Headline does: kinds, largest first, their total, and how many of them are
// connections that ended without a clean close. The live progress line and the end summary count
// with it, so that "errors" means one thing.
func CountErrors(counters map[string]int64) (kinds []ErrorKind, total, abnormal int64) {
	for _, k := range slices.Sorted(maps.Keys(counters)) {
		v := counters[k]
		if v == 0 {
			continue
		}
		if code, ok := strings.CutPrefix(k, stats.PrefixCloseCode); ok {
			if n, err := strconv.Atoi(code); err == nil && cleanClose(n) {
				continue
			}
			kinds = append(kinds, ErrorKind{Kind: "close " + code, Count: v})
			abnormal += v
			continue
		}
		if class, ok := strings.CutPrefix(k, stats.PrefixError); ok {
			if strings.HasPrefix(class, serverErrorFrame) {
				continue
			}
			kinds = append(kinds, ErrorKind{Kind: class, Count: v})
			if connectionLost[class] {
				abnormal += v
			}
		}
	}
	slices.SortStableFunc(kinds, func(a, b ErrorKind) int { return cmp.Compare(b.Count, a.Count) })
	for _, k := range kinds {
		total += k.Count
	}
	return kinds, total, abnormal
}

func latencyOf(s Stats, name string) Latency {
	hist := s.Hist(name)
	if hist.Count() == 0 {
		return Latency{}
	}
	return Latency{Count: hist.Count(), P50: time.Duration(hist.Percentile(50)), P99: time.Duration(hist.Percentile(99)), Max: time.Duration(hist.Max())}
}
