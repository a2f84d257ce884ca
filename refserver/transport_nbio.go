package refserver

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/logging"

	"github.com/squall-dev/squall/internal/wsframe"
	"github.com/squall-dev/squall/refserver/protocol"
)

// The readiness-driven WebSocket transport (Config.IO = IONbio, the default).
//
// The HTTP side is unchanged: the net/http server accepts, runs the handler and gorilla/websocket
// answers the upgrade, so every refusal (503, 403, 426, bad handshakes) is the same as with the
// goroutine transport. The upgraded socket is then handed to the Server's nbio engine (an
// edge-triggered epoll loop over every connection, nbioIO): from there on an idle connection holds
// no goroutine and no read buffer. The poller reads into its own buffer and parses the frames
// (wsframe.go, which keeps only an incomplete frame between reads); complete messages and control
// frames go to the connection's inbox, which a pump job handles in order on the connection's job
// list (nbio runs it on a shared goroutine), so a connection's start (admission, URL-token
// authentication), its frames and its cleanup never overlap. Writes go straight to the socket
// without blocking: what the kernel does not take waits in nbio's buffer and is flushed by the
// poller when the socket is writable. Timers are shared too: the heartbeat wheel as before, one
// watchdog for writes that stall (write-timeout), and short-lived timers only while a connection
// waits for hello or for the client's close answer. TLS and PROXY-protocol connections are not
// taken over (nbioCarries): they keep the goroutine transport.
//
// Back-pressure, both ways, as with the goroutine transport:
//   - Reading stops while a connection's inbox holds nbioInboxFrames frames or nbioInboxBytes
//     bytes, and the pump, having emptied it, reads on; the pump itself parks while the send
//     queue is three quarters full (conn.parkForSendRoom) and goes on once it has drained to half.
//     A client that sends faster than its frames are handled is thus slowed by TCP.
//   - A connection whose socket buffer is full (nbio holds bytes the kernel did not take) stops
//     taking text frames from its send queue until nbio has flushed them, so a client that does
//     not read fills the queue and is closed with 1008 slow_consumer; control frames always go out
//     (behind what nbio holds).
//
// Descriptors. nbio keys connections by descriptor number, and its poller acts on a batch of
// events at a time: an event taken for a socket that is then closed elsewhere is acted on with the
// descriptor number — by then possibly a new connection's. So the transport never closes a socket
// itself: it shuts it down (closeSocket), and the poller, woken by the hang-up, closes it while
// acting on that event (a socket has one event per batch at most, and its registration ends with
// the descriptor). The one close nbio makes elsewhere, on a write that fails, is caught when the
// number is reused (nbioIO.settle): the new socket waits until the poller has finished its batch.

// nbioIO is a Server's epoll engine.
type nbioIO struct {
	s       *Server
	engine  *nbio.Engine
	runners *jobRunners  // run the connections' job lists
	probes  []*nbioProbe // one per poller, at index fd % number of pollers

	stallMu sync.Mutex
	stalled map[*nbioTransport]int64 // connections whose writes are held up, since (unix ns)
	quit    chan struct{}
	done    chan struct{}

	ownMu  sync.Mutex
	owners []*nbioTransport // the last connection given each descriptor number (see settle)
}

// nbioEngine returns the Server's engine, starting it on first use; nil once the Server has shut
// down, or when the engine cannot start (the connection then takes the goroutine transport).
func (s *Server) nbioEngine() *nbioIO {
	s.nbioMu.Lock()
	defer s.nbioMu.Unlock()
	if s.nbio == nil && !s.nbioStopped {
		n, err := newNbioIO(s)
		if err != nil {
			s.log.Error("nbio engine did not start: WebSocket connections use the goroutine transport", "err", err)
			s.nbioStopped = true
			return nil
		}
		s.nbio = n
	}
	return s.nbio
}

// stopNbio stops the engine, if it started (final shutdown: every connection has ended).
func (s *Server) stopNbio() {
	s.nbioMu.Lock()
	n := s.nbio
	s.nbioStopped = true
	s.nbioMu.Unlock()
	if n != nil {
		n.stop()
	}
}

// nbioLogOnce routes nbio's process-wide logger to slog (its own prints to stdout).
var nbioLogOnce sync.Once

// nbioLog is nbio's logger: errors at Error, the rest (engine start and stop) at Debug, through
// slog's default logger.
type nbioLog struct{}

func (nbioLog) Debug(format string, v ...any) { slog.Debug("nbio: " + fmt.Sprintf(format, v...)) }
func (nbioLog) Info(format string, v ...any)  { slog.Debug("nbio: " + fmt.Sprintf(format, v...)) }
func (nbioLog) Warn(format string, v ...any)  { slog.Debug("nbio: " + fmt.Sprintf(format, v...)) }
func (nbioLog) Error(format string, v ...any) { slog.Error("nbio: " + fmt.Sprintf(format, v...)) }

