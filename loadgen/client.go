package loadgen

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/refserver/protocol"
)

// Counter and histogram names loadgen records besides the ones stats defines.
const (
	CtrGhosts          = "presence_ghosts"        // exits whose leave some observer never saw
	CtrReconnectGaveUp = "reconnect_gave_up"      // clients whose policy ran out of attempts
	CtrExits           = "exits"                  // tabs that left on purpose
	CtrApplyOrder      = "apply_order_violations" // own broadcasts echoed in another order than sent
	// CtrFalseDisconnects counts connections of well-behaved clients cut for a heartbeat reason
	// (see falseDisconnect).
	CtrFalseDisconnects = "false_disconnects"
	// CtrZombiesUncleaned counts vanished tabs whose connection the server had not closed by the
	// end of the run (their age then is in HistZombieAge).
	CtrZombiesUncleaned  = "zombies_uncleaned"
	HistReconnectDelay   = "reconnect_delay"   // a drop to the next dial (the policy's delay as run)
	HistReconnectPlanned = "reconnect_planned" // the delay the policy (or a retry hint) chose
	// HistZombieCleanup is the time from a vanish exit (the tab stops reading and writing, TCP kept
	// open) to the server closing that connection, seen at the socket (FIN or RST).
	HistZombieCleanup = "zombie_cleanup"
	// HistZombieAge holds, for vanished tabs still open at the end of the run, the time since they
	// vanished.
	HistZombieAge = "zombie_age"
	// HistGhostAge holds, for departed users some observer still saw present when ramp-down began,
	// how long they had been gone by then (their presence_convergence never came).
	HistGhostAge = "presence_ghost_age"
	// HistReconnectAttemptsPerClient is a plain-value histogram: reconnect attempts one tab made
	// over its life, recorded when it ends (at the latest when the run ends).
	HistReconnectAttemptsPerClient = "reconnect_attempts_per_client"
	// HistConnsPerUser is a plain-value histogram: the most connections one user (all its tabs,
	// navigate overlaps included) held open at the same moment, recorded per user at the end of
	// the run. A connection counts as held from its welcome until it closes.
	HistConnsPerUser = "concurrent_connections_per_user"
	// HistAbnormalCloseAge is the age of a connection (upgrade to drop) that something other than
	// the tab ended without a close frame (1006, or TCP closed): cuts at one regular age, while the
	// gateway counted no heartbeat timeout, are the mark of a proxy or load balancer idle timeout.
	HistAbnormalCloseAge = "abnormal_close_age"
)

// ValueHists lists the histograms that hold plain values (counts per client), not durations in
// nanoseconds; every other histogram loadgen records is a duration.
var ValueHists = []string{HistReconnectAttemptsPerClient, HistConnsPerUser}

// client states
const (
	stIdle uint8 = iota
	stConnecting
	stOpen
	stWaiting // between a drop and the next attempt
	stDone
)

// client is one simulated browser tab. Its connection is read by one goroutine at a time (the
// connection goroutine, which also dials); every timed action runs on a scheduler goroutine. Writes
// are serialised by wmu. mu guards the state below it, including the sequence fields of its
// memberships. Lock order: a room tracker's mu before a client's mu; never the other way.
type client struct {
	env    *runEnv
	coh    *cohortRT
	index  int32 // global client number (seeds, source address, rooms)
	userID string

	wmu sync.Mutex

	mu           sync.Mutex
	conn         wireConn
	navOld       wireConn // the connection a navigate exit replaces, closed once the new one is up
	gen          uint32   // connection generation; scheduled entries of older generations are skipped
	state        uint8
	exiting      bool
	vanished     bool
	vanishAt     time.Time
	finished     bool
	exitSet      bool          // the early exit is scheduled
	isReady      bool          // the current connection joined (or resumed) its rooms
	exitAfter    time.Duration // open model: lifetime (overrides Exit.After)
	token        string        // the token of the current connection (a first frame may carry it)
	rung         int           // ladder: the tier the next attempt takes (index in tierLadder)
	seq          uint64        // last seq sent on this connection
	attempt      int           // failed attempts since the last welcome
	dropAt       time.Time
	connectAt    time.Time // first connection (exit timing)
	session      string
	hbEvery      time.Duration
	lastRecv     int64 // scheduler ns
	pingAt       int64 // unix ns of the outstanding app ping
	wsPingAt     int64
	srvHB        time.Duration // the server's heartbeat interval (welcome)
	arm          uint16        // timer arming; periodic entries of another arming are skipped
	attempts     int           // reconnect attempts over the client's life
	suspect      bool          // the last drop looks like a false disconnect; confirmed by the next connect
	cutGen       uint32        // generation of a connection this client closed itself (read timeout, write error)
	cut          bool
	readTimedOut bool
	mem          []*membership
	pend         []pendingSend
	relay        relayState // stamp accounting of relay protocols (stamps.go)
	held         []byte     // a frame held back by the swap misbehaviour
	rng          rand.PCG
}

