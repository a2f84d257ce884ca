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
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/squall-dev/squall/internal/cpuprofile"
	"github.com/squall-dev/squall/internal/version"
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
	stopProfile := cpuprofile.Start("refserver", os.Stderr) // $SQUALL_CPU_PROFILE_DIR
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stopProfile()
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
	version   bool
}

// newFlagSet binds every setting to cfg (refserver.Config.RegisterFlags, over the defaults) and opts.
func newFlagSet(cfg *refserver.Config, opts *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("refserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	*cfg = refserver.DefaultConfig()
	cfg.RegisterFlags(fs)
	fs.StringVar(&opts.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&opts.logFormat, "log-format", "text", "text or json")
	fs.BoolVar(&opts.version, "version", false, "print the version and exit")
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
	if err := refserver.ApplyEnv(fs, getenv); err != nil {
		return cfg, opts, usageError{err}
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
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, opts, err := parse(args, getenv, stderr)
	if opts.version {
		fmt.Fprintln(stdout, version.String("refserver"))
		return nil
	}
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
	cfg.ApplyGC(getenv)
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
	ln, err := refserver.Listen(ctx, cfg.Addr)
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
