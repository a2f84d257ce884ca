package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// decodeIntoJSON is DecodeInto without the fast path: every frame through encoding/json. It is the
// reference the fast path is compared with, and the fallback the benchmarks measure.
func decodeIntoJSON(b []byte, d Direction, f *Frame) error {
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
	if err := json.Unmarshal(b, f); err != nil {
		*f = Frame{}
		return &DecodeError{Code: ErrCodeMalformed, Err: err}
	}
	return f.Check(d)
}

// loadgenBroadcast is a broadcast as the load generator writes it (its data stamps the sender,
// generation, seq and intended time, and pads to the payload size).
const loadgenBroadcast = `{"type":"broadcast","roomId":"room-17","seq":42,"data":{"c":1234,"g":1,"s":42,"t":1765400000123456789,"p":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}`

// simpleFrames are the frames the gateway and the load generator exchange, and edge cases around
// the fast path's subset. fast says whether decodeSimple must take the frame.
var simpleFrames = []struct {
	name string
	in   string
	fast bool
}{
	// Client → server.
	{"hello", `{"type":"hello","token":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2ln"}`, true},
	{"hello with session", `{"type":"hello","token":"t.t.t","session":"s-0123456789abcdef"}`, true},
	{"join_room", `{"type":"join_room","roomId":"room-17","seq":1}`, true},
	{"leave_room", `{"type":"leave_room","roomId":"room-17","seq":7}`, true},
	{"broadcast loadgen", loadgenBroadcast, true},
	{"broadcast string data", `{"type":"broadcast","roomId":"r","seq":2,"data":"hello, room"}`, true},
	{"broadcast number data", `{"type":"broadcast","roomId":"r","seq":3,"data":-12.5e+3}`, true},
	{"broadcast integer data", `{"type":"broadcast","roomId":"r","seq":3,"data":0}`, true},
	{"broadcast true data", `{"type":"broadcast","roomId":"r","seq":4,"data":true}`, true},
	{"broadcast false data", `{"type":"broadcast","roomId":"r","seq":4,"data":false}`, true},
	{"broadcast nested data", `{"type":"broadcast","roomId":"r","seq":5,"data":{"a":[1,"y",null,{},[]],"b":{"c":false}}}`, true},
	{"broadcast array data", `{"type":"broadcast","roomId":"r","seq":5,"data":[ 1 , 2.0 , "x" ]}`, true},
	{"ping", `{"type":"ping","timestamp":1765400000123}`, true},
	{"ping bare", `{"type":"ping"}`, true},
	{"resume", `{"type":"resume","session":"s","rooms":{"a":4}}`, false},

	// Server → client, as the gateway encodes them.
	{"welcome", `{"type":"welcome","session":"s-1","connId":"c-2","userId":"user-3","heartbeatInterval":25000,"heartbeatTimeout":60000}`, true},
	{"room_joined", `{"type":"room_joined","roomId":"room-17","members":["user-1","user-2","user-3"],"headSeq":12}`, true},
	{"room_joined one member", `{"type":"room_joined","roomId":"room-17","members":["user-1"]}`, true},
	{"room_left", `{"type":"room_left","roomId":"room-17","members":["user-2"],"headSeq":3}`, true},
	{"presence join", `{"type":"presence","roomId":"room-17","userId":"user-4","event":"join","reason":"joined"}`, true},
	{"presence leave", `{"type":"presence","roomId":"room-17","userId":"user-4","event":"leave","reason":"timeout"}`, true},
	{"presence other words", `{"type":"presence","roomId":"r","userId":"u","event":"wave","reason":"bored"}`, true},
	{"pong", `{"type":"pong","timestamp":1765400000123}`, true},
	{"ack", `{"type":"ack","seq":42}`, true},
	{"error", `{"type":"error","seq":9,"code":"not_member","message":"not a member of room r"}`, true},
	{"error escaped message", `{"type":"error","code":"unknown_type","message":"protocol: unknown frame type \"fly\""}`, false},
	{"broadcast delivered", `{"type":"broadcast","roomId":"room-17","data":{"c":1234,"g":1,"s":42,"t":1765400000123456789},"from":"user-1","roomSeq":77,"sentAt":1765400000124}`, true},
	{"resumed", `{"type":"resumed","rooms":{"room-17":3}}`, false},
	{"resume_failed", `{"type":"resume_failed","reason":"history"}`, true},
	{"unknown type", `{"type":"fly"}`, true},
	{"empty object", `{}`, true},
	{"every field", `{"type":"x","token":"a","session":"b","connId":"c","userId":"d","heartbeatInterval":1,"heartbeatTimeout":2,"roomId":"e","seq":3,"data":4,"from":"f","roomSeq":5,"sentAt":6,"members":["g"],"headSeq":7,"event":"h","reason":"i","timestamp":8,"code":"j","message":"k"}`, true},

	// Whitespace and text.
	{"whitespace everywhere", " \t\r\n{ \"type\" :\t\"ack\" ,\n\"seq\"\r: 1 , \"members\" : [ \"a\" , \"b\" ] , \"data\" : { \"k\" : [ 1 , true ] } } \n", true},
	{"empty members", `{"type":"room_joined","roomId":"r","members":[]}`, true},
	{"empty members spaced", `{"type":"room_joined","roomId":"r","members":[ ]}`, true},
	{"empty strings", `{"type":"","roomId":"","data":""}`, true},
	{"non-ASCII", `{"type":"presence","roomId":"salle-é","userId":"ユーザー","event":"join","data":"🙂"}`, true},
	{"U+FFFD", "{\"type\":\"ping\",\"roomId\":\"\uFFFD\"}", true},
	{"U+2028", "{\"type\":\"ping\",\"roomId\":\"\u2028\"}", true},
	{"DEL", "{\"type\":\"ping\",\"roomId\":\"\x7f\"}", true},
	{"control character", "{\"type\":\"ping\",\"roomId\":\"a\tb\"}", false},
	{"escape in value", `{"type":"join_room","roomId":"a\nb","seq":1}`, false},
	{"unicode escape in value", `{"type":"join_room","roomId":"\u0041","seq":1}`, false},
	{"escape in data", `{"type":"broadcast","roomId":"r","seq":1,"data":"a\"b"}`, false},
	{"escape in nested data", `{"type":"broadcast","roomId":"r","seq":1,"data":{"a\"":1}}`, false},
	{"escape in key", `{"typ\u0065":"ping"}`, false},
	{"escape in members", `{"type":"room_joined","roomId":"r","members":["a\\b"]}`, false},

	// Integers.
	{"negative int64", `{"type":"pong","timestamp":-1765400000123}`, true},
	{"minus zero int64", `{"type":"pong","timestamp":-0}`, true},
	{"min int64", `{"type":"pong","timestamp":-9223372036854775808}`, true},
	{"max int64", `{"type":"pong","timestamp":9223372036854775807}`, true},
	{"int64 overflow", `{"type":"pong","timestamp":9223372036854775808}`, false},
	{"int64 underflow", `{"type":"pong","timestamp":-9223372036854775809}`, false},
	{"max uint64", `{"type":"ack","seq":18446744073709551615}`, true},
	{"uint64 overflow", `{"type":"ack","seq":18446744073709551616}`, false},
	{"uint64 far overflow", `{"type":"ack","seq":99999999999999999999999}`, false},
	{"zero seq", `{"type":"ack","seq":0}`, true},
	{"negative uint64", `{"type":"ack","seq":-1}`, false},
	{"minus zero uint64", `{"type":"ack","seq":-0}`, false},
	{"leading zero", `{"type":"ack","seq":01}`, false},
	{"leading zeros", `{"type":"ack","seq":007}`, false},
	{"fraction", `{"type":"ack","seq":1.0}`, false},
	{"exponent", `{"type":"ack","seq":1e3}`, false},
	{"zero exponent", `{"type":"ack","seq":0e0}`, false},
	{"lone minus", `{"type":"pong","timestamp":-}`, false},
	{"plus sign", `{"type":"ack","seq":+1}`, false},
	{"number then junk", `{"type":"ack","seq":1x}`, false},
	{"data leading zero", `{"type":"broadcast","roomId":"r","seq":1,"data":01}`, false},
	{"data bad fraction", `{"type":"broadcast","roomId":"r","seq":1,"data":1.}`, false},
	{"data bad exponent", `{"type":"broadcast","roomId":"r","seq":1,"data":1e}`, false},
	{"data literal junk", `{"type":"broadcast","roomId":"r","seq":1,"data":truex}`, false},
	{"data truncated literal", `{"type":"broadcast","roomId":"r","seq":1,"data":tru}`, false},

	// Keys.
	{"unknown key", `{"type":"ping","timestamp":5,"future":true}`, false},
	{"case-different key", `{"Type":"ping"}`, false},
	{"case-different key after", `{"type":"ack","seq":1,"SEQ":2}`, false},
	{"duplicate key", `{"type":"ack","seq":1,"seq":2}`, false},
	{"duplicate type", `{"type":"ack","type":"ping"}`, false},
	{"rooms", `{"type":"resume","session":"s","rooms":{}}`, false},

	// Null and mismatched types.
	{"null string", `{"type":"ping","roomId":null}`, false},
	{"null type", `{"type":null}`, false},
	{"null seq", `{"type":"ack","seq":null}`, false},
	{"null data", `{"type":"broadcast","roomId":"r","seq":1,"data":null}`, false},
	{"null members", `{"type":"room_joined","roomId":"r","members":null}`, false},
	{"null member", `{"type":"room_joined","roomId":"r","members":[null]}`, false},
	{"number for string", `{"type":"join_room","roomId":1,"seq":1}`, false},
	{"string for number", `{"type":"join_room","roomId":"r","seq":"1"}`, false},
	{"bool for string", `{"type":true}`, false},
	{"object for members", `{"type":"room_joined","roomId":"r","members":{}}`, false},
	{"number member", `{"type":"room_joined","roomId":"r","members":[1]}`, false},
	{"string for members", `{"type":"room_joined","roomId":"r","members":"a"}`, false},

	// Not JSON, or not one object.
	{"truncated", `{"type":"ping"`, false},
	{"truncated string", `{"type":"pi`, false},
	{"trailing comma", `{"type":"ping",}`, false},
	{"trailing comma members", `{"type":"room_joined","roomId":"r","members":["a",]}`, false},
	{"trailing comma data", `{"type":"broadcast","roomId":"r","seq":1,"data":[1,]}`, false},
	{"missing colon", `{"type" "ping"}`, false},
	{"missing comma", `{"type":"ping" "timestamp":1}`, false},
	{"two objects", `{"type":"ping"}{"type":"ping"}`, false},
	{"trailing junk", `{"type":"ping"} x`, false},
	{"single quotes", `{'type':'ping'}`, false},
	{"bare key", `{type:"ping"}`, false},
	{"comma only", `{,}`, false},
	{"data object bad key", `{"type":"broadcast","roomId":"r","seq":1,"data":{1:2}}`, false},
	{"data unclosed", `{"type":"broadcast","roomId":"r","seq":1,"data":{"a":1}`, false},
	{"data too deep", `{"type":"broadcast","roomId":"r","seq":1,"data":` + strings.Repeat("[", 17) + strings.Repeat("]", 17) + `}`, false},
	{"data deep", `{"type":"broadcast","roomId":"r","seq":1,"data":` + strings.Repeat("[", 16) + strings.Repeat("]", 16) + `}`, true},
	{"array", `[]`, false},
}