func newNbioIO(s *Server) (*nbioIO, error) {
	nbioLogOnce.Do(func() { logging.SetLogger(nbioLog{}) })
	npoller := max(1, runtime.NumCPU()/2)
	eng := nbio.NewEngine(nbio.Config{
		Name:    "refserver-" + s.nodeID,
		NPoller: npoller,
		// The pollers' shared read buffers: one per poller, not per connection.
		ReadBufferSize: 16 << 10,
		// Edge-triggered, and the read handler reads itself: a connection whose inbox is full is
		// simply not read (level-triggered, the poller would be woken for it over and over).
		EpollMod: nbio.EPOLLET,
	})
	// A connection's job list runs off the poller while it has jobs (nbio would run it on the
	// poller): on an idle runner, else on a goroutine of its own.
	runners := newJobRunners(jobRunnersPerEngine)
	eng.Execute = runners.execute
	eng.OnOpen(nbioOpened)
	eng.OnRead(nbioRead)
	eng.OnClose(nbioClosed)
	eng.OnWrittenSize(nbioWritten)
	if err := eng.Start(); err != nil {
		runners.stop()
		return nil, err
	}
	n := &nbioIO{s: s, engine: eng, runners: runners, stalled: map[*nbioTransport]int64{}, quit: make(chan struct{}), done: make(chan struct{}),
		// As long as nbio's own table (pages never written stay virtual).
		owners: make([]*nbioTransport, nbio.MaxOpenFiles)}
	probes, err := addProbes(eng, npoller)
	if err != nil {
		eng.Stop()
		runners.stop()
		return nil, err
	}
	n.probes = probes
	// nbio's poller clears its stop flag when its goroutine first runs: an engine stopped before
	// then spins forever (a test server stopped right after its start, on a loaded machine). A
	// probe's visit proves its poller's loop is running.
	for _, p := range probes {
		if !p.barrier(time.Minute) {
			s.log.Warn("nbio: a poller did not start within a minute")
		}
	}
	go n.watchdog()
	return n, nil
}

// settle is called before t's socket, with descriptor number fd, goes on the engine. nbio releases
// a descriptor on the poller (hang-up, read error) or, when a write fails, on the writer's
// goroutine. The first is safe: the poller acts on each socket's event once per batch, and the
// registration ends with the descriptor. The second can happen while the poller holds an event of
// the socket not acted on yet (the reset that made the write fail), which it would then apply to
// whatever connection is given the same number meanwhile: so when the number's previous connection
// was closed by a failed write (or a write is still failing), settle waits until the poller that
// watches fd has finished the batch of events it was acting on.
func (n *nbioIO) settle(fd int, t *nbioTransport) {
	if fd < 0 || fd >= len(n.owners) {
		return // nbio refuses it
	}
	n.ownMu.Lock()
	prev := n.owners[fd]
	n.owners[fd] = t
	n.ownMu.Unlock()
	if prev == nil || (prev.inWrite.Load() == 0 && !prev.writeClosed.Load()) {
		return
	}
	if !n.probes[fd%len(n.probes)].barrier(time.Second) {
		n.s.log.Warn("nbio: a poller did not answer its probe within 1s", "fd", fd)
	}
}

// forget drops t from the descriptor table once nbio has closed it, unless settle needs it (a
// failed write closed it, or a write is under way: nbio reports closes after the fact).
func (n *nbioIO) forget(fd int, t *nbioTransport) {
	if fd < 0 || fd >= len(n.owners) {
		return
	}
	n.ownMu.Lock()
	if n.owners[fd] == t && t.inWrite.Load() == 0 && !t.writeClosed.Load() {
		n.owners[fd] = nil
	}
	n.ownMu.Unlock()
}

// stop stops the watchdog and the engine (every connection has ended by then).
func (n *nbioIO) stop() {
	select {
	case <-n.quit:
		return
	default:
	}
	close(n.quit)
	<-n.done
	n.engine.Stop()
	n.runners.stop()
	for _, p := range n.probes {
		_ = syscall.Close(p.peer)
	}
}

// jobRunnersPerEngine is how many long-lived goroutines run the job lists of one engine's
// connections.
const jobRunnersPerEngine = 8

// jobRunners run the connections' job lists on a few long-lived goroutines, whose stacks have
// grown to what a job takes (a token's verification, a frame's JSON) once, instead of a new
// goroutine per list that grows its stack again every time. A list that finds no runner idle runs
// on a goroutine of its own, so a job that blocks (a slow auth backend) holds up no other.
//
// Concurrency: execute may be called from any goroutine, before and after stop; stop ends the
// runners once they are idle and waits for them (later lists get goroutines of their own).
type jobRunners struct {
	jobs chan func() // unbuffered: a send succeeds only when a runner is idle
	quit chan struct{}
	wg   sync.WaitGroup
}

func newJobRunners(n int) *jobRunners {
	r := &jobRunners{jobs: make(chan func()), quit: make(chan struct{})}
	r.wg.Add(n)
	for range n {
		go r.run()
	}
	return r
}

func (r *jobRunners) run() {
	defer r.wg.Done()
	for {
		select {
		case f := <-r.jobs:
			f()
		case <-r.quit:
			return
		}
	}
}

func (r *jobRunners) execute(f func()) {
	select {
	case r.jobs <- f:
	default:
		go f()
	}
}

func (r *jobRunners) stop() {
	select {
	case <-r.quit:
	default:
		close(r.quit)
	}
	r.wg.Wait()
}

