// Command loadgen-worker is a lean local worker of `loadgen run`: the agent side of the
// controller/agent protocol (loadgen/worker) and nothing else. `loadgen run --worker-binary
// PATH` starts its worker processes from it instead of re-executing loadgen as `loadgen agent`;
// a worker then does not carry loadgen's reports, charts, proxies and container code, which a
// full binary pages in at start (~14 MB resident per process, ~0.9 KB per client at 16 000
// clients a worker).
//
// It takes the command line `loadgen run` gives a worker:
//
//	loadgen-worker [agent] [--listen ADDR] [--verbose] [--gc-percent N]
//
// with the shared token in $LOADGEN_AGENT_TOKEN (or --token). It serves on loopback only; a remote
// agent (TLS, --allow-target, --shard) is `loadgen agent`.
//
// Exit codes: 0 when the controller asked it to exit or on SIGINT/SIGTERM, 1 when serving failed,
// 2 for a usage error.
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
	"syscall"

	"github.com/squall-dev/squall/internal/cpuprofile"
	"github.com/squall-dev/squall/internal/loopback"
	"github.com/squall-dev/squall/internal/usage"
	"github.com/squall-dev/squall/internal/version"
	"github.com/squall-dev/squall/loadgen/agent"
	"github.com/squall-dev/squall/loadgen/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := cpuprofile.Start("loadgen-worker", os.Stderr) // $SQUALL_CPU_PROFILE_DIR
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stopProfile()
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case usage.Is(err):
		fmt.Fprintln(os.Stderr, "loadgen-worker:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "loadgen-worker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "agent" {
		args = args[1:]
	}
	fs := flag.NewFlagSet("loadgen-worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "loopback address to serve the controller/agent protocol on (port 0 picks one)")
	token := fs.String("token", "", "shared token (default $"+agent.TokenEnv+")")
	verbose := fs.Bool("verbose", false, "log to stderr")
	gcPercent := fs.Int("gc-percent", worker.DefaultGCPercent, "garbage collector target in percent (0 keeps $GOGC or Go's default; $GOGC wins over the default)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: loadgen-worker [agent] [flags]\n\nA lean local worker of `loadgen run --worker-binary` (remote agents: `loadgen agent`).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usage.Wrap(err)
	}
	if *showVersion {
		fmt.Fprintln(stdout, "loadgen-worker", version.Version)
		return nil
	}
	if fs.NArg() > 0 {
		return usage.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *token == "" {
		*token = os.Getenv(agent.TokenEnv)
	}
	if *token == "" {
		return usage.Errorf("needs --token or $%s", agent.TokenEnv)
	}
	if *gcPercent < 0 {
		return usage.Errorf("--gc-percent %d: want a percentage above 0 (0 keeps $GOGC or Go's default)", *gcPercent)
	}
	if !loopback.IsAddr(*listen) {
		return usage.Errorf("--listen %s: a lean worker serves on loopback only (a remote agent is `loadgen agent`)", *listen)
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "gc-percent" })
	worker.TuneProcess(*gcPercent, explicit)
	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return worker.Serve(ctx, worker.Options{Listen: *listen, Token: *token, Stdout: stdout, Logger: logger, Version: version.Version})
}
