package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		dir   Direction
		want  Frame
		code  string // DecodeError code, "" for success
		field string
	}{
		{name: "hello", in: `{"type":"hello","token":"t","session":"s"}`, dir: ClientToServer, want: Frame{Type: TypeHello, Token: "t", Session: "s"}},
		{name: "join", in: ` {"type":"join_room","roomId":"r","seq":3} `, dir: ClientToServer, want: Frame{Type: TypeJoinRoom, RoomID: "r", Seq: 3}},
		{name: "broadcast keeps data raw", in: `{"type":"broadcast","roomId":"r","seq":1,"data":{"a":[1,2]}}`, dir: ClientToServer,
			want: Frame{Type: TypeBroadcast, RoomID: "r", Seq: 1, Data: json.RawMessage(`{"a":[1,2]}`)}},
		{name: "ping without timestamp", in: `{"type":"ping"}`, dir: ClientToServer, want: Frame{Type: TypePing}},
		{name: "unknown fields ignored", in: `{"type":"ping","timestamp":5,"future":true}`, dir: ClientToServer, want: Frame{Type: TypePing, Timestamp: 5}},
		{name: "resume", in: `{"type":"resume","session":"s","rooms":{"a":4}}`, dir: ClientToServer, want: Frame{Type: TypeResume, Session: "s", Rooms: map[string]uint64{"a": 4}}},
		{name: "server broadcast", in: `{"type":"broadcast","roomId":"r","roomSeq":9,"from":"u","sentAt":1}`, dir: ServerToClient,
			want: Frame{Type: TypeBroadcast, RoomID: "r", RoomSeq: 9, From: "u", SentAt: 1}},
		{name: "empty", in: ``, dir: ClientToServer, code: ErrCodeMalformed},
		{name: "whitespace", in: "  \n", dir: ClientToServer, code: ErrCodeMalformed},
		{name: "array", in: `[]`, dir: ClientToServer, code: ErrCodeMalformed},
		{name: "truncated", in: `{"type":"ping"`, dir: ClientToServer, code: ErrCodeMalformed},
		{name: "wrong type of field", in: `{"type":"join_room","roomId":1,"seq":1}`, dir: ClientToServer, code: ErrCodeMalformed},
		{name: "negative seq", in: `{"type":"join_room","roomId":"r","seq":-1}`, dir: ClientToServer, code: ErrCodeMalformed},
		{name: "no type", in: `{"roomId":"r"}`, dir: ClientToServer, code: ErrCodeMissingField, field: "type"},
		{name: "unknown type", in: `{"type":"fly"}`, dir: ClientToServer, code: ErrCodeUnknownType},
		{name: "server type from client", in: `{"type":"welcome","session":"s","connId":"c","userId":"u"}`, dir: ClientToServer, code: ErrCodeUnknownType},
		{name: "client type from server", in: `{"type":"hello","token":"t"}`, dir: ServerToClient, code: ErrCodeUnknownType},
		{name: "join without seq", in: `{"type":"join_room","roomId":"r"}`, dir: ClientToServer, code: ErrCodeMissingField, field: "seq"},
		{name: "join without room", in: `{"type":"join_room","seq":1}`, dir: ClientToServer, code: ErrCodeMissingField, field: "roomId"},
		{name: "hello without token", in: `{"type":"hello"}`, dir: ClientToServer, code: ErrCodeMissingField, field: "token"},
		{name: "ack without seq", in: `{"type":"ack"}`, dir: ServerToClient, code: ErrCodeMissingField, field: "seq"},
		{name: "error without code", in: `{"type":"error"}`, dir: ServerToClient, code: ErrCodeMissingField, field: "code"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(tt.in), tt.dir)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("got %+v, want %+v", got, tt.want)
				}
				return
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("err %v, want a *DecodeError", err)
			}
			if de.Code != tt.code || de.Field != tt.field {
				t.Fatalf("code %q field %q, want %q %q (%v)", de.Code, de.Field, tt.code, tt.field, err)
			}
			if !reflect.DeepEqual(got, Frame{}) {
				t.Fatalf("a failed Decode returned %+v", got)
			}
		})
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	frames := []struct {
		f   Frame
		dir Direction
	}{
		{Frame{Type: TypeWelcome, Session: "s", ConnID: "c", UserID: "u", HeartbeatInterval: 30000, HeartbeatTimeout: 60000}, ServerToClient},
		{Frame{Type: TypeRoomJoined, RoomID: "r", Members: []string{"a", "b"}, HeadSeq: 7}, ServerToClient},
		{Frame{Type: TypePresence, RoomID: "r", Event: PresenceLeave, UserID: "u", Reason: ReasonTimeout}, ServerToClient},
		{Frame{Type: TypeBroadcast, RoomID: "r", From: "u", Data: json.RawMessage(`"x"`), RoomSeq: 1, SentAt: 2}, ServerToClient},
		{Frame{Type: TypeAck, Seq: 4}, ServerToClient},
		{Frame{Type: TypeError, Code: ErrCodeSeqGap, Message: "m", Seq: 2}, ServerToClient},
		{Frame{Type: TypeResumed, Rooms: map[string]uint64{"r": 3}}, ServerToClient},
		{Frame{Type: TypeBroadcast, RoomID: "r", Seq: 1, Data: json.RawMessage(`[1]`)}, ClientToServer},
		{Frame{Type: TypeLeaveRoom, RoomID: "r", Seq: 2}, ClientToServer},
	}
	for _, tc := range frames {
		t.Run(string(tc.f.Type), func(t *testing.T) {
			b, err := Encode(&tc.f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(b, tc.dir)
			if err != nil {
				t.Fatalf("Decode(%s): %v", b, err)
			}
			if !reflect.DeepEqual(got, tc.f) {
				t.Fatalf("round trip: got %+v, want %+v", got, tc.f)
			}
			appended, err := AppendEncode([]byte("x"), &tc.f)
			if err != nil || string(appended) != "x"+string(b) {
				t.Fatalf("AppendEncode = %q, %v", appended, err)
			}
		})
	}
	if b, _ := Encode(&Frame{Type: TypePong}); string(b) != `{"type":"pong"}` {
		t.Fatalf("zero fields not omitted: %s", b)
	}
}

