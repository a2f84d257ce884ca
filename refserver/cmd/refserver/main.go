// Command refserver runs squall's reference WebSocket gateway.
//
// Every setting is a flag with an environment twin REFSERVER_<FLAG_IN_UPPER_SNAKE> (for example
// --heartbeat-interval and REFSERVER_HEARTBEAT_INTERVAL); a flag given on the command line wins over
// its environment twin. The auth secret is also read from SQUALL_AUTH_SECRET. Durations are Go
// durations (500ms, 30s, 5m).
//
// Exit codes: 0 after a clean shutdown (SIGINT, SIGTERM or POST /admin/drain: the node drains, see
// refserver.Server.Shutdown); 1 when the gateway failed while running
// (listen error, serve error); 2 for a usage or configuration error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/squall-dev/squall/refserver"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// usageError marks errors that exit with exitUsage.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		os.Exit(exitOK)
	case errors.As(err, new(usageError)):
		fmt.Fprintln(os.Stderr, "refserver:", err)
		os.Exit(exitUsage)
	default:
		fmt.Fprintln(os.Stderr, "refserver:", err)
		os.Exit(exitFail)
	}
}

// options are the binary's own settings beyond refserver.Config.
type options struct {
	logLevel  string
	logFormat string
	flaws     string
	origins   string
}