// watchdog visits the connections whose writes are held up, every write-timeout/4 (at most every
// 250 ms): it resumes a writer whose socket has drained (a missed wake-up), and closes a connection
// whose data has waited longer than write-timeout (the goroutine transport's write deadline).
func (n *nbioIO) watchdog() {
	defer close(n.done)
	tick := min(max(n.s.cfg.WriteTimeout/4, 10*time.Millisecond), 250*time.Millisecond)
	tk := time.NewTicker(tick)
	defer tk.Stop()
	var visit []*nbioTransport
	var since []int64
	for {
		select {
		case <-n.quit:
			return
		case now := <-tk.C:
			limit := now.Add(-n.s.cfg.WriteTimeout).UnixNano()
			visit, since = visit[:0], since[:0]
			n.stallMu.Lock()
			for t, at := range n.stalled {
				visit = append(visit, t)
				since = append(since, at)
			}
			n.stallMu.Unlock()
			for i, t := range visit {
				if t.unsent.Load() <= 0 {
					n.unstall(t)
					if t.held.CompareAndSwap(true, false) {
						t.resume()
					}
					continue
				}
				if since[i] <= limit {
					n.unstall(t)
					t.c.setCause(causeWriteError)
					t.closeSocket()
				}
			}
		}
	}
}

// stall puts t under the watchdog's eye (nbio holds bytes of it); unstall takes it off. Both are
// cheap when nothing changes.
func (n *nbioIO) stall(t *nbioTransport) {
	if !t.watched.CompareAndSwap(false, true) {
		return
	}
	n.stallMu.Lock()
	n.stalled[t] = time.Now().UnixNano()
	n.stallMu.Unlock()
}

func (n *nbioIO) unstall(t *nbioTransport) {
	if !t.watched.CompareAndSwap(true, false) {
		return
	}
	n.stallMu.Lock()
	delete(n.stalled, t)
	n.stallMu.Unlock()
}

// nbioTransport is one connection on the engine.
type nbioTransport struct {
	io *nbioIO
	c  *conn
	nc *nbio.Conn

	start      func() // the connection's first job (conn.run), queued when the engine takes it
	releaseTCP func() // returns the per-IP TCP cap's count once the socket is closed; may be nil

	upgrade     atomic.Pointer[[]byte] // the 101 not yet sent: it goes out with the first frames (upgradeConn)
	unsent      atomic.Int64           // bytes handed to the socket that the kernel has not taken yet
	held        atomic.Bool            // the writer left text frames queued for back-pressure
	watched     atomic.Bool            // in nbioIO.stalled
	discard     atomic.Bool            // reading is over (oversized or malformed frame): bytes are dropped
	closeSent   atomic.Bool            // a close frame went out
	ended       atomic.Bool            // conn.end has run (it runs once)
	shut        atomic.Bool            // the socket is shut down (closeSocket): the poller closes it
	inWrite     atomic.Int32           // calls into nbio's Write in progress (one that fails closes the socket)
	writeClosed atomic.Bool            // a failed write closed the socket (off the poller; see settle)
	added       atomic.Bool            // the engine has the socket: its job list exists (nbioOpened)
	resumeDue   atomic.Bool            // the writer is to be started (resume), once added

	// Reading: by the poller, or by a job resuming a paused read (one at a time, under rmu).
	rmu    sync.Mutex
	rd     wsframe.Reader
	unread bool // reading stopped with bytes possibly left in the socket (the inbox was full)

	// Frames read and not yet handled, in order (under inMu).
	inMu    sync.Mutex
	inbox   []inFrame
	inBytes int
	pumping bool // a pump job is queued, running, or parked until the send queue has room

	mu    sync.Mutex  // guards timer
	timer *time.Timer // hello timeout or close grace, while one runs
}

// inFrame is a frame read and waiting to be handled, or the read error that ended reading.
type inFrame struct {
	wsframe.Event
	err error
}

// Read back-pressure: the poller stops reading a connection while this many frames, or payload
// bytes, wait in its inbox (one read of the poller's buffer can go beyond), and the job that
// empties the inbox reads on. A client that sends faster than its frames are handled then waits
// on TCP, as with the goroutine transport (whose reader holds one frame at a time).
const (
	nbioInboxFrames = 32
	nbioInboxBytes  = 64 << 10
)

var _ transport = (*nbioTransport)(nil)
var _ asyncReceiver = (*nbioTransport)(nil)
var _ unsticker = (*nbioTransport)(nil)
var _ roomWaiter = (*nbioTransport)(nil)

// nbioCarries reports whether the engine can take nc over: a plain TCP socket (under the per-IP
// cap's wrapper). TLS connections, and PROXY-protocol ones (whose reader may hold bytes already
// read from the socket), stay on the goroutine transport.
func nbioCarries(nc net.Conn) bool {
	if hc, ok := nc.(*upgradeConn); ok {
		nc = hc.Conn
	}
	if cc, ok := nc.(*cappedConn); ok {
		nc = cc.Conn
	}
	_, ok := nc.(*net.TCPConn)
	return ok
}

