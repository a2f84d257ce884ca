package refserver

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/squall-dev/squall/refserver/protocol"
)

// cause says why a connection ended. The first cause recorded wins; cleanup maps it to the presence
// leave reason and the disconnect metric.
type cause int32

const (
	causeNone        cause = iota
	causeClientClose       // the client sent a close frame
	causeDropped           // TCP closed without a close frame (EOF)
	causeReadError         // a read failed (reset, protocol error, frame too large)
	causeWriteError        // a write failed or timed out
	causeTimeout           // heartbeat timeout: silent for longer than heartbeat-timeout
	causeKicked            // the server closed it on purpose (limits, slow consumer, shutdown)
	causeViolation         // the client broke the protocol (seq gap, unauthorized)
)

// presenceReason maps a cause to the reason of the presence leave it announces.
func (c cause) presenceReason() string {
	switch c {
	case causeClientClose, causeDropped:
		return protocol.ReasonClosed
	case causeTimeout:
		return protocol.ReasonTimeout
	case causeKicked:
		return protocol.ReasonKicked
	default:
		return protocol.ReasonError
	}
}

// abnormal reports whether the connection ended without a close handshake (what FlawLeakOnError
// fails to clean up).
func (c cause) abnormal() bool {
	switch c {
	case causeDropped, causeReadError, causeWriteError, causeTimeout:
		return true
	}
	return false
}

// outItem is one queued write.
type outItem struct {
	kind   uint8 // itemText, itemPing or itemClose
	replay bool  // a broadcast replayed by resume: outside the send-queue bound
	code   int   // close code of itemClose
	data   []byte
}

const (
	itemText uint8 = iota
	itemPing
	itemClose
)

// conn is one client connection, whatever its transport (WebSocket, SSE or long polling; see
// transport). Goroutines: exactly one run goroutine for the connection's life (the WebSocket reader),
// and a writer (writeLoop) only while frames are queued on a push transport. Frames are handled one
// at a time (handle), which owns the protocol state (auth, rooms, seq); the send queue is guarded by
// qmu; lastSeen and the cause are atomics so that the heartbeat wheel can read and set them.
type conn struct {
	s    *Server
	t    transport
	id   string
	ip   string
	user string // set once authenticated (reader goroutine), read by others after registration
	sess *session

	lastSeen atomic.Int64 // Unix ns of the last frame or pong received
	why      atomic.Int32 // cause; first recorded wins
	gone     atomic.Bool  // the connection's network side is closed (set before cleanup)
	slow     atomic.Bool  // kicked as a slow consumer: data still in hand is dropped, the close goes first
	code     atomic.Int32 // close code sent by the server, or received from the client

	// Heartbeat state, touched only by the wheel goroutine after registration.
	hbDue, hbNextPing int64

	// Reader-owned protocol state.
	nodeSlot, userSlot bool
	authed             bool
	rooms              connRooms
	seq                *sequencer
	gapTimer           *time.Timer

	qmu         sync.Mutex
	q           []outItem
	pending     int  // frames queued or being written
	replaying   int  // of which replayed by resume (not counted against the bound)
	writing     bool // a writer goroutine is running
	closeQueued bool // a close frame is queued: accept nothing more
	writeFailed bool
	wdone       chan struct{} // closed when the running writer exits; made only when someone waits
	roomWait    chan struct{} // closed when the queue has room again; made by a paused reader (awaitSendRoom)
	roomParked  bool          // a readiness-driven transport waits for room (parkForSendRoom)
}

func newConn(s *Server, t transport, ip string) *conn {
	c := &conn{s: s, t: t, ip: ip, id: strconv.FormatUint(s.connSeq.Add(1), 36) + "-" + s.nodeID}
	c.touch()
	return c
}

func (c *conn) touch()       { c.lastSeen.Store(time.Now().UnixNano()) }
func (c *conn) isGone() bool { return c.gone.Load() }

func (c *conn) setCause(w cause) { c.why.CompareAndSwap(int32(causeNone), int32(w)) }

func (c *conn) logger() *slog.Logger {
	return c.s.log.With("conn_id", c.id, "user_id", c.user, "remote_ip", c.ip)
}

