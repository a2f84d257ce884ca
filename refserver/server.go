// Package refserver is squall's reference WebSocket gateway, as a library: the "after the fix"
// system of the source incidents, with named flaws (see Flaw) that switch individual bugs back on.
// The binary cmd/refserver wraps it; tests and loadgen embed it directly.
//
// # Use
//
//	srv, err := refserver.New(cfg, logger)   // cfg validated; nil logger discards
//	go srv.Serve(ctx, ln)                    // or mount srv.Handler() on your own http.Server
//	...
//	srv.Shutdown(ctx)                        // closes every connection and waits for cleanup
//
// Routes: /ws (WebSocket), the fallback tiers /sse (Server-Sent Events) and /poll (long polling)
// with /send for their client frames, /metrics, /healthz, /readyz, /admin/drain, and /debug/pprof/
// with Config.Pprof. The wire protocol is package protocol. Every transport (see transport.go) gives
// a connection the same admission, auth, rooms, presence, limits, heartbeat timeout and cleanup.
//
// # Connections and goroutines
//
// With the default I/O model (Config.IO = IONbio) the upgraded socket is handed to an epoll
// engine (lesismal/nbio; transport_nbio.go): an idle connection holds no goroutine and no read
// buffer, its frames are handled in order on a shared goroutine pool when bytes arrive, and writes
// go straight to the socket without blocking. With IOGoroutine (and for TLS and PROXY-protocol
// connections, which nbio cannot carry) each connection has one reader goroutine for its whole
// life, and a writer goroutine only while frames are queued for it; an idle connection holds a
// small read buffer and no write buffer (writes use a shared sync.Pool). The reader hands each
// frame to a shared pool of on-demand worker goroutines and waits for it, so frames are processed
// in order while the reader's stack stays small. Outgoing frames go
// through a bounded per-connection queue; broadcasts are encoded once and the same bytes are queued
// to every member. Heartbeats (server pings, silence timeouts) are driven by one timing wheel per
// Server, not by per-connection timers.
// Every way a connection ends — close frame, TCP close, read or write error, heartbeat timeout,
// kick — goes through one cleanup path that leaves every room (announcing presence leaves with the
// matching reason), releases limits and frees queues.
//
// # Overload protection
//
// Every connection attempt passes storm detection (ws_storm_active; it never refuses anyone) and an
// admission token bucket (Config.AcceptRate, AcceptBurst) that sheds the excess with HTTP 503 or
// 1013 and a jittered retry hint. Token checks go through a cache, a circuit breaker and a
// SimulatedBackend around the AuthBackend; Server.Protection reports their counts.
//
// # Hostile input and proxies
//
// Plain HTTP cannot pin the node: idle keep-alive connections and request bodies are bounded, and
// Serve caps the sockets of one remote IP at accept (httpguard.go). Behind a trusted proxy the
// client address comes from the PROXY protocol or X-Forwarded-For (proxy.go). The fallback tiers
// answer CORS for the WebSocket's allowed origins, and an SSE stream a proxy cut resumes with
// Last-Event-ID (sse_resume.go).
//
// # Concurrency
//
// A Server is safe for concurrent use. Serve blocks until its context is cancelled or Shutdown is
// called, and returns only after every connection goroutine has ended. Several Servers may live in
// one process: each has its own Prometheus registry.
package refserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/squall-dev/squall/refserver/protocol"
)