// serveNbio takes an upgraded gorilla connection over to the engine and starts the connection,
// authenticated with token (requestToken of r; empty: it waits for a hello). ws is not used after.
//
// The connection's fields are written here and read by a poller goroutine once the socket is
// registered with epoll (in AddConn): the epoll_ctl system call orders them, which the race
// detector cannot see, so this function is not instrumented (nbio's own code is marked the same
// way).
//
//go:norace
func (s *Server) serveNbio(n *nbioIO, ws *websocket.Conn, r *http.Request, token string) {
	nc := ws.NetConn()
	var upgrade []byte // the 101, when held for the first frames (upgradeConn)
	if hc, ok := nc.(*upgradeConn); ok {
		nc, upgrade = hc.Conn, hc.held
	}
	if s.cfg.SocketBuffer > 0 {
		setSocketBuffers(nc, s.cfg.SocketBuffer)
	}
	// A connection counted by the per-IP TCP cap (httpguard.go) is released when nbio closes the
	// socket, not when the original descriptor is closed below.
	var release func()
	if cc, ok := nc.(*cappedConn); ok {
		nc, release = cc.Conn, func() { cc.once.Do(cc.release) }
	}
	nbc, err := nbio.NBConn(nc) // a duplicate of the socket; nc is closed
	if err != nil {
		s.log.Debug("nbio: taking the connection over failed", "remote_ip", s.clientIP(r), "err", err)
		_ = nc.Close()
		if release != nil {
			release()
		}
		return
	}
	t := &nbioTransport{io: n, nc: nbc, releaseTCP: release, rd: wsframe.Reader{FromClient: true}}
	c := s.registerConn(t, r)
	if c == nil {
		// Shutdown began during the upgrade. The socket is not on the engine: it is written and
		// closed here directly.
		msg := websocket.FormatCloseMessage(int(protocol.CloseDraining), s.drainReason())
		_, _ = syscall.Write(nbc.Hash(), append(wsframe.AppendHeader(upgrade, wsframe.OpClose, len(msg)), msg...))
		_ = nbc.Close()
		if release != nil {
			release()
		}
		return
	}
	t.c = c
	if upgrade != nil {
		t.upgrade.Store(&upgrade)
	}
	nodeOK, ipOK := s.limits.acquireNode(c.ip)
	s.metrics.updatePoolAlerts(s.limits.usage())
	c.nodeSlot = nodeOK && ipOK
	t.start = func() {
		c.run(token, nodeOK, ipOK)
		t.sendHeldUpgrade()
	}
	nbc.SetSession(t)
	n.settle(nbc.Hash(), t)
	if _, err := n.engine.AddConn(nbc); err != nil {
		// nbio has closed it and calls the close handler, which cleans up.
		s.log.Debug("nbio: adding the connection failed", "remote_ip", c.ip, "err", err)
	}
}

// nbioOpened queues a connection's start as its first job, before the engine watches its socket
// (so that every frame comes after it).
func nbioOpened(nc *nbio.Conn) {
	t, _ := nc.Session().(*nbioTransport)
	if t == nil || t.start == nil {
		return
	}
	nc.Execute(t.start)
	t.start = nil
	t.added.Store(true)
	if t.resumeDue.Load() {
		t.resume() // the writer was started before the engine had the socket
	}
}

func (t *nbioTransport) kind() string { return "ws" }

func (t *nbioTransport) awaitHello(c *conn, d time.Duration) {
	if d <= 0 {
		t.stopTimer()
		return
	}
	t.setTimer(d, func() { t.nc.Execute(func() { t.helloExpired(c) }) })
}

// helloExpired answers a connection that sent no hello within hello-timeout as the goroutine
// transport does: error unauthorized, then close 4001 (queued like any other frame).
func (t *nbioTransport) helloExpired(c *conn) {
	if c.authed || c.closing() || c.isGone() {
		return
	}
	c.unauthorized("no hello within hello-timeout")
}

func (t *nbioTransport) authenticated(*conn) {}

func (t *nbioTransport) receive(*conn) { panic("refserver: nbio transport: receive is asynchronous") }

// receiveAsync: frames are already flowing to the job list behind the start.
func (t *nbioTransport) receiveAsync(*conn) {}

// setTimer replaces the connection's one short-lived timer.
func (t *nbioTransport) setTimer(d time.Duration, f func()) {
	t.mu.Lock()
	if t.timer != nil {
		t.timer.Stop()
	}
	t.timer = time.AfterFunc(d, f)
	t.mu.Unlock()
}

func (t *nbioTransport) stopTimer() {
	t.mu.Lock()
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
	t.mu.Unlock()
}

// nbioRead is the engine's read handler, on a poller goroutine, for every edge of a socket's
// readiness (the engine is edge-triggered): it reads what the socket holds unless the connection's
// inbox is full.
func nbioRead(nc *nbio.Conn) {
	switch s := nc.Session().(type) {
	case *nbioTransport:
		s.read(s.io.engine.PollerBuffer(nc), true)
	case *nbioProbe:
		s.visit()
	}
}