// jsonFrame is what encoding/json decodes b into.
func jsonFrame(b []byte) (Frame, error) {
	var f Frame
	err := json.Unmarshal(b, &f)
	return f, err
}

func TestDecodeSimple(t *testing.T) {
	for _, tt := range simpleFrames {
		t.Run(tt.name, func(t *testing.T) {
			b := []byte(tt.in)
			var got Frame
			took := decodeSimple(b, &got)
			if took != tt.fast {
				t.Fatalf("decodeSimple took it: %v, want %v (%+v)", took, tt.fast, got)
			}
			want, err := jsonFrame(b)
			if took {
				if err != nil {
					t.Fatalf("taken, but encoding/json fails: %v", err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("got  %#v\nwant %#v", got, want)
				}
			}
			for _, d := range []Direction{ClientToServer, ServerToClient} {
				var f, ref Frame
				err, refErr := DecodeInto(b, d, &f), decodeIntoJSON(b, d, &ref)
				if !sameError(err, refErr) || !reflect.DeepEqual(f, ref) {
					t.Fatalf("DecodeInto(%d) = %#v, %v\nwant %#v, %v", d, f, err, ref, refErr)
				}
			}
		})
	}
}

// TestDecodeSimpleCopies checks that a decoded frame does not alias the input, which callers reuse,
// and that [] decodes to an empty non-nil Members, as with encoding/json.
func TestDecodeSimpleCopies(t *testing.T) {
	b := []byte(`{"type":"room_joined","roomId":"r","members":[],"data":"abc"}`)
	var f Frame
	if !decodeSimple(b, &f) {
		t.Fatal("declined")
	}
	if f.Members == nil || len(f.Members) != 0 {
		t.Fatalf("members %#v, want an empty non-nil slice", f.Members)
	}
	for i := range b {
		b[i] = 'z'
	}
	if string(f.Data) != `"abc"` || f.RoomID != "r" {
		t.Fatalf("the frame changed with its input: %#v", f)
	}
}

// TestDecodeSimpleEncoded checks that frames as Encode writes them take the fast path when their
// strings need no escape.
func TestDecodeSimpleEncoded(t *testing.T) {
	for _, fr := range []Frame{
		{Type: TypeWelcome, Session: "s", ConnID: "c", UserID: "u", HeartbeatInterval: 25000, HeartbeatTimeout: 60000},
		{Type: TypeRoomJoined, RoomID: "r", Members: []string{"a", "b"}, HeadSeq: 4},
		{Type: TypePresence, RoomID: "r", Event: PresenceLeave, UserID: "u", Reason: ReasonKicked},
		{Type: TypeBroadcast, RoomID: "r", From: "u", RoomSeq: 1, SentAt: 1765400000124, Data: json.RawMessage(` { "c" : 1 } `)},
		{Type: TypeAck, Seq: 1<<64 - 1},
		{Type: TypePong, Timestamp: -1 << 63},
		{Type: TypeError, Code: ErrCodeNotMember, Message: "not a member", Seq: 3},
	} {
		b, err := Encode(&fr)
		if err != nil {
			t.Fatal(err)
		}
		var got Frame
		if !decodeSimple(b, &got) {
			t.Fatalf("declined %s", b)
		}
		want, err := jsonFrame(b)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: got %#v, want %#v (%v)", b, got, want, err)
		}
	}
}

