package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// encodeJSON is Encode before the fast path: the UTF-8 check of Data, then encoding/json.
func encodeJSON(f *Frame) ([]byte, error) {
	if !utf8.Valid(f.Data) {
		return nil, fmt.Errorf("protocol: encode %s frame: data: %w", f.Type, ErrInvalidUTF8)
	}
	return json.Marshal(f)
}

// encodeFrames are the frames the gateway and the load generator send, and edge cases; fast says
// whether the fast path takes the frame.
var encodeFrames = []struct {
	name string
	f    Frame
	fast bool
}{
	{"welcome", Frame{Type: TypeWelcome, Session: "s-0123456789abcdef", ConnID: "c-42", UserID: "user-17", HeartbeatInterval: 25000, HeartbeatTimeout: 60000}, true},
	{"room_joined", Frame{Type: TypeRoomJoined, RoomID: "room-7", Members: []string{"alice", "bob", "carol"}, HeadSeq: 1234}, true},
	{"room_joined one member", Frame{Type: TypeRoomJoined, RoomID: "room-7", Members: []string{"alice"}}, true},
	{"room_left", Frame{Type: TypeRoomLeft, RoomID: "room-7", Members: []string{"bob"}, HeadSeq: 9}, true},
	{"presence join", Frame{Type: TypePresence, RoomID: "room-7", Event: PresenceJoin, UserID: "alice", Reason: ReasonJoined}, true},
	{"presence leave", Frame{Type: TypePresence, RoomID: "room-7", Event: PresenceLeave, UserID: "alice", Reason: ReasonTimeout}, true},
	{"ack", Frame{Type: TypeAck, Seq: 18446744073709551615}, true},
	{"error", Frame{Type: TypeError, Code: ErrCodeNotMember, Message: "not a member of room room-7", Seq: 3}, true},
	{"broadcast object", Frame{Type: TypeBroadcast, RoomID: "room-7", Data: json.RawMessage(`{"text":"hi","n":[1,2.5e-3,-0,true,false,null,{}],"o":{"a":[]}}`), From: "alice", RoomSeq: 77, SentAt: 1767225600123}, true},
	{"broadcast string", Frame{Type: TypeBroadcast, RoomID: "r", Data: json.RawMessage(`"hello_world"`), From: "bob", RoomSeq: 1, SentAt: 1}, true},
	{"broadcast number", Frame{Type: TypeBroadcast, RoomID: "r", Data: json.RawMessage(`-12.5E+3`), From: "bob", RoomSeq: 2, SentAt: -1}, true},
	{"broadcast null data", Frame{Type: TypeBroadcast, RoomID: "r", Data: json.RawMessage(`null`), RoomSeq: 2}, true},
	{"pong", Frame{Type: TypePong, Timestamp: 1767225600123}, true},
	{"hello", Frame{Type: TypeHello, Token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.sig_-"}, true},
	{"hello with session", Frame{Type: TypeHello, Token: "t", Session: "s-1"}, true},
	{"join_room", Frame{Type: TypeJoinRoom, RoomID: "room-7", Seq: 1}, true},
	{"leave_room", Frame{Type: TypeLeaveRoom, RoomID: "room-7", Seq: 2}, true},
	{"client broadcast", Frame{Type: TypeBroadcast, RoomID: "room-7", Data: json.RawMessage(`{"x":1}`), Seq: 3}, true},
	{"ping", Frame{Type: TypePing, Timestamp: 1767225600123}, true},
	{"ping zero", Frame{Type: TypePing}, true},
	{"empty frame", Frame{}, true},
	{"min and max ints", Frame{Type: TypePong, Timestamp: -9223372036854775808, SentAt: 9223372036854775807, HeartbeatInterval: -1, HeartbeatTimeout: 10}, true},
	{"every field", Frame{Type: "t", Token: "a", Session: "b", ConnID: "c", UserID: "d", HeartbeatInterval: 1, HeartbeatTimeout: 2, RoomID: "e", Seq: 3, Data: json.RawMessage(`[]`), From: "f", RoomSeq: 4, SentAt: 5, Members: []string{"g", ""}, HeadSeq: 6, Event: "h", Reason: "i", Timestamp: 7, Code: "j", Message: "k ~!#$%'()*+,-./:;=?@[]^_`{|}"}, true},
	{"empty members", Frame{Type: TypeRoomJoined, RoomID: "r", Members: []string{}}, true},
	{"nil members", Frame{Type: TypeRoomJoined, RoomID: "r", Members: nil}, true},
	{"empty member", Frame{Type: TypeRoomJoined, RoomID: "r", Members: []string{""}}, true},
	{"empty data", Frame{Type: TypeBroadcast, RoomID: "r", Data: json.RawMessage{}}, true},
	{"empty rooms", Frame{Type: TypeResumed, Rooms: map[string]uint64{}}, true},

	{"resume", Frame{Type: TypeResume, Session: "s-1", Rooms: map[string]uint64{"a": 3, "b": 0}}, false},
	{"resumed", Frame{Type: TypeResumed, Rooms: map[string]uint64{"a": 3}}, false},
	{"string <", Frame{Type: TypeError, Code: "x", Message: "a<b"}, false},
	{"string >", Frame{Type: TypeError, Code: "x", Message: "a>b"}, false},
	{"string &", Frame{Type: TypeError, Code: "x", Message: "a&b"}, false},
	{"string quote", Frame{Type: TypeError, Code: "x", Message: `say "hi"`}, false},
	{"string backslash", Frame{Type: TypeError, Code: "x", Message: `a\b`}, false},
	{"string unicode", Frame{Type: TypePresence, UserID: "zoë", RoomID: "r"}, false},
	{"string U+2028", Frame{Type: TypePresence, UserID: "a\u2028b", RoomID: "r"}, false},
	{"string invalid UTF-8", Frame{Type: TypePresence, UserID: "a\xffb", RoomID: "r"}, false},
	{"string newline", Frame{Type: TypeError, Code: "x", Message: "a\nb"}, false},
	{"string NUL", Frame{Type: TypeError, Code: "x", Message: "a\x00b"}, false},
	{"string DEL", Frame{Type: TypeError, Code: "x", Message: "a\x7fb"}, false},
	{"type <", Frame{Type: "<t>"}, false},
	{"member &", Frame{Type: TypeRoomJoined, RoomID: "r", Members: []string{"a", "b&c"}}, false},
	{"member unicode", Frame{Type: TypeRoomJoined, RoomID: "r", Members: []string{"ü"}}, false},
	{"data with spaces", Frame{Type: TypeBroadcast, RoomID: "r", Data: json.RawMessage(`{ "a" : 1 }`)}, false},
	{"data with newline", Frame{Type: TypeBroadcast, RoomID: "r", Data: json.RawMessage("[1,\n2]")}, false},
	{"data space in string", Frame{Type: TypeBroadcast, RoomID: "r", Data: json.RawMessage(`"a b"`)}, false},
	{"data trailing space", Frame{Type: TypeBroadcast, RoomID: "r", Data: json.RawMessage(`1 `)}, false},
	{"data <", Frame{Type: TypeBroadcast, RoomID: "r", Data: json.RawMessage(`"<b>"`)}, false},
	{"data &", Frame{Type: TypeBroadcast, RoomID: "r", Data: json.RawMessage(`{"a&b":1}`)}, false},
	{"data unicode", Frame{Type: TypeBroadcast, RoomID: "r", Data: json.RawMessage(`"é"`)}, false},
	{"data U+2028", Frame{Type: TypeBroadcast, RoomID: "r", Data: json.RawMessage("\"\u2028\"")}, false},
	{"data escape", Frame{Type: TypeBroadcast, RoomID: "r", Data: json.RawMessage(`"a\"b"`)}, false},
	{"data invalid", Frame{Type: TypeBroadcast, RoomID: "r", Data: json.RawMessage(`{"a":}`)}, false},
	{"data two values", Frame{Type: TypeBroadcast, RoomID: "r", Data: json.RawMessage(`1,2`)}, false},
	{"data leading zero", Frame{Type: TypeBroadcast, RoomID: "r", Data: json.RawMessage(`01`)}, false},
	{"data truncated", Frame{Type: TypeBroadcast, RoomID: "r", Data: json.RawMessage(`[1,`)}, false},
	{"data bare word", Frame{Type: TypeBroadcast, RoomID: "r", Data: json.RawMessage(`nul`)}, false},
	{"data invalid UTF-8", Frame{Type: TypeBroadcast, RoomID: "r", Data: json.RawMessage("\"\xff\"")}, false},
	{"data too deep", Frame{Type: TypeBroadcast, RoomID: "r", Data: json.RawMessage(strings.Repeat("[", 17) + strings.Repeat("]", 17))}, false},
	{"data deep", Frame{Type: TypeBroadcast, RoomID: "r", Data: json.RawMessage(strings.Repeat("[", 16) + strings.Repeat("]", 16))}, true},
}

// checkEncode compares Encode and AppendEncode of f with encoding/json, and returns whether the fast
// path took f.
func checkEncode(t *testing.T, f *Frame) bool {
	t.Helper()
	want, wantErr := encodeJSON(f)
	got, err := Encode(f)
	if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
		t.Fatalf("Encode(%#v)\n= %s, %v\nencoding/json %s, %v", f, got, err, want, wantErr)
	}
	if err != nil && err.Error() != wantErr.Error() {
		t.Fatalf("Encode(%#v): error %q, encoding/json %q", f, err, wantErr)
	}
	prefix := []byte("prefix")
	app, err := AppendEncode(prefix[:len(prefix):len(prefix)], f)
	if (err != nil) != (wantErr != nil) || !bytes.Equal(app, append(prefix, want...)) {
		t.Fatalf("AppendEncode(%#v)\n= %s, %v\nwant prefix%s, %v", f, app, err, want, wantErr)
	}
	n, fast := simpleLen(f)
	if fast && utf8.Valid(f.Data) {
		if wantErr != nil {
			t.Fatalf("the fast path takes %#v, which encoding/json refuses: %v", f, wantErr)
		}
		b := appendSimple(nil, f)
		if !bytes.Equal(b, want) || len(b) != n || cap(got) != n {
			t.Fatalf("appendSimple(%#v) = %s (len %d, simpleLen %d, cap %d)\nencoding/json %s", f, b, len(b), n, cap(got), want)
		}
	}
	return fast
}

func TestEncodeFast(t *testing.T) {
	for _, tt := range encodeFrames {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.f
			if fast := checkEncode(t, &f); fast != tt.fast {
				t.Fatalf("fast path took it: %v, want %v", fast, tt.fast)
			}
		})
	}
}

func TestEncodeFastAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts under the race detector")
	}
	f := encodeFrames[0].f // welcome
	if n := testing.AllocsPerRun(100, func() { _, _ = Encode(&f) }); n != 1 {
		t.Fatalf("Encode allocates %v times, want 1", n)
	}
	dst := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() { _, _ = AppendEncode(dst[:0], &f) }); n != 0 {
		t.Fatalf("AppendEncode into room allocates %v times, want 0", n)
	}
}

// FuzzEncodeFast is differential: Encode and AppendEncode must return what encoding/json does for
// every frame built from the fuzzed fields, and whatever the fast path takes must be what
// encoding/json writes.
func FuzzEncodeFast(f *testing.F) {
	f.Add(uint32(0xFFFFFFFF), "broadcast", "alice", "room-7", int64(1767225600123), int64(-1), uint64(77), uint64(1), []byte(`{"a":[1,2,"x"]}`), "alice,bob")
	f.Add(uint32(0), "", "", "", int64(0), int64(0), uint64(0), uint64(0), []byte(nil), "")
	f.Add(uint32(1<<30|1<<31), "room_joined", "a<b", "zoë", int64(-9223372036854775808), int64(9223372036854775807), uint64(18446744073709551615), uint64(10), []byte(`{ "a" : 1 }`), "")
	f.Add(uint32(0x5555), "error", `"q"\`, "\u2028", int64(10), int64(-10), uint64(9), uint64(100), []byte(`"<&>"`), ",,")
	f.Add(uint32(0xAAAAAAAA), "presence", "x\x00y", "\xff", int64(5), int64(6), uint64(7), uint64(8), []byte("\"\xff\""), "a,\xfe")
	f.Fuzz(func(t *testing.T, mask uint32, a, b, c string, i1, i2 int64, u1, u2 uint64, data []byte, members string) {
		var fr Frame
		strs := [...]string{a, b, c}
		for k, p := range []*string{&fr.Token, &fr.Session, &fr.ConnID, &fr.UserID, &fr.RoomID, &fr.From, &fr.Event, &fr.Reason, &fr.Code, &fr.Message} {
			if mask&(1<<k) != 0 {
				*p = strs[k%len(strs)]
			}
		}
		ints := [...]int64{i1, i2}
		for k, p := range []*int64{&fr.HeartbeatInterval, &fr.HeartbeatTimeout, &fr.SentAt, &fr.Timestamp} {
			if mask&(1<<(10+k)) != 0 {
				*p = ints[k%len(ints)]
			}
		}
		uints := [...]uint64{u1, u2}
		for k, p := range []*uint64{&fr.Seq, &fr.RoomSeq, &fr.HeadSeq} {
			if mask&(1<<(14+k)) != 0 {
				*p = uints[k%len(uints)]
			}
		}
		if mask&(1<<17) != 0 {
			fr.Type = Type(a)
		} else {
			fr.Type = Type(c)
		}
		if mask&(1<<18) != 0 {
			fr.Data = data
		}
		if mask&(1<<19) != 0 {
			fr.Rooms = map[string]uint64{b: u1}
		}
		switch {
		case members != "":
			fr.Members = strings.Split(members, ",")
		case mask&(1<<30) != 0:
			fr.Members = []string{}
		}
		checkEncode(t, &fr)
	})
}

// BenchmarkEncode compares Encode (fast path) with encoding/json, per frame kind.
func BenchmarkEncode(b *testing.B) {
	for _, bc := range []struct {
		name string
		f    Frame
	}{
		{"broadcast", Frame{Type: TypeBroadcast, RoomID: "room-1234", Data: json.RawMessage(`{"text":"hello_there","n":42}`), From: "user-56789", RoomSeq: 123456, SentAt: 1767225600123}},
		{"ack", Frame{Type: TypeAck, Seq: 1234}},
		{"presence", Frame{Type: TypePresence, RoomID: "room-1234", Event: PresenceJoin, UserID: "user-56789", Reason: ReasonJoined}},
		{"room_joined", Frame{Type: TypeRoomJoined, RoomID: "room-1234", Members: []string{"user-1", "user-2", "user-3", "user-4"}, HeadSeq: 99}},
		{"welcome", Frame{Type: TypeWelcome, Session: "s-0123456789abcdef", ConnID: "c-123456", UserID: "user-56789", HeartbeatInterval: 25000, HeartbeatTimeout: 60000}},
	} {
		f := bc.f
		if _, ok := simpleLen(&f); !ok {
			b.Fatalf("%s: the fast path declines it", bc.name)
		}
		b.Run(bc.name+"/fast", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Encode(&f); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bc.name+"/json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := encodeJSON(&f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