// pendingSend is a broadcast waiting for its ack and its own echo.
type pendingSend struct {
	seq     uint64
	room    *roomTracker
	roomSeq uint64
	acked   bool
	echoed  bool
}

// cohortRT is a cohort as the run uses it.
type cohortRT struct {
	Cohort
	// The cohort's rooms: roomPrefix + 0 … roomCount-1, per endpoint unless the endpoints share
	// rooms (roomEndpoints is then 1). Their trackers are made when a client of this process first
	// joins one (rooms.get), so that a worker holds trackers only for its own clients' rooms — not
	// for every room of the plan on every node (a million clients in rooms of ten on 56 nodes would
	// be 5.6 million trackers in each of 53 workers).
	rs            *rooms
	roomPrefix    string
	roomCount     int
	roomEndpoints int
	addrs         []netip.Addr
	exitAt        bool                      // some clients exit before ramp-down
	keys          sync.Map                  // name → stats.CohortKey(Name, name)
	beh           atomic.Pointer[Behaviour] // current behaviour: Cohort.Behaviour until a switch
}

// key returns the recorder key of name for this cohort (cached: recording does not allocate).
func (coh *cohortRT) key(name string) string {
	if k, ok := coh.keys.Load(name); ok {
		return k.(string)
	}
	k := stats.CohortKey(coh.Name, name)
	coh.keys.Store(name, k)
	return k
}

// add counts into the run's counter and the cohort's.
func (c *client) add(counter string, n int64) {
	c.env.rec.Add(counter, n)
	c.env.rec.Add(c.coh.key(counter), n)
}

// record adds a latency to the run's histogram and the cohort's.
func (c *client) record(hist string, d time.Duration) {
	c.env.record(hist, d)
	c.env.rec.Record(c.coh.key(hist), d)
}

// value adds a plain value to the run's histogram and the cohort's.
func (c *client) value(hist string, v int64) {
	c.env.rec.RecordValue(hist, v)
	c.env.rec.RecordValue(c.coh.key(hist), v)
}

func (c *client) addGauge(name string, n int64) {
	c.env.rec.AddGauge(name, n)
	c.env.rec.AddGauge(c.coh.key(name), n)
}

func (c *client) rand() *rand.Rand { return rand.New(&c.rng) }

// behaviour is the cohort's current behaviour (a switch replaces it as a whole; never modify it).
func (c *client) behaviour() *Behaviour { return c.coh.beh.Load() }

// roomsOf lists the rooms client joins.
func (c *client) roomsOf() []*roomTracker {
	b := c.behaviour()
	coh := c.coh
	if coh.roomCount == 0 {
		return nil
	}
	ep := int(c.index) % len(c.env.eps) % coh.roomEndpoints
	n := min(max(b.RoomsPerClient, 1), coh.roomCount)
	out := make([]*roomTracker, 0, n)
	for k := range n {
		i := (int(c.index) + k) % coh.roomCount
		out = append(out, coh.rs.get(coh.roomPrefix+strconv.Itoa(i), ep))
	}
	return out
}

// start begins the client's life: its first connection. It waits for a dial slot, so that a ramp
// runs no faster than the target takes connections (false: the run, or the phase's ctx, ended
// first).
func (c *client) start(ctx context.Context) bool {
	if !c.env.acquireDial(ctx.Done()) {
		return false
	}
	c.mu.Lock()
	if c.state != stIdle {
		c.mu.Unlock()
		c.env.releaseDial()
		return true
	}
	c.state = stConnecting
	gen := c.gen
	c.mu.Unlock()
	c.addGauge(stats.GaugeClients, 1)
	c.env.goConnect(c, gen, false, true)
	return true
}