// run is the connection's run goroutine: admission checks, authentication, then the transport's
// receive side. When that ends — for any reason — finish runs the one cleanup path.
//
// On a transport driven by readiness events (asyncReceiver), run is the connection's first job and
// returns once the start is done; the transport calls end when the connection is over.
func (c *conn) run(token string, nodeOK, ipOK bool) {
	c.nodeSlot = nodeOK && ipOK
	c.start(token, nodeOK, ipOK)
	if ar, ok := c.t.(asyncReceiver); ok {
		ar.receiveAsync(c)
		return
	}
	c.t.receive(c)
	c.end()
}

// end runs the one cleanup and releases the connection's hold on the Server's WaitGroup.
func (c *conn) end() {
	defer c.s.wg.Done()
	c.finish()
}

// asyncReceiver is a transport whose receive side is driven by readiness events instead of a
// goroutine blocked in a read (transport_nbio.go). receiveAsync is called once the connection has
// started and returns at once; the transport then hands frames to conn.handle on the connection's
// own serialised job list, and calls conn.end exactly once when the connection is over.
type asyncReceiver interface {
	receiveAsync(c *conn)
}

// async reports whether c's transport is readiness-driven: its frames are then already handled on
// shared goroutines, and the network side is closed before cleanup runs.
func (c *conn) async() bool {
	_, ok := c.t.(asyncReceiver)
	return ok
}

// exec runs fn the way c's frames are handled: on a shared worker for a goroutine transport (so that
// the reader's stack stays small), inline for a readiness-driven one (already on a shared goroutine).
func (c *conn) exec(fn func()) {
	if c.async() {
		fn()
		return
	}
	c.s.workers.do(fn)
}

// start runs the admission checks and, with a URL token, authentication.
func (c *conn) start(token string, nodeOK, ipOK bool) {

	switch {
	case c.s.closing.Load() && c.s.cfg.Flaws.Has(FlawNoDrain):
		c.abort(causeKicked)
	case c.s.closing.Load():
		c.kick(protocol.CloseDraining, c.s.drainReason(), causeKicked)
	case !nodeOK:
		c.s.metrics.rejections.WithLabelValues(rejectOverloaded).Inc()
		c.kick(protocol.CloseTryAgainLater, protocol.FormatReason(protocol.ReasonOverloaded, c.s.retryHint()), causeKicked)
	case !ipOK:
		c.s.metrics.rejections.WithLabelValues(rejectConnLimit).Inc()
		c.kick(protocol.ClosePolicy, protocol.ReasonConnLimit, causeKicked)
	case token != "":
		c.exec(func() { c.authenticate(token, "") })
	default:
		c.t.awaitHello(c, c.s.cfg.HelloTimeout)
	}
}

// inFrames holds the frames client messages are decoded into: a decoded frame is passed on by
// value, never by its address, so it goes back once handled.
var inFrames = sync.Pool{New: func() any { return new(protocol.Frame) }}

// handle processes one text frame.
func (c *conn) handle(data []byte) {
	fp := inFrames.Get().(*protocol.Frame)
	*fp = protocol.Frame{}
	defer inFrames.Put(fp)
	c.handleFrame(data, fp)
}

func (c *conn) handleFrame(data []byte, f *protocol.Frame) {
	if err := protocol.DecodeInto(data, protocol.ClientToServer, f); err != nil {
		if !c.authed {
			c.unauthorized("the first frame must be hello with a token")
			return
		}
		code := protocol.ErrCodeMalformed
		var de *protocol.DecodeError
		if errors.As(err, &de) {
			code = de.Code
		}
		c.sendError(code, err.Error(), 0)
		return
	}
	if !c.authed {
		if f.Type != protocol.TypeHello {
			c.unauthorized("the first frame must be hello with a token")
			return
		}
		c.authenticate(f.Token, f.Session)
		return
	}
	switch f.Type {
	case protocol.TypeHello:
		c.sendError(protocol.ErrCodeAlreadyHello, "already authenticated", 0)
	case protocol.TypePing:
		*f = protocol.Frame{Type: protocol.TypePong, Timestamp: f.Timestamp}
		c.sendFrame(f)
	case protocol.TypeResume:
		c.resume(*f)
	default:
		c.sequenced(*f)
	}
}

func zeroRooms(in map[string]uint64) map[string]uint64 {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]uint64, len(in))
	for k := range in {
		out[k] = 0
	}
	return out
}

