package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/squall-dev/squall/refserver"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     func(string) string
		check   func(t *testing.T, cfg refserver.Config)
		wantErr string
	}{
		{name: "dev defaults", args: []string{"--dev"}, check: func(t *testing.T, cfg refserver.Config) {
			if !cfg.Dev || cfg.HeartbeatInterval != 30*time.Second || cfg.MaxConnsPerClient != 5 || cfg.Addr != "127.0.0.1:8080" {
				t.Fatalf("%+v", cfg)
			}
		}},
		{name: "flags", args: []string{"--auth-secret", "s", "--heartbeat-interval", "200ms", "--heartbeat-timeout=600ms",
			"--flaw", "no-server-ping,leak-on-error", "--allowed-origins", "https://a, https://b", "--max-conns-per-ip=-1"},
			check: func(t *testing.T, cfg refserver.Config) {
				if cfg.HeartbeatInterval != 200*time.Millisecond || cfg.HeartbeatTimeout != 600*time.Millisecond ||
					cfg.Flaws.String() != "leak-on-error,no-server-ping" || len(cfg.AllowedOrigins) != 2 ||
					cfg.AllowedOrigins[1] != "https://b" || cfg.MaxConnsPerIP != -1 {
					t.Fatalf("%+v", cfg)
				}
			}},
		{name: "env twins", args: []string{"--heartbeat-timeout", "90s"},
			env: env("REFSERVER_HEARTBEAT_INTERVAL", "45s", "REFSERVER_HEARTBEAT_TIMEOUT", "5s", "SQUALL_AUTH_SECRET", "from-env",
				"REFSERVER_FLAW", "no-conn-limit", "REFSERVER_MAX_CONNS", "7", "REFSERVER_PPROF", "true"),
			check: func(t *testing.T, cfg refserver.Config) {
				// the command line wins over the environment
				if cfg.HeartbeatInterval != 45*time.Second || cfg.HeartbeatTimeout != 90*time.Second || cfg.AuthSecret != "from-env" ||
					!cfg.Flaws.Has(refserver.FlawNoConnLimit) || cfg.MaxConns != 7 || !cfg.Pprof {
					t.Fatalf("%+v", cfg)
				}
			}},
		{name: "REFSERVER_AUTH_SECRET wins over SQUALL_AUTH_SECRET", env: env("REFSERVER_AUTH_SECRET", "a", "SQUALL_AUTH_SECRET", "b"),
			check: func(t *testing.T, cfg refserver.Config) {
				if cfg.AuthSecret != "a" {
					t.Fatalf("secret %q", cfg.AuthSecret)
				}
			}},
		{name: "auth and admission flags", args: []string{"--dev", "--auth-latency", "20ms", "--auth-fail-rate", "0.25",
			"--auth-cache-ttl", "1m", "--auth-breaker-failures", "7", "--accept-rate", "500", "--shed-mode", "close"},
			env: env("REFSERVER_ACCEPT_BURST", "50", "REFSERVER_STORM_ALERT_RATE", "30", "REFSERVER_STORM_ALERT_BURST", "9",
				"REFSERVER_AUTH_BREAKER_COOLDOWN", "2s", "REFSERVER_AUTH_CACHE_SIZE", "10", "REFSERVER_STORM_ALERT_WINDOW", "3s"),
			check: func(t *testing.T, cfg refserver.Config) {
				if cfg.AuthLatency != 20*time.Millisecond || cfg.AuthFailRate != 0.25 || cfg.AuthCacheTTL != time.Minute ||
					cfg.AuthBreakerFailures != 7 || cfg.AuthBreakerCooldown != 2*time.Second || cfg.AuthCacheSize != 10 ||
					cfg.AcceptRate != 500 || cfg.AcceptBurst != 50 || cfg.ShedMode != refserver.ShedClose ||
					cfg.StormAlertRate != 30 || cfg.StormAlertBurst != 9 || cfg.StormAlertWindow != 3*time.Second {
					t.Fatalf("%+v", cfg)
				}
			}},
		{name: "admission defaults", args: []string{"--dev"}, check: func(t *testing.T, cfg refserver.Config) {
			if cfg.AcceptRate != 2000 || cfg.AcceptBurst != 1000 || cfg.AuthCacheTTL != 5*time.Minute ||
				cfg.StormAlertRate != 100 || cfg.StormAlertBurst != 50 || cfg.ShedMode != refserver.ShedHTTP {
				t.Fatalf("%+v", cfg)
			}
		}},
		{name: "bad fail rate", args: []string{"--dev", "--auth-fail-rate", "1.5"}, wantErr: "auth-fail-rate: must be within 0..1"},
		{name: "bad shed mode", args: []string{"--dev", "--shed-mode", "drop"}, wantErr: "shed-mode"},
		{name: "no secret", args: nil, wantErr: "auth-secret: required"},
		{name: "unknown flaw", args: []string{"--dev", "--flaw", "nope"}, wantErr: "unknown flaw nope"},
		{name: "bad duration", args: []string{"--dev", "--heartbeat-interval", "30"}, wantErr: "invalid value"},
		{name: "bad env duration", args: []string{"--dev"}, env: env("REFSERVER_HEARTBEAT_INTERVAL", "soon"), wantErr: "REFSERVER_HEARTBEAT_INTERVAL"},
		{name: "dev on a public address", args: []string{"--dev", "--addr", "0.0.0.0:8080"}, wantErr: "dev mode refuses"},
		{name: "stray argument", args: []string{"--dev", "extra"}, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := tt.env
			if getenv == nil {
				getenv = env()
			}
			cfg, _, err := parse(tt.args, getenv, &bytes.Buffer{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				if !errors.As(err, new(usageError)) {
					t.Fatalf("err %v is not a usage error (exit 2)", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, cfg)
		})
	}
}

func TestHelpListsFlawsAndEnvTwins(t *testing.T) {
	var out bytes.Buffer
	_, _, err := parse([]string{"--help"}, env(), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err %v", err)
	}
	help := out.String()
	for _, f := range refserver.AllFlaws() {
		if !strings.Contains(help, string(f.Flaw)) {
			t.Errorf("--help does not list flaw %s", f.Flaw)
		}
	}
	for _, want := range []string{"REFSERVER_<FLAG_IN_UPPER_SNAKE>", "-heartbeat-interval", "-auth-secret", "Exit codes",
		"-auth-latency", "-auth-fail-rate", "-auth-cache-ttl", "-accept-rate", "-accept-burst", "-storm-alert-rate", "-storm-alert-burst"} {
		if !strings.Contains(help, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	// Every flag has an env twin that parse honours.
	var cfg refserver.Config
	fs := newFlagSet(&cfg, &options{}, &bytes.Buffer{})
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.HasPrefix(refserver.EnvName(f.Name), "REFSERVER_") || strings.Contains(refserver.EnvName(f.Name), "-") {
			t.Errorf("flag %s: env twin %s", f.Name, refserver.EnvName(f.Name))
		}
	})
}

// run serves until its context ends and returns nil (exit 0).
func TestRunServesUntilCancelled(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--dev", "--addr", addr, "--log-level", "warn"}, env(), &bytes.Buffer{}, &bytes.Buffer{})
	}()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := hc.Get(fmt.Sprintf("http://%s/healthz", addr))
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway not up: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	// --version answers without a configuration (no secret, no dev mode).
	if err := run(context.Background(), []string{"--version"}, env(), &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "refserver dev (commit ") || !strings.Contains(out.String(), runtime.Version()) {
		t.Errorf("--version printed %q", out.String())
	}
}