// connect dials, waits for welcome, joins or resumes, then reads until the connection ends. It runs
// on its own goroutine, owned by the run's wait group, and holds a dial slot. It returns true when
// the attempt went on to the run's poller (dialOnPoller), which then releases the slot.
func (c *client) connect(ctx context.Context, gen uint32, reconnect bool) (onPoller bool) {
	env := c.env
	ep := env.endpoint(int(c.index))
	dialURL, hdr, err := c.dialRequest(ep)
	if err != nil {
		env.logger.Error("client credentials", "user_id", c.userID, "err", err)
		c.add(stats.ErrorCounter("credentials"), 1)
		c.finish()
		return false
	}
	c.add(stats.CtrConnectAttempts, 1)
	if reconnect {
		c.add(stats.CtrReconnectAttempts, 1)
		c.mu.Lock()
		c.attempts++
		c.mu.Unlock()
	}
	addr := c.coh.addrs[int(c.index)%len(c.coh.addrs)]
	di := dialInfo{addr: addr, connectKey: c.coh.key(stats.HistConnect)}
	// A ws:// WebSocket goes to the run's poller once upgraded, over the lean handshake
	// (dialUpgrade); wss:// and the goroutine model use gorilla's dialer.
	adopt := env.poller != nil && strings.HasPrefix(dialURL, "ws://")
	dctx := context.WithValue(ctx, localAddrKey{}, di)
	dctx, cancel := context.WithTimeout(dctx, handshakeTimeout)
	b := c.behaviour()
	tier := c.currentTier(b)
	start := time.Now()
	if adopt && tier == "" {
		if raddr, ok := pollerDialAddr(dialURL); ok {
			cancel()
			c.dialOnPoller(gen, reconnect, start, dialURL, raddr, hdr, di)
			return true
		}
	}
	var (
		conn   wireConn
		wsConn *websocket.Conn
		nc     net.Conn // a WebSocket for the poller (adopt)
		rest   []byte   // what the gateway sent on nc right after the 101
		resp   *http.Response
	)
	switch {
	case tier == TierSSE || tier == TierPoll:
		c.mu.Lock()
		tok := c.token
		c.mu.Unlock()
		var fc *fallbackConn
		if fc, err = c.openFallback(di, tier, ep.URL, tok); err == nil {
			conn = fc
		}
	case tier == TierWebSocket && b.BlockUpgrade:
		c.add(TierKey(CtrTierRequests, tier), 1)
		err = c.blockedUpgrade(dctx, dialURL)
	default:
		if tier != "" {
			c.add(TierKey(CtrTierRequests, tier), 1)
		}
		if adopt {
			nc, rest, resp, err = dialUpgrade(dctx, env.dialer.NetDialContext, dialURL, hdr)
		} else {
			wsConn, resp, err = env.dialer.DialContext(dctx, dialURL, hdr)
		}
	}
	cancel()
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		if b.Transport == TransportLadder && tier != TierPoll && env.ctx.Err() == nil && fallbackWorthy(err) {
			c.countDialError(err)
			// The ladder's next rung is tried at once, as browsers' realtime libraries do.
			c.fallDown()
			return c.connect(ctx, gen, reconnect)
		}
		c.dialFailed(gen, resp, err)
		return false
	}
	upgraded := time.Now()
	c.record(stats.HistUpgrade, upgraded.Sub(start))
	if tier != "" {
		c.add(TierKey(CtrTierConnects, tier), 1)
	}
	if nc != nil {
		c.adopt(nc, rest, gen, upgraded, reconnect)
		return false
	}
	if wsConn != nil {
		c.wsHandlers(wsConn)
		conn = gorillaConn{wsConn}
	}
	if !c.open(conn, gen, upgraded) {
		return false
	}
	// The reader runs on a fresh goroutine: the dial's deep stack is not kept for the connection's life.
	env.wg.Add(1)
	go func() {
		defer env.wg.Done()
		c.serve(conn, gen, upgraded, reconnect)
	}()
	env.proto.opened(c, gen, upgraded)
	return false
}

// countDialError counts a failed connection attempt and its class.
func (c *client) countDialError(err error) {
	c.add(stats.CtrConnectErrors, 1)
	c.add(stats.ErrorCounter(dialClass(err)), 1)
}