// sequenced runs a join_room, leave_room or broadcast through the sequencer and applies what it
// releases, acking each applied frame.
func (c *conn) sequenced(f protocol.Frame) {
	if c.s.cfg.Flaws.Has(FlawNoSeqOrder) {
		c.apply(f)
		return
	}
	res := c.seq.offer(f)
	switch {
	case res.violation:
		c.seqViolation(res.missing)
		return
	case res.duplicate:
		c.sendFrame(&protocol.Frame{Type: protocol.TypeAck, Seq: f.Seq})
		return
	}
	for _, g := range res.apply {
		c.apply(g)
	}
	if res.gapOpened {
		c.startGapTimer(res.gen)
	}
}

func (c *conn) startGapTimer(gen uint64) {
	if c.gapTimer != nil {
		c.gapTimer.Stop()
	}
	c.gapTimer = time.AfterFunc(c.s.cfg.ReorderTimeout, func() {
		if missing, open := c.seq.gapOpenSince(gen); open {
			c.seqViolation(missing)
		}
	})
}

// seqViolation answers a gap that will not fill: an error frame, then close 4003.
func (c *conn) seqViolation(missing uint64) {
	c.sendError(protocol.ErrCodeSeqGap, "seq "+strconv.FormatUint(missing, 10)+" never arrived", missing)
	c.kick(protocol.CloseSeqViolation, "seq_gap", causeViolation)
}

// apply performs one client frame and acks it.
func (c *conn) apply(f protocol.Frame) {
	h := c.s.hub
	switch f.Type {
	case protocol.TypeJoinRoom:
		if code := h.join(c, f.RoomID); code != "" {
			c.sendError(code, "join_room "+f.RoomID+" failed", f.Seq)
			return
		}
		c.s.sessions.setRoom(c.sess, f.RoomID, true)
	case protocol.TypeLeaveRoom:
		if !h.leave(c, f.RoomID, protocol.ReasonLeft, true) {
			c.sendError(protocol.ErrCodeNotMember, "not a member of "+f.RoomID, f.Seq)
			return
		}
		c.s.sessions.setRoom(c.sess, f.RoomID, false)
	case protocol.TypeBroadcast:
		if c.rooms.get(f.RoomID) == nil {
			c.sendError(protocol.ErrCodeNotMember, "not a member of "+f.RoomID, f.Seq)
			return
		}
		if err := h.broadcast(c, f.RoomID, f.Data); err != nil {
			c.logger().Warn("broadcast failed", "room_id", f.RoomID, "err", err)
			c.sendError(protocol.ErrCodeInternalError, "broadcast failed", f.Seq)
			return
		}
	}
	c.sendFrame(&protocol.Frame{Type: protocol.TypeAck, Seq: f.Seq})
}

// authenticate checks a token and, on success, registers the connection and sends welcome. A
// non-empty sessionID (hello with session) continues that session instead of starting a new one; an
// unknown, expired or foreign one is answered with error session_invalid and close 4002.
func (c *conn) authenticate(token, sessionID string) {
	user, err := c.s.authGuard.checkWithin(c.s.ctx, c.s.cfg.HelloTimeout, token)
	if err != nil {
		if errors.Is(err, ErrUnauthorized) {
			c.unauthorized("invalid token")
			return
		}
		c.logger().Debug("auth unavailable", "err", err)
		c.kick(protocol.CloseTryAgainLater, protocol.FormatReason(protocol.ReasonAuthDown, authRetryHint(err)), causeKicked)
		return
	}
	if err := protocol.CheckUserID(user); err != nil {
		// An injected backend's answer: the user id is echoed to room members, so it is checked.
		c.logger().Warn("auth backend returned a bad user id", "err", err)
		c.unauthorized("the token names no valid user id")
		return
	}
	if !c.s.acquireUser(c, user) {
		c.s.metrics.rejections.WithLabelValues(rejectConnLimit).Inc()
		c.kick(protocol.ClosePolicy, protocol.ReasonConnLimit, causeKicked)
		return
	}
	now := time.Now()
	c.userSlot = true
	c.user = user
	sse, _ := c.t.(*sseTransport)
	var sseReplay [][]byte
	var sseLast map[string]uint64
	sseResumed := false
	switch {
	case sessionID != "":
		if !c.continueSession(sessionID, now) {
			return
		}
	case sse != nil && sse.resumeSession != "":
		if sseReplay, sseLast, sseResumed = c.continueSSE(sse.resumeSession, sse.resumeAfter); !sseResumed {
			c.logger().Debug("SSE stream cannot resume: new session", "last_event_id", sseEventID(sse.resumeSession, sse.resumeAfter))
			c.sess = c.s.sessions.create(user, c, now)
		}
	default:
		c.sess = c.s.sessions.create(user, c, now)
	}
	c.authed = true
	c.seq = newSequencer(c.s.cfg.ReorderWindow)
	if c.s.recent.isReconnect(user, now) {
		c.s.metrics.reconnects.Inc()
	}
	c.t.awaitHello(c, 0)
	c.s.hub.addConn(c)
	c.s.wheel.add(c, now)
	if sseResumed {
		// POST /send finds the connection once authenticated: it waits until the replay is queued.
		sse.recvMu.Lock()
		defer sse.recvMu.Unlock()
	}
	c.t.authenticated(c)
	c.sendFrame(&protocol.Frame{
		Type: protocol.TypeWelcome, Session: c.sess.id, ConnID: c.id, UserID: user,
		HeartbeatInterval: c.s.cfg.HeartbeatInterval.Milliseconds(),
		HeartbeatTimeout:  c.s.cfg.HeartbeatTimeout.Milliseconds(),
	})
	if sseResumed {
		c.resumeSSE(sseReplay, sseLast)
	}
}

