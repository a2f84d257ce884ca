package protocol

import "strconv"

// The fast encoder writes the frames that make up almost all traffic without encoding/json, byte for
// byte what json.Marshal writes for them. simpleLen decides whether a frame is simple and how long its
// encoding is; appendSimple writes it. A frame is simple when:
//   - every string (the string fields and each member) is printable ASCII (0x20..0x7E) without
//     '"', '\\', '<', '>' or '&', which encoding/json writes unescaped;
//   - Data is empty, or one JSON value that scanValue takes whole and that holds no whitespace, no
//     '<', '>' or '&' and no byte >= 0x80, which encoding/json writes unchanged (compacting and
//     HTML-escaping leave it as it is);
//   - Rooms is empty.

// Keys of the fields after "type", with the comma before them, in the order of Frame's fields.
const (
	keyToken             = `,"token":`
	keySession           = `,"session":`
	keyConnID            = `,"connId":`
	keyUserID            = `,"userId":`
	keyHeartbeatInterval = `,"heartbeatInterval":`
	keyHeartbeatTimeout  = `,"heartbeatTimeout":`
	keyRoomID            = `,"roomId":`
	keySeq               = `,"seq":`
	keyData              = `,"data":`
	keyFrom              = `,"from":`
	keyRoomSeq           = `,"roomSeq":`
	keySentAt            = `,"sentAt":`
	keyMembers           = `,"members":`
	keyHeadSeq           = `,"headSeq":`
	keyEvent             = `,"event":`
	keyReason            = `,"reason":`
	keyTimestamp         = `,"timestamp":`
	keyCode              = `,"code":`
	keyMessage           = `,"message":`
)

// simpleLen returns the length of f's JSON encoding, and false when the fast path declines f.
func simpleLen(f *Frame) (int, bool) {
	if len(f.Rooms) != 0 || !plainString(string(f.Type)) {
		return 0, false
	}
	n := len(`{"type":""}`) + len(f.Type)
	ok := true
	str := func(key, s string) {
		if s != "" {
			n += len(key) + len(s) + 2
			ok = ok && plainString(s)
		}
	}
	str(keyToken, f.Token)
	str(keySession, f.Session)
	str(keyConnID, f.ConnID)
	str(keyUserID, f.UserID)
	n += intLen(keyHeartbeatInterval, f.HeartbeatInterval)
	n += intLen(keyHeartbeatTimeout, f.HeartbeatTimeout)
	str(keyRoomID, f.RoomID)
	n += uintLen(keySeq, f.Seq)
	if len(f.Data) != 0 {
		n += len(keyData) + len(f.Data)
		ok = ok && plainData(f.Data)
	}
	str(keyFrom, f.From)
	n += uintLen(keyRoomSeq, f.RoomSeq)
	n += intLen(keySentAt, f.SentAt)
	if len(f.Members) != 0 {
		n += len(keyMembers) + len(`[]`) + len(f.Members) - 1 // the brackets and the commas
		for _, m := range f.Members {
			n += len(m) + 2
			ok = ok && plainString(m)
		}
	}
	n += uintLen(keyHeadSeq, f.HeadSeq)
	str(keyEvent, f.Event)
	str(keyReason, f.Reason)
	n += intLen(keyTimestamp, f.Timestamp)
	str(keyCode, f.Code)
	str(keyMessage, f.Message)
	return n, ok
}

// appendSimple appends the JSON encoding of f, a frame simpleLen takes, to dst.
func appendSimple(dst []byte, f *Frame) []byte {
	dst = append(dst, `{"type":"`...)
	dst = append(dst, f.Type...)
	dst = append(dst, '"')
	dst = appendString(dst, keyToken, f.Token)
	dst = appendString(dst, keySession, f.Session)
	dst = appendString(dst, keyConnID, f.ConnID)
	dst = appendString(dst, keyUserID, f.UserID)
	dst = appendInt(dst, keyHeartbeatInterval, f.HeartbeatInterval)
	dst = appendInt(dst, keyHeartbeatTimeout, f.HeartbeatTimeout)
	dst = appendString(dst, keyRoomID, f.RoomID)
	dst = appendUint(dst, keySeq, f.Seq)
	if len(f.Data) != 0 {
		dst = append(dst, keyData...)
		dst = append(dst, f.Data...)
	}
	dst = appendString(dst, keyFrom, f.From)
	dst = appendUint(dst, keyRoomSeq, f.RoomSeq)
	dst = appendInt(dst, keySentAt, f.SentAt)
	if len(f.Members) != 0 {
		dst = append(dst, keyMembers...)
		dst = append(dst, '[')
		for i, m := range f.Members {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '"')
			dst = append(dst, m...)
			dst = append(dst, '"')
		}
		dst = append(dst, ']')
	}
	dst = appendUint(dst, keyHeadSeq, f.HeadSeq)
	dst = appendString(dst, keyEvent, f.Event)
	dst = appendString(dst, keyReason, f.Reason)
	dst = appendInt(dst, keyTimestamp, f.Timestamp)
	dst = appendString(dst, keyCode, f.Code)
	dst = appendString(dst, keyMessage, f.Message)
	return append(dst, '}')
}

func appendString(dst []byte, key, s string) []byte {
	if s == "" {
		return dst
	}
	dst = append(dst, key...)
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

func appendInt(dst []byte, key string, v int64) []byte {
	if v == 0 {
		return dst
	}
	return strconv.AppendInt(append(dst, key...), v, 10)
}

func appendUint(dst []byte, key string, v uint64) []byte {
	if v == 0 {
		return dst
	}
	return strconv.AppendUint(append(dst, key...), v, 10)
}

// intLen is the length appendInt adds.
func intLen(key string, v int64) int {
	switch {
	case v == 0:
		return 0
	case v < 0:
		return len(key) + 1 + digits(uint64(-v)) // -MinInt64 wraps to its own magnitude as a uint64
	}
	return len(key) + digits(uint64(v))
}

// uintLen is the length appendUint adds.
func uintLen(key string, v uint64) int {
	if v == 0 {
		return 0
	}
	return len(key) + digits(v)
}

// digits returns the number of decimal digits of v > 0.
func digits(v uint64) int {
	n := 1
	for v >= 10 {
		v /= 10
		n++
	}
	return n
}

// plainString reports whether encoding/json writes s between quotes as it is.
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		if !plainEncodeByte[s[i]] {
			return false
		}
	}
	return true
}

// plainEncodeByte tells the bytes encoding/json writes in a string unescaped, HTML escaping on.
var plainEncodeByte = func() (t [256]bool) {
	for c := 0x20; c < 0x7F; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// plainData reports whether encoding/json writes the json.RawMessage d as it is: one valid JSON
// value (as scanValue reads it), without whitespace, '<', '>', '&' or non-ASCII bytes.
func plainData(d []byte) bool {
	for _, c := range d {
		if c <= ' ' || c >= 0x80 || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	end, ok := scanValue(d, 0, 0)
	return ok && end == len(d)
}
