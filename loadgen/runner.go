package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/internal/netpoll"
	"github.com/squall-dev/squall/loadgen/stats"
)

// RunOptions are the injected parts of a run.
type RunOptions struct {
	// Logger receives run-level events (nil discards).
	Logger *slog.Logger
	// OnPhase is called when a phase starts (for progress displays).
	OnPhase func(index int, ph Phase, at time.Time)
	// OnSample, when set, receives every latency recorded into a histogram besides the recorder
	// (a raw-sample export; tests use it as a direct timing).
	OnSample func(hist string, d time.Duration)
	// StartAt overrides Plan.StartAt.
	StartAt time.Time
	// LocalFDs is the open files this process holds for the run besides the clients' own sockets:
	// a gateway running in this process holds the other end of every connection.
	LocalFDs int
	// Schedulers is the number of scheduler goroutines (default 4 per CPU).
	Schedulers int

	// stall, when set, is sent a channel the run's scheduler can be stalled through (tests).
	stall func(pause func(d time.Duration))
}

// RunSummary says how a run went; the measurements themselves are in the recorder.
type RunSummary struct {
	Start, End time.Time
	StopReason string         // "completed", "cancelled: ..." or the failure
	Phases     []PhaseRecord  // what ran, when
	Clients    int            // clients started
	Unreliable bool           // schedule-lag p99 above the plan's bound
	Reason     string         // why the run is unreliable
	LagP99     time.Duration  // schedule-lag p99
	Delivery   DeliveryReport // end-of-hold delivery check
}

// PhaseRecord is one phase as it ran.
type PhaseRecord struct {
	Phase
	Start, End time.Time
}

// DeliveryReport is what the end-of-hold check found (also added to the recorder's counters).
type DeliveryReport struct {
	Gaps             int64 // roomSeqs members never received
	AckedUndelivered int64 // of those, broadcasts the server had acknowledged to their sender
	Ghosts           int64 // exits whose presence leave some observer had not seen when ramp-down began
	// Lost is, for a relay protocol (stamped payloads), the published messages whose own copy had
	// not come back to their sender at the check.
	Lost int64
}

// runEnv is what every client of a run shares.
type runEnv struct {
	ctx       context.Context
	ctxCancel context.CancelFunc
	rec       *stats.Recorder
	logger    *slog.Logger
	sched     *scheduler
	poller    *netpoll.Poller // the clients' epoll loops (nil: ClientIO goroutine)
	dialer    *websocket.Dialer
	eps       []Endpoint
	auth      AuthSpec
	tokens    tokenSource
	place     string // where tokens go (the auth's place, else the protocol's)
	headers   *connHeaders
	rooms     rooms
	onSample  func(string, time.Duration)
	proto     Protocol
	sending   atomic.Bool // broadcasts are sent while set (off from ramp-down on)
	stopping  atomic.Bool // no reconnects once set

	wg        sync.WaitGroup // connection goroutines
	dialSlots chan struct{}  // connection attempts in flight (maxDialsInFlight)
	dials     pollerDials    // attempts on the poller, watched for their deadline
	bufs      sync.Pool
	mu        sync.Mutex
	live      map[*client]struct{}
	kept      []wireConn    // vanished tabs' connections, closed at the end
	doneCh    chan struct{} // signalled when a client finishes
	started   int

	usersMu sync.Mutex
	users   map[string]*userConns // user id → its connections held open

	zwg sync.WaitGroup // zombie watchers (vanished tabs' connections)
}

// userConns counts the connections one user holds open (from welcome to close).
type userConns struct {
	coh        *cohortRT
	open, peak int
}

// addUser registers a user of cohort coh (once per user; tabs share it).
func (env *runEnv) addUser(user string, coh *cohortRT) {
	env.usersMu.Lock()
	if env.users[user] == nil {
		env.users[user] = &userConns{coh: coh}
	}
	env.usersMu.Unlock()
}