func (c *conn) unauthorized(msg string) {
	c.s.metrics.rejections.WithLabelValues(rejectUnauthorized).Inc()
	c.sendError(protocol.ErrCodeUnauthorized, msg, 0)
	c.kick(protocol.CloseUnauthorized, "unauthorized", causeViolation)
}

func (c *conn) sendError(code, msg string, seq uint64) {
	c.sendFrame(&protocol.Frame{Type: protocol.TypeError, Code: code, Message: msg, Seq: seq})
}

func (c *conn) sendFrame(f *protocol.Frame) {
	b, err := protocol.Encode(f)
	if err != nil {
		c.logger().Error("encode frame", "type", f.Type, "err", err)
		return
	}
	c.enqueue(b)
}

// enqueue queues one encoded text frame; the same slice may be queued to many connections and is
// never modified. A full queue closes the connection with 1008 slow_consumer. It never blocks.
func (c *conn) enqueue(b []byte) bool {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if c.closeQueued || c.writeFailed || c.gone.Load() {
		return false
	}
	if c.pending-c.replaying >= c.s.cfg.SendQueue {
		c.kickSlowLocked() // see slowconsumer.go
		return false
	}
	c.pushLocked(outItem{kind: itemText, data: b})
	return true
}

// ping queues a WebSocket ping (heartbeat wheel).
func (c *conn) ping() {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if c.closeQueued || c.writeFailed || c.gone.Load() {
		return
	}
	c.pushLocked(outItem{kind: itemPing})
}

// kick closes the connection on the server's initiative: a close frame with code and reason after
// what is already queued, then the TCP connection once the client answers or close-grace passes.
func (c *conn) kick(code protocol.CloseCode, reason string, why cause) {
	c.setCause(why)
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if c.closeQueued || c.writeFailed || c.gone.Load() {
		return
	}
	c.queueCloseLocked(code, reason)
}

func (c *conn) queueCloseLocked(code protocol.CloseCode, reason string) {
	c.closeQueued = true
	c.wakeReaderLocked()
	c.code.CompareAndSwap(0, int32(code))
	c.pushLocked(outItem{kind: itemClose, code: int(code), data: []byte(reason)})
}

func (c *conn) pushLocked(it outItem) {
	c.q = append(c.q, it)
	c.pending++
	c.s.queueDepth.Add(1)
	start := !c.writing
	c.writing = true
	c.t.queued(c, it.kind, start)
}

func (c *conn) closing() bool {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return c.closeQueued
}

// abort drops the network side at once (heartbeat timeout, shutdown without drain); the run
// goroutine then runs cleanup with cause why.
func (c *conn) abort(why cause) {
	c.setCause(why)
	c.t.abort(c)
}

// writeLoop drains the send queue and exits when it is empty (push transports). Writes never happen
// elsewhere, except the control frames gorilla/websocket sends itself (pong, close echo, 1009) which
// it serialises.
func (c *conn) writeLoop() {
	defer c.s.wg.Done()
	for {
		batch, ok := c.nextBatch()
		if !ok {
			return
		}
		c.delivered(batch, c.writeBatch(batch))
	}
}

