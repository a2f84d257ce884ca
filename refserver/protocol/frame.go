// Package protocol is the wire contract between the reference gateway (refserver) and the load
// generator (loadgen), and the one source of truth for it: frame types and their fields, close codes
// and their meaning, the retry hint carried in close reasons, the JWT claims, HTTP paths and the
// names of the gateway's Prometheus metrics.
//
// # Frames
//
// Every message in either direction is one JSON object in one WebSocket text frame. The "type" field
// selects the frame; the other fields depend on it (see the Type constants). Both directions use the
// single Frame struct: a field a type does not use is left at its zero value and omitted on the wire.
// Decode validates what it returns: a known type and the fields that type requires. Unknown JSON fields
// are ignored so that newer peers can add fields.
//
// # Text
//
// A frame is UTF-8 text, all of it: Decode refuses a payload holding invalid UTF-8 anywhere (also
// inside "data", which is otherwise passed through untouched, or in a field the frame's type does not
// use) with a DecodeError of code ErrCodeInvalidUTF8 — the gateway answers it with an error frame of
// that code and keeps the connection, as for a WebSocket text frame that is not UTF-8 — and Encode
// refuses a Frame whose Data is not valid UTF-8 (the string fields cannot carry invalid UTF-8 onto
// the wire: encoding/json replaces it with U+FFFD). So whatever one peer decodes, it can encode again
// unchanged, and every byte a peer writes is valid UTF-8.
//
// # Sequence numbers
//
// Client frames that change state (join_room, leave_room, broadcast) carry a per-connection "seq"
// starting at 1 and increasing by one per frame. The server applies them in seq order, holding frames
// that arrive early in a small reorder buffer, dropping duplicates (and acknowledging them again), and
// closing the connection with CloseSeqViolation (4003) when a gap never fills. Every applied frame is
// acknowledged with an "ack" frame carrying its seq. A new connection (also one that resumes a session)
// starts again at seq 1.
//
// Each room stamps a strictly increasing, gap-free "roomSeq" on every broadcast it delivers, starting at
// 1, so receivers can verify order and detect gaps. "headSeq" in room_joined is the last roomSeq the room
// has stamped (0 for a room that has carried no broadcast).
//
// # Concurrency
//
// Everything in this package is a pure function or an immutable value and is safe for concurrent use.
package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"
)

// Type names a frame. The constants below are every type on the wire.
type Type string

// Client → server frame types.
const (
	// TypeHello authenticates a connection that did not pass a token in the URL, and optionally asks to
	// continue a session. Fields: Token (required), Session (optional).
	TypeHello Type = "hello"
	// TypeJoinRoom joins a room. Fields: RoomID, Seq.
	TypeJoinRoom Type = "join_room"
	// TypeLeaveRoom leaves a room. Fields: RoomID, Seq.
	TypeLeaveRoom Type = "leave_room"
	// TypeBroadcast (client → server) sends Data to every member of a room, the sender included.
	// Fields: RoomID, Data (any JSON value), Seq. The same type name is used server → client.
	TypeBroadcast Type = "broadcast"
	// TypePing is the application heartbeat, separate from WebSocket ping control frames.
	// Fields: Timestamp (client clock, ms). Answered with TypePong echoing Timestamp.
	TypePing Type = "ping"
	// TypeResume asks the server to replay what a session missed. Fields: Session, Rooms
	// (roomId → last roomSeq seen). Answered with TypeResumed or TypeResumeFailed.
	TypeResume Type = "resume"
)