// dialFailed handles a connection attempt of generation gen that failed with err (resp: the
// gateway's refusal, if it answered): counted, and handed to the reconnect policy, no sooner than
// the refusal's Retry-After.
func (c *client) dialFailed(gen uint32, resp *http.Response, err error) {
	c.countDialError(err)
	var hint time.Duration
	if resp != nil {
		if s := resp.Header.Get("Retry-After"); s != "" {
			if n, e := strconv.Atoi(s); e == nil {
				hint = time.Duration(n) * time.Second
			}
		}
	}
	c.mu.Lock()
	c.suspect = false // the target was not reachable: the drop was not the server's doing alone
	c.mu.Unlock()
	c.dropped(gen, false, 0, hint)
}

// open makes conn, upgraded at upgraded, the client's connection of generation gen. It closes
// conn and returns false when the client moved on meanwhile (another generation, done, the run over).
func (c *client) open(conn wireConn, gen uint32, upgraded time.Time) bool {
	env := c.env
	c.mu.Lock()
	if c.gen != gen || c.state == stDone || env.ctx.Err() != nil {
		c.mu.Unlock()
		conn.Close()
		return false
	}
	c.conn = conn
	c.state = stOpen
	c.isReady = false
	c.seq = 0
	c.pend = c.pend[:0]
	c.held = nil
	c.lastRecv = env.sched.ns(upgraded)
	c.mu.Unlock()
	c.addGauge(stats.GaugeConnections, 1)
	c.add(stats.CtrConnects, 1)
	return true
}

// dialRequest is the URL and headers of a connection to ep: the client's token (kept for a first
// frame), the target's headers and the token's placement.
func (c *client) dialRequest(ep Endpoint) (string, http.Header, error) {
	env := c.env
	d := templateData{Client: int(c.index), User: c.userID}
	tok, err := env.tokens.token(d, c.coh.Behaviour.TabsPerUser)
	if err != nil {
		return "", nil, err
	}
	c.mu.Lock()
	c.token = tok
	c.mu.Unlock()
	d.Token = tok
	hdr, err := env.headers.header(d)
	if err != nil {
		return "", nil, err
	}
	raw := ep.URL
	if a, ok := env.proto.(urlAdjuster); ok {
		raw = a.adjustURL(raw)
	}
	return placeToken(env.place, env.auth.Name, raw, hdr, tok)
}

// wsHandlers sets a WebSocket's read limit and its ping and pong handlers.
func (c *client) wsHandlers(conn *websocket.Conn) {
	conn.SetReadLimit(1 << 20)
	conn.SetPingHandler(func(data string) error {
		// A server ping is something heard (the read timeout counts from it), answered unless the
		// tab ignores pings on purpose. As gorilla's default handler, a failed pong is not an error.
		now := time.Now()
		c.mu.Lock()
		c.lastRecv = c.env.sched.ns(now)
		c.mu.Unlock()
		if c.behaviour().Misbehave.IgnorePings {
			return nil
		}
		err := conn.WriteControl(websocket.PongMessage, []byte(data), now.Add(writeTimeout))
		var ne net.Error
		if err == nil || errors.Is(err, websocket.ErrCloseSent) || errors.As(err, &ne) {
			return nil
		}
		return err
	})
	conn.SetPongHandler(func(string) error { c.pong(); return nil })
}

// serve reads a connection until it ends, then handles the drop.
func (c *client) serve(conn wireConn, gen uint32, upgraded time.Time, reconnect bool) {
	var cs connState
	var (
		code   int
		reason string
		rerr   error
	)
	if fc, ok := conn.(*fallbackConn); ok {
		rc := readCtx{gen: gen, upgraded: upgraded, reconnect: reconnect, first: true, cs: &cs}
		code, reason, rerr = fc.readLoop(c, &rc)
	} else {
		code, reason, rerr = c.readLoop(conn.(gorillaConn).Conn, gen, upgraded, reconnect, &cs)
	}
	c.ended(conn, gen, upgraded, &cs, code, reason, rerr)
}

