package protocol

import (
	"bytes"
	"math"
)

// decodeSimple decodes the frames that make up almost all traffic without encoding/json. It accepts
// only a strict subset of JSON and returns false for anything else, possibly after writing to f; the
// caller then resets f and decodes with encoding/json. When it returns true, f is exactly what
// json.Unmarshal would produce into a zero Frame, and json.Unmarshal would return no error.
//
// b must be valid UTF-8 and f a zero Frame. The subset is one object whose keys are exactly the JSON
// names of Frame's fields (no escapes, no other spelling or case, none twice, not "rooms") and whose
// values are of the field's type:
//   - string fields: a string without escapes or control characters;
//   - integer fields: an integer without leading zeros, fraction or exponent, in range, with a
//     minus sign only for the signed ones;
//   - members: an array of such strings;
//   - data: any JSON value but null, its strings as above, nested at most maxDataDepth deep;
//
// and no null anywhere outside data.
func decodeSimple(b []byte, f *Frame) bool {
	i := skipSpace(b, 0)
	if i == len(b) || b[i] != '{' {
		return false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipSpace(b, i+1) == len(b)
	}
	var seen uint32
	for {
		start, end, ok := scanString(b, i)
		if !ok {
			return false
		}
		field := fieldOf(b[start:end])
		if field < 0 || seen&(1<<field) != 0 {
			return false
		}
		seen |= 1 << field
		i = skipSpace(b, end+1)
		if i == len(b) || b[i] != ':' {
			return false
		}
		i = skipSpace(b, i+1)
		if i, ok = decodeField(b, i, field, f); !ok {
			return false
		}
		i = skipSpace(b, i)
		if i == len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return skipSpace(b, i+1) == len(b)
		default:
			return false
		}
	}
}

// Field numbers of decodeSimple, one bit each in its set of keys seen.
const (
	fType = iota
	fToken
	fSession
	fConnID
	fUserID
	fHeartbeatInterval
	fHeartbeatTimeout
	fRoomID
	fSeq
	fData
	fFrom
	fRoomSeq
	fSentAt
	fMembers
	fHeadSeq
	fEvent
	fReason
	fTimestamp
	fCode
	fMessage
)

// fieldOf returns the field number of a key, or -1 for a key decodeSimple leaves to encoding/json.
func fieldOf(key []byte) int {
	switch string(key) {
	case "type":
		return fType
	case "token":
		return fToken
	case "session":
		return fSession
	case "connId":
		return fConnID
	case "userId":
		return fUserID
	case "heartbeatInterval":
		return fHeartbeatInterval
	case "heartbeatTimeout":
		return fHeartbeatTimeout
	case "roomId":
		return fRoomID
	case "seq":
		return fSeq
	case "data":
		return fData
	case "from":
		return fFrom
	case "roomSeq":
		return fRoomSeq
	case "sentAt":
		return fSentAt
	case "members":
		return fMembers
	case "headSeq":
		return fHeadSeq
	case "event":
		return fEvent
	case "reason":
		return fReason
	case "timestamp":
		return fTimestamp
	case "code":
		return fCode
	case "message":
		return fMessage
	}
	return -1
}

