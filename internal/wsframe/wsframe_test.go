package wsframe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

var testKey = [4]byte{0x11, 0x22, 0x33, 0x44}

// frame builds one frame: masked (a client's) or not (a server's).
func frame(masked, fin bool, op byte, payload []byte) []byte {
	if masked && fin {
		return AppendClientFrame(nil, op, payload, testKey)
	}
	b0 := op
	if fin {
		b0 |= 0x80
	}
	var m byte
	if masked {
		m = 0x80
	}
	b := appendLength([]byte{b0}, m, len(payload))
	if !masked {
		return append(b, payload...)
	}
	b = append(b, testKey[:]...)
	for i, c := range payload {
		b = append(b, c^testKey[i&3])
	}
	return b
}

func TestReader(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 70000)
	for _, fromClient := range []bool{true, false} {
		f := func(fin bool, op byte, p []byte) []byte { return frame(fromClient, fin, op, p) }
		cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
		side := map[bool]string{true: "client frames/", false: "server frames/"}[fromClient]
		for _, tc := range []struct {
			name    string
			in      []byte
			limit   int64
			want    []Event
			wantErr string // "" none, "large", or the protocol error's text
		}{
			{"text", f(true, OpText, []byte("hi")), 100, []Event{{OpText, []byte("hi")}}, ""},
			{"empty text", f(true, OpText, nil), 100, []Event{{OpText, []byte{}}}, ""},
			{"16-bit length", f(true, OpText, big[:300]), 1000, []Event{{OpText, big[:300]}}, ""},
			{"64-bit length", f(true, OpBinary, big), 1 << 20, []Event{{OpBinary, big}}, ""},
			{"two messages", cat(f(true, OpText, []byte("a")), f(true, OpText, []byte("b"))), 100, []Event{{OpText, []byte("a")}, {OpText, []byte("b")}}, ""},
			{"fragments with a ping between", cat(f(false, OpText, []byte("a")), f(true, OpPing, []byte("p")), f(true, OpContinuation, []byte("b"))),
				100, []Event{{OpPing, []byte("p")}, {OpText, []byte("ab")}}, ""},
			{"close", f(true, OpClose, []byte{3, 232}), 100, []Event{{OpClose, []byte{3, 232}}}, ""},
			{"too large", f(true, OpText, big[:200]), 100, nil, "large"},
			{"fragments too large together", cat(f(false, OpText, big[:60]), f(true, OpContinuation, big[:60])), 100, nil, "large"},
			{"wrong masking", frame(!fromClient, true, OpText, []byte("x")), 100, nil, "bad MASK"},
			{"reserved opcode", frame(fromClient, true, 3, nil), 100, nil, "bad opcode 3"},
			{"reserved bit", append([]byte{0xc1}, frame(fromClient, true, OpText, nil)[1:]...), 100, nil, "unexpected reserved bits 0x40"},
			{"long control frame", f(true, OpPing, big[:126]), 1000, nil, "control frame length > 125"},
			{"fragmented control frame", f(false, OpPing, nil), 100, nil, "control frame not final"},
			{"stray continuation", f(true, OpContinuation, []byte("x")), 100, nil, "continuation after final message frame"},
			{"new message inside one", cat(f(false, OpText, []byte("a")), f(true, OpText, []byte("b"))), 100, nil,
				"message start before final message frame"},
		} {
			t.Run(side+tc.name, func(t *testing.T) {
				// Whole, then one byte at a time: the same events and the same error.
				for _, step := range []int{len(tc.in), 1} {
					r := Reader{FromClient: fromClient}
					var got []Event
					var err error
					for i := 0; i < len(tc.in) && err == nil; i += step {
						chunk := append([]byte(nil), tc.in[i:min(i+step, len(tc.in))]...)
						err = r.Feed(chunk, tc.limit, func(ev Event) { got = append(got, ev) })
					}
					switch {
					case tc.wantErr == "" && err != nil:
						t.Fatalf("step %d: %v", step, err)
					case tc.wantErr == "large" && !errors.Is(err, ErrTooLarge):
						t.Fatalf("step %d: err %v, want too large", step, err)
					case tc.wantErr != "" && tc.wantErr != "large":
						var pe ProtocolError
						if !errors.As(err, &pe) || string(pe) != tc.wantErr {
							t.Fatalf("step %d: err %v, want protocol error %q", step, err, tc.wantErr)
						}
					}
					if tc.wantErr != "" {
						continue
					}
					if len(got) != len(tc.want) {
						t.Fatalf("step %d: %d events, want %d", step, len(got), len(tc.want))
					}
					for i := range got {
						if got[i].Op != tc.want[i].Op || !bytes.Equal(got[i].Payload, tc.want[i].Payload) {
							t.Errorf("step %d: event %d = op %d %d bytes, want op %d %d bytes", step, i, got[i].Op, len(got[i].Payload), tc.want[i].Op, len(tc.want[i].Payload))
						}
					}
					if r.Pending() != 0 {
						t.Errorf("step %d: %d bytes left pending", step, r.Pending())
					}
				}
			})
		}
	}
}