// userConn adds d to the connections user holds open.
func (env *runEnv) userConn(user string, d int) {
	env.usersMu.Lock()
	if u := env.users[user]; u != nil {
		u.open += d
		u.peak = max(u.peak, u.open)
	}
	env.usersMu.Unlock()
}

// recordUsers records every user's peak of connections held at once.
func (env *runEnv) recordUsers() {
	env.usersMu.Lock()
	defer env.usersMu.Unlock()
	for _, u := range env.users {
		env.rec.RecordValue(HistConnsPerUser, int64(u.peak))
		env.rec.RecordValue(u.coh.key(HistConnsPerUser), int64(u.peak))
	}
}

func (env *runEnv) record(hist string, d time.Duration) {
	env.rec.Record(hist, d)
	if env.onSample != nil {
		env.onSample(hist, d)
	}
}

func (env *runEnv) getBuf() *bytes.Buffer { return env.bufs.Get().(*bytes.Buffer) }

func (env *runEnv) putBuf(b *bytes.Buffer) {
	if b.Cap() > 64<<10 {
		return
	}
	b.Reset()
	env.bufs.Put(b)
}

func (env *runEnv) endpoint(i int) Endpoint { return env.eps[i%len(env.eps)] }

// maxDialsInFlight bounds the connection attempts (dial, upgrade, handover) one process has in
// flight. A ramp the target cannot keep up with then waits for a slot, and its lag is recorded,
// instead of piling up attempts that time out: the measured ramp is what the target took, and no
// dial times out for waiting behind others. 512 keeps a local gateway's accept queues short and a
// remote one (a 200 ms handshake) at 2 500 attempts per second per process.
const maxDialsInFlight = 512

// acquireDial waits for a dial slot (false: the run, or stop when not nil, ended first).
func (env *runEnv) acquireDial(stop <-chan struct{}) bool {
	select {
	case env.dialSlots <- struct{}{}:
		return true
	case <-env.ctx.Done():
		return false
	case <-stop:
		return false
	}
}

func (env *runEnv) releaseDial() { <-env.dialSlots }

// goConnect starts a connection attempt of c on a goroutine of its own, which takes a dial slot
// for it unless the caller took one (held). An attempt the run's poller carries from its start
// (dialsOnPoller) and whose slot is held needs no goroutine: it starts on the caller's.
func (env *runEnv) goConnect(c *client, gen uint32, reconnect, held bool) {
	if held && c.dialsOnPoller() {
		if !c.connect(env.ctx, gen, reconnect) {
			env.releaseDial()
		}
		return
	}
	env.wg.Add(1)
	go func() {
		defer env.wg.Done()
		if !held && !env.acquireDial(nil) {
			c.dropped(gen, false, 0, 0)
			return
		}
		if !c.connect(env.ctx, gen, reconnect) {
			env.releaseDial()
		}
	}()
}

func (env *runEnv) keepOpen(conn wireConn) {
	env.mu.Lock()
	env.kept = append(env.kept, conn)
	env.mu.Unlock()
}

