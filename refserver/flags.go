package refserver

import (
	"errors"
	"flag"
	"fmt"
	"strings"
)

// RegisterFlags binds every field of c to fs as a kebab-case flag (Config.HeartbeatInterval is
// --heartbeat-interval), with c's current values as the flags' defaults. It is the one list of the
// gateway's settings: the refserver binary, the load generator's embedded nodes (Args writes what
// RegisterFlags reads) and every test that checks a flag all go through it, so a setting added to
// Config is added here and nowhere else. Each flag has an environment twin (EnvName, ApplyEnv).
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address (host:port)")
	fs.BoolVar(&c.Dev, "dev", c.Dev, "dev mode: auth secret \"squall-dev\", loopback addresses only")
	fs.StringVar(&c.AuthSecret, "auth-secret", c.AuthSecret, "HS256 secret of client JWTs (also SQUALL_AUTH_SECRET); required without --dev")
	fs.DurationVar(&c.HelloTimeout, "hello-timeout", c.HelloTimeout, "time a connection without a URL token has to send hello")
	fs.DurationVar(&c.HeartbeatInterval, "heartbeat-interval", c.HeartbeatInterval, "server WebSocket ping period")
	fs.DurationVar(&c.HeartbeatTimeout, "heartbeat-timeout", c.HeartbeatTimeout, "close a connection silent for this long")
	fs.DurationVar(&c.FlawSweepInterval, "flaw-sweep-interval", c.FlawSweepInterval, "staleness sweep period under --flaw no-server-ping")
	fs.IntVar(&c.MaxConnsPerClient, "max-conns-per-client", c.MaxConnsPerClient, "concurrent connections per user id (and per IP unless --max-conns-per-ip)")
	fs.IntVar(&c.MaxConnsPerIP, "max-conns-per-ip", c.MaxConnsPerIP, "concurrent connections per remote IP (0: same as --max-conns-per-client, -1: unlimited)")
	fs.IntVar(&c.MaxConns, "max-conns", c.MaxConns, "connections per node; beyond it HTTP 503")
	fs.Int64Var(&c.MaxFrameBytes, "max-frame-bytes", c.MaxFrameBytes, "largest client frame; larger ones close with 1009")
	fs.IntVar(&c.MaxRoomsPerConn, "max-rooms-per-conn", c.MaxRoomsPerConn, "rooms one connection may join")
	fs.Var((*originsFlag)(&c.AllowedOrigins), "allowed-origins", "comma-separated Origin values accepted on upgrade (\"*\": any; empty: none or same host)")
	fs.IntVar(&c.SendQueue, "send-queue", c.SendQueue, "frames queued per connection before it is closed as a slow consumer (1008)")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", c.WriteTimeout, "bound on one write to a client")
	fs.IntVar(&c.ReadBufferSize, "read-buffer-size", c.ReadBufferSize, "per-connection read buffer, bytes")
	fs.IntVar(&c.WriteBufferSize, "write-buffer-size", c.WriteBufferSize, "pooled write buffer size, bytes")
	fs.DurationVar(&c.CloseGrace, "close-grace", c.CloseGrace, "wait for the client's close answer before dropping TCP")
	fs.StringVar(&c.IO, "io", c.IO, "WebSocket I/O model: nbio (an epoll loop; idle connections hold no goroutine or read buffer) or goroutine (a reader goroutine per connection); TLS and PROXY-protocol connections always use goroutine")
	fs.IntVar(&c.GCPercent, "gc-percent", c.GCPercent, "garbage collector target of the gateway process (runtime/debug.SetGCPercent; Go's default is 100; GOGC wins when set)")
	fs.IntVar(&c.SocketBuffer, "socket-buffer", c.SocketBuffer, "SO_RCVBUF and SO_SNDBUF of WebSocket sockets, bytes (0: the kernel's autotuned defaults)")
	fs.IntVar(&c.ReorderWindow, "reorder-window", c.ReorderWindow, "frames held while waiting for a missing seq")
	fs.DurationVar(&c.ReorderTimeout, "reorder-timeout", c.ReorderTimeout, "how long a seq gap may stay open before close 4003")
	fs.IntVar(&c.HistorySize, "history-size", c.HistorySize, "broadcasts kept per room")
	fs.DurationVar(&c.HistoryTTL, "history-ttl", c.HistoryTTL, "age bound of room history")
	fs.DurationVar(&c.ReconnectWindow, "reconnect-window", c.ReconnectWindow, "a user's new connection within this of their last one counts as a reconnect")
	fs.DurationVar(&c.MaxTokenLifetime, "max-token-lifetime", c.MaxTokenLifetime, "refuse (4001) tokens whose exp lies further ahead than this (negative: no bound)")
	fs.DurationVar(&c.AuthLatency, "auth-latency", c.AuthLatency, "latency the simulated auth backend adds to every call")
	fs.Float64Var(&c.AuthFailRate, "auth-fail-rate", c.AuthFailRate, "share of auth backend calls that fail, 0..1 (clients get 1013 auth_unavailable)")
	fs.DurationVar(&c.AuthCacheTTL, "auth-cache-ttl", c.AuthCacheTTL, "a validated token skips the auth backend for this long (never past its exp)")
	fs.IntVar(&c.AuthCacheSize, "auth-cache-size", c.AuthCacheSize, "validated tokens cached at most")
	fs.IntVar(&c.AuthBreakerFailures, "auth-breaker-failures", c.AuthBreakerFailures, "consecutive auth backend failures that open the circuit breaker")
	fs.DurationVar(&c.AuthBreakerCooldown, "auth-breaker-cooldown", c.AuthBreakerCooldown, "how long the open breaker refuses calls before one probe")
	fs.Float64Var(&c.AcceptRate, "accept-rate", c.AcceptRate, "admission token bucket: new connections per second per node (-1: no admission control)")
	fs.IntVar(&c.AcceptBurst, "accept-burst", c.AcceptBurst, "admission token bucket size")
	fs.StringVar(&c.ShedMode, "shed-mode", c.ShedMode, "answer to a shed attempt: http (503 + Retry-After before the upgrade) or close (upgrade, then 1013 + retry_after_ms)")
	fs.Float64Var(&c.StormAlertRate, "storm-alert-rate", c.StormAlertRate, "connection attempts per second (averaged over --storm-alert-window) that raise ws_storm_active")
	fs.IntVar(&c.StormAlertBurst, "storm-alert-burst", c.StormAlertBurst, "connection attempts within one second that raise ws_storm_active")
	fs.DurationVar(&c.StormAlertWindow, "storm-alert-window", c.StormAlertWindow, "window --storm-alert-rate is averaged over")
	fs.DurationVar(&c.SessionTTL, "session-ttl", c.SessionTTL, "how long a session outlives its connection (resume window)")
	fs.DurationVar(&c.DrainSpread, "drain-spread", c.DrainSpread, "window of the retry hints sent with 1001 on drain (SIGTERM, POST /admin/drain)")
	fs.StringVar(&c.AdminToken, "admin-token", c.AdminToken, "bearer token required by POST /admin/drain (empty: loopback peers only)")
	fs.StringVar(&c.Broker, "broker", c.Broker, "cluster mode: redis://host:port/db shares rooms, presence, registry and limits with every node on that Redis (default: memory, one node)")
	fs.StringVar(&c.NodeID, "node-id", c.NodeID, "this node's id in the cluster registry (default: random)")
	fs.DurationVar(&c.RegistryTTL, "registry-ttl", c.RegistryTTL, "cluster mode: lifetime of this node's presence and registry entries without a refresh (a dead node's users are gone after it)")
	fs.DurationVar(&c.PollHold, "poll-hold", c.PollHold, "longest wait of a long poll (GET /poll) for frames")
	fs.DurationVar(&c.SSEKeepalive, "sse-keepalive", c.SSEKeepalive, "period of the keep-alive comments on an SSE stream (at most --heartbeat-interval); keep it below the idle timeout of proxies in front")
	fs.DurationVar(&c.HTTPIdleTimeout, "http-idle-timeout", c.HTTPIdleTimeout, "close a plain-HTTP keep-alive connection idle for this long")
	fs.DurationVar(&c.HTTPReadTimeout, "http-read-timeout", c.HTTPReadTimeout, "bound on reading one request's body (a long poll: its hold plus this)")
	fs.IntVar(&c.MaxTCPConnsPerIP, "max-tcp-conns-per-ip", c.MaxTCPConnsPerIP, "open TCP connections per remote IP, of any kind, counted at accept (0: max(64, 2*max-conns-per-ip+32), or none when that is -1; -1: no cap)")
	fs.Var((*originsFlag)(&c.TrustedProxies), "trusted-proxies", "comma-separated CIDR prefixes or addresses of proxies whose PROXY protocol header or X-Forwarded-For names the client (empty: the TCP peer is the client)")
	fs.BoolVar(&c.Pprof, "pprof", c.Pprof, "serve /debug/pprof/")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM certificate (and chain) to serve TLS with: wss:// and https:// (with --tls-key)")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM private key of --tls-cert")
	fs.Var(flawsFlag{&c.Flaws}, "flaw", "comma-separated flaws to switch on (refserver --help lists them)")
}