// readBufs holds the buffers a job resuming a paused read reads into (the poller has its own).
var readBufs = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// read reads what the socket holds into buf and parses it, until the socket is drained or the
// inbox is full: reading then stops, and the client's further bytes wait in TCP's buffers until
// the pump has emptied the inbox and reads on (resumeReading). onPoller says who calls: a read
// error closes the socket at once on the poller, through shutdown elsewhere (closeSocket).
func (t *nbioTransport) read(buf []byte, onPoller bool) {
	t.rmu.Lock()
	defer t.rmu.Unlock()
	for {
		if !t.discard.Load() && t.inboxFull() {
			t.unread = true
			return
		}
		n, err := t.nc.Read(buf)
		if n > 0 {
			t.received(buf[:n])
		}
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN), errors.Is(err, net.ErrClosed):
			t.unread = false
			return
		case err != nil:
			t.unread = false
			if onPoller {
				_ = t.nc.CloseWithError(err)
			} else {
				t.c.setCause(causeReadError)
				t.closeSocket()
			}
			return
		case n < len(buf):
			// Drained (or EOF, n == 0: the poller closes the socket on the hang-up event that
			// comes with it). Bytes that arrive later raise a new edge.
			t.unread = false
			return
		}
	}
}

// received parses bytes read and queues each complete frame, or the error that ends reading.
func (t *nbioTransport) received(data []byte) {
	if t.discard.Load() {
		return
	}
	err := t.rd.Feed(data, t.c.s.cfg.MaxFrameBytes, func(ev wsframe.Event) { t.push(inFrame{Event: ev}) })
	if err != nil {
		t.discard.Store(true)
		t.push(inFrame{err: err})
	}
}

// inboxFull reports whether reading must wait for the pump.
func (t *nbioTransport) inboxFull() bool {
	t.inMu.Lock()
	defer t.inMu.Unlock()
	return len(t.inbox) >= nbioInboxFrames || t.inBytes >= nbioInboxBytes
}

// push queues a frame on the inbox and starts the pump on the job list when none is on it.
func (t *nbioTransport) push(f inFrame) {
	t.inMu.Lock()
	t.inbox = append(t.inbox, f)
	t.inBytes += len(f.Payload)
	start := !t.pumping
	t.pumping = true
	t.inMu.Unlock()
	if start {
		t.nc.Execute(t.pump)
	}
}

// pump handles the inbox's frames in order, on the job list. Before a text frame it parks while
// the connection's send queue is three quarters full (conn.parkForSendRoom: the queue's drain
// queues the pump again), as the goroutine transport's reader waits in awaitSendRoom: the inbox
// then fills, reading stops, and the client's requests wait in TCP. Once the inbox is empty it
// reads on if reading had stopped.
func (t *nbioTransport) pump() {
	for {
		t.inMu.Lock()
		if len(t.inbox) == 0 {
			t.inbox, t.inBytes, t.pumping = nil, 0, false
			t.inMu.Unlock()
			t.resumeReading()
			return
		}
		f := t.inbox[0]
		if f.err == nil && f.Op == wsframe.OpText && t.c.parkForSendRoom() {
			t.inMu.Unlock()
			return
		}
		t.inbox[0] = inFrame{}
		t.inbox = t.inbox[1:]
		t.inBytes -= len(f.Payload)
		t.inMu.Unlock()
		if f.err != nil {
			t.readError(f.err)
		} else {
			t.frame(f.Event)
		}
	}
}

// sendRoom queues the parked pump again (conn.wakeReaderLocked, with conn.qmu held).
func (t *nbioTransport) sendRoom(*conn) { t.nc.Execute(t.pump) }

// resumeReading reads on when reading stopped on a full inbox (the socket raises no new edge for
// bytes that were already there).
func (t *nbioTransport) resumeReading() {
	t.rmu.Lock()
	unread := t.unread
	t.rmu.Unlock()
	if !unread {
		return
	}
	bp := readBufs.Get().(*[]byte)
	t.read(*bp, false)
	readBufs.Put(bp)
}

// frame handles one frame on the job list.
func (t *nbioTransport) frame(ev wsframe.Event) {
	c := t.c
	c.touch()
	switch ev.Op {
	case wsframe.OpPing:
		t.write1(wsframe.OpPong, ev.Payload)
	case wsframe.OpPong:
	case wsframe.OpClose:
		code, _, err := wsframe.ParseClose(ev.Payload)
		if err != nil {
			t.readError(err)
			return
		}
		c.code.CompareAndSwap(0, int32(code))
		c.setCause(causeClientClose)
		if code == websocket.CloseNoStatusReceived {
			code = websocket.CloseNormalClosure
		}
		_ = t.writeClose(code, "")
		t.closeSocket()
	default:
		c.s.metrics.messagesIn.Inc()
		switch {
		case c.closing():
		case ev.Op != wsframe.OpText:
			c.sendError(protocol.ErrCodeBinary, "only text frames are accepted", 0)
		case !utf8.Valid(ev.Payload):
			c.sendError(protocol.ErrCodeInvalidUTF8, "text frame is not valid UTF-8", 0)
		default:
			c.handle(ev.Payload)
		}
	}
}

// readError answers a frame that cannot be read: 1009 for an oversized one (the rest of it is
// swallowed for a moment so that the close frame is not lost to a TCP reset), 1002 for a malformed
// one, as gorilla/websocket does.
func (t *nbioTransport) readError(err error) {
	c := t.c
	t.discard.Store(true)
	if errors.Is(err, wsframe.ErrTooLarge) {
		c.code.CompareAndSwap(0, int32(protocol.CloseTooLarge))
		c.setCause(causeReadError)
		_ = t.writeClose(int(protocol.CloseTooLarge), "")
		t.lingerClose(max(c.s.cfg.CloseGrace, 5*time.Second))
		return
	}
	var pe wsframe.ProtocolError
	text := err.Error()
	if errors.As(err, &pe) {
		text = string(pe)
	}
	c.code.CompareAndSwap(0, int32(websocket.CloseProtocolError))
	c.setCause(causeReadError)
	_ = t.writeClose(websocket.CloseProtocolError, text)
	t.closeSocket()
}

