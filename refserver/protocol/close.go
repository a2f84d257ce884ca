package protocol

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// CloseCode is a WebSocket close status code as this protocol uses it.
type CloseCode int

// Close codes. CloseInfo(code) gives the meaning of each and whether a client should reconnect.
const (
	CloseNormal         CloseCode = 1000 // the peer is done; never reconnect after it
	CloseDraining       CloseCode = 1001 // the node is shutting down; reason carries retry_after_ms=N
	CloseNoStatus       CloseCode = 1005 // no status in the close frame (never sent, only observed)
	CloseAbnormal       CloseCode = 1006 // TCP closed without a close frame (never sent, only observed)
	ClosePolicy         CloseCode = 1008 // a policy was violated; reason is conn_limit, slow_consumer or origin
	CloseTooLarge       CloseCode = 1009 // a frame exceeded the size limit
	CloseInternal       CloseCode = 1011 // the server failed
	CloseTryAgainLater  CloseCode = 1013 // overloaded or shedding; reason carries retry_after_ms=N
	CloseUnauthorized   CloseCode = 4001 // missing, bad or expired token
	CloseSessionUnknown CloseCode = 4002 // the session to continue is unknown or expired
	CloseSeqViolation   CloseCode = 4003 // a gap in the client's seq never filled
)

// Close reasons for ClosePolicy (1008) and others; sent as the close frame's reason text.
const (
	ReasonConnLimit    = "conn_limit"       // too many connections for this user id or remote IP
	ReasonSlowConsumer = "slow_consumer"    // the send queue overflowed
	ReasonOrigin       = "origin"           // the Origin header is not allowed
	ReasonShed         = "shed"             // admission control refused the connection (1013)
	ReasonOverloaded   = "overloaded"       // the node is at its connection cap (1013)
	ReasonDrain        = "draining"         // the node is draining (1001)
	ReasonAuthDown     = "auth_unavailable" // the auth backend's breaker is open (1013)
)

// Reasons lists the close reasons above: a close reason's word (ReasonWord) is one of them, or
// something another gateway chose.
var Reasons = []string{ReasonConnLimit, ReasonSlowConsumer, ReasonOrigin, ReasonShed, ReasonOverloaded, ReasonDrain, ReasonAuthDown}

// CloseMeaning describes one close code.
type CloseMeaning struct {
	Code      CloseCode
	Name      string // short stable name, used in metrics labels and reports
	Meaning   string // one line for humans
	Reconnect bool   // whether a well-behaved client reconnects after it
}

var closeTable = []CloseMeaning{
	{CloseNormal, "normal", "the peer closed the connection on purpose", false},
	{CloseDraining, "draining", "the node is shutting down; reconnect after retry_after_ms", true},
	{CloseNoStatus, "no_status", "a close frame without a status code", true},
	{CloseAbnormal, "abnormal", "the connection dropped without a close frame", true},
	{ClosePolicy, "policy", "a policy was violated (conn_limit, slow_consumer, origin)", true},
	{CloseTooLarge, "too_large", "a frame exceeded the size limit", false},
	{CloseInternal, "internal", "the server failed", true},
	{CloseTryAgainLater, "try_again_later", "overloaded or shedding; reconnect after retry_after_ms", true},
	{CloseUnauthorized, "unauthorized", "missing, bad or expired token", false},
	{CloseSessionUnknown, "session_unknown", "the session is unknown or expired; start a new one", true},
	{CloseSeqViolation, "seq_violation", "a gap in the client's seq never filled", true},
}

// CloseInfo returns what code means. Codes outside the table get a generic entry that allows reconnects.
func CloseInfo(code CloseCode) CloseMeaning {
	for _, m := range closeTable {
		if m.Code == code {
			return m
		}
	}
	return CloseMeaning{Code: code, Name: strconv.Itoa(int(code)), Meaning: "unlisted close code", Reconnect: true}
}

// CloseCodes lists every code of the table in ascending order.
func CloseCodes() []CloseMeaning {
	out := make([]CloseMeaning, len(closeTable))
	copy(out, closeTable)
	return out
}

// retryKey is the key of the retry hint in a close reason.
const retryKey = "retry_after_ms="

// FormatReason builds a close reason: the word (may be empty) followed, when retry > 0, by
// " retry_after_ms=N". Example: FormatReason("draining", 3200*time.Millisecond) =
// "draining retry_after_ms=3200". The result fits the 123-byte limit of a close reason.
func FormatReason(word string, retry time.Duration) string {
	if retry <= 0 {
		return word
	}
	hint := retryKey + strconv.FormatInt(retry.Milliseconds(), 10)
	if word == "" {
		return hint
	}
	return word + " " + hint
}

// MaxRetryHint is the largest retry hint ParseRetryAfter accepts: a longer one (a peer's mistake or
// a hostile value, which could also overflow time.Duration) is not a hint.
const MaxRetryHint = 24 * time.Hour

// ParseRetryAfter finds a retry_after_ms=N hint anywhere in a close reason. N is decimal digits
// only, at most MaxRetryHint; anything else is no hint (ok false).
func ParseRetryAfter(reason string) (time.Duration, bool) {
	i := strings.Index(reason, retryKey)
	if i < 0 {
		return 0, false
	}
	rest := reason[i+len(retryKey):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	if j == 0 {
		return 0, false
	}
	ms, err := strconv.ParseInt(rest[:j], 10, 64)
	if err != nil || ms > MaxRetryHint.Milliseconds() {
		return 0, false
	}
	return time.Duration(ms) * time.Millisecond, true
}

// ReasonWord returns the first word of a close reason (the part before any retry hint).
func ReasonWord(reason string) string {
	if i := strings.IndexByte(reason, ' '); i >= 0 {
		reason = reason[:i]
	}
	if strings.HasPrefix(reason, retryKey) {
		return ""
	}
	return reason
}

func (c CloseCode) String() string {
	return fmt.Sprintf("%d %s", int(c), CloseInfo(c).Name)
}
