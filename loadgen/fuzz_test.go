package loadgen

import (
	"bytes"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseURL feeds arbitrary text to the target URL parser: it never panics, and what it accepts
// is a ws:// URL with a host and port whose metrics URL is the same host's /metrics.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"ws://127.0.0.1:8080/ws", "127.0.0.1:9", "ws://[::1]:80", "wss://h:1/x", "http://a:1", "ws://h", "ws://h:1/?q=1#f", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		ep, err := ParseURL(raw)
		if err != nil {
			return
		}
		u, perr := url.Parse(ep.URL)
		if perr != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Port() == "" || u.Path == "" {
			t.Fatalf("ParseURL(%q) accepted %q", raw, ep.URL)
		}
		m, perr := url.Parse(ep.MetricsURL)
		if perr != nil || m.Host != u.Host || !strings.HasSuffix(m.Path, "/metrics") {
			t.Fatalf("ParseURL(%q): metrics URL %q for %q", raw, ep.MetricsURL, ep.URL)
		}
		if again, err := ParseURL(ep.URL); err != nil || again != ep {
			t.Fatalf("ParseURL(%q) = %+v does not parse back the same: %+v %v", raw, ep, again, err)
		}
	})
}

// FuzzParseStamp feeds arbitrary payloads to the stamp reader: it never panics, what it accepts
// has a sender and a sequence, and every stamp appendStamp writes reads back the same.
func FuzzParseStamp(f *testing.F) {
	f.Add([]byte(`{"squall":1,"u":"users-1","c":1,"g":1,"r":"room-0","s":3,"t":1700000000000000000,"id":"users-1/1/room-0/3"}`), "users-1", uint64(3), 0)
	f.Add([]byte(`"{\"squall\":1,\"u\":\"a\",\"s\":1}"`), "a/b", uint64(1), 4)
	f.Add([]byte(`{"squall":2}`), "", uint64(0), 0)
	f.Fuzz(func(t *testing.T, raw []byte, user string, seq uint64, pad int) {
		if s, ok := parseStamp(raw); ok && (s.User == "" || s.Seq == 0) {
			t.Fatalf("parseStamp(%q) accepted %+v", raw, s)
		}
		if v, ok := decodeJSON(raw); ok {
			if s, ok := parseStamp(v); ok && (s.User == "" || s.Seq == 0) {
				t.Fatalf("parseStamp(decoded %q) accepted %+v", raw, s)
			}
		}
		if user == "" || seq == 0 || pad < 0 || pad > 1<<12 || !utf8.ValidString(user) {
			return // JSON has no invalid UTF-8: such a user id would come back with U+FFFD
		}
		in := stamp{Mark: 1, User: user, Client: 7, Gen: 2, Room: "r", Seq: seq, Sent: 42, ID: stampID(user, 2, "r", seq)}
		b := appendStamp(nil, &in, pad)
		out, ok := parseStamp(b)
		out.Pad = ""
		if !ok || out != in {
			t.Fatalf("stamp %+v wrote %s, read back %+v %v", in, b, out, ok)
		}
	})
}

// FuzzJSONPath feeds arbitrary paths and messages to the generic profile's matchers: compiling
// and following a path never panics.
func FuzzJSONPath(f *testing.F) {
	f.Add("$.push.pub.data", []byte(`{"push":{"channel":"r","pub":{"data":{"squall":1},"offset":3}}}`))
	f.Add("items[0].id", []byte(`{"items":[{"id":"x"}]}`))
	f.Add("a[1][2]", []byte(`{"a":[0,[1,2,3]]}`))
	f.Add("$", []byte(`[1,2]`))
	f.Fuzz(func(t *testing.T, path string, msg []byte) {
		p, err := parsePath(path)
		if err != nil {
			return
		}
		v, ok := decodeJSON(msg)
		if !ok {
			return
		}
		got, _ := p.get(v)
		_, _ = scalarString(got)
		m, err := newMatcher(map[string]string{path: "*"})
		if err == nil {
			_ = m.match(v)
		}
	})
}

// FuzzSSEEvents feeds arbitrary streams to the SSE reader of the fallback tier: it never panics,
// and the events of a well-formed stream come back as written.
func FuzzSSEEvents(f *testing.F) {
	f.Add([]byte(": squall\n\ndata: {\"type\":\"welcome\"}\n\n: ping\n\nevent: close\ndata: {\"code\":1000}\n\n"), "x", "close")
	f.Add([]byte("data: a\ndata: b\r\n\r\n"), "", "")
	f.Fuzz(func(t *testing.T, stream []byte, data, event string) {
		_ = readSSEEvents(bytes.NewReader(stream), func(string, []byte) bool { return false }, func([]byte) {})
		if strings.ContainsAny(data, "\r\n") || strings.ContainsAny(event, "\r\n") || data == "" || strings.HasPrefix(data, " ") {
			return
		}
		var got []string
		w := "event: " + event + "\ndata: " + data + "\n\n: ping\n\ndata: " + data + "\n\n"
		_ = readSSEEvents(strings.NewReader(w), func(ev string, d []byte) bool {
			got = append(got, ev+"|"+string(d))
			return false
		}, func([]byte) {})
		want := []string{strings.TrimSpace(event) + "|" + data, "|" + data}
		if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
			t.Fatalf("stream %q read as %q, want %q", w, got, want)
		}
	})
}

// FuzzSocketIOEvent feeds arbitrary packets to the socketio profile's event decoder: it never
// panics, and an event it encodes decodes back.
func FuzzSocketIOEvent(f *testing.F) {
	f.Add([]byte(`["message","room-0",{"squall":1,"u":"a","s":1}]`), "room-0", uint32(0))
	f.Add([]byte(`12["message","r",{}]`), "r", uint32(12))
	f.Add([]byte(`99999999999["x"]`), "", uint32(1))
	p := &socketIOProtocol{evDelivery: "message"}
	f.Fuzz(func(t *testing.T, packet []byte, room string, ack uint32) {
		_, _ = splitAckID(packet)
		_, _, _ = p.delivered(packet)
		if room == "" || !utf8.ValidString(room) {
			return
		}
		in := stamp{Mark: 1, User: "u", Room: room, Seq: 1, ID: "i"}
		b := event(ack, "message", appendJSONString(nil, room), appendStamp(nil, &in, 0))
		gotRoom, got, ok := p.delivered(b[2:])
		if !ok || gotRoom != room || got != in {
			t.Fatalf("event %s decoded as %q %+v %v", b, gotRoom, got, ok)
		}
	})
}