// newFlagSet binds every setting to cfg and opts.
func newFlagSet(cfg *refserver.Config, opts *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("refserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	d := refserver.DefaultConfig()
	*cfg = d
	fs.StringVar(&cfg.Addr, "addr", d.Addr, "listen address (host:port)")
	fs.BoolVar(&cfg.Dev, "dev", false, "dev mode: auth secret \"squall-dev\", loopback addresses only")
	fs.StringVar(&cfg.AuthSecret, "auth-secret", "", "HS256 secret of client JWTs (also SQUALL_AUTH_SECRET); required without --dev")
	fs.DurationVar(&cfg.HelloTimeout, "hello-timeout", d.HelloTimeout, "time a connection without a URL token has to send hello")
	fs.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", d.HeartbeatInterval, "server WebSocket ping period")
	fs.DurationVar(&cfg.HeartbeatTimeout, "heartbeat-timeout", d.HeartbeatTimeout, "close a connection silent for this long")
	fs.DurationVar(&cfg.FlawSweepInterval, "flaw-sweep-interval", d.FlawSweepInterval, "staleness sweep period under --flaw no-server-ping")
	fs.IntVar(&cfg.MaxConnsPerClient, "max-conns-per-client", d.MaxConnsPerClient, "concurrent connections per user id (and per IP unless --max-conns-per-ip)")
	fs.IntVar(&cfg.MaxConnsPerIP, "max-conns-per-ip", 0, "concurrent connections per remote IP (0: same as --max-conns-per-client, -1: unlimited)")
	fs.IntVar(&cfg.MaxConns, "max-conns", d.MaxConns, "connections per node; beyond it HTTP 503")
	fs.Int64Var(&cfg.MaxFrameBytes, "max-frame-bytes", d.MaxFrameBytes, "largest client frame; larger ones close with 1009")
	fs.IntVar(&cfg.MaxRoomsPerConn, "max-rooms-per-conn", d.MaxRoomsPerConn, "rooms one connection may join")
	fs.StringVar(&opts.origins, "allowed-origins", "", "comma-separated Origin values accepted on upgrade (\"*\": any; empty: none or same host)")
	fs.IntVar(&cfg.SendQueue, "send-queue", d.SendQueue, "frames queued per connection before it is closed as a slow consumer (1008)")
	fs.DurationVar(&cfg.WriteTimeout, "write-timeout", d.WriteTimeout, "bound on one write to a client")
	fs.IntVar(&cfg.ReadBufferSize, "read-buffer-size", d.ReadBufferSize, "per-connection read buffer, bytes")
	fs.IntVar(&cfg.WriteBufferSize, "write-buffer-size", d.WriteBufferSize, "pooled write buffer size, bytes")
	fs.DurationVar(&cfg.CloseGrace, "close-grace", d.CloseGrace, "wait for the client's close answer before dropping TCP")
	fs.IntVar(&cfg.ReorderWindow, "reorder-window", d.ReorderWindow, "frames held while waiting for a missing seq")
	fs.DurationVar(&cfg.ReorderTimeout, "reorder-timeout", d.ReorderTimeout, "how long a seq gap may stay open before close 4003")
	fs.IntVar(&cfg.HistorySize, "history-size", d.HistorySize, "broadcasts kept per room")
	fs.DurationVar(&cfg.HistoryTTL, "history-ttl", d.HistoryTTL, "age bound of room history")
	fs.DurationVar(&cfg.ReconnectWindow, "reconnect-window", d.ReconnectWindow, "a user's new connection within this of their last one counts as a reconnect")
	fs.DurationVar(&cfg.AuthLatency, "auth-latency", d.AuthLatency, "latency the simulated auth backend adds to every call")
	fs.Float64Var(&cfg.AuthFailRate, "auth-fail-rate", d.AuthFailRate, "share of auth backend calls that fail, 0..1 (clients get 1013 auth_unavailable)")
	fs.DurationVar(&cfg.AuthCacheTTL, "auth-cache-ttl", d.AuthCacheTTL, "a validated token skips the auth backend for this long (never past its exp)")
	fs.IntVar(&cfg.AuthCacheSize, "auth-cache-size", d.AuthCacheSize, "validated tokens cached at most")
	fs.IntVar(&cfg.AuthBreakerFailures, "auth-breaker-failures", d.AuthBreakerFailures, "consecutive auth backend failures that open the circuit breaker")
	fs.DurationVar(&cfg.AuthBreakerCooldown, "auth-breaker-cooldown", d.AuthBreakerCooldown, "how long the open breaker refuses calls before one probe")
	fs.Float64Var(&cfg.AcceptRate, "accept-rate", d.AcceptRate, "admission token bucket: new connections per second per node (-1: no admission control)")
	fs.IntVar(&cfg.AcceptBurst, "accept-burst", d.AcceptBurst, "admission token bucket size")
	fs.StringVar(&cfg.ShedMode, "shed-mode", d.ShedMode, "answer to a shed attempt: http (503 + Retry-After before the upgrade) or close (upgrade, then 1013 + retry_after_ms)")
	fs.Float64Var(&cfg.StormAlertRate, "storm-alert-rate", d.StormAlertRate, "connection attempts per second (averaged over --storm-alert-window) that raise ws_storm_active")
	fs.IntVar(&cfg.StormAlertBurst, "storm-alert-burst", d.StormAlertBurst, "connection attempts within one second that raise ws_storm_active")
	fs.DurationVar(&cfg.StormAlertWindow, "storm-alert-window", d.StormAlertWindow, "window --storm-alert-rate is averaged over")
	fs.DurationVar(&cfg.SessionTTL, "session-ttl", d.SessionTTL, "how long a session outlives its connection (resume window)")
	fs.DurationVar(&cfg.DrainSpread, "drain-spread", d.DrainSpread, "window of the retry hints sent with 1001 on drain (SIGTERM, POST /admin/drain)")
	fs.StringVar(&cfg.AdminToken, "admin-token", "", "bearer token required by POST /admin/drain (empty: loopback peers only)")
	fs.StringVar(&cfg.Broker, "broker", "", "cluster mode: redis://host:port/db shares rooms, presence, registry and limits with every node on that Redis (default: memory, one node)")
	fs.StringVar(&cfg.NodeID, "node-id", "", "this node's id in the cluster registry (default: random)")
	fs.DurationVar(&cfg.RegistryTTL, "registry-ttl", d.RegistryTTL, "cluster mode: lifetime of this node's presence and registry entries without a refresh (a dead node's users are gone after it)")
	fs.DurationVar(&cfg.PollHold, "poll-hold", d.PollHold, "longest wait of a long poll (GET /poll) for frames")
	fs.BoolVar(&cfg.Pprof, "pprof", false, "serve /debug/pprof/")
	fs.StringVar(&opts.flaws, "flaw", "", "comma-separated flaws to switch on (see below)")
	fs.StringVar(&opts.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&opts.logFormat, "log-format", "text", "text or json")
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: refserver [flags]\n\nsquall's reference WebSocket gateway.\n\nFlags (each also REFSERVER_<FLAG_IN_UPPER_SNAKE>):\n")
		fs.PrintDefaults()
		fmt.Fprintf(out, "\nFlaws (--flaw a,b), each bringing back one bug of the source incidents:\n")
		for _, f := range refserver.AllFlaws() {
			fmt.Fprintf(out, "  %-18s %s\n", f.Flaw, f.Description)
		}
		fmt.Fprintf(out, "\nExit codes: 0 clean shutdown, 1 runtime failure, 2 usage or configuration error.\n")
	}
	return fs
}