// nextBatch takes everything queued for delivery. When nothing is (or a write failed), delivery
// stops: c.writing is cleared, a cleanup waiting for the close frame is released, and ok is false.
func (c *conn) nextBatch() (batch []outItem, ok bool) {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if len(c.q) == 0 || c.writeFailed {
		c.dropQueuedLocked()
		c.writing = false
		if c.wdone != nil {
			close(c.wdone)
			c.wdone = nil
		}
		return nil, false
	}
	batch = c.q
	c.q = nil
	return batch, true
}

// writeBatch writes the items of a batch in order through the transport, up to the first error.
func (c *conn) writeBatch(batch []outItem) error {
	for _, it := range batch {
		if it.kind != itemClose && c.slow.Load() {
			continue // kicked as a slow consumer meanwhile: only the close goes out
		}
		if err := c.t.write(c, it); err != nil {
			return err
		}
	}
	return nil
}

// delivered settles a batch taken by nextBatch; err (from writing it) ends the connection as a
// write error.
func (c *conn) delivered(batch []outItem, err error) {
	c.qmu.Lock()
	c.settleLocked(batch)
	if err != nil {
		c.writeFailed = true
		c.wakeReaderLocked()
	}
	c.qmu.Unlock()
	if err != nil {
		c.setCause(causeWriteError)
		c.t.abort(c)
	}
}

// finish is the one cleanup path, run by the run goroutine once the transport's receive side ended
// (or by the transport's close event for a readiness-driven one), whatever ended it.
func (c *conn) finish() {
	why := cause(c.why.Load())
	if why == causeNone {
		why = causeReadError
		c.setCause(why)
	}
	// Let a queued close frame go out before the socket closes.
	c.qmu.Lock()
	var wait chan struct{}
	if c.writing && c.closeQueued && !c.writeFailed && !c.async() {
		c.wdone = make(chan struct{})
		wait = c.wdone
	}
	c.qmu.Unlock()
	if wait != nil {
		t := time.NewTimer(c.s.cfg.CloseGrace)
		select {
		case <-wait:
		case <-t.C:
		}
		t.Stop()
	}
	c.gone.Store(true)
	c.t.release(c)
	if c.gapTimer != nil {
		c.gapTimer.Stop()
	}

	code := int(c.code.Load())
	if code == 0 {
		code = int(protocol.CloseAbnormal)
	}
	c.s.metrics.disconnects.WithLabelValues(codeLabel(code)).Inc()
	if why == causeTimeout {
		c.s.metrics.heartbeatTimeouts.Inc()
	}
	leak := why.abnormal() && c.s.cfg.Flaws.Has(FlawLeakOnError)
	if c.authed {
		c.s.wheel.remove(c)
		c.s.hub.removeConn(c)
		c.s.hub.orphan(c)
		if !leak {
			// The session is resumable before anyone is told of the leaves: a client whose peers
			// saw it leave can resume at once.
			c.s.shareSession(c.sess) // cluster mode: resumable on every node
			c.s.sessions.detach(c.sess, c, time.Now())
			for _, id := range c.rooms.ids() {
				c.s.hub.leave(c, id, why.presenceReason(), false)
			}
		}
		c.s.recent.left(c.user, time.Now())
	}
	if c.userSlot {
		c.s.releaseUser(c)
	}
	if c.nodeSlot {
		c.s.limits.releaseNode(c.ip)
	}
	c.s.metrics.updatePoolAlerts(c.s.limits.usage())
	c.s.forget(c)
	if c.s.log.Enabled(context.Background(), slog.LevelDebug) {
		c.logger().Debug("connection ended", "cause", int(why), "code", code, "leaked", leak)
	}
}

// waitWriter waits, at most d, for a running writer to deliver what it holds and exit (nothing is
// queued any more once the connection is gone).
func (c *conn) waitWriter(d time.Duration) {
	c.qmu.Lock()
	var wait chan struct{}
	if c.writing {
		if c.wdone == nil {
			c.wdone = make(chan struct{})
		}
		wait = c.wdone
	}
	c.qmu.Unlock()
	if wait == nil {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-wait:
	case <-t.C:
	}
}

