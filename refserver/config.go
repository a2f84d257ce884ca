package refserver

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/squall-dev/squall/internal/loopback"
)

// Config holds every tunable of the gateway. The zero value of each field means its default (listed
// on the field and returned by DefaultConfig); Validate reports every problem at once. The binary
// refserver exposes each field as a kebab-case flag with a REFSERVER_* environment twin.
type Config struct {
	// Addr is the listen address the binary uses (default "127.0.0.1:8080"). The library does not
	// listen itself (Serve takes a listener); with Dev it must be a loopback address.
	Addr string
	// Dev uses protocol.DevSecret as the auth secret and refuses non-loopback listen addresses.
	Dev bool
	// AuthSecret is the HS256 secret of client JWTs. Required unless Dev is set (or an auth backend
	// is injected with WithAuthBackend).
	AuthSecret string
	// HelloTimeout is how long a connection without a token in the URL has to send hello
	// (default 10s); after it the connection is closed with 4001.
	HelloTimeout time.Duration

	// HeartbeatInterval is how often the server sends a WebSocket ping (default 30s). The first ping
	// of a connection is jittered over the second half of the interval.
	HeartbeatInterval time.Duration
	// HeartbeatTimeout closes a connection that sent nothing (no pong, no frame) for this long
	// (default 60s). A silent connection is gone within timeout + one interval at most.
	HeartbeatTimeout time.Duration
	// FlawSweepInterval is the period of the slow staleness sweep that replaces pings under the
	// no-server-ping flaw (default 30s). Unused otherwise.
	FlawSweepInterval time.Duration

	// MaxConnsPerClient caps concurrent connections per user id (default 5); the next one is
	// closed with 1008 conn_limit.
	MaxConnsPerClient int
	// MaxConnsPerIP caps concurrent connections per remote IP (default: MaxConnsPerClient; -1 means
	// no per-IP limit). Load tests from one address raise it or spread over 127.0.0.0/8.
	MaxConnsPerIP int
	// MaxConns caps connections per node (default 50000); beyond it the upgrade is answered with
	// HTTP 503 and a Retry-After header.
	MaxConns int
	// MaxFrameBytes is the largest client frame accepted (default 65536); a larger one is closed
	// with 1009.
	MaxFrameBytes int64
	// MaxRoomsPerConn caps the rooms one connection may join (default 64); beyond it join_room gets
	// an error frame with code room_limit.
	MaxRoomsPerConn int
	// AllowedOrigins lists the Origin values accepted on upgrade ("https://app.example.com"; "*"
	// accepts any). Empty (the default) accepts requests without an Origin header and same-host
	// origins. A refused origin gets HTTP 403.
	AllowedOrigins []string

	// MaxTokenLifetime refuses (4001) a token whose exp lies further ahead than this (default 168h;
	// negative: no bound), so that a leaked token cannot stay valid for years. loadgen mints 24h tokens.
	MaxTokenLifetime time.Duration

	// AuthLatency is the latency the simulated auth backend adds to every call (default 0: none).
	// It stands for the real auth service's response time; see SimulatedBackend.
	AuthLatency time.Duration
	// AuthFailRate is the share of auth backend calls that fail, 0..1 (default 0: none). A failure
	// is a backend error, not a bad token: the client gets 1013 auth_unavailable with a retry hint.
	AuthFailRate float64
	// AuthCacheTTL is how long a token the backend validated skips the backend (default 5m). An entry
	// never outlives the token's own exp. Switched off by the no-auth-cache flaw.
	AuthCacheTTL time.Duration
	// AuthCacheSize bounds the validated tokens held (default 100000); beyond it expired entries are
	// swept, then arbitrary ones evicted.
	AuthCacheSize int
	// AuthBreakerFailures is the number of consecutive auth backend failures that open the circuit
	// breaker (default 5). While it is open the backend is not called and clients whose token is not
	// cached get 1013 auth_unavailable with a retry hint.
	AuthBreakerFailures int
	// AuthBreakerCooldown is how long the breaker stays open before it lets one probe call through
	// (half-open; default 5s). A successful probe closes it, a failed one opens it again.
	AuthBreakerCooldown time.Duration

	// AcceptRate is the refill rate of the admission token bucket, new connections per second per
	// node (default 2000; -1 switches admission control off). Attempts beyond the bucket are shed.
	AcceptRate float64
	// AcceptBurst is the admission bucket's size (default 1000): attempts admitted at once after a
	// quiet period.
	AcceptBurst int
	// ShedMode says how a shed attempt is answered: "http" (default) answers HTTP 503 with Retry-After
	// before the upgrade; "close" upgrades and closes at once with 1013 shed retry_after_ms=N, which
	// browsers can read. Both hints are jittered.
	ShedMode string
	// StormAlertRate raises ws_storm_active when connection attempts average more than this many per
	// second over StormAlertWindow (default 100).
	StormAlertRate float64
	// StormAlertBurst raises ws_storm_active when more than this many attempts arrive within one
	// second (default 50).
	StormAlertBurst int
	// StormAlertWindow is the window StormAlertRate is averaged over (default 10s).
	StormAlertWindow time.Duration

	// SendQueue bounds the frames queued for one connection (default 256). A client that lets it
	// overflow is closed with 1008 slow_consumer.
	SendQueue int
	// WriteTimeout bounds one write to a client (default 10s); a write that takes longer is a write
	// error and ends the connection.
	WriteTimeout time.Duration
	// ReadBufferSize is the per-connection read buffer in bytes (default 512). Larger frames are
	// still read; the buffer only sets the read syscall size. It is held for the connection's life.
	ReadBufferSize int
	// WriteBufferSize is the size of the pooled write buffers in bytes (default 4096). Idle
	// connections hold none.
	WriteBufferSize int
	// CloseGrace is how long the server waits for the client's answer to a close frame before it
	// drops the TCP connection (default 1s).
	CloseGrace time.Duration
	// IO is the WebSocket transport's I/O model (default "nbio"): IONbio drives every connection
	// from an epoll loop so that an idle one costs no goroutine and no read buffer, IOGoroutine
	// parks a reader goroutine per connection. Wire behaviour, close codes, limits, heartbeats,
	// drain and metrics are the same in both. TLS connections (TLSCert), and connections through
	// trusted PROXY-protocol proxies, always use the goroutine transport: nbio reads the raw socket.
	IO string
	// GCPercent is the garbage collector's target (runtime/debug.SetGCPercent) of a gateway process:
	// the refserver binary and child gateway nodes apply it (ApplyGC) unless GOGC is set; New does
	// not (it is process-wide). It holds once the heap is large: a small heap keeps at least 8 MB of
	// headroom (internal/gctarget), so that a node holding few connections does not collect after
	// every megabyte of handshakes. Default 25: a node's heap is mostly long-lived connection state,
	// and between collections it holds the garbage of every handshake since the last one (HTTP
	// request, buffers, upgrade), so the heap's headroom sets its peak memory as much as the
	// connections do; 100 is Go's own default. At 16 700 idle connections a node (the 100 000
	// plan), 50 ramps ~3 % faster (a growing heap is marked about 1 + 100/GCPercent times over) but
	// held 4.9 KB per connection at the peak of a 5-minute hold, against 4.3 KB with 25 (docs/bench.md).
	GCPercent int
	// SocketBuffer, when above 0, sets SO_RCVBUF and SO_SNDBUF of every WebSocket connection's
	// socket to this many bytes (the kernel doubles it), so that idle connections pin little kernel
	// memory; 0 keeps the kernel's autotuned defaults.
	SocketBuffer int

	// ReorderWindow bounds the frames held while waiting for a missing seq (default 32). A frame
	// further ahead than the window, or a full buffer, is a sequence violation (4003).
	ReorderWindow int
	// ReorderTimeout is how long a seq gap may stay open (default 2s) before the connection is
	// closed with 4003.
	ReorderTimeout time.Duration

	// HistorySize bounds each room's history of broadcasts by count (default 1000).
	HistorySize int
	// HistoryTTL bounds each room's history by age (default 5m).
	HistoryTTL time.Duration
	// ReconnectWindow is how long after a user's connection ended a new connection of the same user
	// counts as a reconnect in ws_reconnects_total (default 1m).
	ReconnectWindow time.Duration
	// SessionTTL is how long a session outlives its connection (default 2m): within it a new
	// connection of the same user may continue the session (hello with session) or resume its rooms
	// (resume). After it the session is forgotten: resume answers resume_failed and hello with the
	// session is closed with 4002. At most MaxConns detached sessions are kept; beyond that the
	// oldest are forgotten early.
	SessionTTL time.Duration

	// DrainSpread is the window over which the retry hints of a drain are spread (default 10s):
	// on SIGTERM, POST /admin/drain or Shutdown every connection is closed at once with 1001 and a
	// retry_after_ms drawn uniformly from (0, DrainSpread], so that the clients' reconnects spread
	// out instead of arriving together.
	DrainSpread time.Duration
	// AdminToken, when set, is the bearer token POST /admin/drain requires (Authorization: Bearer
	// <token>). Empty (the default) accepts the admin endpoint from loopback peers only.
	AdminToken string

	// Broker says how nodes share rooms: "" or "memory" (the default) keeps rooms, presence and
	// limits in this process (a single node); "redis://host:port/db" makes this node one of the
	// gateway formed by every node on that Redis (RedisBroker: fan-out, roomSeq, presence,
	// connection registry and per-user limits shared). Ignored when WithBroker injects a broker.
	Broker string
	// NodeID names this node in the cluster registry; connection ids end with it (default: random).
	NodeID string
	// RegistryTTL is how long, in cluster mode, this node's presence and connection-registry entries
	// live without a refresh (default 60s). They are refreshed every min(HeartbeatInterval,
	// RegistryTTL/3), so the other nodes announce a dead node's users gone about RegistryTTL after it
	// died, and its connections stop counting towards per-user limits.
	RegistryTTL time.Duration
	// PollHold bounds how long a long poll (GET /poll) waits for frames before it answers empty
	// (default 15s: below the idle timeouts of common proxies — nginx's proxy_read_timeout is 60s,
	// many load balancers' 30s or 60s — so that a holding poll is never cut). A server heartbeat (every HeartbeatInterval) also ends the hold, so that the
	// client's next poll shows it is alive.
	PollHold time.Duration

	// SSEKeepalive is the period of the keep-alive comments (": ping") on an SSE stream (default 15s,
	// below the idle timeouts of common proxies, as PollHold; at most HeartbeatInterval, which is
	// used when shorter). A proxy that still cuts the stream costs nothing: the client resumes with
	// Last-Event-ID.
	SSEKeepalive time.Duration
	// HTTPIdleTimeout closes a plain-HTTP keep-alive connection that sent no new request for this
	// long (default 30s), so that idle connections cannot pin goroutines and file descriptors. It
	// does not apply to WebSocket and SSE connections (their heartbeat bounds them).
	HTTPIdleTimeout time.Duration
	// HTTPReadTimeout bounds the reading of one request's body, from the end of its headers (default
	// 30s; the headers themselves have 10s). A /send whose body stalls is cut off after it; a long
	// poll's bound is its hold plus this.
	HTTPReadTimeout time.Duration
	// MaxTCPConnsPerIP caps the TCP connections one remote IP may hold open at once, whatever they
	// carry (plain HTTP, WebSocket, SSE, long polls), counted when Serve accepts them: the next one is
	// answered HTTP 503 and closed before it is read. Default: unlimited when MaxConnsPerIP is -1,
	// else max(64, 2×MaxConnsPerIP+32) (a long-poll client holds a poll and a /send at once). -1
	// means no cap. Peers in TrustedProxies are not capped (their clients are, by the connection
	// limits, under their real address).
	MaxTCPConnsPerIP int

	// TrustedProxies lists the proxies (CIDR prefixes or addresses) whose word on the client address
	// is taken: a connection from one of them may start with a PROXY protocol header (v1 or v2), and
	// a request from one of them names its client in X-Forwarded-For (the rightmost hop that is not a
	// trusted proxy). The client address is what the per-IP limits count and the logs show. Empty
	// (the default) trusts no one: the client is the TCP peer.
	TrustedProxies []string

	// Flaws switches defects back on (see Flaw). Empty means none.
	Flaws Flaws
	// Pprof serves /debug/pprof/ on the gateway's handler.
	Pprof bool

	// TLSCert and TLSKey are PEM files of the certificate (with its chain) and key Serve
	// terminates TLS with (Go's crypto/tls), so that clients connect with wss:// and https://.
	// Both or neither; empty serves plain ws:// and http://.
	TLSCert string
	TLSKey  string
}

