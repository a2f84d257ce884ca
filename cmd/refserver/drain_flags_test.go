package main

import (
	"bytes"
	"testing"
	"time"
)

// The resume and drain settings are flags with environment twins.
func TestParseSessionAndDrainFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  func(string) string
		ttl  time.Duration
		drn  time.Duration
		tok  string
	}{
		{"defaults", []string{"--dev"}, env(), 2 * time.Minute, 10 * time.Second, ""},
		{"flags", []string{"--dev", "--session-ttl", "30s", "--drain-spread", "2s", "--admin-token", "t0k"}, env(),
			30 * time.Second, 2 * time.Second, "t0k"},
		{"env twins", []string{"--dev"}, env("REFSERVER_SESSION_TTL", "5m", "REFSERVER_DRAIN_SPREAD", "20s", "REFSERVER_ADMIN_TOKEN", "e"),
			5 * time.Minute, 20 * time.Second, "e"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := parse(tt.args, tt.env, &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.SessionTTL != tt.ttl || cfg.DrainSpread != tt.drn || cfg.AdminToken != tt.tok {
				t.Fatalf("session-ttl %s, drain-spread %s, admin-token %q", cfg.SessionTTL, cfg.DrainSpread, cfg.AdminToken)
			}
		})
	}
	if _, _, err := parse([]string{"--dev", "--drain-spread", "-1s"}, env(), &bytes.Buffer{}); err == nil {
		t.Fatal("a negative drain spread was accepted")
	}
}
