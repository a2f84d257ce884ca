package refserver

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/squall-dev/squall/refserver/protocol"
)

// The fuzz targets of the gateway's own decoders (the wire frames and tokens are fuzzed in package
// protocol). Their seed corpora are under testdata/fuzz; `make fuzz` runs each for FUZZTIME.

// FuzzSplitSendBody checks the POST /send body splitter: every frame is a non-empty trimmed line of
// the body within the size bound, at most maxSendFrames of them, in order, and nothing is lost
// unless tooLarge says so.
func FuzzSplitSendBody(f *testing.F) {
	for _, s := range []string{
		"", "\n\n", `{"type":"ping"}`, "{\"type\":\"ping\"}\r\n{\"type\":\"ping\"}\n",
		"  a  \n\tb\n", strings.Repeat("x\n", maxSendFrames+1), strings.Repeat("y", 300),
		"\xff\xfe\n{}", "\u2028{}\u2028\n",
	} {
		f.Add([]byte(s), int64(256))
	}
	f.Fuzz(func(t *testing.T, body []byte, maxFrame int64) {
		if maxFrame < 1 {
			maxFrame = 1
		}
		frames, tooLarge := splitSendBody(body, maxFrame)
		if len(frames) > maxSendFrames {
			t.Fatalf("%d frames, more than %d", len(frames), maxSendFrames)
		}
		var want [][]byte
		for _, line := range bytes.Split(body, []byte{'\n'}) {
			if line = bytes.TrimSpace(line); len(line) > 0 {
				want = append(want, line)
			}
		}
		for i, fr := range frames {
			if len(fr) == 0 || int64(len(fr)) > maxFrame || bytes.IndexByte(fr, '\n') >= 0 || !bytes.Equal(fr, bytes.TrimSpace(fr)) {
				t.Fatalf("frame %d = %q: not a trimmed non-empty line within %d bytes", i, fr, maxFrame)
			}
			if !bytes.Equal(fr, want[i]) {
				t.Fatalf("frame %d = %q, want line %q", i, fr, want[i])
			}
		}
		if !tooLarge && len(frames) != len(want) {
			t.Fatalf("%d frames of %d lines, and not tooLarge", len(frames), len(want))
		}
		if tooLarge && len(frames) == len(want) {
			t.Fatalf("tooLarge, yet every line (%d) was taken", len(want))
		}
	})
}

// FuzzDecodeSharedSession checks the decoding of a session stored in Redis (cluster resume): what it
// accepts has a user and non-empty rooms, and survives the store's own encoding unchanged.
func FuzzDecodeSharedSession(f *testing.F) {
	for _, s := range []string{
		`{"u":"alice","r":["lobby","a"]}`, `{"u":"bob"}`, `{"u":"","r":[]}`, `{"r":[""]}`, `[]`, `null`,
		`{"u":"x","r":[1]}`, "{\"u\":\"\xff\"}", `{"u":"a","r":null,"z":{}}`,
	} {
		f.Add("sess-1", s)
	}
	f.Fuzz(func(t *testing.T, id, v string) {
		ss, err := decodeSharedSession(id, v)
		if err != nil {
			return
		}
		if ss.ID != id || ss.UserID == "" || !utf8.ValidString(ss.UserID) {
			t.Fatalf("accepted %q as %+v", v, ss)
		}
		for _, r := range ss.Rooms {
			if r == "" || !utf8.ValidString(r) {
				t.Fatalf("accepted room %q", r)
			}
		}
		enc, err := json.Marshal(sharedSessionJSON{User: ss.UserID, Rooms: ss.Rooms})
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeSharedSession(id, string(enc))
		if err != nil || !reflect.DeepEqual(again, ss) {
			t.Fatalf("round trip of %+v: %+v, %v", ss, again, err)
		}
	})
}

// FuzzDecodeEnvelope checks the decoding of a room's pub/sub message or history entry: what it
// accepts is a server frame of the room with the fields its type requires, which a client decodes
// back unchanged.
func FuzzDecodeEnvelope(f *testing.F) {
	for _, s := range []string{
		`3 1700000000000 {"type":"broadcast","roomId":"r","from":"a","data":{"x":1}}`,
		`0 0 {"type":"presence","roomId":"r","event":"leave","userId":"u","reason":"timeout"}`,
		`0 0 {"type":"presence","roomId":"r","event":"leave"}`, `1 2`, `x y {}`, `1 2 {"type":"hello","token":"t"}`,
		`18446744073709551616 0 {}`, "1 2 {\"type\":\"broadcast\",\"data\":\"\xff\"}", `1 -5 {"type":"broadcast"}`,
	} {
		f.Add("r", s)
	}
	f.Fuzz(func(t *testing.T, roomID, msg string) {
		ev, err := decodeEnvelope(roomID, msg)
		if err != nil {
			return
		}
		if ev.RoomID != roomID || !protocol.KnownType(ev.Frame.Type, protocol.ServerToClient) {
			t.Fatalf("accepted %q as %+v", msg, ev)
		}
		enc, err := protocol.Encode(&ev.Frame)
		if err != nil {
			t.Fatalf("the accepted frame %+v does not encode: %v", ev.Frame, err)
		}
		if _, err := protocol.Decode(enc, protocol.ServerToClient); err != nil {
			t.Fatalf("members would get %s, which they cannot decode: %v", enc, err)
		}
	})
}

// FuzzDecodeRegistryMember checks the decoding of a connection-registry member: it never panics and
// reads back what the registry writes (node ids hold no '|').
func FuzzDecodeRegistryMember(f *testing.F) {
	for _, s := range []string{"node-a|c1-node-a", "|", "", "no-bar", "a|b|c"} {
		f.Add("user", s)
	}
	f.Fuzz(func(t *testing.T, user, m string) {
		e := decodeRegistryMember(user, m)
		if e.UserID != user {
			t.Fatalf("user %q became %q", user, e.UserID)
		}
		if !strings.Contains(e.NodeID, "|") && decodeRegistryMember(user, e.NodeID+"|"+e.ConnID) != e {
			t.Fatalf("%+v does not survive a round trip", e)
		}
	})
}

// FuzzParseFlaws checks the --flaw parser: what it accepts is known flaws only, and String reads back
// the same set.
func FuzzParseFlaws(f *testing.F) {
	for _, s := range []string{"", "none", "leak-on-error", "no-drain, no-seq-order", ",,", "bogus", "no-conn-limit,no-conn-limit"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fl, err := ParseFlaws(s)
		if err != nil {
			return
		}
		for name := range fl {
			if !knownFlaw(name) {
				t.Fatalf("%q accepted unknown flaw %q", s, name)
			}
		}
		again, err := ParseFlaws(fl.String())
		if err != nil || !reflect.DeepEqual(again, fl) {
			t.Fatalf("%q: round trip through %q gave %v, %v", s, fl.String(), again, err)
		}
	})
}

// FuzzParseBrokerURL checks the --broker parser: what it accepts is memory, or a URL the Redis client
// accepts too.
func FuzzParseBrokerURL(f *testing.F) {
	for _, s := range []string{"", "memory", "redis://127.0.0.1:6379/0", "rediss://u:p@h:1/2", "redis://", "redis://h:99999/x", "http://h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseBrokerURL(s)
		if err != nil || u == "" {
			return
		}
		if _, err := redis.ParseURL(u); err != nil {
			t.Fatalf("accepted %q, which the Redis client refuses: %v", s, err)
		}
	})
}