// watchZombie keeps a vanished tab's connection open without reading it, and records when the
// server closes it: a watcher goroutine parks on the socket's readiness (the runtime's poller) and
// on each wake-up asks the kernel, without consuming any data, whether the peer has closed (FIN)
// or reset the connection. What the server sends meanwhile stays unread, as on a sleeping laptop.
// A connection still open when the run ends is counted as never cleaned, with its age. welcomed
// says the connection counts as held by its user until then.
func (env *runEnv) watchZombie(c *client, conn wireConn, since time.Time, welcomed bool) {
	env.keepOpen(conn)
	// report records how the watch ended: the server closed the connection (peerClosed) at at, or
	// the run ended first.
	report := func(peerClosed bool, at time.Time) {
		d := at.Sub(since)
		if welcomed {
			env.userConn(c.userID, -1)
		}
		if peerClosed {
			c.record(HistZombieCleanup, d)
			return
		}
		c.add(CtrZombiesUncleaned, 1)
		c.record(HistZombieAge, d)
	}
	if pc, ok := conn.(*epollConn); ok {
		// The poller watches the socket for the server's close (its reading is paused).
		env.zwg.Add(1)
		pc.watchClose(func(peerClosed bool, at time.Time) {
			defer env.zwg.Done()
			report(peerClosed, at)
		})
		return
	}
	var nc net.Conn
	if gc, ok := conn.(gorillaConn); ok {
		nc = gc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	var raw syscall.RawConn
	if ok {
		var err error
		raw, err = sc.SyscallConn()
		ok = err == nil
	}
	if !ok {
		if welcomed {
			env.userConn(c.userID, -1)
		}
		return
	}
	_ = nc.SetReadDeadline(time.Time{})
	env.zwg.Add(1)
	go func() {
		defer env.zwg.Done()
		closed := false
		_ = raw.Read(func(fd uintptr) bool {
			closed = peerClosed(fd)
			return closed
		})
		// Read returns when the peer closed, or with an error once the run closes the connection.
		report(closed, time.Now())
	}()
}

func (env *runEnv) clientDone(c *client) {
	env.rec.AddGauge(stats.GaugeClients, -1)
	env.mu.Lock()
	delete(env.live, c)
	env.mu.Unlock()
	select {
	case env.doneCh <- struct{}{}:
	default:
	}
}

func (env *runEnv) liveClients() []*client {
	env.mu.Lock()
	defer env.mu.Unlock()
	out := make([]*client, 0, len(env.live))
	for c := range env.live {
		out = append(out, c)
	}
	return out
}

// newDialer returns the dialer every client shares: small buffers, pooled write buffers, and the
// source address taken from the dial's context. Its NetDialContext also dials the connections of
// the lean handshake (dialUpgrade), so that every TCP connect is made and timed the same way.
func newDialer(rec *stats.Recorder, onSample func(string, time.Duration)) *websocket.Dialer {
	return &websocket.Dialer{
		HandshakeTimeout: handshakeTimeout,
		ReadBufferSize:   512,
		WriteBufferSize:  1024,
		WriteBufferPool:  &sync.Pool{},
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			// TCP keepalive off: its probes would wake every idle socket of a large population; a
			// client finds a dead gateway by its heartbeats (or the run ends it).
			d := net.Dialer{KeepAlive: -1}
			di, _ := ctx.Value(localAddrKey{}).(dialInfo)
			if di.addr.IsValid() && (!di.addr.IsLoopback() || loopbackDest(addr)) {
				// A loopback source address only reaches loopback: a target off loopback (a
				// gateway in a container) is dialled from the address the route gives.
				d.LocalAddr = &net.TCPAddr{IP: di.addr.AsSlice()}
			}
			start := time.Now()
			conn, err := d.DialContext(ctx, network, addr)
			if err == nil {
				d := time.Since(start)
				rec.Record(stats.HistConnect, d)
				if di.connectKey != "" {
					rec.Record(di.connectKey, d)
				}
				if onSample != nil {
					onSample(stats.HistConnect, d)
				}
			}
			return conn, err
		},
	}
}

// loopbackDest reports whether a dial address (host:port) is on loopback; a name other than
// localhost counts as off loopback.
func loopbackDest(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// openFileLimit returns the soft RLIMIT_NOFILE.
func openFileLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return int(rl.Cur)
}

// ErrTooManyFiles is returned when a plan needs more open files than this process may hold; split it
// across workers (Plan.Split).
var ErrTooManyFiles = errors.New("plan needs more open files than this process may hold")