func TestCloseReasons(t *testing.T) {
	tests := []struct {
		word  string
		retry time.Duration
		want  string
	}{
		{"draining", 3200 * time.Millisecond, "draining retry_after_ms=3200"},
		{"", time.Second, "retry_after_ms=1000"},
		{"conn_limit", 0, "conn_limit"},
	}
	for _, tt := range tests {
		got := FormatReason(tt.word, tt.retry)
		if got != tt.want {
			t.Fatalf("FormatReason = %q, want %q", got, tt.want)
		}
		d, ok := ParseRetryAfter(got)
		if ok != (tt.retry > 0) || d != tt.retry {
			t.Fatalf("ParseRetryAfter(%q) = %s %v", got, d, ok)
		}
		if ReasonWord(got) != tt.word {
			t.Fatalf("ReasonWord(%q) = %q", got, ReasonWord(got))
		}
	}
	for _, bad := range []string{"retry_after_ms=", "retry_after_ms=x", "nothing", "retry_after_ms=99999999999999999999999"} {
		if _, ok := ParseRetryAfter(bad); ok {
			t.Fatalf("ParseRetryAfter(%q) accepted", bad)
		}
	}
	if len(FormatReason(strings.Repeat("w", 80), time.Hour)) > 123 {
		t.Fatal("reason longer than 123 bytes")
	}
}

func TestCloseInfo(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range CloseCodes() {
		if m.Name == "" || m.Meaning == "" || seen[m.Name] {
			t.Fatalf("bad table entry %+v", m)
		}
		seen[m.Name] = true
		if CloseInfo(m.Code) != m {
			t.Fatalf("CloseInfo(%d) mismatch", m.Code)
		}
	}
	if CloseInfo(CloseNormal).Reconnect || !CloseInfo(CloseDraining).Reconnect || CloseInfo(CloseUnauthorized).Reconnect {
		t.Fatal("reconnect advice wrong")
	}
	if got := CloseInfo(4999); got.Name != "4999" || !got.Reconnect {
		t.Fatalf("unlisted code: %+v", got)
	}
	if s := CloseSeqViolation.String(); s != "4003 seq_violation" {
		t.Fatalf("String = %q", s)
	}
}