// Server is one gateway node.
type Server struct {
	cfg    Config
	log    *slog.Logger
	nodeID string

	auth     AuthBackend
	broker   Broker
	hub      *hub
	limits   *limits
	sessions *sessions
	recent   *recentUsers
	metrics  *metrics
	wheel    *wheel
	workers  *workers
	upgrader websocket.Upgrader
	// nbioUpgrader upgrades the connections the nbio engine takes over: it keeps no buffer of its
	// own (gorilla reuses the HTTP server's, which the engine then drops), so a handshake leaves
	// less garbage behind.
	nbioUpgrader websocket.Upgrader
	nbioMu       sync.Mutex
	nbio         *nbioIO // the epoll engine of Config.IO = IONbio, started by the first connection
	nbioStopped  bool    // the engine is stopped (final shutdown): no new one starts
	handler      http.Handler
	trusted      trustedNets // Config.TrustedProxies, parsed (proxy.go)

	allMu sync.Mutex
	all   map[*conn]struct{} // every connection not yet cleaned up, authenticated or not

	byTransport  transportCounts // connections in all, by transport (ws_transport_connections)
	fallbacks    *fallbackConns  // authenticated SSE and long-poll connections by id
	pollStop     chan struct{}   // closed when the HTTP server shuts down: holding polls answer at once
	pollStopOnce sync.Once

	connSeq    atomic.Uint64
	queueDepth atomic.Int64

	ctx    context.Context // cancelled when the server closes; parent of auth and broker calls
	cancel context.CancelFunc
	wg     sync.WaitGroup // connection readers and writers, the wheel

	closing   atomic.Bool
	closeOnce sync.Once
	shutMu    sync.Mutex // serialises Shutdown calls (drain endpoint, Serve, callers)
	finalOnce sync.Once
	finalErr  error
	closed    chan struct{} // closed when Shutdown starts

	// Overload protection (auth_guard.go, admission.go, storm.go).
	authGuard *authGuard     // cache, breaker and simulated latency/failures in front of auth
	admission *admission     // token bucket for new connections
	storm     *stormDetector // reconnect storm alert
}

// Option injects a dependency into New.
type Option func(*Server)

// WithAuthBackend replaces the built-in JWT verification (for example with the simulated backend of
// auth_sim.go, which adds latency and failures).
func WithAuthBackend(b AuthBackend) Option { return func(s *Server) { s.auth = b } }

// WithBroker replaces the in-memory broker (cluster mode).
func WithBroker(b Broker) Option { return func(s *Server) { s.broker = b } }

// New validates cfg and builds a Server. A nil logger discards logs.
func New(cfg Config, logger *slog.Logger, opts ...Option) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{log: logger, nodeID: newID()[:6], closed: make(chan struct{}), all: map[*conn]struct{}{}}
	for _, o := range opts {
		o(s)
	}
	if cfg.AuthSecret == "" && !cfg.Dev && s.auth != nil {
		cfg.AuthSecret = "-" // an injected backend needs no secret
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("refserver: invalid config: %w", err)
	}
	cfg = cfg.withDefaults()
	if cfg.Dev {
		cfg.AuthSecret = protocol.DevSecret
	}
	s.cfg = cfg
	s.trusted, _ = parseTrustedProxies(cfg.TrustedProxies) // Validate checked them
	if s.auth == nil {
		s.auth = NewJWTBackend([]byte(cfg.AuthSecret), nil).WithMaxLifetime(max(0, cfg.MaxTokenLifetime))
	}
	if cfg.NodeID != "" {
		s.nodeID = cfg.NodeID
	}
	if s.broker == nil {
		if u, _ := ParseBrokerURL(cfg.Broker); u != "" {
			rb, err := NewRedisBroker(RedisOptions{
				URL: u, NodeID: s.nodeID, RegistryTTL: cfg.RegistryTTL,
				RefreshInterval: min(cfg.HeartbeatInterval, cfg.RegistryTTL/3),
				HistorySize:     cfg.HistorySize, HistoryTTL: cfg.HistoryTTL, Logger: logger,
			})
			if err != nil {
				return nil, err
			}
			s.broker = rb
		} else {
			s.broker = NewMemoryBroker()
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.hub = newHub(s)
	s.broker.Bind(s.hub.deliver)
	s.limits = newLimits(cfg)
	s.sessions = newSessions(cfg.SessionTTL, cfg.MaxConns, &s.wg, s.closed)
	s.fallbacks = newFallbackConns()
	s.pollStop = make(chan struct{})
	s.recent = newRecentUsers(cfg.ReconnectWindow)
	s.metrics = newMetrics(s)
	s.metrics.addCluster(s)
	s.byTransport.register(s.metrics.reg)
	s.authGuard = newAuthGuard(s, s.auth)
	s.authGuard.m = s.metrics
	s.admission = newAdmission(cfg.AcceptRate, cfg.AcceptBurst, nil, nil)
	s.storm = newServerStorm(s)
	s.wheel = newWheel(s)
	s.workers = newWorkers(&s.wg, 4096, time.Second)
	s.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   cfg.ReadBufferSize,
		WriteBufferSize:  cfg.WriteBufferSize,
		WriteBufferPool:  &sync.Pool{},
		CheckOrigin:      func(*http.Request) bool { return true }, // checked before Upgrade
	}
	s.nbioUpgrader = websocket.Upgrader{HandshakeTimeout: s.upgrader.HandshakeTimeout, CheckOrigin: s.upgrader.CheckOrigin}
	s.handler = s.boundReads(s.routes())
	return s, nil
}