// RunLocal runs p in this process against t, recording into rec. It waits for the start instant
// (opts.StartAt, else p.StartAt, else now), runs the phases and returns when they end or ctx is
// cancelled; then it stops the ramp, closes clients cleanly and returns what was measured. An error
// means the run could not start (invalid plan, too many files, no endpoints).
func RunLocal(ctx context.Context, p Plan, t Target, rec *stats.Recorder, opts RunOptions) (RunSummary, error) {
	var sum RunSummary
	if err := p.Validate(); err != nil {
		return sum, err
	}
	if len(t.Endpoints) == 0 {
		return sum, errors.New("run: no target endpoints")
	}
	proto, err := NewProtocol(t.Protocol)
	if err != nil {
		return sum, fmt.Errorf("run: %w", err)
	}
	need := p.FDs() + opts.LocalFDs
	if lim := openFileLimit(); lim > 0 && need > lim {
		return sum, fmt.Errorf("run: %w: %d needed, limit %d (split the plan across workers, or run the gateway as child processes)", ErrTooManyFiles, need, lim)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env := &runEnv{
		ctx: runCtx, ctxCancel: cancel, rec: rec, logger: logger, eps: t.Endpoints, auth: t.Auth, proto: proto,
		onSample: opts.OnSample, live: map[*client]struct{}{}, doneCh: make(chan struct{}, 1),
		users: map[string]*userConns{}, dialSlots: make(chan struct{}, maxDialsInFlight),
	}
	env.bufs.New = func() any { return new(bytes.Buffer) }
	if env.tokens, err = newTokenSource(t.Auth); err != nil {
		return sum, fmt.Errorf("run: %w", err)
	}
	env.place = cmpOr(t.Auth.Place, proto.tokenPlace())
	if env.headers, err = newConnHeaders(t.Conn); err != nil {
		return sum, fmt.Errorf("run: %w", err)
	}
	tlsCfg, err := t.Conn.TLS.Config()
	if err != nil {
		return sum, fmt.Errorf("run: target: %w", err)
	}
	env.dialer = newDialer(rec, opts.OnSample)
	env.dialer.TLSClientConfig = tlsCfg
	n := opts.Schedulers
	if n <= 0 {
		n = 4 * runtime.GOMAXPROCS(0)
	}
	env.sched = newScheduler(n, func(e entry, now time.Time) { e.c.run(e, now) })
	env.sched.start(runCtx)
	defer env.sched.wait()
	defer cancel()
	if opts.stall != nil {
		opts.stall(func(d time.Duration) { env.sched.pause(runCtx, d) })
	}

	if p.ClientIO != ClientIOGoroutine {
		poller, err := netpoll.New(netpoll.Config{Loops: runtime.GOMAXPROCS(0)})
		if err != nil {
			return sum, fmt.Errorf("run: client I/O %s: %w (client_io: goroutine works everywhere)", ClientIOEpoll, err)
		}
		env.poller = poller
		defer poller.Close()
		go env.dials.watch(env.ctx) // ends with the run's context
	}
	cohorts, err := buildCohorts(p, &env.rooms, len(env.eps), t.SharedRooms)
	if err != nil {
		return sum, err
	}
	start := opts.StartAt
	if start.IsZero() {
		start = p.StartAt
	}
	if d := time.Until(start); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			sum.StopReason = "cancelled before start: " + context.Cause(ctx).Error()
			return sum, nil
		}
	}
	sum.Start = time.Now()
	env.sending.Store(true)
	r := &runner{p: p, env: env, cohorts: cohorts, opts: opts, sum: &sum}
	stop := r.phases(ctx)
	// Stop: no reconnects, close every client, wait for their goroutines.
	r.shutdown()
	sum.End = time.Now()
	sum.StopReason = stop
	sum.Clients = env.started
	snap := rec.Snapshot()
	sum.LagP99 = snap.Percentile(stats.HistScheduleLag, 99)
	if sum.LagP99 > p.LagBound() {
		sum.Unreliable = true
		sum.Reason = fmt.Sprintf("schedule-lag p99 %v above bound %v: the generator was saturated", sum.LagP99, p.LagBound())
	}
	return sum, nil
}

