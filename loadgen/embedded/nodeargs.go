package embedded

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/squall-dev/squall/refserver"
)

// nodeLogLevel is the log level of a child node unless the args say otherwise.
const nodeLogLevel = "warn"

// NodeArgs returns the flags a child node is started with: cfg's settings (refserver.Config.Args,
// the names bin/refserver takes too) at log level warn.
func NodeArgs(cfg refserver.Config) []string {
	return append(cfg.Args(), "--log-level="+nodeLogLevel)
}

// parseNodeArgs reads NodeArgs' flags over refserver.DefaultConfig, then the environment twins
// (refserver.EnvName) of the settings they leave out.
func parseNodeArgs(args []string, stderr io.Writer) (cfg refserver.Config, level, format string, err error) {
	cfg = refserver.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	fs := flag.NewFlagSet(NodeCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.RegisterFlags(fs)
	fs.StringVar(&level, "log-level", nodeLogLevel, "debug, info, warn or error")
	fs.StringVar(&format, "log-format", "text", "text or json")
	if err := fs.Parse(args); err != nil {
		return cfg, level, format, err
	}
	if fs.NArg() > 0 {
		return cfg, level, format, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	// A setting the arguments leave at its default takes its environment twin, as bin/refserver
	// does (REFSERVER_IO=goroutine switches every child node of a run to the goroutine transport).
	if err := refserver.ApplyEnv(fs, os.Getenv); err != nil {
		return cfg, level, format, err
	}
	return cfg, level, format, nil
}