// codeLabel is the ws_disconnects_total label of a close code: the code for the codes of the
// protocol's table and the WebSocket standard range, "other" for the rest (clients choose their own
// codes; the label set must stay bounded).
func codeLabel(code int) string {
	if code >= 1000 && code <= 1015 || protocol.CloseInfo(protocol.CloseCode(code)).Name != strconv.Itoa(code) {
		return strconv.Itoa(code)
	}
	return "other"
}

// jitter returns d scaled by a random factor in [lo, hi).
func jitter(d time.Duration, lo, hi float64) time.Duration {
	return time.Duration(float64(d) * (lo + rand.Float64()*(hi-lo)))
}

// enqueueReplay queues broadcasts replayed by resume, in order, as one unit: they are not counted
// against the send-queue bound (they are bounded by the history, whose payloads they share), so a
// resume larger than --send-queue is not mistaken for a slow consumer. Called with the rooms locked.
func (c *conn) enqueueReplay(entries []historyEntry) {
	if len(entries) == 0 {
		return
	}
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if c.closeQueued || c.writeFailed || c.gone.Load() {
		return
	}
	for _, e := range entries {
		c.replaying++
		c.pushLocked(outItem{kind: itemText, replay: true, data: e.payload})
	}
}

// dropQueuedLocked discards what is queued and not yet taken for delivery.
func (c *conn) dropQueuedLocked() {
	c.settleLocked(c.q)
	c.q = nil
}

// settleLocked accounts for items that left the queue (delivered or dropped).
func (c *conn) settleLocked(items []outItem) {
	c.s.queueDepth.Add(-int64(len(items)))
	c.pending -= len(items)
	for _, it := range items {
		if it.replay {
			c.replaying--
		}
	}
	if (c.roomWait != nil || c.roomParked) && c.pending-c.replaying <= c.s.cfg.SendQueue/2 {
		c.wakeReaderLocked()
	}
}

// Pacing. A client that pipelines many requests fills its own send queue with their replies faster
// than the writer drains it, even while it reads at full speed; closing it as a slow consumer would
// lose every reply. Instead its reader pauses (awaitSendRoom, before handing over each frame) while
// the queue is three quarters full, and goes on once the writer has drained it to half: the client's
// requests wait in TCP's buffers, and its replies are paced by how fast it reads them. Frames the
// client does not cause (broadcasts of others) still fill the queue of a client that does not read,
// which is closed as a slow consumer as before; a client that reads nothing is also ended by its
// write timeout or heartbeat timeout.

// sendRoomShortLocked reports whether the send queue of a live connection is at least three
// quarters full, which pauses its reader (c.qmu held).
func (c *conn) sendRoomShortLocked() bool {
	return c.pending-c.replaying >= max(1, c.s.cfg.SendQueue*3/4) && !c.closeQueued && !c.writeFailed && !c.gone.Load()
}

// awaitSendRoom pauses the reader while the send queue is at least three quarters full (see above).
func (c *conn) awaitSendRoom() {
	c.qmu.Lock()
	for c.sendRoomShortLocked() {
		wait := make(chan struct{})
		c.roomWait = wait
		c.qmu.Unlock()
		<-wait
		c.qmu.Lock()
	}
	c.qmu.Unlock()
}

// roomWaiter is a readiness-driven transport, whose frames are handled on a job list that must not
// block: instead of awaitSendRoom it parks (parkForSendRoom) and is called back by sendRoom, with
// c.qmu held (it must not block), once the queue has room again or the connection is closing.
type roomWaiter interface {
	sendRoom(c *conn)
}

// parkForSendRoom is awaitSendRoom for a roomWaiter: it reports whether the send queue is at least
// three quarters full, and then has the transport's sendRoom called once it has drained to half.
func (c *conn) parkForSendRoom() bool {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if !c.sendRoomShortLocked() {
		return false
	}
	c.roomParked = true
	return true
}

// wakeReaderLocked releases a reader paused in awaitSendRoom, or parked (c.qmu held).
func (c *conn) wakeReaderLocked() {
	if c.roomWait != nil {
		close(c.roomWait)
		c.roomWait = nil
	}
	if c.roomParked {
		c.roomParked = false
		if w, ok := c.t.(roomWaiter); ok {
			w.sendRoom(c)
		}
	}
}