// Config returns the effective configuration (defaults filled in).
func (s *Server) Config() Config { return s.cfg }

// Registry-backed /metrics, health, readiness, /ws and optional pprof.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(protocol.PathWS, s.serveWS)
	mux.HandleFunc(protocol.PathDrain, s.serveDrain)
	mux.HandleFunc(protocol.PathSSE, s.serveSSE)
	mux.HandleFunc(protocol.PathPoll, s.servePoll)
	mux.HandleFunc(protocol.PathSend, s.serveSend)
	mux.Handle(protocol.PathMetrics, promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc(protocol.PathHealthz, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc(protocol.PathReadyz, func(w http.ResponseWriter, _ *http.Request) {
		if s.closing.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		if s.limits.full() {
			http.Error(w, "at max-conns", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	if s.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// Handler returns every route of the gateway. It may be mounted on any http.Server; Shutdown still
// closes the connections it accepted.
func (s *Server) Handler() http.Handler { return s.handler }

// retryHint is the jittered retry hint for 503 and 1013 answers.
func (s *Server) retryHint() time.Duration { return jitter(time.Second, 0.5, 1.5) }

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !s.admitHTTP(w, r) {
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		http.Error(w, "WebSocket upgrade required", http.StatusUpgradeRequired)
		return
	}
	up := &s.upgrader
	token := requestToken(r)
	if s.cfg.IO == IONbio && r.TLS == nil && len(s.trusted) == 0 {
		up = &s.nbioUpgrader // a plain TCP connection: the engine takes it over
		if fr, ok := w.(*frontResponse); ok && token != "" {
			fr.holdUpgrade = true // the 101 goes out with the welcome (upgradeConn)
		}
	}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		s.log.Debug("upgrade failed", "remote_ip", s.clientIP(r), "err", err)
		return // Upgrade answered the client
	}
	// The request's read bound (boundReads) must not outlive it: the transport sets its own.
	_ = ws.NetConn().SetReadDeadline(time.Time{})
	if s.cfg.IO == IONbio && nbioCarries(ws.NetConn()) {
		if n := s.nbioEngine(); n != nil {
			s.serveNbio(n, ws, r, token)
			if fr, ok := w.(*frontResponse); ok {
				fr.recycle = true // ws, and the buffers it was given, are done with
			}
			return
		}
	}
	if hc, ok := ws.NetConn().(*upgradeConn); ok {
		if err := hc.release(); err != nil {
			_ = ws.Close()
			return
		}
	}
	if s.startConn(newWSTransport(ws), r) == nil {
		// Shutdown began during the upgrade.
		_ = ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(int(protocol.CloseDraining), s.drainReason()), time.Now().Add(s.cfg.WriteTimeout))
		_ = ws.Close()
	}
	// The handler returns: the HTTP server's goroutine, request and buffers are released, and the
	// connection lives on in its own small reader goroutine.
}

// admitHTTP runs the checks every transport makes before it commits to a connection (the WebSocket
// before the upgrade, SSE and long polling before they open one) and answers the refusals: 503 while
// closing or at max-conns (with Retry-After), 403 for a refused Origin. It reports whether to go on.
func (s *Server) admitHTTP(w http.ResponseWriter, r *http.Request) bool {
	s.observeAttempt(r) // storm detection counts every attempt
	if s.closing.Load() {
		retry := s.drainHint()
		w.Header().Set("Retry-After", strconv.Itoa(int(max(1, (retry+time.Second-1)/time.Second))))
		http.Error(w, protocol.FormatReason(protocol.ReasonDrain, retry), http.StatusServiceUnavailable)
		return false
	}
	if s.limits.full() {
		s.metrics.rejections.WithLabelValues(rejectOverloaded).Inc()
		retry := s.retryHint()
		w.Header().Set("Retry-After", strconv.Itoa(int(max(1, retry.Round(time.Second)/time.Second))))
		http.Error(w, protocol.FormatReason(protocol.ReasonOverloaded, retry), http.StatusServiceUnavailable)
		return false
	}
	if !s.originAllowed(r) {
		s.refuseOrigin(w, r)
		return false
	}
	return s.admit(w, r) // admission control: shed with 503 or 1013 and a retry hint
}

// startConn registers a new connection on transport t for request r (node and per-IP slots,
// metrics, the table Shutdown walks) and starts its run goroutine. It returns the connection, or
// nil when Shutdown has begun (the caller then closes t's network side): a connection is either in
// the table before Shutdown walks it, with its goroutine counted before Shutdown waits, or refused.
func (s *Server) startConn(t transport, r *http.Request) *conn {
	c := s.registerConn(t, r)
	if c == nil {
		return nil
	}
	nodeOK, ipOK := s.limits.acquireNode(c.ip)
	s.metrics.updatePoolAlerts(s.limits.usage())
	go c.run(requestToken(r), nodeOK, ipOK)
	return c
}

// registerConn puts a new connection on transport t for request r in the table Shutdown walks and
// counts it (its hold on the WaitGroup is released by conn.end); nil when Shutdown has begun.
func (s *Server) registerConn(t transport, r *http.Request) *conn {
	c := newConn(s, t, s.clientIP(r))
	s.allMu.Lock()
	if s.closing.Load() {
		s.allMu.Unlock()
		return nil
	}
	s.all[c] = struct{}{}
	s.wg.Add(1)
	s.allMu.Unlock()
	s.byTransport.add(t.kind(), 1)
	s.metrics.connsTotal.Inc()
	return c
}

// requestToken is the JWT of a request: the token query parameter, or else an Authorization bearer
// header. Empty when there is neither.
func requestToken(r *http.Request) string {
	if tok := r.URL.Query().Get(protocol.TokenQueryParam); tok != "" {
		return tok
	}
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// refuseOrigin answers a request whose Origin is not allowed: 403, counted and logged (the browser
// shows only a failed connection, 1006 for a WebSocket).
func (s *Server) refuseOrigin(w http.ResponseWriter, r *http.Request) {
	s.metrics.rejections.WithLabelValues(rejectOrigin).Inc()
	s.log.Info("origin refused", "origin", r.Header.Get("Origin"), "host", r.Host, "path", r.URL.Path,
		"remote_ip", s.clientIP(r), "allowed_origins", strings.Join(s.cfg.AllowedOrigins, ","))
	http.Error(w, protocol.ReasonOrigin, http.StatusForbidden)
}

// originAllowed implements Config.AllowedOrigins (the same-host default: sameHost).
func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if len(s.cfg.AllowedOrigins) == 0 {
		return sameHost(origin, r.Host)
	}
	return slices.ContainsFunc(s.cfg.AllowedOrigins, func(o string) bool {
		return o == "*" || strings.EqualFold(strings.TrimSuffix(o, "/"), origin)
	})
}

// Listen opens the gateway's TCP listener on addr, with the kernel's TCP keepalive off on the
// connections it accepts: the gateway's heartbeat timeout and pings are what find a dead peer, and
// keepalive probes would wake every idle socket of a large population (and cost five socket options
// per accepted connection).
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	return lc.Listen(ctx, "tcp", addr)
}

// ErrDevNonLoopback is returned by Serve in dev mode when the listener is not on loopback.
var ErrDevNonLoopback = errors.New("refserver: dev mode refuses a non-loopback listen address")

// Serve accepts connections on ln until ctx is cancelled, Shutdown is called or a drain is
// requested (POST /admin/drain), then drains (see Shutdown) while the listener still answers — /readyz
// and /ws with 503, /metrics as usual — and returns once every connection is cleaned up. It returns
// nil after a requested stop, or the listener's error.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.cfg.Dev && !IsLoopbackAddr(ln.Addr().String()) {
		_ = ln.Close()
		return fmt.Errorf("%w: %s", ErrDevNonLoopback, ln.Addr())
	}
	if s.cfg.MaxTCPConnsPerIP > 0 {
		ln = newIPCapListener(ln, s.cfg.MaxTCPConnsPerIP, s.trusted.containsIP, func(ip string) {
			s.metrics.rejections.WithLabelValues(rejectConnLimit).Inc()
			s.log.Debug("connection refused at accept: max-tcp-conns-per-ip", "remote_ip", ip)
		})
	}
	if len(s.trusted) > 0 {
		ln = s.proxyListener(ln) // after the cap: it counts TCP peers, the proxies exempt
	}
	if s.cfg.IO == IONbio {
		s.nbioEngine() // at once rather than with the first connection
	}
	if s.frontEligible() {
		ln = newWSFront(s, ln) // upgrades of /ws served without the HTTP server's connection
	}
	// TLS last: a PROXY protocol header comes before the TLS handshake.
	ln, err := s.cfg.tlsListener(ln)
	if err != nil {
		_ = ln.Close()
		return err
	}
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: headerTimeout,
		IdleTimeout:       s.cfg.HTTPIdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	// Long polls hold their request: let them answer at once so that the HTTP server's shutdown
	// does not wait out their hold.
	hs.RegisterOnShutdown(s.stopPolls)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	s.log.Info("refserver serving", "addr", ln.Addr().String(), "flaws", s.cfg.Flaws.String())

	var serveErr error
	select {
	case <-ctx.Done():
	case <-s.closed:
	case serveErr = <-errc:
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), s.drainTimeout())
	defer cancel()
	if err := s.Shutdown(shutCtx); err != nil && serveErr == nil {
		serveErr = err
	}
	httpCtx, cancelHTTP := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelHTTP()
	_ = hs.Shutdown(httpCtx) // stops the listener; hijacked connections are ours and already gone
	if serveErr == nil {
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
			serveErr = err
		}
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return serveErr
}