// sameError reports whether two DecodeInto errors are the same to a caller.
func sameError(a, b error) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var da, db *DecodeError
	if !errors.As(a, &da) || !errors.As(b, &db) {
		return false
	}
	return da.Code == db.Code && da.Type == db.Type && da.Field == db.Field && a.Error() == b.Error()
}

// FuzzDecodeSimple is differential: whatever decodeSimple takes must be what encoding/json gives, and
// DecodeInto must return what it returned before the fast path, for every input.
func FuzzDecodeSimple(f *testing.F) {
	for _, tt := range simpleFrames {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if utf8.Valid(b) {
			in := bytes.Clone(b)
			var got Frame
			if decodeSimple(in, &got) {
				want, err := jsonFrame(b)
				if err != nil {
					t.Fatalf("decodeSimple took %q, which encoding/json refuses: %v", b, err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("decodeSimple(%q)\n= %#v\nencoding/json %#v", b, got, want)
				}
				for i := range in {
					in[i] = 0
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("decodeSimple(%q) aliases its input", b)
				}
			}
		}
		for _, d := range []Direction{ClientToServer, ServerToClient} {
			var fr, ref Frame
			err, refErr := DecodeInto(b, d, &fr), decodeIntoJSON(b, d, &ref)
			if !sameError(err, refErr) || !reflect.DeepEqual(fr, ref) {
				t.Fatalf("DecodeInto(%q, %d) = %#v, %v\nwant %#v, %v", b, d, fr, err, ref, refErr)
			}
		}
	})
}