// ended handles the end of reading connection conn of generation gen: its close code (0 without
// a close frame) and reason, or the read error. A vanished tab's connection is kept open and
// watched; any other is closed, its end counted, and the drop handed to the reconnect policy.
func (c *client) ended(conn wireConn, gen uint32, upgraded time.Time, cs *connState, code int, reason string, rerr error) {
	env := c.env
	c.mu.Lock()
	vanished := c.vanished && c.gen == gen
	vanishAt := c.vanishAt
	// The tab ended this connection itself: an exit (still this generation, or replaced by a
	// navigate), a read timeout or a failed write.
	own := (c.exiting && c.gen == gen) || c.gen != gen || (c.cut && c.cutGen == gen)
	readTimeout := c.cut && c.cutGen == gen && c.readTimedOut
	c.mu.Unlock()
	if b := c.behaviour(); b.Transport == TransportLadder && !cs.heard && !own && c.currentTier(b) == TierWebSocket {
		// Upgraded, then cut before anything came through (a proxy that lets the upgrade pass
		// and kills the stream): the next attempt takes the next rung.
		c.fallDown()
	}
	if vanished {
		// A vanished tab keeps its TCP connection open until the server closes it or the run ends.
		c.addGauge(stats.GaugeConnections, -1)
		env.watchZombie(c, conn, vanishAt, cs.welcomed)
		c.finish()
		return
	}
	conn.Close()
	if cs.welcomed {
		env.userConn(c.userID, -1)
	}
	if code != 0 {
		c.add(stats.CloseCodeCounter(code), 1)
		if word := protocol.ReasonWord(reason); slices.Contains(protocol.Reasons, word) {
			c.add(stats.PrefixCloseReason+word, 1) // a bounded set: another gateway's words are not counted
		}
	} else if rerr != nil && !own {
		c.add(stats.ErrorCounter(stats.ErrRead), 1)
	}
	if !own && (code == 0 || code == int(protocol.CloseAbnormal)) {
		c.record(HistAbnormalCloseAge, time.Since(upgraded))
	}
	// The connection leaves the gauge only once the way it ended is counted: whoever sees it gone
	// (a test waiting for zero connections) also sees why.
	c.addGauge(stats.GaugeConnections, -1)
	if c.falseDisconnect(code, own, readTimeout) {
		if readTimeout {
			c.add(CtrFalseDisconnects, 1) // the client cut itself: nothing else to confirm
		} else {
			c.mu.Lock()
			c.suspect = true
			c.mu.Unlock()
		}
	}
	var hint time.Duration
	if h, ok := protocol.ParseRetryAfter(reason); ok {
		hint = h
	}
	c.dropped(gen, true, code, hint)
}

// readLoop reads frames until the connection ends and returns the close code (0 when there was no
// close frame, e.g. TCP closed) and reason.
func (c *client) readLoop(conn *websocket.Conn, gen uint32, upgraded time.Time, reconnect bool, cs *connState) (int, string, error) {
	rc := readCtx{gen: gen, upgraded: upgraded, reconnect: reconnect, first: true, cs: cs}
	for {
		_, r, err := conn.NextReader()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code, ce.Text, err
			}
			return 0, "", err
		}
		if err := c.readFrame(r, &rc); err != nil {
			return 0, "", err
		}
		rc.first = false
	}
}

// readFrame reads one message with a pooled buffer and hands it to the protocol.
func (c *client) readFrame(r io.Reader, rc *readCtx) error {
	env := c.env
	buf := env.getBuf()
	defer env.putBuf(buf)
	if _, err := buf.ReadFrom(r); err != nil {
		return err
	}
	c.deliver(buf.Bytes(), rc)
	return nil
}

// heard notes something received from the server at now (a fallback tier's heartbeat).
func (c *client) heard(now time.Time) {
	c.mu.Lock()
	c.lastRecv = c.env.sched.ns(now)
	c.mu.Unlock()
}

// deliver hands one message read at now to the protocol.
func (c *client) deliver(msg []byte, rc *readCtx) {
	env := c.env
	rc.cs.heard = true
	rc.now = time.Now()
	c.mu.Lock()
	c.lastRecv = env.sched.ns(rc.now)
	stale := c.gen != rc.gen
	c.mu.Unlock()
	if stale {
		// A navigate exit replaced this connection; the new one does the work.
		return
	}
	if rc.first {
		c.record(stats.HistFirstFrame, rc.now.Sub(rc.upgraded))
	}
	env.proto.received(c, msg, rc)
}

