// Package stats is the load generator's measurement layer: HDR histograms of latencies, plain
// counters and gauges, recorded by thousands of simulated clients at once and read as cumulative
// snapshots and one-second intervals.
//
// A Recorder is written to by many goroutines concurrently; Record, RecordValue, Add and SetGauge
// are safe for concurrent use, take one short lock (a histogram's own mutex) or none (counters and
// gauges are atomics) and do not allocate once a name has been seen. Snapshot and Tick may be
// called concurrently with recording; Tick is meant to be called by one owner, once a second.
//
// Snapshot, Hist, Interval and Series are plain values: they are safe to read from several
// goroutines, they round-trip through JSON without loss (histograms are carried in the HDR V2
// compressed encoding), and snapshots and series from several workers merge into the same value a
// single process recording everything would have produced.
//
// Histogram values are nanoseconds for latencies (Record) or plain integers (RecordValue), tracked
// from 0 to one hour with three significant digits. Values outside that range are clamped and
// counted under CtrClamped.
package stats

import (
	"strconv"
	"time"
)

// Histogram names. A name not listed here may be used as well; these are the ones loadgen records.
const (
	HistConnect      = "connect"              // TCP connect time
	HistUpgrade      = "upgrade"              // HTTP upgrade (dial to 101)
	HistFirstFrame   = "first_frame"          // upgrade to the first server frame (welcome)
	HistPingRTT      = "ping_rtt"             // WebSocket ping to pong
	HistFanout       = "fanout"               // broadcast latency from the sender's intended send time to each receipt
	HistFanoutServer = "fanout_server"        // broadcast latency from the server's sentAt to each receipt
	HistReconnect    = "reconnect"            // drop to the next welcome
	HistPresence     = "presence_convergence" // a tab's exit to every observer having seen its leave
	HistScheduleLag  = "schedule_lag"         // how late the generator ran a scheduled action
	HistAppPingRTT   = "app_ping_rtt"         // application ping frame to its pong
)

// Counter names. Counter keys are plain strings: a new counter needs no API change.
const (
	CtrConnectAttempts   = "connect_attempts"
	CtrConnects          = "connects"
	CtrConnectErrors     = "connect_errors"
	CtrReconnectAttempts = "reconnect_attempts"
	CtrReconnects        = "reconnects"
	CtrDisconnects       = "disconnects"
	CtrOrderViolations   = "order_violations"
	CtrGaps              = "gaps"
	CtrDuplicates        = "duplicates"
	CtrAckedUndelivered  = "acked_undelivered" // acknowledged by the server but never delivered to a member
	CtrMessagesSent      = "messages_sent"
	CtrMessagesReceived  = "messages_received"
	CtrAcks              = "acks"
	CtrPingsSent         = "pings_sent"
	CtrPongsReceived     = "pongs_received"
	CtrResumes           = "resumes"
	CtrResumeFailures    = "resume_failures"
	CtrClamped           = "stats_clamped" // histogram values outside [0, 1h] that were clamped
)

// Gauge names.
const (
	GaugeConnections = "connections" // connections open now
	GaugeClients     = "clients"     // simulated clients started and not yet finished
)

// Prefixes of labelled counters.
const (
	PrefixCloseCode   = "close_code:"
	PrefixError       = "error:"
	PrefixCloseReason = "close_reason:" // the reason word of a close frame the protocol defines ("slow_consumer")
)

// Error classes for ErrorCounter. Others may be used; keep them short and bounded.
const (
	ErrDialRefused    = "dial_refused"
	ErrDialTimeout    = "dial_timeout"
	ErrDialOther      = "dial_other"
	ErrUpgradeRefused = "upgrade_refused" // HTTP status other than 101
	ErrHandshake      = "handshake"       // upgraded, but no welcome
	ErrRead           = "read"
	ErrWrite          = "write"
	ErrProtocol       = "protocol" // a frame that did not decode or made no sense
)

// closeCodeNames caches the counter keys of the close codes that occur, so that counting a close
// does not allocate.
var closeCodeNames = func() map[int]string {
	m := make(map[int]string)
	for _, c := range []int{1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 1015, 4001, 4002, 4003} {
		m[c] = PrefixCloseCode + strconv.Itoa(c)
	}
	return m
}()

// CloseCodeCounter is the counter key for a close code, e.g. "close_code:1006".
func CloseCodeCounter(code int) string {
	if s, ok := closeCodeNames[code]; ok {
		return s
	}
	return PrefixCloseCode + strconv.Itoa(code)
}

// ErrorCounter is the counter key for an error class, e.g. "error:dial_refused".
func ErrorCounter(class string) string { return PrefixError + class }

// Histogram geometry shared by every histogram, so that any two merge without loss.
const (
	histLowest  = 1
	histHighest = int64(time.Hour)
	histSigFigs = 3
)