// DefaultConfig returns the defaults every zero field stands for.
func DefaultConfig() Config {
	return Config{
		Addr:              "127.0.0.1:8080",
		HelloTimeout:      10 * time.Second,
		HeartbeatInterval: 30 * time.Second,
		HeartbeatTimeout:  60 * time.Second,
		FlawSweepInterval: 30 * time.Second,
		MaxConnsPerClient: 5,
		MaxConns:          50000,
		MaxFrameBytes:     64 << 10,
		MaxRoomsPerConn:   64,
		SendQueue:         256,
		WriteTimeout:      10 * time.Second,
		ReadBufferSize:    512,
		WriteBufferSize:   4096,
		CloseGrace:        time.Second,
		ReorderWindow:     32,
		ReorderTimeout:    2 * time.Second,
		HistorySize:       1000,
		HistoryTTL:        5 * time.Minute,
		ReconnectWindow:   time.Minute,
		SessionTTL:        2 * time.Minute,
		DrainSpread:       10 * time.Second,
		RegistryTTL:       time.Minute,
		PollHold:          15 * time.Second,
		SSEKeepalive:      15 * time.Second,
		MaxTokenLifetime:  7 * 24 * time.Hour,
		HTTPIdleTimeout:   30 * time.Second,
		HTTPReadTimeout:   30 * time.Second,
		Flaws:             Flaws{},

		AuthCacheTTL:        5 * time.Minute,
		AuthCacheSize:       100000,
		AuthBreakerFailures: 5,
		AuthBreakerCooldown: 5 * time.Second,
		AcceptRate:          2000,
		AcceptBurst:         1000,
		ShedMode:            ShedHTTP,
		IO:                  IONbio,
		GCPercent:           25,
		StormAlertRate:      100,
		StormAlertBurst:     50,
		StormAlertWindow:    10 * time.Second,
	}
}

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	setStr := func(v *string, def string) {
		if *v == "" {
			*v = def
		}
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setStr(&c.Addr, d.Addr)
	setDur(&c.HelloTimeout, d.HelloTimeout)
	setDur(&c.HeartbeatInterval, d.HeartbeatInterval)
	setDur(&c.HeartbeatTimeout, d.HeartbeatTimeout)
	setDur(&c.FlawSweepInterval, d.FlawSweepInterval)
	setInt(&c.MaxConnsPerClient, d.MaxConnsPerClient)
	if c.MaxConnsPerIP == 0 {
		c.MaxConnsPerIP = c.MaxConnsPerClient
	}
	setInt(&c.MaxConns, d.MaxConns)
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = d.MaxFrameBytes
	}
	setInt(&c.MaxRoomsPerConn, d.MaxRoomsPerConn)
	setInt(&c.SendQueue, d.SendQueue)
	setDur(&c.WriteTimeout, d.WriteTimeout)
	setInt(&c.ReadBufferSize, d.ReadBufferSize)
	setInt(&c.WriteBufferSize, d.WriteBufferSize)
	setDur(&c.CloseGrace, d.CloseGrace)
	setInt(&c.ReorderWindow, d.ReorderWindow)
	setDur(&c.ReorderTimeout, d.ReorderTimeout)
	setInt(&c.HistorySize, d.HistorySize)
	setDur(&c.HistoryTTL, d.HistoryTTL)
	setDur(&c.ReconnectWindow, d.ReconnectWindow)
	setDur(&c.SessionTTL, d.SessionTTL)
	setDur(&c.DrainSpread, d.DrainSpread)
	setDur(&c.RegistryTTL, d.RegistryTTL)
	setDur(&c.PollHold, d.PollHold)
	setDur(&c.SSEKeepalive, d.SSEKeepalive)
	setDur(&c.MaxTokenLifetime, d.MaxTokenLifetime)
	setDur(&c.HTTPIdleTimeout, d.HTTPIdleTimeout)
	setDur(&c.HTTPReadTimeout, d.HTTPReadTimeout)
	if c.MaxTCPConnsPerIP == 0 {
		c.MaxTCPConnsPerIP = -1
		if c.MaxConnsPerIP > 0 {
			c.MaxTCPConnsPerIP = max(64, 2*c.MaxConnsPerIP+32)
		}
	}
	if c.Flaws == nil {
		c.Flaws = Flaws{}
	}
	c.admissionDefaults(d)
	c.ioDefaults(d)
	return c
}