// ready runs once a connection has joined (or resumed) every room: it records the reconnect time,
// closes a connection this one replaces, and schedules the client's timed actions.
func (c *client) ready(gen uint32, now time.Time) {
	env := c.env
	c.mu.Lock()
	if c.gen != gen {
		c.mu.Unlock()
		return
	}
	// Read under c.mu: a behaviour switch either sees this tab ready and re-arms it, or this
	// arms it with the switched behaviour.
	b := c.behaviour()
	b0 := b
	dropAt := c.dropAt
	c.dropAt = time.Time{}
	c.attempt = 0
	c.isReady = true
	exitSet := c.exitSet
	c.exitSet = true
	exitAfter, early := b0.Exit.After, c.exitsEarly()
	if c.exitAfter > 0 {
		exitAfter, early = c.exitAfter, true
	}
	old := c.navOld
	c.navOld = nil
	first := c.connectAt
	c.armLocked(gen, b, env.sched.ns(now))
	c.mu.Unlock()
	if !dropAt.IsZero() {
		c.record(stats.HistReconnect, now.Sub(dropAt))
		c.add(stats.CtrReconnects, 1)
	}
	if old != nil {
		closeConn(old, protocol.CloseDraining, "")
	}
	if exitAfter > 0 && early && !exitSet {
		at := first.Add(exitAfter)
		if b.Exit.Jitter > 0 {
			c.mu.Lock()
			at = at.Add(time.Duration(c.rand().Int64N(int64(b.Exit.Jitter))))
			c.mu.Unlock()
		}
		env.sched.add(entry{at: env.sched.ns(at), c: c, gen: gen, kind: taskExit})
	}
}

// armLocked schedules the periodic tasks of connection gen (sends, heartbeat or read-timeout
// checks, WebSocket pings) per behaviour b from nowNS, under a new arming: entries of the previous
// one are skipped when they come due. c.mu is held.
func (c *client) armLocked(gen uint32, b *Behaviour, nowNS int64) {
	c.arm++
	sched := c.env.sched
	if b.SendInterval > 0 {
		first := nowNS + c.rand().Int64N(int64(b.SendInterval))
		sched.addPeriodic(entry{at: first, c: c, gen: gen, arm: c.arm, kind: taskSend}, b.SendInterval)
	}
	if c.hbEvery > 0 || b.ReadTimeout > 0 {
		every := c.hbEvery
		if every <= 0 {
			every = b.ReadTimeout / 2
		}
		first := int64(every)
		if b.HeartbeatPhase == HeartbeatPhaseRandom {
			first = 1 + c.rand().Int64N(int64(every))
		}
		sched.addPeriodic(entry{at: nowNS + first, c: c, gen: gen, arm: c.arm, kind: taskHeartbeat}, every)
	}
	if b.PingInterval > 0 {
		sched.addPeriodic(entry{at: nowNS + int64(b.PingInterval), c: c, gen: gen, arm: c.arm, kind: taskPing}, b.PingInterval)
	}
}

// rearm applies a behaviour switch to a tab: its heartbeat is recomputed and its periodic tasks
// re-armed with the new intervals when its connection is ready (a tab not yet ready arms them
// when it is). What is read at the moment of use — reconnect policy, resume, seq misbehaviours,
// ignoring pings, the exit kind, payload size — follows the switch by itself.
func (c *client) rearm(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.behaviour()
	if c.state != stOpen || !c.isReady || c.exiting {
		return
	}
	c.hbEvery = b.heartbeatEvery(c.srvHB)
	c.armLocked(c.gen, b, c.env.sched.ns(now))
}

// outstanding returns broadcasts waiting for an ack or echo, and those acknowledged but not echoed.
func (c *client) outstanding() (waiting, ackedOnly int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stOpen {
		return 0, 0
	}
	for _, p := range c.pend {
		waiting++
		if p.acked && !p.echoed {
			ackedOnly++
		}
	}
	return waiting, ackedOnly
}

func (c *client) pong() {
	c.mu.Lock()
	at := c.wsPingAt
	c.wsPingAt = 0
	c.mu.Unlock()
	if at != 0 {
		c.record(stats.HistPingRTT, time.Duration(time.Now().UnixNano()-at))
	}
}