func TestTokens(t *testing.T) {
	secret := []byte("k")
	now := time.Now()
	tok, err := SignToken(secret, "alice", now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if u, err := VerifyToken(secret, tok, now); err != nil || u != "alice" {
		t.Fatalf("VerifyToken = %q, %v", u, err)
	}
	if u, exp, err := VerifyTokenExpiry(secret, tok, now, 0); err != nil || u != "alice" || exp.Unix() != now.Add(time.Minute).Unix() {
		t.Fatalf("VerifyTokenExpiry = %q, %v, %v; want alice, the token's exp", u, exp, err)
	}
	for name, check := range map[string]func() error{
		"expired":    func() error { _, err := VerifyToken(secret, tok, now.Add(time.Hour)); return err },
		"wrong key":  func() error { _, err := VerifyToken([]byte("other"), tok, now); return err },
		"missing":    func() error { _, err := VerifyToken(secret, "", now); return err },
		"garbage":    func() error { _, err := VerifyToken(secret, "a.b.c", now); return err },
		"tampered":   func() error { _, err := VerifyToken(secret, tok[:len(tok)-2]+"xx", now); return err },
		"alg none":   func() error { _, err := VerifyToken(secret, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.", now); return err },
		"empty user": func() error { _, err := SignToken(secret, "", now); return err },
	} {
		err := check()
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if name != "empty user" && !errors.Is(err, ErrTokenInvalid) {
			t.Errorf("%s: %v does not wrap ErrTokenInvalid", name, err)
		}
	}
}

// FuzzDecode checks that Decode never panics, that what it accepts is a known type with its required
// fields, and that an accepted frame survives Encode → Decode unchanged.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"type":"hello","token":"t"}`, `{"type":"join_room","roomId":"r","seq":1}`,
		`{"type":"broadcast","roomId":"r","seq":2,"data":{"x":[1,"y",null]}}`, `{"type":"ping","timestamp":1}`,
		`{"type":"resume","session":"s","rooms":{"a":1}}`, `{"type":"welcome","session":"s","connId":"c","userId":"u"}`,
		`[]`, `{`, `{"type":7}`, "{\"type\":\"ping\",\"x\":\"\xff\"}",
	} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, b []byte, fromClient bool) {
		dir := ServerToClient
		if fromClient {
			dir = ClientToServer
		}
		fr, err := Decode(b, dir)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Code == "" || de.Error() == "" {
				t.Fatalf("error %v is not a usable *DecodeError", err)
			}
			if len(bytes.TrimSpace(b)) > 0 && !utf8.Valid(b) && de.Code != ErrCodeInvalidUTF8 {
				t.Fatalf("invalid UTF-8 %q refused with %q, want %q", b, de.Code, ErrCodeInvalidUTF8)
			}
			return
		}
		if !utf8.Valid(b) {
			t.Fatalf("accepted invalid UTF-8: %q", b)
		}
		if !KnownType(fr.Type, dir) {
			t.Fatalf("accepted unknown type %q", fr.Type)
		}
		if Sequenced(fr.Type) && dir == ClientToServer && fr.Seq == 0 {
			t.Fatalf("accepted a sequenced frame without seq: %s", b)
		}
		enc, err := Encode(&fr)
		if err != nil {
			t.Fatalf("Encode of a decoded frame: %v", err)
		}
		if !utf8.Valid(enc) {
			t.Fatalf("Encode produced invalid UTF-8: %q", enc)
		}
		again, err := Decode(enc, dir)
		if err != nil {
			t.Fatalf("re-decode of %s: %v", enc, err)
		}
		if !reflect.DeepEqual(normalize(again), normalize(fr)) {
			t.Fatalf("round trip changed the frame:\n%+v\n%+v", fr, again)
		}
	})
}

// normalize makes frames comparable across a round trip: empty and nil slices and maps are the
// same on the wire, and Data is compared in its compact form.
func normalize(f Frame) Frame {
	if len(f.Members) == 0 {
		f.Members = nil
	}
	if len(f.Rooms) == 0 {
		f.Rooms = nil
	}
	if len(f.Data) == 0 || string(f.Data) == "null" {
		f.Data = nil
	} else {
		var buf strings.Builder
		if b, err := json.Marshal(f.Data); err == nil {
			buf.Write(b)
		}
		f.Data = json.RawMessage(buf.String())
	}
	return f
}