// buildCohorts prepares the cohorts. Room trackers are per endpoint (nodes without a shared broker
// hold separate rooms of the same name, each with its own roomSeq) unless the target says its
// endpoints share rooms.
func buildCohorts(p Plan, rs *rooms, endpoints int, shared bool) ([]*cohortRT, error) {
	if shared {
		endpoints = 1
	}
	var out []*cohortRT
	for _, c := range p.Cohorts {
		b := c.Behaviour
		pfx, err := sourcePrefix(c.SourceIPs)
		if err != nil {
			return nil, err
		}
		rt := &cohortRT{Cohort: c}
		rt.beh.Store(&rt.Behaviour)
		rt.addrs = sourceAddrs(pfx, max(c.Count, 1))
		if len(rt.addrs) == 0 {
			return nil, fmt.Errorf("cohort %q: no usable source address in %s", c.Name, pfx)
		}
		prefix := b.RoomPrefix
		if prefix == "" {
			prefix = "room-"
		}
		rt.rs, rt.roomPrefix, rt.roomCount, rt.roomEndpoints = rs, prefix, b.roomCount(c.Count), endpoints
		out = append(out, rt)
	}
	return out, nil
}

// runner drives the phases of one RunLocal.
type runner struct {
	p             Plan
	env           *runEnv
	cohorts       []*cohortRT
	opts          RunOptions
	sum           *RunSummary
	next          []int // per cohort: next local client number to start
	arrived       int   // open model: arrivals so far
	checked       bool
	ghostsCounted bool
}

func (r *runner) newClient(ci, local int) *client {
	coh := r.cohorts[ci]
	tabs := max(coh.Behaviour.TabsPerUser, 1)
	idx := coh.IndexOffset + local
	c := &client{
		env: r.env, coh: coh, index: int32(idx),
		userID: fmt.Sprintf("%s-%d", coh.Name, coh.UserOffset+local/tabs),
	}
	c.rng = *rand.NewPCG(r.p.Seed, uint64(idx)<<8|uint64(ci))
	r.env.addUser(c.userID, coh)
	r.env.mu.Lock()
	r.env.live[c] = struct{}{}
	r.env.started++
	r.env.mu.Unlock()
	return c
}

// switches applies the plan's behaviour switches at their times from start, until ctx ends.
func (r *runner) switches(ctx context.Context, start time.Time) {
	sw := slices.Clone(r.p.Switches)
	slices.SortStableFunc(sw, func(a, b Switch) int { return int(a.At - b.At) })
	for _, s := range sw {
		if sleepCtx(ctx, time.Until(start.Add(s.At))) != nil {
			return
		}
		k := slices.IndexFunc(r.cohorts, func(c *cohortRT) bool { return c.Name == s.Cohort })
		if k < 0 {
			continue
		}
		coh := r.cohorts[k]
		b := s.Behaviour
		// Rooms and tabs per user are the cohort's own: clients are placed by them.
		b.RoomsPerClient, b.RoomCount, b.RoomSize, b.RoomPrefix, b.TabsPerUser =
			coh.Behaviour.RoomsPerClient, coh.Behaviour.RoomCount, coh.Behaviour.RoomSize, coh.Behaviour.RoomPrefix, coh.Behaviour.TabsPerUser
		coh.beh.Store(&b)
		now := time.Now()
		n := 0
		for _, c := range r.env.liveClients() {
			if c.coh == coh {
				c.rearm(now)
				n++
			}
		}
		r.env.logger.Info("behaviour switch", "cohort", s.Cohort, "at", s.At, "clients", n)
	}
}