// run executes a scheduled entry on a scheduler goroutine.
func (c *client) run(e entry, now time.Time) {
	env := c.env
	c.mu.Lock()
	if e.gen != c.gen {
		c.mu.Unlock()
		return
	}
	state := c.state
	c.mu.Unlock()
	env.rec.Record(stats.HistScheduleLag, now.Sub(env.sched.time(e.at)))
	switch e.kind {
	case taskReconnect:
		c.mu.Lock()
		if c.state != stWaiting || c.exiting {
			c.mu.Unlock()
			return
		}
		c.state = stConnecting
		dropAt := c.dropAt
		c.mu.Unlock()
		if !dropAt.IsZero() {
			c.record(HistReconnectDelay, now.Sub(dropAt))
		}
		env.goConnect(c, e.gen, true, false)
		return
	case taskExit:
		c.exit(c.behaviour().Exit.Kind)
		return
	}
	if state != stOpen {
		return
	}
	c.mu.Lock()
	stale := e.arm != c.arm
	c.mu.Unlock()
	if stale { // a behaviour switch re-armed the periodic tasks
		return
	}
	b := c.behaviour()
	switch e.kind {
	case taskSend:
		if env.sending.Load() {
			env.proto.publish(c, e.gen, e.at)
		}
		if b.SendInterval <= 0 { // switched off; a switch re-arms it
			return
		}
		env.sched.addPeriodic(entry{at: e.at + int64(b.SendInterval), c: c, gen: e.gen, arm: e.arm, kind: taskSend}, b.SendInterval)
	case taskHeartbeat:
		c.mu.Lock()
		hb := c.hbEvery
		silent := time.Duration(env.sched.ns(now) - c.lastRecv)
		conn := c.conn
		c.mu.Unlock()
		if b.ReadTimeout > 0 && silent > b.ReadTimeout {
			if conn == nil { // dropped since the entry came due
				return
			}
			c.add(stats.ErrorCounter("read_timeout"), 1)
			c.mu.Lock()
			c.cut, c.cutGen, c.readTimedOut = true, e.gen, true
			c.mu.Unlock()
			conn.Cut()
			return
		}
		every := hb
		if hb > 0 {
			env.proto.heartbeat(c, e.gen, now)
		} else {
			every = b.ReadTimeout / 2
		}
		if every <= 0 { // switched off; a switch re-arms it
			return
		}
		env.sched.addPeriodic(entry{at: e.at + int64(every), c: c, gen: e.gen, arm: e.arm, kind: taskHeartbeat}, every)
	case taskPing:
		c.mu.Lock()
		conn := c.conn
		if conn == nil || c.gen != e.gen { // dropped since the entry came due
			c.mu.Unlock()
			return
		}
		c.wsPingAt = now.UnixNano()
		c.mu.Unlock()
		_ = conn.WriteControl(websocket.PingMessage, nil, now.Add(writeTimeout))
		if b.PingInterval <= 0 { // switched off; a switch re-arms it
			return
		}
		env.sched.addPeriodic(entry{at: e.at + int64(b.PingInterval), c: c, gen: e.gen, arm: e.arm, kind: taskPing}, b.PingInterval)
	}
}

const writeTimeout = 5 * time.Second

// dropped handles the end of a connection of generation gen (connected: it was open; code: its
// close code, 0 without a close frame) or a failed attempt (connected false), and schedules the next
// attempt per the reconnect policy, at least hint later.
func (c *client) dropped(gen uint32, connected bool, code int, hint time.Duration) {
	env := c.env
	now := time.Now()
	c.mu.Lock()
	if c.gen != gen || c.state == stDone {
		c.mu.Unlock()
		return
	}
	c.gen++
	c.conn = nil
	if _, ok := env.proto.(relayProtocol); ok {
		c.relayDroppedLocked()
	}
	c.pend = c.pend[:0]
	exiting := c.exiting
	resume := c.behaviour().Resume && c.session != ""
	mem := c.mem
	if !resume || exiting {
		c.mem = nil
	}
	if c.dropAt.IsZero() {
		c.dropAt = now
	}
	reconnect := !exiting && env.ctx.Err() == nil && !env.stopping.Load()
	if reconnect && connected && code != 0 {
		reconnect = protocol.CloseInfo(protocol.CloseCode(code)).Reconnect
	}
	var delay time.Duration
	if reconnect {
		c.attempt++
		d, ok := c.behaviour().Reconnect.Delay(c.attempt, c.rand())
		if !ok {
			reconnect = false
			c.add(CtrReconnectGaveUp, 1)
		}
		delay = max(d, hint)
	}
	if reconnect {
		c.record(HistReconnectPlanned, delay)
		c.state = stWaiting
	} else {
		c.state = stDone
	}
	newGen := c.gen
	c.mu.Unlock()
	if connected {
		c.add(stats.CtrDisconnects, 1)
	}
	for _, m := range mem {
		if resume && reconnect {
			m.room.suspend(m) // back on resumed; ended for good if the resume fails
		} else {
			m.room.leave(m, time.Time{})
		}
	}
	if !reconnect {
		c.finish()
		return
	}
	env.sched.add(entry{at: env.sched.ns(now.Add(delay)), c: c, gen: newGen, kind: taskReconnect})
}