// decodeField decodes the value at b[i:] into field and returns the index after it.
func decodeField(b []byte, i, field int, f *Frame) (int, bool) {
	switch field {
	case fHeartbeatInterval, fHeartbeatTimeout, fSentAt, fTimestamp:
		v, end, ok := scanInt(b, i)
		if !ok {
			return 0, false
		}
		switch field {
		case fHeartbeatInterval:
			f.HeartbeatInterval = v
		case fHeartbeatTimeout:
			f.HeartbeatTimeout = v
		case fSentAt:
			f.SentAt = v
		default:
			f.Timestamp = v
		}
		return end, true
	case fSeq, fRoomSeq, fHeadSeq:
		v, end, ok := scanUint(b, i)
		if !ok {
			return 0, false
		}
		switch field {
		case fSeq:
			f.Seq = v
		case fRoomSeq:
			f.RoomSeq = v
		default:
			f.HeadSeq = v
		}
		return end, true
	case fData:
		if i < len(b) && b[i] == 'n' {
			return 0, false // null: encoding/json's business
		}
		end, ok := scanValue(b, i, 0)
		if !ok {
			return 0, false
		}
		f.Data = append([]byte(nil), b[i:end]...) // a copy, as encoding/json makes: callers reuse b
		return end, true
	case fMembers:
		return scanMembers(b, i, f)
	}
	start, end, ok := scanString(b, i)
	if !ok {
		return 0, false
	}
	s := b[start:end]
	switch field {
	case fType:
		f.Type = typeOf(s)
	case fToken:
		f.Token = string(s)
	case fSession:
		f.Session = string(s)
	case fConnID:
		f.ConnID = string(s)
	case fUserID:
		f.UserID = string(s)
	case fRoomID:
		f.RoomID = string(s)
	case fFrom:
		f.From = string(s)
	case fEvent:
		f.Event = eventOf(s)
	case fReason:
		f.Reason = reasonOf(s)
	case fCode:
		f.Code = string(s)
	case fMessage:
		f.Message = string(s)
	default:
		return 0, false
	}
	return end + 1, true
}

// scanMembers decodes an array of strings into f.Members, in one allocation for the slice; like
// encoding/json, it leaves an empty, non-nil slice for [].
func scanMembers(b []byte, i int, f *Frame) (int, bool) {
	if i == len(b) || b[i] != '[' {
		return 0, false
	}
	open := i
	i = skipSpace(b, i+1)
	n := 0
	if i < len(b) && b[i] == ']' {
		f.Members = make([]string, 0)
		return i + 1, true
	}
	for {
		_, end, ok := scanString(b, i)
		if !ok {
			return 0, false
		}
		n++
		i = skipSpace(b, end+1)
		if i == len(b) {
			return 0, false
		}
		if b[i] == ']' {
			break
		}
		if b[i] != ',' {
			return 0, false
		}
		i = skipSpace(b, i+1)
	}
	// The array is valid: between its strings there is only whitespace and commas.
	members := make([]string, n)
	j := open
	for k := range members {
		start := j + 1 + bytes.IndexByte(b[j+1:], '"') + 1
		j = start + bytes.IndexByte(b[start:], '"')
		members[k] = string(b[start:j])
	}
	f.Members = members
	return i + 1, true
}

// typeOf returns the Type constant spelled s, without allocating, or a new Type for another.
func typeOf(s []byte) Type {
	switch string(s) {
	case "broadcast":
		return TypeBroadcast
	case "ack":
		return TypeAck
	case "ping":
		return TypePing
	case "pong":
		return TypePong
	case "presence":
		return TypePresence
	case "join_room":
		return TypeJoinRoom
	case "room_joined":
		return TypeRoomJoined
	case "leave_room":
		return TypeLeaveRoom
	case "room_left":
		return TypeRoomLeft
	case "hello":
		return TypeHello
	case "welcome":
		return TypeWelcome
	case "error":
		return TypeError
	case "resume":
		return TypeResume
	case "resumed":
		return TypeResumed
	case "resume_failed":
		return TypeResumeFailed
	}
	return Type(s)
}

// eventOf returns the Presence* constant spelled s, without allocating, or a new string.
func eventOf(s []byte) string {
	switch string(s) {
	case PresenceJoin:
		return PresenceJoin
	case PresenceLeave:
		return PresenceLeave
	}
	return string(s)
}

// reasonOf returns the Reason* constant spelled s, without allocating, or a new string.
func reasonOf(s []byte) string {
	switch string(s) {
	case ReasonJoined:
		return ReasonJoined
	case ReasonLeft:
		return ReasonLeft
	case ReasonClosed:
		return ReasonClosed
	case ReasonTimeout:
		return ReasonTimeout
	case ReasonError:
		return ReasonError
	case ReasonKicked:
		return ReasonKicked
	}
	return string(s)
}

// skipSpace returns the index of the first byte at or after i that is not JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// scanString reads a string at b[i:] that holds no escape and no control character: it returns the
// bounds of its contents (end is the index of the closing quote).
func scanString(b []byte, i int) (start, end int, ok bool) {
	if i == len(b) || b[i] != '"' {
		return 0, 0, false
	}
	j := i + 1
	for j < len(b) && plainByte[b[j]] {
		j++
	}
	if j == len(b) || b[j] != '"' {
		return 0, 0, false
	}
	return i + 1, j, true
}