// phases runs every phase and returns the stop reason.
func (r *runner) phases(ctx context.Context) string {
	r.next = make([]int, len(r.cohorts))
	if len(r.p.Switches) > 0 {
		sctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			r.switches(sctx, r.sum.Start)
		}()
		defer func() { stop(); <-done }()
	}
	for i, ph := range r.p.Phases {
		rec := PhaseRecord{Phase: ph, Start: time.Now()}
		if r.opts.OnPhase != nil {
			r.opts.OnPhase(i, ph, rec.Start)
		}
		r.env.logger.Info("phase", "index", i, "kind", ph.Kind, "name", ph.Name)
		var err error
		switch ph.Kind {
		case PhaseRamp:
			if r.p.Model.Kind == ModelOpen {
				err = r.arrive(ctx, ph.Duration)
			} else {
				err = r.ramp(ctx, ph)
			}
		case PhaseHold:
			if r.p.Model.Kind == ModelOpen {
				err = r.arrive(ctx, ph.Duration)
			} else {
				err = sleepCtx(ctx, ph.Duration)
			}
		case PhaseRampDown:
			err = r.rampDown(ctx, ph)
		}
		rec.End = time.Now()
		r.sum.Phases = append(r.sum.Phases, rec)
		if err != nil {
			return "cancelled: " + context.Cause(ctx).Error()
		}
	}
	return "completed"
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// paced calls fn(k) for k = 0..n-1 at rate per second (all at once when rate is 0), measuring how late
// each call ran against its intended time, until ctx ends (behind schedule too).
func (r *runner) paced(ctx context.Context, n int, rate float64, fn func(k int)) error {
	start := time.Now()
	for k := range n {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if rate > 0 {
			intended := start.Add(time.Duration(float64(k) / rate * float64(time.Second)))
			if d := time.Until(intended); d > 0 {
				if err := sleepCtx(ctx, d); err != nil {
					return err
				}
			} else {
				r.env.rec.Record(stats.HistScheduleLag, -d)
			}
		}
		fn(k)
	}
	return nil
}

// ramp starts clients (round-robin over cohorts in proportion) until ph.Target or all are started.
func (r *runner) ramp(ctx context.Context, ph Phase) error {
	total := r.p.Clients()
	target := total
	if ph.Target > 0 && ph.Target < total {
		target = ph.Target
	}
	already := r.env.started
	todo := r.order(target - already)
	if err := r.paced(ctx, len(todo), ph.Rate, func(k int) {
		ci := todo[k]
		c := r.newClient(ci, r.next[ci])
		r.next[ci]++
		c.start(ctx)
	}); err != nil {
		return err
	}
	// Let the last connections finish their handshakes (bounded).
	r.awaitHandshakes(ctx, 10*time.Second)
	return ctx.Err()
}

// connecting counts clients whose first connection is still being set up.
// awaitHandshakes waits, at most d, until no client is connecting: the last ones of a ramp finish
// their handshakes. It looks again, every 20 ms, only at the clients still connecting at the last
// look, and at every client once those are done (one that dropped meanwhile is connecting again):
// a look at a large population locks each client.
func (r *runner) awaitHandshakes(ctx context.Context, d time.Duration) {
	deadline := time.Now().Add(d)
	var pending []*client
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if len(pending) == 0 {
			if pending = connecting(r.env.liveClients()); len(pending) == 0 {
				return
			}
		} else if pending = connecting(pending); len(pending) == 0 {
			continue // every client, at once
		}
		_ = sleepCtx(ctx, 20*time.Millisecond)
	}
}

// connecting filters clients, in place, to those connecting: dialling or upgrading, open but not
// ready (welcome, joins), or waiting to connect for the first time.
func connecting(clients []*client) []*client {
	out := clients[:0]
	for _, c := range clients {
		c.mu.Lock()
		if c.state == stConnecting || (c.state == stOpen && !c.isReady) || (c.state == stWaiting && c.connectAt.IsZero()) {
			out = append(out, c)
		}
		c.mu.Unlock()
	}
	clear(clients[len(out):])
	return out
}