// lingerClose half-closes the socket once what nbio holds is out (a FIN after it), drops what the
// client sends, and closes after d or when the client closes too.
func (t *nbioTransport) lingerClose(d time.Duration) {
	t.discard.Store(true)
	deadline := time.Now().Add(d)
	var try func()
	try = func() {
		if t.unsent.Load() > 0 && time.Now().Before(deadline) {
			t.setTimer(10*time.Millisecond, try)
			return
		}
		shutdownWrite(t)
		t.setTimer(max(time.Until(deadline), 0), t.closeSocket)
	}
	try()
}

// nbioClosed is every connection's close handler (nbio calls it asynchronously, after it has
// released the descriptor): it records why and runs the one cleanup on the connection's job list
// (after every frame).
func nbioClosed(nc *nbio.Conn, err error) {
	t, _ := nc.Session().(*nbioTransport)
	if t == nil {
		return
	}
	t.io.forget(nc.Hash(), t)
	if t.releaseTCP != nil {
		t.releaseTCP()
	}
	nc.MustExecute(func() {
		t.stopTimer()
		t.io.unstall(t)
		// What is still queued will not go out: a writer held back by bytes nbio held is never
		// resumed now.
		t.c.qmu.Lock()
		t.c.dropQueuedLocked()
		t.c.qmu.Unlock()
		if t.ended.Load() {
			return // cleaned up already (slow consumer): this was its lingering socket
		}
		t.c.setCause(closeCause(err))
		t.endOnce()
	})
}

// closeCause is the cause of a close nbio made with err (its close error).
func closeCause(err error) cause {
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ECONNRESET):
		// EPIPE: a write found the client gone (it closed its side) before a read did. ECONNRESET:
		// the client closed its socket with frames still unread (a closing tab), which resets it.
		return causeDropped
	default:
		return causeReadError
	}
}

// closeSocket ends the connection: it shuts the socket down (under nbio's lock, so that it is still
// this connection's descriptor), and the poller, woken by the hang-up, closes it. Descriptors are
// thus released on the poller, never while it may hold an event of theirs. Idempotent.
func (t *nbioTransport) closeSocket() {
	t.nc.Lock()
	defer t.nc.Unlock()
	if closed, _ := t.nc.IsClosed(); closed {
		return
	}
	t.shut.Store(true)
	_ = syscall.Shutdown(t.nc.Hash(), syscall.SHUT_RDWR)
}

// endOnce runs the connection's cleanup the first time it is called (on its job list).
func (t *nbioTransport) endOnce() {
	if t.ended.CompareAndSwap(false, true) {
		t.c.end()
	}
}

// nbioWritten is the engine's written-bytes hook (under the nbio connection's lock): it keeps the
// count of bytes nbio holds for the connection and wakes a writer held back once they are out.
func nbioWritten(nc *nbio.Conn, _ []byte, n int) {
	t, _ := nc.Session().(*nbioTransport)
	if t == nil {
		return
	}
	if t.unsent.Add(-int64(n)) > 0 {
		return
	}
	t.io.unstall(t)
	if t.held.CompareAndSwap(true, false) {
		go t.resume() // not here: Execute takes the lock nbio holds
	}
}

// resume restarts the writer on the connection's job list.
//
// Before the engine has taken the socket (a kick between registerConn and AddConn: Shutdown)
// there is no job list yet: nbioOpened resumes it then.
func (t *nbioTransport) resume() {
	t.resumeDue.Store(true)
	if !t.added.Load() || !t.resumeDue.Swap(false) {
		return
	}
	if !t.nc.Execute(t.flushJob) {
		go t.flush(t.c) // closed: let the writer settle the queue
	}
}

// queued starts the writer on the connection's job list (and lets a close through a held writer).
func (t *nbioTransport) queued(c *conn, kind uint8, start bool) {
	if start || (kind == itemClose && t.held.CompareAndSwap(true, false)) {
		t.resume()
	}
}

func (t *nbioTransport) flushJob() { t.flush(t.c) }

// flush writes what is queued (runs of text frames in one write each, pings and closes alone)
// until the queue is empty or nbio holds unsent bytes (text frames then wait; control frames go).
func (t *nbioTransport) flush(c *conn) {
	for {
		c.qmu.Lock()
		if len(c.q) == 0 || c.writeFailed {
			c.dropQueuedLocked()
			c.writing = false
			if c.wdone != nil {
				close(c.wdone)
				c.wdone = nil
			}
			c.qmu.Unlock()
			return
		}
		if c.q[0].kind == itemText && !c.slow.Load() && t.unsent.Load() > 0 {
			// Held back until nbio's buffer has gone to the kernel: nbioWritten resumes it, the
			// watchdog closes the connection after write-timeout; a close is let through by queued.
			t.held.Store(true)
			c.qmu.Unlock()
			if t.unsent.Load() <= 0 && t.held.CompareAndSwap(true, false) {
				continue // drained meanwhile
			}
			return
		}
		n := coalescedTexts(c.q)
		batch := c.q[:n:n]
		c.q = c.q[n:]
		if len(c.q) == 0 {
			c.q = nil
		}
		c.qmu.Unlock()
		if n == 1 {
			c.delivered(batch, c.writeBatch(batch))
		} else {
			c.delivered(batch, t.writeTexts(c, batch))
		}
	}
}