func TestParseClose(t *testing.T) {
	for _, tc := range []struct {
		in     []byte
		code   int
		reason string
		bad    bool
	}{
		{nil, 1005, "", false},
		{[]byte{3, 232, 'b', 'y', 'e'}, 1000, "bye", false},
		{[]byte{15, 160}, 4000, "", false},
		{[]byte{3, 245}, 1013, "", false}, // try again later
		{[]byte{3, 246}, 0, "", true},     // 1014: not accepted (as gorilla/websocket)
		{[]byte{3}, 0, "", true},
		{[]byte{3, 237}, 0, "", true},       // 1005 may not be sent
		{[]byte{3, 232, 0xff}, 0, "", true}, // reason not UTF-8
		{[]byte{0x13, 0x88}, 0, "", true},   // 5000
	} {
		code, reason, err := ParseClose(tc.in)
		if (err != nil) != tc.bad || code != tc.code || reason != tc.reason {
			t.Errorf("ParseClose(%v) = %d %q %v", tc.in, code, reason, err)
		}
	}
	if p := ClosePayload(4001, "retry_after_ms=5"); binary.BigEndian.Uint16(p) != 4001 || string(p[2:]) != "retry_after_ms=5" {
		t.Errorf("ClosePayload = %v", p)
	}
	if p := ClosePayload(1005, "x"); p != nil {
		t.Errorf("ClosePayload(1005) = %v, want none", p)
	}
}

// TestClientFrameRoundTrip: what AppendClientFrame writes, a server-side Reader reads back.
func TestClientFrameRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 65535, 65536} {
		p := bytes.Repeat([]byte{'a'}, n)
		r := Reader{FromClient: true}
		var got []Event
		if err := r.Feed(AppendClientFrame(nil, OpBinary, p, [4]byte{9, 8, 7, 6}), 0, func(e Event) { got = append(got, e) }); err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if len(got) != 1 || got[0].Op != OpBinary || !bytes.Equal(got[0].Payload, p) {
			t.Fatalf("%d bytes: got %d events", n, len(got))
		}
	}
}

// FuzzReader feeds arbitrary bytes in arbitrary chunks, as either side: it never panics, and the
// events and error are the same as for the bytes fed whole.
func FuzzReader(f *testing.F) {
	f.Add(frame(true, true, OpText, []byte("hello")), uint8(3), true)
	f.Add(frame(false, true, OpText, []byte("hello")), uint8(3), false)
	f.Add(append(frame(true, false, OpText, []byte("a")), frame(true, true, OpContinuation, []byte("b"))...), uint8(1), true)
	f.Add(frame(false, true, OpClose, []byte{3, 232}), uint8(2), false)
	f.Add([]byte{0x81, 0xff, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, uint8(4), true)
	f.Fuzz(func(t *testing.T, in []byte, step uint8, fromClient bool) {
		run := func(step int) ([]Event, error) {
			r := Reader{FromClient: fromClient}
			var got []Event
			var err error
			for i := 0; i < len(in) && err == nil; i += step {
				chunk := append([]byte(nil), in[i:min(i+step, len(in))]...)
				err = r.Feed(chunk, 4096, func(ev Event) { got = append(got, ev) })
			}
			return got, err
		}
		whole, werr := run(max(len(in), 1))
		parts, perr := run(max(int(step), 1))
		if (werr == nil) != (perr == nil) || (werr != nil && werr.Error() != perr.Error()) {
			t.Fatalf("whole: %v, in chunks of %d: %v", werr, step, perr)
		}
		if werr != nil {
			return
		}
		if len(whole) != len(parts) {
			t.Fatalf("whole: %d events, in chunks of %d: %d", len(whole), step, len(parts))
		}
		for i := range whole {
			if whole[i].Op != parts[i].Op || !bytes.Equal(whole[i].Payload, parts[i].Payload) {
				t.Fatalf("event %d differs", i)
			}
		}
	})
}
