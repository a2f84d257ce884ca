package refserver

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestWSWriteAfterOwnCloseFrame: once gorilla/websocket has sent a close frame of its own (1009 on
// an oversized frame, 1002 on a malformed one, the echo of a client's close), a frame or ping still
// queued is dropped without failing the connection. A write failure closes the socket at once,
// and a client still sending then gets a reset that discards the close frame (1006, not 1009).
func TestWSWriteAfterOwnCloseFrame(t *testing.T) {
	srv, err := New(testConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	serverSide := make(chan *websocket.Conn, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return
		}
		serverSide <- ws
	}))
	defer hs.Close()
	client, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ws := <-serverSide
	defer ws.Close()
	c := &conn{s: srv}
	tr := newWSTransport(ws)

	if err := tr.write(c, outItem{kind: itemText, data: []byte(`{"type":"ack"}`)}); err != nil {
		t.Fatalf("text frame before any close: %v", err)
	}
	// As gorilla/websocket does on an oversized frame (handleProtocolError).
	if err := ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseMessageTooBig, ""), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, it := range []outItem{{kind: itemText, data: []byte(`{"type":"presence"}`)}, {kind: itemPing}, {kind: itemClose, code: 1009}} {
		if err := tr.write(c, it); err != nil {
			t.Errorf("item kind %d after the close frame: %v, want it dropped without an error", it.kind, err)
		}
	}
	// The client gets the frame sent before the close, then the close itself.
	_ = client.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, data, err := client.ReadMessage(); err != nil || string(data) != `{"type":"ack"}` {
		t.Fatalf("first frame %q, %v", data, err)
	}
	_, _, err = client.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("after the frame: %v, want close 1009 and nothing between", err)
	}
}