// coalesceLimit bounds the payload bytes of text frames written in one call.
const coalesceLimit = 16 << 10

// coalescedTexts is how many items at the head of q go out in one write: a run of text frames
// (a join's reply and its acknowledgement, a burst of broadcasts) up to coalesceLimit bytes, or the
// first item alone. One write instead of one per frame: the same bytes in the same order, fewer
// system calls.
func coalescedTexts(q []outItem) int {
	if q[0].kind != itemText {
		return 1
	}
	n, size := 1, len(q[0].data)
	for n < len(q) && q[n].kind == itemText && size+len(q[n].data) <= coalesceLimit {
		size += len(q[n].data)
		n++
	}
	return n
}

// writeTexts writes a run of text frames in one call (nothing, for a connection kicked as a slow
// consumer meanwhile: only its close goes out).
func (t *nbioTransport) writeTexts(c *conn, batch []outItem) error {
	if c.slow.Load() {
		return nil
	}
	bp := frameBufs.Get().(*[]byte)
	b := (*bp)[:0]
	for _, it := range batch {
		b = append(wsframe.AppendHeader(b, wsframe.OpText, len(it.data)), it.data...)
	}
	err := t.send(b)
	putFrameBuf(bp, b)
	if err != nil {
		return err
	}
	c.s.metrics.messagesOut.Add(float64(len(batch)))
	return nil
}

func (t *nbioTransport) write(c *conn, it outItem) error {
	switch it.kind {
	case itemPing:
		return t.write1(wsframe.OpPing, nil)
	case itemClose:
		if err := t.writeClose(it.code, string(it.data)); err != nil {
			return err
		}
		// Wait close-grace for the client's answer, then drop the connection.
		grace := c.s.cfg.CloseGrace
		if c.slow.Load() {
			// A slow consumer's socket may still hold frames it has not read, with the close frame
			// behind them: the connection is cleaned up after close-grace, and its socket lingers
			// (what is queued goes out, then a FIN) while the client catches up.
			t.setTimer(grace, func() {
				t.nc.Execute(t.endOnce)
				t.lingerClose(max(grace, 5*time.Second))
			})
		} else {
			t.setTimer(grace, t.closeSocket)
		}
		return nil
	default:
		if err := t.write1(wsframe.OpText, it.data); err != nil {
			return err
		}
		c.s.metrics.messagesOut.Inc()
		return nil
	}
}

// write1 writes one frame (header and payload in one call, so that concurrent writers never
// interleave, from a pooled buffer).
func (t *nbioTransport) write1(op byte, payload []byte) error {
	bp := frameBufs.Get().(*[]byte)
	b := append(wsframe.AppendHeader((*bp)[:0], op, len(payload)), payload...)
	err := t.send(b)
	putFrameBuf(bp, b)
	return err
}

// sendHeldUpgrade writes the held 101 alone when no frame is on its way to carry it: the
// connection's start queued nothing (the token's check still runs). Run at the end of the start
// job; a writer started meanwhile runs after it on the job list, with the 101 sent.
func (t *nbioTransport) sendHeldUpgrade() {
	if t.upgrade.Load() == nil {
		return
	}
	c := t.c
	c.qmu.Lock()
	writing := c.writing
	c.qmu.Unlock()
	if !writing {
		_ = t.send(nil)
	}
}

// send writes whole frames in one call (nbio copies what the kernel does not take) and notes bytes
// the kernel did not take. The held 101, if any, goes first in the same call.
func (t *nbioTransport) send(b []byte) error {
	if up := t.upgrade.Swap(nil); up != nil {
		b = append(*up, b...)
	}
	if len(b) == 0 {
		return nil
	}
	var err error
	if t.shut.Load() {
		err = net.ErrClosed // a write would fail and close the socket here, off the poller
	} else {
		t.unsent.Add(int64(len(b)))
		t.inWrite.Add(1)
		_, err = t.nc.Write(b)
		switch {
		case errors.Is(err, net.ErrClosed):
			// The poller closed the socket (the client went): that close's cause, not a write
			// error, unless one was recorded (nbio notes its close error right after).
			_, cerr := t.nc.IsClosed()
			t.c.setCause(closeCause(cerr))
		case err != nil:
			t.writeClosed.Store(true) // nbio closed the socket in this call
		}
		t.inWrite.Add(-1)
	}
	if err != nil {
		return err
	}
	if t.unsent.Load() > 0 {
		t.io.stall(t)
	}
	return nil
}

// putFrameBuf returns a frame buffer (grown to b) to frameBufs, unless it grew too large to keep.
func putFrameBuf(bp *[]byte, b []byte) {
	if cap(b) <= 64<<10 {
		*bp = b[:0]
		frameBufs.Put(bp)
	}
}

