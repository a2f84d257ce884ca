package refserver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// clientFrame is a masked client frame.
func clientFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = binary.BigEndian.AppendUint16(append(b, 0x80|126), uint16(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 0x80|127), uint64(n))
	}
	key := []byte{0x11, 0x22, 0x33, 0x44}
	b = append(b, key...)
	for i, c := range payload {
		b = append(b, c^key[i&3])
	}
	return b
}

func TestFrameReader(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 70000)
	for _, tc := range []struct {
		name    string
		in      []byte
		limit   int64
		want    []frameEvent
		wantErr string // "" none, "large", or the protocol error's text
	}{
		{"text", clientFrame(true, opText, []byte("hi")), 100, []frameEvent{{opText, []byte("hi")}}, ""},
		{"empty text", clientFrame(true, opText, nil), 100, []frameEvent{{opText, []byte{}}}, ""},
		{"16-bit length", clientFrame(true, opText, big[:300]), 1000, []frameEvent{{opText, big[:300]}}, ""},
		{"64-bit length", clientFrame(true, opBinary, big), 1 << 20, []frameEvent{{opBinary, big}}, ""},
		{"fragments with a ping between", append(append(clientFrame(false, opText, []byte("a")), clientFrame(true, opPing, []byte("p"))...),
			clientFrame(true, opContinuation, []byte("b"))...), 100, []frameEvent{{opPing, []byte("p")}, {opText, []byte("ab")}}, ""},
		{"close", clientFrame(true, opClose, []byte{3, 232}), 100, []frameEvent{{opClose, []byte{3, 232}}}, ""},
		{"too large", clientFrame(true, opText, big[:200]), 100, nil, "large"},
		{"fragments too large together", append(clientFrame(false, opText, big[:60]), clientFrame(true, opContinuation, big[:60])...), 100, nil, "large"},
		{"unmasked", []byte{0x81, 0x01, 'x'}, 100, nil, "bad MASK"},
		{"reserved opcode", []byte{0x83, 0x80, 1, 2, 3, 4}, 100, nil, "bad opcode 3"},
		{"reserved bit", []byte{0xc1, 0x80, 1, 2, 3, 4}, 100, nil, "unexpected reserved bits 0x40"},
		{"long control frame", clientFrame(true, opPing, big[:126]), 1000, nil, "control frame length > 125"},
		{"fragmented control frame", clientFrame(false, opPing, nil), 100, nil, "control frame not final"},
		{"stray continuation", clientFrame(true, opContinuation, []byte("x")), 100, nil, "continuation after final message frame"},
		{"new message inside one", append(clientFrame(false, opText, []byte("a")), clientFrame(true, opText, []byte("b"))...), 100, nil,
			"message start before final message frame"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Whole, then one byte at a time: the same events and the same error.
			for _, step := range []int{len(tc.in), 1} {
				var r frameReader
				var got []frameEvent
				var err error
				for i := 0; i < len(tc.in) && err == nil; i += step {
					chunk := append([]byte(nil), tc.in[i:min(i+step, len(tc.in))]...)
					err = r.feed(chunk, tc.limit, func(ev frameEvent) { got = append(got, ev) })
				}
				switch {
				case tc.wantErr == "" && err != nil:
					t.Fatalf("step %d: %v", step, err)
				case tc.wantErr == "large" && !errors.Is(err, errFrameTooLarge):
					t.Fatalf("step %d: err %v, want too large", step, err)
				case tc.wantErr != "" && tc.wantErr != "large":
					var pe frameProtocolError
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
					if got[i].op != tc.want[i].op || !bytes.Equal(got[i].payload, tc.want[i].payload) {
						t.Errorf("step %d: event %d = op %d %d bytes, want op %d %d bytes", step, i, got[i].op, len(got[i].payload), tc.want[i].op, len(tc.want[i].payload))
					}
				}
				if len(r.pending) != 0 {
					t.Errorf("step %d: %d bytes left pending", step, len(r.pending))
				}
			}
		})
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
		{[]byte{3}, 0, "", true},
		{[]byte{3, 237}, 0, "", true},       // 1005 may not be sent
		{[]byte{3, 232, 0xff}, 0, "", true}, // reason not UTF-8
		{[]byte{0x13, 0x88}, 0, "", true},   // 5000
	} {
		code, reason, err := parseClose(tc.in)
		if (err != nil) != tc.bad || code != tc.code || reason != tc.reason {
			t.Errorf("parseClose(%v) = %d %q %v", tc.in, code, reason, err)
		}
	}
}

// FuzzFrameReader feeds arbitrary bytes in arbitrary chunks: it never panics, and the events and
// error are the same as for the bytes fed whole.
func FuzzFrameReader(f *testing.F) {
	f.Add(clientFrame(true, opText, []byte("hello")), uint8(3))
	f.Add(append(clientFrame(false, opText, []byte("a")), clientFrame(true, opContinuation, []byte("b"))...), uint8(1))
	f.Add(clientFrame(true, opClose, []byte{3, 232}), uint8(2))
	f.Add([]byte{0x81, 0xff, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, uint8(4))
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		run := func(step int) ([]frameEvent, error) {
			var r frameReader
			var got []frameEvent
			var err error
			for i := 0; i < len(in) && err == nil; i += step {
				chunk := append([]byte(nil), in[i:min(i+step, len(in))]...)
				err = r.feed(chunk, 4096, func(ev frameEvent) { got = append(got, ev) })
			}
			return got, err
		}
		whole, werr := run(max(len(in), 1))
		parts, perr := run(int(step%16) + 1)
		if (werr == nil) != (perr == nil) || len(whole) != len(parts) {
			t.Fatalf("whole: %d events, %v; in chunks: %d events, %v", len(whole), werr, len(parts), perr)
		}
		for i := range whole {
			if whole[i].op != parts[i].op || !bytes.Equal(whole[i].payload, parts[i].payload) {
				t.Fatalf("event %d differs", i)
			}
		}
	})
}