// Server → client frame types.
const (
	// TypeWelcome is the first frame after authentication. Fields: Session, ConnID, UserID,
	// HeartbeatInterval and HeartbeatTimeout (ms).
	TypeWelcome Type = "welcome"
	// TypeRoomJoined confirms a join. Fields: RoomID, Members (user ids present, sorted), HeadSeq.
	TypeRoomJoined Type = "room_joined"
	// TypeRoomLeft confirms a leave. Fields: RoomID, Members, HeadSeq.
	TypeRoomLeft Type = "room_left"
	// TypePresence announces that a user joined or left a room. Fields: RoomID, Event, UserID, Reason.
	TypePresence Type = "presence"
	// TypePong answers TypePing. Fields: Timestamp (echoed).
	TypePong Type = "pong"
	// TypeAck acknowledges an applied client frame. Fields: Seq.
	TypeAck Type = "ack"
	// TypeResumed answers a successful resume. Fields: Rooms (roomId → number of broadcasts replayed).
	TypeResumed Type = "resumed"
	// TypeResumeFailed answers a resume the history no longer covers. Fields: Reason, and Rooms naming
	// the rooms that could not be resumed (value 0). The client re-joins those rooms fresh.
	TypeResumeFailed Type = "resume_failed"
	// TypeError reports a problem with a client frame; the connection stays open unless a close follows.
	// Fields: Code (one of the Err* codes), Message (human text), Seq (of the offending frame, if known).
	TypeError Type = "error"
)

// Presence events (Frame.Event of a TypePresence frame).
const (
	PresenceJoin  = "join"
	PresenceLeave = "leave"
)

// Presence reasons (Frame.Reason of a TypePresence frame). A join carries ReasonJoined; a leave carries
// one of the others, naming how the user's last connection in the room went away.
const (
	ReasonJoined  = "joined"  // the user's first connection joined the room
	ReasonLeft    = "left"    // the client sent leave_room
	ReasonClosed  = "closed"  // the connection closed (close frame, or TCP closed or reset without one)
	ReasonTimeout = "timeout" // the heartbeat timeout expired
	ReasonError   = "error"   // a read or write error, or a protocol violation, ended the connection
	ReasonKicked  = "kicked"  // the server removed the connection (limits, slow consumer, drain, shed)
)

// Error codes carried in Frame.Code of a TypeError frame.
const (
	ErrCodeMalformed      = "malformed"       // not a JSON object, or a field of the wrong JSON type
	ErrCodeUnknownType    = "unknown_type"    // a "type" this protocol does not define for this direction
	ErrCodeMissingField   = "missing_field"   // a field the type requires is absent or empty
	ErrCodeBinary         = "binary_frame"    // a binary WebSocket frame; only text frames are accepted
	ErrCodeInvalidUTF8    = "invalid_utf8"    // a text frame that is not valid UTF-8
	ErrCodeNotMember      = "not_member"      // broadcast or leave_room for a room the connection has not joined
	ErrCodeSeqGap         = "seq_gap"         // a seq gap that never filled (followed by close 4003)
	ErrCodeUnauthorized   = "unauthorized"    // a frame before hello, or a bad token (followed by close 4001)
	ErrCodeSessionInvalid = "session_invalid" // resume of a session that is unknown, expired or not the user's
	ErrCodeRoomLimit      = "room_limit"      // too many rooms joined by one connection
	ErrCodeAlreadyHello   = "already_authenticated"
	ErrCodeInternalError  = "internal"
)