// plainByte tells the bytes a string scanned by scanString may hold: all but the quote, the
// backslash and control characters.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// scanDigits reads the digits of a JSON integer (no leading zero but for 0 itself) at b[i:] as a
// magnitude no greater than limit. It declines a fraction or exponent after them.
func scanDigits(b []byte, i int, limit uint64) (uint64, int, bool) {
	if i == len(b) || b[i] < '0' || b[i] > '9' {
		return 0, 0, false
	}
	if b[i] == '0' {
		i++
	} else {
		var v uint64
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			d := uint64(b[i] - '0')
			if v > (limit-d)/10 {
				return 0, 0, false
			}
			v = v*10 + d
		}
		if i < len(b) && (b[i] == '.' || b[i] == 'e' || b[i] == 'E') {
			return 0, 0, false
		}
		return v, i, true
	}
	if i < len(b) && (b[i] == '.' || b[i] == 'e' || b[i] == 'E' || (b[i] >= '0' && b[i] <= '9')) {
		return 0, 0, false
	}
	return 0, i, true
}

// scanUint reads a non-negative JSON integer that fits a uint64.
func scanUint(b []byte, i int) (uint64, int, bool) {
	return scanDigits(b, i, math.MaxUint64)
}

// scanInt reads a JSON integer that fits an int64.
func scanInt(b []byte, i int) (int64, int, bool) {
	if i < len(b) && b[i] == '-' {
		v, end, ok := scanDigits(b, i+1, 1<<63)
		return int64(-v), end, ok // -(1<<63) wraps to math.MinInt64, as it should
	}
	v, end, ok := scanDigits(b, i, math.MaxInt64)
	return int64(v), end, ok
}

// maxDataDepth bounds the nesting of objects and arrays in data that decodeSimple takes.
const maxDataDepth = 16

// scanValue reads one JSON value at b[i:] — strings without escapes or control characters, arrays
// and objects nested at most maxDataDepth deep — and returns the index after it.
func scanValue(b []byte, i, depth int) (int, bool) {
	if i == len(b) {
		return 0, false
	}
	switch c := b[i]; {
	case c == '"':
		_, end, ok := scanString(b, i)
		return end + 1, ok
	case c == '-' || (c >= '0' && c <= '9'):
		return scanNumber(b, i)
	case c == 't':
		return scanLiteral(b, i, "true")
	case c == 'f':
		return scanLiteral(b, i, "false")
	case c == 'n':
		return scanLiteral(b, i, "null")
	case c == '{':
		if depth == maxDataDepth {
			return 0, false
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, true
		}
		for {
			_, end, ok := scanString(b, i)
			if !ok {
				return 0, false
			}
			i = skipSpace(b, end+1)
			if i == len(b) || b[i] != ':' {
				return 0, false
			}
			if i, ok = scanValue(b, skipSpace(b, i+1), depth+1); !ok {
				return 0, false
			}
			i = skipSpace(b, i)
			if i == len(b) {
				return 0, false
			}
			switch b[i] {
			case ',':
				i = skipSpace(b, i+1)
			case '}':
				return i + 1, true
			default:
				return 0, false
			}
		}
	case c == '[':
		if depth == maxDataDepth {
			return 0, false
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = scanValue(b, i, depth+1); !ok {
				return 0, false
			}
			i = skipSpace(b, i)
			if i == len(b) {
				return 0, false
			}
			switch b[i] {
			case ',':
				i = skipSpace(b, i+1)
			case ']':
				return i + 1, true
			default:
				return 0, false
			}
		}
	}
	return 0, false
}

// scanLiteral reads the literal lit (true, false or null) at b[i:].
func scanLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, false
	}
	return i + len(lit), true
}

// scanNumber reads a JSON number at b[i:]: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
func scanNumber(b []byte, i int) (int, bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i == len(b):
		return 0, false
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		i = skipDigits(b, i+1)
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}