// BenchmarkDecodeInto compares DecodeInto (fast path) with the same decode through encoding/json
// only, per frame kind.
func BenchmarkDecodeInto(b *testing.B) {
	for _, bc := range []struct {
		name string
		dir  Direction
		in   string
	}{
		{"broadcast_in", ClientToServer, loadgenBroadcast},
		{"broadcast_out", ServerToClient, `{"type":"broadcast","roomId":"room-17","data":{"c":1234,"g":1,"s":42,"t":1765400000123456789,"p":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},"from":"user-1234","roomSeq":77,"sentAt":1765400000124}`},
		{"broadcast_string", ClientToServer, `{"type":"broadcast","roomId":"room-17","seq":42,"data":"hello, room"}`},
		{"ack", ServerToClient, `{"type":"ack","seq":42}`},
		{"ping", ClientToServer, `{"type":"ping","timestamp":1765400000123}`},
		{"pong", ServerToClient, `{"type":"pong","timestamp":1765400000123}`},
		{"join_room", ClientToServer, `{"type":"join_room","roomId":"room-17","seq":1}`},
		{"hello", ClientToServer, `{"type":"hello","token":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEyMzQiLCJleHAiOjE3NjU0MDM2MDB9.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"}`},
		{"welcome", ServerToClient, `{"type":"welcome","session":"s-0123456789abcdef","connId":"c-42","userId":"user-1234","heartbeatInterval":25000,"heartbeatTimeout":60000}`},
		{"room_joined", ServerToClient, `{"type":"room_joined","roomId":"room-17","members":["user-1","user-2","user-3","user-4"],"headSeq":12}`},
		{"presence", ServerToClient, `{"type":"presence","roomId":"room-17","userId":"user-4","event":"join","reason":"joined"}`},
	} {
		in := []byte(bc.in)
		for _, impl := range []struct {
			name   string
			decode func([]byte, Direction, *Frame) error
		}{{"fast", DecodeInto}, {"json", decodeIntoJSON}} {
			b.Run(bc.name+"/"+impl.name, func(b *testing.B) {
				var f Frame
				b.ReportAllocs()
				b.SetBytes(int64(len(in)))
				for b.Loop() {
					if err := impl.decode(in, bc.dir, &f); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