// Frame is one message on the wire. Which fields are meaningful depends on Type; the doc comment of
// each Type constant lists them. Zero-valued fields are omitted when encoding.
type Frame struct {
	Type Type `json:"type"`

	// Token is the JWT of a hello frame.
	Token string `json:"token,omitempty"`
	// Session identifies a session: assigned in welcome, presented in hello or resume to continue it.
	Session string `json:"session,omitempty"`
	// ConnID identifies one connection on the server (welcome).
	ConnID string `json:"connId,omitempty"`
	// UserID is the authenticated user (welcome) or the subject of a presence event.
	UserID string `json:"userId,omitempty"`
	// HeartbeatInterval is how often the server sends WebSocket pings, in milliseconds (welcome).
	HeartbeatInterval int64 `json:"heartbeatInterval,omitempty"`
	// HeartbeatTimeout is how long the server waits for any frame before closing, in ms (welcome).
	HeartbeatTimeout int64 `json:"heartbeatTimeout,omitempty"`

	// RoomID names a room.
	RoomID string `json:"roomId,omitempty"`
	// Seq is the client's per-connection sequence number (join_room, leave_room, broadcast, ack, error).
	Seq uint64 `json:"seq,omitempty"`
	// Data is the application payload of a broadcast: any JSON value, passed through untouched.
	Data json.RawMessage `json:"data,omitempty"`
	// From is the user id of a broadcast's sender (server → client).
	From string `json:"from,omitempty"`
	// RoomSeq is the room's sequence number of a delivered broadcast, starting at 1, gap-free.
	RoomSeq uint64 `json:"roomSeq,omitempty"`
	// SentAt is the server's clock when it stamped the broadcast, in Unix milliseconds.
	SentAt int64 `json:"sentAt,omitempty"`
	// Members lists the user ids present in a room (room_joined, room_left), sorted.
	Members []string `json:"members,omitempty"`
	// HeadSeq is the last roomSeq the room stamped (room_joined, room_left).
	HeadSeq uint64 `json:"headSeq,omitempty"`

	// Event is PresenceJoin or PresenceLeave (presence).
	Event string `json:"event,omitempty"`
	// Reason explains a presence event (Reason* constants) or a resume_failed.
	Reason string `json:"reason,omitempty"`

	// Timestamp is the client's clock in Unix milliseconds (ping), echoed in pong.
	Timestamp int64 `json:"timestamp,omitempty"`
	// Rooms maps roomId → last roomSeq seen (resume), or → broadcasts replayed (resumed).
	Rooms map[string]uint64 `json:"rooms,omitempty"`

	// Code and Message describe an error frame.
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// Direction says which side sends a frame type.
type Direction int

// Directions.
const (
	ClientToServer Direction = iota + 1
	ServerToClient
)

// fieldsRequired lists, per type and direction, the fields that must be present.
var clientTypes = map[Type][]string{
	TypeHello:     {"token"},
	TypeJoinRoom:  {"roomId", "seq"},
	TypeLeaveRoom: {"roomId", "seq"},
	TypeBroadcast: {"roomId", "seq"},
	TypePing:      nil,
	TypeResume:    {"session"},
}

var serverTypes = map[Type][]string{
	TypeWelcome:      {"session", "connId", "userId"},
	TypeRoomJoined:   {"roomId"},
	TypeRoomLeft:     {"roomId"},
	TypeBroadcast:    {"roomId", "roomSeq"},
	TypePresence:     {"roomId", "event", "userId"},
	TypePong:         nil,
	TypeAck:          {"seq"},
	TypeResumed:      nil,
	TypeResumeFailed: nil,
	TypeError:        {"code"},
}

// Sequenced reports whether client frames of type t carry a seq that the server orders and acks.
func Sequenced(t Type) bool {
	return t == TypeJoinRoom || t == TypeLeaveRoom || t == TypeBroadcast
}

// KnownType reports whether t is defined for direction d.
func KnownType(t Type, d Direction) bool {
	if d == ClientToServer {
		_, ok := clientTypes[t]
		return ok
	}
	_, ok := serverTypes[t]
	return ok
}

// DecodeError is returned by Decode; Code is one of the ErrCode* values so that a server can answer
// with an error frame directly.
type DecodeError struct {
	Code  string // ErrCodeMalformed, ErrCodeInvalidUTF8, ErrCodeUnknownType or ErrCodeMissingField
	Type  Type   // the frame's type, when it could be read
	Field string // the missing field, for ErrCodeMissingField
	Err   error  // the underlying JSON error, for ErrCodeMalformed
}

func (e *DecodeError) Error() string {
	switch e.Code {
	case ErrCodeUnknownType:
		return fmt.Sprintf("protocol: unknown frame type %q", e.Type)
	case ErrCodeMissingField:
		return fmt.Sprintf("protocol: %s frame: missing field %q", e.Type, e.Field)
	case ErrCodeInvalidUTF8:
		return "protocol: the frame is not valid UTF-8"
	default:
		if e.Err != nil {
			return "protocol: malformed frame: " + e.Err.Error()
		}
		return "protocol: malformed frame"
	}
}

func (e *DecodeError) Unwrap() error { return e.Err }

// ErrEmptyFrame is wrapped by the DecodeError for an empty payload.
var ErrEmptyFrame = errors.New("empty frame")

// ErrInvalidUTF8 is wrapped by the DecodeError for a payload that is not valid UTF-8, and returned
// by Encode for a Frame whose Data is not.
var ErrInvalidUTF8 = errors.New("not valid UTF-8")

// Decode parses one frame sent in direction d and checks that its type is known for that direction and
// that the fields the type requires are present. The returned error is always a *DecodeError.
func Decode(b []byte, d Direction) (Frame, error) {
	var f Frame
	if err := DecodeInto(b, d, &f); err != nil {
		return Frame{}, err
	}
	return f, nil
}

// DecodeInto is Decode into a caller-owned Frame, which it resets first; it lets hot paths reuse one.
// Simple frames are parsed by a hand-written fast path (decodeSimple, fastdecode.go) that yields exactly
// what encoding/json does; anything else goes to encoding/json.
func DecodeInto(b []byte, d Direction, f *Frame) error {
	*f = Frame{}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return &DecodeError{Code: ErrCodeMalformed, Err: ErrEmptyFrame}
	}
	if !utf8.Valid(b) {
		return &DecodeError{Code: ErrCodeInvalidUTF8, Err: ErrInvalidUTF8}
	}
	if b[0] != '{' {
		return &DecodeError{Code: ErrCodeMalformed, Err: errors.New("a frame must be a JSON object")}
	}
	if !decodeSimple(b, f) {
		*f = Frame{}
		if err := json.Unmarshal(b, f); err != nil {
			*f = Frame{}
			return &DecodeError{Code: ErrCodeMalformed, Err: err}
		}
	}
	return f.Check(d)
}

