package loadgen

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/squall-dev/squall/refserver"
)

// bindNodeFlags binds every refserver.Config field to fs under the flag name bin/refserver gives it
// (refserver/cmd/refserver's newFlagSet is in package main and cannot be imported; TestNodeFlagsCover
// keeps the two lists equal). Defaults are cfg's values at the time of the call. It is the single list
// both NodeArgs (writing) and RunNodeMain (reading) use, so a setting cannot be written but not read.
func bindNodeFlags(fs *flag.FlagSet, cfg *refserver.Config, logLevel, logFormat *string) {
	c := cfg
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address")
	fs.BoolVar(&c.Dev, "dev", c.Dev, "dev mode")
	fs.StringVar(&c.AuthSecret, "auth-secret", c.AuthSecret, "HS256 secret")
	fs.DurationVar(&c.HelloTimeout, "hello-timeout", c.HelloTimeout, "")
	fs.DurationVar(&c.HeartbeatInterval, "heartbeat-interval", c.HeartbeatInterval, "")
	fs.DurationVar(&c.HeartbeatTimeout, "heartbeat-timeout", c.HeartbeatTimeout, "")
	fs.DurationVar(&c.FlawSweepInterval, "flaw-sweep-interval", c.FlawSweepInterval, "")
	fs.IntVar(&c.MaxConnsPerClient, "max-conns-per-client", c.MaxConnsPerClient, "")
	fs.IntVar(&c.MaxConnsPerIP, "max-conns-per-ip", c.MaxConnsPerIP, "")
	fs.IntVar(&c.MaxConns, "max-conns", c.MaxConns, "")
	fs.Int64Var(&c.MaxFrameBytes, "max-frame-bytes", c.MaxFrameBytes, "")
	fs.IntVar(&c.MaxRoomsPerConn, "max-rooms-per-conn", c.MaxRoomsPerConn, "")
	fs.Var((*originsValue)(&c.AllowedOrigins), "allowed-origins", "comma-separated Origin values")
	fs.IntVar(&c.SendQueue, "send-queue", c.SendQueue, "")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", c.WriteTimeout, "")
	fs.IntVar(&c.ReadBufferSize, "read-buffer-size", c.ReadBufferSize, "")
	fs.IntVar(&c.WriteBufferSize, "write-buffer-size", c.WriteBufferSize, "")
	fs.DurationVar(&c.CloseGrace, "close-grace", c.CloseGrace, "")
	fs.IntVar(&c.ReorderWindow, "reorder-window", c.ReorderWindow, "")
	fs.DurationVar(&c.ReorderTimeout, "reorder-timeout", c.ReorderTimeout, "")
	fs.IntVar(&c.HistorySize, "history-size", c.HistorySize, "")
	fs.DurationVar(&c.HistoryTTL, "history-ttl", c.HistoryTTL, "")
	fs.DurationVar(&c.ReconnectWindow, "reconnect-window", c.ReconnectWindow, "")
	fs.DurationVar(&c.AuthLatency, "auth-latency", c.AuthLatency, "")
	fs.Float64Var(&c.AuthFailRate, "auth-fail-rate", c.AuthFailRate, "")
	fs.DurationVar(&c.AuthCacheTTL, "auth-cache-ttl", c.AuthCacheTTL, "")
	fs.IntVar(&c.AuthCacheSize, "auth-cache-size", c.AuthCacheSize, "")
	fs.IntVar(&c.AuthBreakerFailures, "auth-breaker-failures", c.AuthBreakerFailures, "")
	fs.DurationVar(&c.AuthBreakerCooldown, "auth-breaker-cooldown", c.AuthBreakerCooldown, "")
	fs.Float64Var(&c.AcceptRate, "accept-rate", c.AcceptRate, "")
	fs.IntVar(&c.AcceptBurst, "accept-burst", c.AcceptBurst, "")
	fs.StringVar(&c.ShedMode, "shed-mode", c.ShedMode, "")
	fs.Float64Var(&c.StormAlertRate, "storm-alert-rate", c.StormAlertRate, "")
	fs.IntVar(&c.StormAlertBurst, "storm-alert-burst", c.StormAlertBurst, "")
	fs.DurationVar(&c.StormAlertWindow, "storm-alert-window", c.StormAlertWindow, "")
	fs.DurationVar(&c.SessionTTL, "session-ttl", c.SessionTTL, "")
	fs.DurationVar(&c.DrainSpread, "drain-spread", c.DrainSpread, "")
	fs.StringVar(&c.AdminToken, "admin-token", c.AdminToken, "")
	fs.StringVar(&c.Broker, "broker", c.Broker, "")
	fs.StringVar(&c.NodeID, "node-id", c.NodeID, "")
	fs.DurationVar(&c.RegistryTTL, "registry-ttl", c.RegistryTTL, "")
	fs.DurationVar(&c.PollHold, "poll-hold", c.PollHold, "")
	fs.BoolVar(&c.Pprof, "pprof", c.Pprof, "")
	fs.Var(flawsValue{&c.Flaws}, "flaw", "comma-separated flaws")
	fs.StringVar(logLevel, "log-level", *logLevel, "debug, info, warn or error")
	fs.StringVar(logFormat, "log-format", *logFormat, "text or json")
}

// NodeArgs returns the refserver flags for cfg (the names bin/refserver and RunNodeMain share):
// every field that is not zero (zero stands for the default), at log level warn.
func NodeArgs(cfg refserver.Config) []string {
	level, format := "warn", "text"
	set := flag.NewFlagSet(NodeCommand, flag.ContinueOnError)
	c := cfg
	bindNodeFlags(set, &c, &level, &format)
	var zero refserver.Config
	zlevel, zformat := "", ""
	zeros := flag.NewFlagSet(NodeCommand, flag.ContinueOnError)
	bindNodeFlags(zeros, &zero, &zlevel, &zformat)
	var args []string
	set.VisitAll(func(f *flag.Flag) {
		if f.Name == "log-format" {
			return // text is both binaries' default
		}
		if v := f.Value.String(); v != zeros.Lookup(f.Name).Value.String() {
			args = append(args, "--"+f.Name+"="+v)
		}
	})
	return args
}

// parseNodeArgs reads NodeArgs' flags over refserver.DefaultConfig.
func parseNodeArgs(args []string, stderr io.Writer) (cfg refserver.Config, level, format string, err error) {
	cfg = refserver.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	level, format = "warn", "text"
	fs := flag.NewFlagSet(NodeCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	bindNodeFlags(fs, &cfg, &level, &format)
	if err := fs.Parse(args); err != nil {
		return cfg, level, format, err
	}
	if fs.NArg() > 0 {
		return cfg, level, format, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return cfg, level, format, nil
}

// flawsValue is refserver.Flaws as a flag (ParseFlaws reads what Flaws.String writes).
type flawsValue struct{ f *refserver.Flaws }

func (v flawsValue) String() string {
	if v.f == nil {
		return ""
	}
	return v.f.String()
}

func (v flawsValue) Set(s string) error {
	fl, err := refserver.ParseFlaws(s)
	if err != nil {
		return err
	}
	*v.f = fl
	return nil
}

// originsValue is Config.AllowedOrigins as a comma-separated flag.
type originsValue []string

func (v *originsValue) String() string {
	if v == nil {
		return ""
	}
	return strings.Join(*v, ",")
}

func (v *originsValue) Set(s string) error {
	*v = nil
	for _, o := range strings.Split(s, ",") {
		if o = strings.TrimSpace(o); o != "" {
			*v = append(*v, o)
		}
	}
	return nil
}