// order lists the cohorts of the next n clients, interleaving cohorts in proportion to what is left.
func (r *runner) order(n int) []int {
	left := make([]int, len(r.cohorts))
	rest := 0
	for i, c := range r.cohorts {
		left[i] = c.Count - r.next[i]
		rest += left[i]
	}
	var out []int
	acc := make([]float64, len(r.cohorts))
	for len(out) < n && rest > 0 {
		best := -1
		for i := range r.cohorts {
			if left[i] == 0 {
				continue
			}
			acc[i] += float64(left[i]) / float64(rest)
			if best < 0 || acc[i] > acc[best] {
				best = i
			}
		}
		acc[best]--
		left[best]--
		rest--
		out = append(out, best)
	}
	return out
}

// arrive runs the open model for d: clients arrive at the arrival rate and live Lifetime each.
func (r *runner) arrive(ctx context.Context, d time.Duration) error {
	rate := r.p.Model.ArrivalRate
	n := int(rate * d.Seconds())
	start := time.Now()
	err := r.paced(ctx, n, rate, func(int) {
		ci := r.arrived % len(r.cohorts)
		local := r.next[ci]
		r.next[ci]++
		r.arrived++
		c := r.newClient(ci, local)
		c.exitAfter = r.p.Model.Lifetime
		c.start(ctx)
	})
	if err != nil {
		return err
	}
	if err := sleepCtx(ctx, time.Until(start.Add(d))); err != nil {
		return err
	}
	// As after a closed-model ramp: let the last arrivals finish their handshakes (bounded), so a
	// loaded machine does not end the phase with tabs that never connected.
	r.awaitHandshakes(ctx, 2*time.Second)
	return ctx.Err()
}

// settle stops sending, waits for in-flight broadcasts (bounded by Plan.Settle) and runs the delivery
// check once.
func (r *runner) settle(ctx context.Context) {
	if r.checked {
		return
	}
	r.checked = true
	r.env.sending.Store(false)
	limit := r.p.Settle
	if limit <= 0 {
		limit = 2 * time.Second
	}
	// Wait for in-flight broadcasts: at least until the limit, longer (up to four times it, at least
	// settleCap) while receivers are still catching up, so that a slow machine is not mistaken for
	// loss.
	start := time.Now()
	best, bestAt := -1, start
	for ctx.Err() == nil {
		pending := r.lagging()
		for _, c := range r.env.liveClients() {
			w, _ := c.outstanding()
			pending += w
		}
		now := time.Now()
		if pending == 0 {
			break
		}
		if best < 0 || pending < best {
			best, bestAt = pending, now
		}
		stalled := now.Sub(bestAt) > time.Second
		if now.Sub(start) > max(4*limit, settleCap) || (now.Sub(start) > limit && stalled) {
			r.env.logger.Warn("delivery check with broadcasts still in flight", "pending", pending)
			break
		}
		_ = sleepCtx(ctx, 50*time.Millisecond)
	}
	// Broadcasts acknowledged but never echoed to a sender still connected were never stamped for
	// anyone in the room.
	for _, c := range r.env.liveClients() {
		c.mu.Lock()
		var rooms []*roomTracker
		if c.state == stOpen {
			for _, p := range c.pend {
				if p.acked && !p.echoed {
					rooms = append(rooms, p.room)
				}
			}
		}
		c.mu.Unlock()
		for _, t := range rooms {
			t.mu.Lock()
			t.unacked++
			t.mu.Unlock()
		}
	}
	var d DeliveryReport
	if _, ok := r.env.proto.(relayProtocol); ok {
		for _, c := range r.env.liveClients() {
			lost, ackedLost, gaps := c.relayCheck()
			c.add(CtrLost, lost)
			c.add(stats.CtrGaps, gaps)
			c.add(stats.CtrAckedUndelivered, ackedLost)
			d.Gaps += gaps
			d.Lost += lost
			d.AckedUndelivered += ackedLost
		}
	}
	for _, t := range r.env.rooms.all() {
		chk := t.check()
		chk.record(r.env.rec)
		d.Gaps += chk.gaps
		d.AckedUndelivered += chk.ackedUndelivered
	}
	r.sum.Delivery = d
}