// Check reports whether f is a frame of direction d: a type known for d with the fields it requires
// (the checks Decode makes after parsing). The error is a *DecodeError.
func (f *Frame) Check(d Direction) error {
	if f.Type == "" {
		return &DecodeError{Code: ErrCodeMissingField, Field: "type"}
	}
	required, ok := clientTypes[f.Type]
	if d == ServerToClient {
		required, ok = serverTypes[f.Type]
	}
	if !ok {
		return &DecodeError{Code: ErrCodeUnknownType, Type: f.Type}
	}
	for _, field := range required {
		if !f.has(field) {
			return &DecodeError{Code: ErrCodeMissingField, Type: f.Type, Field: field}
		}
	}
	return nil
}

func (f *Frame) has(field string) bool {
	switch field {
	case "token":
		return f.Token != ""
	case "session":
		return f.Session != ""
	case "connId":
		return f.ConnID != ""
	case "userId":
		return f.UserID != ""
	case "roomId":
		return f.RoomID != ""
	case "seq":
		return f.Seq != 0
	case "roomSeq":
		return f.RoomSeq != 0
	case "event":
		return f.Event != ""
	case "code":
		return f.Code != ""
	}
	return true
}

// Encode returns the JSON encoding of f. It refuses a Data that is not valid UTF-8 (ErrInvalidUTF8).
// Simple frames are written without reflection (appendSimple, fastencode.go), byte for byte what
// encoding/json writes; the others go to encoding/json.
func Encode(f *Frame) ([]byte, error) {
	if !utf8.Valid(f.Data) {
		return nil, fmt.Errorf("protocol: encode %s frame: data: %w", f.Type, ErrInvalidUTF8)
	}
	if n, ok := simpleLen(f); ok {
		return appendSimple(make([]byte, 0, n), f), nil
	}
	return json.Marshal(f)
}

// AppendEncode appends the JSON encoding of f to dst and returns the extended slice.
func AppendEncode(dst []byte, f *Frame) ([]byte, error) {
	if utf8.Valid(f.Data) {
		if n, ok := simpleLen(f); ok {
			return appendSimple(slices.Grow(dst, n), f), nil
		}
	}
	b, err := Encode(f)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}