// frameBufs holds the buffers frames are assembled in for a write.
var frameBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// writeClose sends a close frame, once per connection.
func (t *nbioTransport) writeClose(code int, text string) error {
	if !t.closeSent.CompareAndSwap(false, true) {
		return nil
	}
	msg := websocket.FormatCloseMessage(code, text)
	if len(msg) > 125 {
		msg = msg[:125]
	}
	return t.write1(wsframe.OpClose, msg)
}

func (t *nbioTransport) abort(*conn) { t.closeSocket() }

// release has nothing left to do: the socket is closed (or lingering) when the cleanup runs.
func (t *nbioTransport) release(*conn) {}

// unstick lets a slow consumer's close frame through: flush writes control frames whatever nbio
// holds, and the watchdog bounds the wait.
func (t *nbioTransport) unstick(*conn, time.Time) { t.io.stall(t) }

// shutdownWrite half-closes an nbio connection's socket, unless it is closed: under the
// connection's lock, so that a descriptor number already reused by a new connection is never
// touched. (nbio's Hash is the socket's descriptor.)
func shutdownWrite(t *nbioTransport) {
	t.nc.Lock()
	defer t.nc.Unlock()
	if closed, _ := t.nc.IsClosed(); closed {
		return
	}
	t.shut.Store(true) // writes would fail now
	_ = syscall.Shutdown(t.nc.Hash(), syscall.SHUT_WR)
}

// setSocketBuffers sets SO_RCVBUF and SO_SNDBUF of a TCP connection to n bytes (the kernel doubles
// it). Errors are ignored: the kernel's defaults then stay.
func setSocketBuffers(nc net.Conn, n int) {
	if tc := tcpConn(nc); tc != nil {
		_ = tc.SetReadBuffer(n)
		_ = tc.SetWriteBuffer(n)
	}
}

// probeInit orders a probe's creation before its poller's first visit. The socket's registration
// orders them already, but through the kernel, which the race detector does not see; probes are
// visited rarely, so one lock for all costs nothing.
var probeInit sync.Mutex

// nbioProbe is one end of a socket pair on a poller: a byte written to the other end (peer) makes
// the poller visit it, which tells that every batch of events the poller took before is done.
type nbioProbe struct {
	nc   *nbio.Conn
	peer int

	mu     sync.Mutex
	visits uint64
	tick   chan struct{} // closed at the next visit
}

// addProbes puts a probe on each of the engine's npoller pollers (a socket goes to the poller of
// its descriptor number modulo npoller; sockets with a number already covered are closed again).
func addProbes(eng *nbio.Engine, npoller int) ([]*nbioProbe, error) {
	probes := make([]*nbioProbe, npoller)
	var spare []io.Closer
	defer func() {
		for _, c := range spare {
			_ = c.Close()
		}
	}()
	for missing, tries := npoller, 0; missing > 0; tries++ {
		if tries >= 8*npoller+8 {
			return nil, fmt.Errorf("placing a probe on each of %d pollers", npoller)
		}
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("probe socket pair: %w", err)
		}
		f := os.NewFile(uintptr(fds[0]), "nbio-probe")
		fc, err := net.FileConn(f)
		_ = f.Close()
		if err != nil {
			_ = syscall.Close(fds[1])
			return nil, fmt.Errorf("probe socket: %w", err)
		}
		nc, err := nbio.NBConn(fc) // a duplicate; fc is closed
		if err != nil {
			_ = syscall.Close(fds[1])
			return nil, fmt.Errorf("probe socket: %w", err)
		}
		i := nc.Hash() % npoller
		if probes[i] != nil {
			spare = append(spare, nc, fdCloser(fds[1]))
			continue
		}
		probeInit.Lock()
		p := &nbioProbe{nc: nc, peer: fds[1], tick: make(chan struct{})}
		probeInit.Unlock()
		nc.SetSession(p)
		if _, err := eng.AddConn(nc); err != nil {
			_ = syscall.Close(fds[1])
			return nil, fmt.Errorf("probe socket: %w", err)
		}
		probes[i] = p
		missing--
	}
	return probes, nil
}

// fdCloser closes a raw descriptor.
type fdCloser int

func (fd fdCloser) Close() error { return syscall.Close(int(fd)) }

// visit drains the probe's socket and counts the visit (on the poller).
func (p *nbioProbe) visit() {
	probeInit.Lock()
	probeInit.Unlock() //nolint:staticcheck // an empty section: it orders this visit after p's creation
	var b [64]byte
	for {
		if n, err := p.nc.Read(b[:]); err != nil || n < len(b) {
			break
		}
	}
	p.mu.Lock()
	p.visits++
	close(p.tick)
	p.tick = make(chan struct{})
	p.mu.Unlock()
}

// barrier returns once the poller has finished every batch of events it took before the call, or
// false after timeout. It takes two visits: the first may come within a batch taken before the
// call (a batch holds the probe's event and others after it), the second comes in a later batch,
// which the poller only takes once that one is done.
func (p *nbioProbe) barrier(timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for range 2 {
		p.mu.Lock()
		before := p.visits
		p.mu.Unlock()
		_, _ = syscall.Write(p.peer, []byte{1}) // EAGAIN: the socket is full, a visit is due anyway
		for {
			p.mu.Lock()
			seen, tick := p.visits, p.tick
			p.mu.Unlock()
			if seen > before {
				break
			}
			select {
			case <-tick:
			case <-deadline.C:
				return false
			}
		}
	}
	return true
}