// settleCap is the least time the delivery check waits for receivers that are still catching up
// (a time-scaled Plan.Settle may be far shorter than a loaded generator's own lag).
const settleCap = 5 * time.Second

// lagging counts joined members that have not yet seen their room's head.
func (r *runner) lagging() int {
	n := 0
	for _, t := range r.env.rooms.all() {
		t.mu.Lock()
		for m := range t.members {
			m.c.mu.Lock()
			if m.joined && m.last < t.head && m.c.state == stOpen {
				n++
			}
			m.c.mu.Unlock()
		}
		t.mu.Unlock()
	}
	return n
}

// rampDown settles, then ends live clients at ph.Rate with their exit kind.
func (r *runner) rampDown(ctx context.Context, ph Phase) error {
	r.settle(ctx)
	r.env.stopping.Store(true)
	live := r.env.liveClients()
	sortClients(live)
	// Exits that observers have not yet seen converge by now are ghosts.
	r.countGhosts()
	if err := r.paced(ctx, len(live), ph.Rate, func(k int) {
		kind := live[k].behaviour().Exit.Kind
		if kind == ExitNavigate {
			kind = ExitClose // navigating is not leaving
		}
		live[k].exit(kind)
	}); err != nil {
		return err
	}
	// Wait (bounded) for the tabs' closes and the observers' presence leaves.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if len(r.env.liveClients()) == 0 && r.ghosts() == 0 {
			break
		}
		select {
		case <-r.env.doneCh:
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	return ctx.Err()
}

// countGhosts counts, once per run (at ramp-down, or at the end without one), the exits whose
// presence leave some observer has still not seen, and records how long each had been gone (its
// presence_convergence never comes: they are taken out of the trackers).
func (r *runner) countGhosts() {
	if r.ghostsCounted {
		return
	}
	r.ghostsCounted = true
	now := time.Now()
	var n int64
	for _, t := range r.env.rooms.all() {
		for _, g := range t.takeGhosts() {
			n++
			age := now.Sub(g.exit)
			r.env.rec.Add(CtrGhosts, 1)
			r.env.rec.Record(HistGhostAge, age)
			if g.coh != nil {
				r.env.rec.Add(g.coh.key(CtrGhosts), 1)
				r.env.rec.Record(g.coh.key(HistGhostAge), age)
			}
		}
	}
	r.sum.Delivery.Ghosts = n
}

func (r *runner) ghosts() int {
	n := 0
	for _, t := range r.env.rooms.all() {
		t.mu.Lock()
		n += len(t.pending)
		t.mu.Unlock()
	}
	return n
}

// shutdown closes whatever is still open and waits for every connection goroutine.
func (r *runner) shutdown() {
	env := r.env
	if !r.checked {
		r.settle(context.Background())
	}
	env.stopping.Store(true)
	env.sending.Store(false)
	r.countGhosts()
	for _, c := range env.liveClients() {
		c.exit(ExitClose)
	}
	done := make(chan struct{})
	go func() { env.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		// Force whatever did not close cleanly.
		for _, c := range env.liveClients() {
			c.mu.Lock()
			conn := c.conn
			c.mu.Unlock()
			if conn != nil {
				conn.Cut()
			}
		}
	}
	env.ctxCancel()
	env.wg.Wait()
	env.mu.Lock()
	for _, conn := range env.kept {
		conn.Close()
	}
	env.kept = nil
	env.mu.Unlock()
	env.zwg.Wait()
	env.recordUsers()
}

func sortClients(cs []*client) {
	slices.SortFunc(cs, func(a, b *client) int { return int(a.index) - int(b.index) })
}