// envName is the environment twin of a flag.
func envName(flagName string) string {
	return "REFSERVER_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyEnv sets every flag not given on the command line from its environment twin.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		v := getenv(envName(f.Name))
		if v == "" && f.Name == "auth-secret" {
			v = getenv("SQUALL_AUTH_SECRET")
		}
		if v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", envName(f.Name), v, err))
		}
	})
	return errors.Join(errs...)
}

// parse turns arguments and environment into a validated Config.
func parse(args []string, getenv func(string) string, stderr io.Writer) (refserver.Config, options, error) {
	var cfg refserver.Config
	var opts options
	fs := newFlagSet(&cfg, &opts, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, opts, err
		}
		return cfg, opts, usageError{err}
	}
	if fs.NArg() > 0 {
		return cfg, opts, usageError{fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))}
	}
	if err := applyEnv(fs, getenv); err != nil {
		return cfg, opts, usageError{err}
	}
	flaws, err := refserver.ParseFlaws(opts.flaws)
	if err != nil {
		return cfg, opts, usageError{fmt.Errorf("--flaw: %w", err)}
	}
	cfg.Flaws = flaws
	if opts.origins != "" {
		for _, o := range strings.Split(opts.origins, ",") {
			cfg.AllowedOrigins = append(cfg.AllowedOrigins, strings.TrimSpace(o))
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, opts, usageError{err}
	}
	return cfg, opts, nil
}

func newLogger(opts options, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(opts.logLevel)); err != nil {
		return nil, usageError{fmt.Errorf("--log-level: %w", err)}
	}
	ho := &slog.HandlerOptions{Level: level}
	switch opts.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	}
	return nil, usageError{fmt.Errorf("--log-format: want text or json, got %q", opts.logFormat)}
}

// run parses the settings, listens and serves until ctx is cancelled.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, opts, err := parse(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger, err := newLogger(opts, stderr)
	if err != nil {
		return err
	}
	srv, err := refserver.New(cfg, logger)
	if err != nil {
		return usageError{err}
	}
	if cfg.Broker != "" {
		// go-redis logs connection trouble itself; the broker reports what matters, so its lines go
		// to the gateway's log at debug level instead of straight to stderr.
		redis.SetLogger(redisLogger{logger})
	}
	if p, ok := srv.Broker().(interface{ Ping(context.Context) error }); ok {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := p.Ping(pctx)
		cancel()
		if err != nil {
			_ = srv.Shutdown(context.Background())
			return fmt.Errorf("broker: %w", err) // the URL may hold a password: not repeated
		}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return srv.Serve(ctx, ln)
}

// redisLogger routes go-redis's internal log lines to slog at debug level.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}
