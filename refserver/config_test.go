package refserver

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// golden compares got with testdata/name, rewriting it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("%s differs:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.AuthSecret = "s"
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults + secret: %v", err)
	}
	if err := (Config{Dev: true}).Validate(); err != nil {
		t.Fatalf("zero config in dev mode: %v", err)
	}
	bad := Config{
		Dev:               true,
		Addr:              "0.0.0.0:8080",
		HeartbeatInterval: 2 * time.Second,
		HeartbeatTimeout:  time.Second,
		CloseGrace:        -time.Second,
		MaxConnsPerClient: -1,
		MaxConnsPerIP:     -5,
		SendQueue:         -3,
		MaxFrameBytes:     10,
		ReadBufferSize:    16,
		Flaws:             Flaws{"bogus": true},
		AllowedOrigins:    []string{" "},
	}
	err := bad.Validate()
	if err == nil {
		t.Fatal("bad config validated")
	}
	golden(t, "validate_errors.golden", err.Error()+"\n")

	if err := (Config{}).Validate(); err == nil {
		t.Fatal("a config without a secret outside dev mode validated")
	}
}

func TestIsLoopbackAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:80": true, "127.9.9.9:1": true, "localhost:8080": true, "[::1]:80": true,
		":8080": false, "0.0.0.0:80": false, "10.0.0.1:80": false, "example.com:80": false,
	} {
		if got := IsLoopbackAddr(addr); got != want {
			t.Errorf("IsLoopbackAddr(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestDevModeRefusesNonLoopbackListener(t *testing.T) {
	srv, err := New(Config{Dev: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if srv.Config().AuthSecret != "squall-dev" {
		t.Fatalf("dev secret %q", srv.Config().AuthSecret)
	}
	ln := fakeListener{addr: "10.1.2.3:80"}
	if err := srv.Serve(t.Context(), ln); err == nil {
		t.Fatal("Serve accepted a non-loopback listener in dev mode")
	}
}
