package refserver

import (
	"encoding/json"
	"errors"
	"io"
	"runtime"
	runtimemetrics "runtime/metrics"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/refserver/protocol"
)

// liveHeap returns the heap marked live by a collection (objects allocated while it ran, such as
// frames in flight, are not counted).
func liveHeap() uint64 {
	runtime.GC()
	sample := []runtimemetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	runtimemetrics.Read(sample)
	return sample[0].Value.Uint64()
}

// Acceptance: a client that never reads, in a room that gets 1 000 messages/s, is closed with 1008
// slow_consumer — promptly, although the server's writer to it is stalled on a full socket — and the
// heap does not grow by more than the send-queue bound meanwhile. When the client reads again it
// finds whole frames in roomSeq order and then the 1008 close.
func TestSlowConsumerClosed(t *testing.T) {
	const (
		rate      = 1000 // messages per second
		payload   = 4600 // a broadcast frame of ~4.7 KB: the allocator's 4864-byte size class
		sizeClass = 4864
		sendQueue = 1024
		noise     = 768 << 10 // frames in flight in the server and in this test vary between samples
	)
	cfg := testConfig()
	cfg.SendQueue = sendQueue
	cfg.HistorySize = 16
	// The slow client answers no pings while it does not read: keep the heartbeat out of the way.
	// The queue fills at the rate the flood reaches, which a loaded machine may slow to a few
	// hundred frames a second: both timeouts are well past the 60 s the test waits for the close.
	cfg.HeartbeatInterval = time.Second
	cfg.HeartbeatTimeout = 90 * time.Second
	// A long write timeout: the writer's own timeout must not be what ends the stalled connection
	// (an unbounded queue would then have grown by megabytes before anything happened). With 5 s,
	// a slowed flood let the stalled write time out first (a 1006 drop, no 1008).
	cfg.WriteTimeout = 90 * time.Second
	ts := startServer(t, cfg)

	data, _ := json.Marshal(strings.Repeat("x", payload))
	sample, _ := protocol.Encode(&protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "flood", From: "sender", Data: data,
		RoomSeq: 99999, SentAt: time.Now().UnixMilli()})
	if len(sample) > sizeClass || len(sample) < sizeClass*9/10 {
		t.Fatalf("a broadcast frame is %d bytes; pick a payload that fills the %d-byte size class", len(sample), sizeClass)
	}
	// The sender reads everything it gets and keeps none of it (no test-side buffering to blur the
	// heap figures).
	sender, _ := connect(t, ts, "sender", dialOpts{noReader: true})
	drained := make(chan error, 1)
	go func() {
		for {
			_, r, err := sender.ws.NextReader()
			if err == nil {
				_, err = io.Copy(io.Discard, r)
			}
			if err != nil {
				drained <- err
				return
			}
		}
	}()
	send := func(seq uint64) error {
		b, _ := protocol.Encode(&protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "flood", Seq: seq, Data: data})
		_ = sender.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
		return sender.ws.WriteMessage(websocket.TextMessage, b)
	}
	slow, _ := connect(t, ts, "slow", dialOpts{noReader: true})
	readUntil := func(what string, match func(protocol.Frame) bool) {
		_ = slow.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			_, b, err := slow.ws.ReadMessage()
			if err != nil {
				t.Fatalf("slow client waiting for %s: %v", what, err)
			}
			if f, err := protocol.Decode(b, protocol.ServerToClient); err == nil && match(f) {
				return
			}
		}
	}
	for i, c := range []*client{sender, slow} {
		join, _ := protocol.Encode(&protocol.Frame{Type: protocol.TypeJoinRoom, RoomID: "flood", Seq: 1})
		c.sendRaw(websocket.TextMessage, join)
		if i == 1 {
			readUntil("ack 1", func(f protocol.Frame) bool { return f.Type == protocol.TypeAck && f.Seq == 1 })
		}
	}
	// The slow client reads (and drops) what it gets until told to stop; then it reads nothing.
	var seen uint64 // last roomSeq the slow client read, owned by the reader until it stops
	stopReading := make(chan struct{})
	stoppedReading := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stopReading:
				stoppedReading <- nil
				return
			default:
			}
			_, b, err := slow.ws.ReadMessage()
			if err != nil {
				stoppedReading <- err
				return
			}
			if f, err := protocol.Decode(b, protocol.ServerToClient); err == nil && f.Type == protocol.TypeBroadcast {
				seen = f.RoomSeq
			}
		}
	}()
	stop := make(chan struct{})
	flooding := make(chan struct{})
	var floodErr error
	go func() { // 10 messages every 10 ms
		defer close(flooding)
		tk := time.NewTicker(10 * time.Millisecond)
		defer tk.Stop()
		for seq := uint64(1); ; {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			for i := 0; i < rate/100; i++ {
				seq++
				if err := send(seq); err != nil {
					floodErr = err
					return
				}
			}
		}
	}()
	defer func() { close(stop); <-flooding }()

	kicked := func() bool {
		return counterValue(t, ts.Server, protocol.MetricDisconnectsTotal, map[string]string{"code": "1008"}) > 0
	}
	// Steady state with everyone reading: the history is full and frames are in flight. The
	// baseline is the median of a few samples.
	_ = slow.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	time.Sleep(300 * time.Millisecond)
	if ts.Stats().HistoryEntries != cfg.HistorySize || kicked() {
		t.Fatalf("warm-up: %+v", ts.Stats())
	}
	var samples []uint64
	for i := 0; i < 5; i++ {
		samples = append(samples, liveHeap())
	}
	slices.Sort(samples)
	base := samples[2]
	close(stopReading)
	if err := <-stoppedReading; err != nil {
		t.Fatalf("slow client reading: %v", err)
	}
	start := time.Now()
	peak := base
	maxDepth := 0
	deadline := start.Add(60 * time.Second) // a loaded machine may not reach 1 000 msg/s
	for !kicked() {
		if time.Now().After(deadline) {
			select {
			case <-flooding:
				t.Fatalf("the flood stopped: %v", floodErr)
			case err := <-drained:
				t.Fatalf("the sender's connection ended: %v", err)
			default:
			}
			t.Fatalf("the slow consumer was not closed within 60s (stats %+v; disconnects by code %v)", ts.Stats(), disconnectCodes(t, ts.Server))
		}
		// The node's figures include the sender's own queue, which a loaded machine lets grow while
		// the sender's reader lags: those frames are the sender's, not the slow consumer's.
		heap, senderQueued := liveHeap(), queuedFor(ts.Server, "sender")
		peak = max(peak, heap-min(heap, uint64(senderQueued)*sizeClass))
		maxDepth = max(maxDepth, ts.Stats().QueueDepth-senderQueued)
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(start)
	// The bound: a full queue of these frames as the allocator holds them, and its slots (the queue
	// slice may have up to twice the capacity it uses).
	bound := uint64(sendQueue * (sizeClass + 2*int(unsafe.Sizeof(outItem{}))))
	growth := int64(peak) - int64(base)
	t.Logf("closed %s after the client stopped reading; live heap %d KiB → peak %d KiB (growth %d KiB, queue bound %d KiB); queue depth peak %d",
		took.Round(time.Millisecond), base>>10, peak>>10, growth>>10, bound>>10, maxDepth)
	if growth > int64(bound+noise) {
		t.Errorf("the heap grew by %d bytes, more than the send-queue bound %d (+%d for frames in flight)", growth, bound, noise)
	}
	if maxDepth > sendQueue+64 { // the node's total less the sender's queue: a few frames of slack
		t.Errorf("queue depth reached %d, over the bound %d", maxDepth, sendQueue)
	}

	// The client reads again: whole frames in order, then the 1008 close.
	_ = slow.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	frames := 0
	for {
		_, b, err := slow.ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != int(protocol.ClosePolicy) || ce.Text != protocol.ReasonSlowConsumer {
				t.Fatalf("after %d frames the stream ended with %v, want close 1008 slow_consumer", frames, err)
			}
			break
		}
		f, err := protocol.Decode(b, protocol.ServerToClient)
		if err != nil {
			t.Fatalf("frame %d: %v", frames, err)
		}
		if f.Type == protocol.TypeBroadcast {
			if seen != 0 && f.RoomSeq != seen+1 {
				t.Fatalf("roomSeq %d after %d: the frames before the close must be whole and in order", f.RoomSeq, seen)
			}
			seen = f.RoomSeq
		}
		frames++
	}
	t.Logf("the slow client then read %d frames and the 1008 close", frames)
	waitFor(t, 2*time.Second, "slow consumer cleaned up", func() bool {
		st := ts.Stats()
		return st.Subscriptions == 1 && st.ActiveConns == 1
	})
	// The rest of the room is unaffected: the sender is still connected and served.
	select {
	case err := <-drained:
		t.Fatalf("the sender's connection ended: %v", err)
	default:
	}
}

// disconnectCodes returns ws_disconnects_total by close code, for failure messages.
func disconnectCodes(t testing.TB, s *Server) map[string]float64 {
	t.Helper()
	mfs, err := s.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != protocol.MetricDisconnectsTotal {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "code" {
					codes[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return codes
}

// queuedFor returns the frames queued or being written on the live connections of user.
func queuedFor(s *Server, user string) int {
	n := 0
	for _, c := range s.liveConns() {
		if c.user != user {
			continue
		}
		c.qmu.Lock()
		n += c.pending
		c.qmu.Unlock()
	}
	return n
}