// Args returns the flags that set c's non-zero fields (a zero field stands for its default, so
// nothing is written for it), in RegisterFlags' order: parsed by RegisterFlags over DefaultConfig,
// they give back c with its defaults filled in.
func (c Config) Args() []string {
	set := flag.NewFlagSet("args", flag.ContinueOnError)
	cfg := c
	cfg.RegisterFlags(set)
	var zero Config
	zeros := flag.NewFlagSet("zeros", flag.ContinueOnError)
	zero.RegisterFlags(zeros)
	var args []string
	set.VisitAll(func(f *flag.Flag) {
		if v := f.Value.String(); v != zeros.Lookup(f.Name).Value.String() {
			args = append(args, "--"+f.Name+"="+v)
		}
	})
	return args
}

// EnvName is the environment twin of a flag: REFSERVER_ and the name in upper snake case
// (--heartbeat-interval: REFSERVER_HEARTBEAT_INTERVAL).
func EnvName(flagName string) string {
	return "REFSERVER_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// AuthSecretEnv is the environment variable the auth secret is also read from (after its
// REFSERVER_AUTH_SECRET twin).
const AuthSecretEnv = "SQUALL_AUTH_SECRET"

// ApplyEnv sets every flag of fs that was not given on the command line from its environment twin
// (getenv is os.Getenv outside tests); a flag on the command line wins. It reports every bad value
// at once, each naming its variable.
func ApplyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		v := getenv(EnvName(f.Name))
		if v == "" && f.Name == "auth-secret" {
			v = getenv(AuthSecretEnv)
		}
		if v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", EnvName(f.Name), v, err))
		}
	})
	return errors.Join(errs...)
}

// flawsFlag is Config.Flaws as a flag (ParseFlaws reads what Flaws.String writes).
type flawsFlag struct{ f *Flaws }

func (v flawsFlag) String() string {
	if v.f == nil {
		return ""
	}
	return v.f.String()
}

func (v flawsFlag) Set(s string) error {
	fl, err := ParseFlaws(s)
	if err != nil {
		return err
	}
	*v.f = fl
	return nil
}

// originsFlag is a comma-separated list flag (Config.AllowedOrigins, Config.TrustedProxies).
type originsFlag []string

func (v *originsFlag) String() string {
	if v == nil {
		return ""
	}
	return strings.Join(*v, ",")
}

func (v *originsFlag) Set(s string) error {
	*v = nil
	for _, o := range strings.Split(s, ",") {
		if o = strings.TrimSpace(o); o != "" {
			*v = append(*v, o)
		}
	}
	return nil
}