// stopPolls makes every holding long poll answer at once, and later ones not hold.
func (s *Server) stopPolls() { s.pollStopOnce.Do(func() { close(s.pollStop) }) }

// liveConns returns every connection not yet cleaned up, authenticated or not.
func (s *Server) liveConns() []*conn {
	s.allMu.Lock()
	defer s.allMu.Unlock()
	out := make([]*conn, 0, len(s.all))
	for c := range s.all {
		out = append(out, c)
	}
	return out
}

func (s *Server) forget(c *conn) {
	s.allMu.Lock()
	delete(s.all, c)
	s.allMu.Unlock()
	s.byTransport.add(c.t.kind(), -1)
}

// Stats are counts for tests and tools.
type Stats struct {
	ActiveConns           int // connections holding a node slot (ws_connections_active)
	RegisteredConns       int // authenticated connections in the hub
	Rooms                 int // rooms held on this node
	Subscriptions         int // (connection, room) memberships, orphaned included (ws_room_subscriptions)
	OrphanedSubscriptions int // memberships whose connection is gone (ws_orphaned_subscriptions)
	PresenceEntries       int // (room, user) presence entries (ws_presence_entries)
	Sessions              int // sessions held by a connection (with leak-on-error, also by gone ones)
	DetachedSessions      int // sessions whose connection ended, kept for --session-ttl for resume
	HistoryEntries        int // broadcasts held in room histories
	QueueDepth            int // frames queued for sending (ws_send_queue_depth)
	FallbackConns         int // authenticated SSE and long-poll connections (a subset of RegisteredConns)
}

// Stats returns current counts.
func (s *Server) Stats() Stats {
	hc := s.hub.stats()
	held, detached := s.sessions.counts()
	return Stats{
		ActiveConns:           s.limits.active(),
		RegisteredConns:       hc.conns,
		Rooms:                 hc.rooms,
		Subscriptions:         hc.subscriptions,
		OrphanedSubscriptions: hc.orphaned,
		PresenceEntries:       hc.presence,
		Sessions:              held,
		DetachedSessions:      detached,
		HistoryEntries:        hc.history,
		QueueDepth:            int(s.queueDepth.Load()),
		FallbackConns:         s.fallbacks.len(),
	}
}