// finish marks the client done (once).
func (c *client) finish() {
	c.mu.Lock()
	if c.finished {
		c.mu.Unlock()
		return
	}
	c.finished = true
	c.state = stDone
	mem := c.mem
	c.mem = nil
	attempts := c.attempts
	c.mu.Unlock()
	c.value(HistReconnectAttemptsPerClient, int64(attempts))
	for _, m := range mem {
		m.room.leave(m, time.Time{})
	}
	c.env.clientDone(c)
}

// connState is what the reader of one connection knows about it.
type connState struct {
	welcomed bool // welcome received: the connection counts as held by its user
	heard    bool // a message came through
}

// falseDisconnect reports whether the end of a connection (close code: 1006 or 0 without a close frame)
// is a false disconnect: a live, well-behaved tab cut for a heartbeat reason. Well-behaved: it
// did not exit or vanish (it kept reading), does not ignore pings (every server ping it received
// was answered), and its cohort's connections do not pass a chaos proxy (whose faults cut
// connections the same way). Such a tab is never silent to a gateway that pings, so a cut is for a
// heartbeat reason when
//   - the tab's own read timeout fired (it heard nothing, not even a server ping, for
//     read_timeout: the server's heartbeat was missing), or
//   - the server dropped the connection without a close frame (what a heartbeat sweep does; every
//     other server-side close of the reference gateway sends a close frame) — counted only once
//     the tab's next connection attempt succeeds, so that a gateway that crashed or became
//     unreachable is not mistaken for one that cut a live client.
func (c *client) falseDisconnect(code int, own, readTimeout bool) bool {
	if c.behaviour().Misbehave.IgnorePings || c.coh.Proxy {
		return false
	}
	if readTimeout {
		return true
	}
	return !own && (code == 0 || code == int(protocol.CloseAbnormal))
}

// closeConn sends a close frame and closes the TCP connection.
func closeConn(conn wireConn, code protocol.CloseCode, reason string) {
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(int(code), reason), time.Now().Add(time.Second))
	conn.Close()
}

// dialClass names the error class of a failed dial.
func dialClass(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, websocket.ErrBadHandshake):
		return stats.ErrUpgradeRefused
	case errors.Is(err, syscall.ECONNREFUSED):
		return stats.ErrDialRefused
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return stats.ErrDialTimeout
	case errors.As(err, &ne) && ne.Timeout():
		return stats.ErrDialTimeout
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return stats.ErrHandshake
	}
	return stats.ErrDialOther
}

// localAddrKey carries a dialInfo in a dial's context.
type localAddrKey struct{}

// dialInfo is the source address of a dial and the cohort key its connect time is recorded under.
type dialInfo struct {
	addr       netip.Addr
	connectKey string
}

// currentTier is the tier the tab's next connection takes: "" for a plain WebSocket (no transport
// chosen), else the chosen tier or the ladder's current rung.
func (c *client) currentTier(b *Behaviour) string {
	switch b.Transport {
	case "":
		return ""
	case TransportLadder:
		c.mu.Lock()
		defer c.mu.Unlock()
		return tierLadder[min(c.rung, len(tierLadder)-1)]
	}
	return b.Transport
}

// fallDown moves a laddered tab to the next tier.
func (c *client) fallDown() {
	c.mu.Lock()
	if c.rung < len(tierLadder)-1 {
		c.rung++
	}
	c.mu.Unlock()
}

// fallbackWorthy reports whether a failed attempt is one the ladder answers with the next tier:
// the upgrade refused, or the handshake cut, as a proxy in the way does.
func fallbackWorthy(err error) bool {
	var fr *fallbackRefused
	switch dialClass(err) {
	case stats.ErrUpgradeRefused, stats.ErrHandshake:
		return true
	}
	return errors.As(err, &fr) && fr.status != http.StatusUnauthorized && fr.status != http.StatusServiceUnavailable
}