// Validate reports every problem of c at once (zero fields are fine: they mean the default).
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	v := c.withDefaults()
	if !v.Dev && v.AuthSecret == "" {
		bad("auth-secret: required unless dev mode is on (flag --auth-secret, env SQUALL_AUTH_SECRET)")
	}
	if v.Dev && v.Addr != "" && !IsLoopbackAddr(v.Addr) {
		bad("addr: dev mode refuses the non-loopback address %q", v.Addr)
	}
	if err := v.validateTLS(); err != nil {
		errs = append(errs, err)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"hello-timeout", v.HelloTimeout}, {"heartbeat-interval", v.HeartbeatInterval},
		{"heartbeat-timeout", v.HeartbeatTimeout}, {"flaw-sweep-interval", v.FlawSweepInterval},
		{"write-timeout", v.WriteTimeout}, {"close-grace", v.CloseGrace}, {"reorder-timeout", v.ReorderTimeout},
		{"history-ttl", v.HistoryTTL}, {"reconnect-window", v.ReconnectWindow},
		{"session-ttl", v.SessionTTL}, {"drain-spread", v.DrainSpread},
		{"registry-ttl", v.RegistryTTL}, {"poll-hold", v.PollHold}, {"sse-keepalive", v.SSEKeepalive},
		{"http-idle-timeout", v.HTTPIdleTimeout}, {"http-read-timeout", v.HTTPReadTimeout},
	} {
		if d.v < 0 {
			bad("%s: must not be negative, got %s", d.name, d.v)
		}
	}
	validateIO(v, bad)
	if v.HeartbeatTimeout > 0 && v.HeartbeatInterval > 0 && v.HeartbeatTimeout <= v.HeartbeatInterval {
		bad("heartbeat-timeout (%s) must be longer than heartbeat-interval (%s)", v.HeartbeatTimeout, v.HeartbeatInterval)
	}
	for _, n := range []struct {
		name string
		v    int
	}{
		{"max-conns-per-client", v.MaxConnsPerClient}, {"max-conns", v.MaxConns},
		{"max-rooms-per-conn", v.MaxRoomsPerConn}, {"send-queue", v.SendQueue},
		{"reorder-window", v.ReorderWindow}, {"history-size", v.HistorySize},
	} {
		if n.v < 1 {
			bad("%s: must be at least 1, got %d", n.name, n.v)
		}
	}
	if v.PollHold > 10*time.Minute {
		bad("poll-hold: must be at most 10m, got %s", v.PollHold)
	}
	if v.MaxConnsPerIP < -1 {
		bad("max-conns-per-ip: must be -1 (no limit) or at least 1, got %d", v.MaxConnsPerIP)
	}
	if v.MaxTCPConnsPerIP < -1 {
		bad("max-tcp-conns-per-ip: must be -1 (no cap) or at least 1, got %d", v.MaxTCPConnsPerIP)
	}
	if v.MaxFrameBytes < 256 {
		bad("max-frame-bytes: must be at least 256, got %d", v.MaxFrameBytes)
	}
	if v.ReadBufferSize < 128 {
		bad("read-buffer-size: must be at least 128, got %d", v.ReadBufferSize)
	}
	if v.WriteBufferSize < 256 {
		bad("write-buffer-size: must be at least 256, got %d", v.WriteBufferSize)
	}
	if _, err := ParseBrokerURL(v.Broker); err != nil {
		bad("broker: %v", err)
	}
	if v.RegistryTTL > 0 && v.RegistryTTL < 100*time.Millisecond {
		bad("registry-ttl: must be at least 100ms, got %s", v.RegistryTTL)
	}
	if len(v.NodeID) > 64 || strings.ContainsAny(v.NodeID, "| \t\r\n") {
		bad("node-id: at most 64 characters without spaces or '|', got %q", v.NodeID)
	}
	for _, fi := range v.Flaws.sorted() {
		if !knownFlaw(fi) {
			bad("flaw: unknown flaw %q", fi)
		}
	}
	if _, err := parseTrustedProxies(v.TrustedProxies); err != nil {
		bad("trusted-proxies: %v", err)
	}
	for _, o := range v.AllowedOrigins {
		if strings.TrimSpace(o) == "" {
			bad("allowed-origins: empty entry")
		}
	}
	v.validateAdmission(bad)
	return errors.Join(errs...)
}

// IsLoopbackAddr reports whether a host:port listen address is on loopback ("localhost" counts; an
// empty host, which means every interface, does not).
func IsLoopbackAddr(addr string) bool { return loopback.IsAddr(addr) }
