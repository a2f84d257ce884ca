package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/squall-dev/squall/harness"
	"github.com/squall-dev/squall/loadgen/agent"
	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/refserver"
	"github.com/squall-dev/squall/reports"
)

var update = flag.Bool("update", false, "rewrite golden files")

// beMain makes the test binary act as loadgen, so that spawned workers run this package's code.
const beMain = "LOADGEN_TEST_BE_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(beMain) == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func runCLI(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var o, e syncBuffer
	code = run(ctx, args, &o, &e)
	return code, o.String(), e.String()
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

var portRE = regexp.MustCompile(`127\.0\.0\.1:\d+`)

// TestBadInput shows that each kind of bad input ends in one line naming the cause and the exit
// code DESIGN §6 gives it. The messages are kept in testdata/bad_input.golden (-update rewrites).
func TestBadInput(t *testing.T) {
	refuser := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "forbidden", http.StatusForbidden)
	}))
	defer refuser.Close()
	ag := agent.New("right-token", func(context.Context, agent.Job, *stats.Recorder, func(agent.Event)) (json.RawMessage, error) {
		return nil, nil
	}, nil, agent.Options{})
	agentSrv := httptest.NewServer(ag.Handler())
	defer agentSrv.Close()
	defer ag.Close()

	out := t.TempDir()
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"unknown target", []string{"run", "--target", "carrier-pigeon://gw", "--out", out}, exitUsage},
		{"unreachable target", []string{"run", "--target", "ws://" + closedPort(t) + "/ws", "--out", out}, exitHarness},
		{"refused upgrade", []string{"run", "--target", "ws://" + strings.TrimPrefix(refuser.URL, "http://") + "/ws", "--out", out}, exitHarness},
		{"agent with a wrong token", []string{"run", "--agents", strings.TrimPrefix(agentSrv.URL, "http://"), "--token", "wrong-token", "--target", "ws://" + strings.TrimPrefix(refuser.URL, "http://") + "/ws", "--out", out}, exitUsage},
		{"unreachable agent", []string{"run", "--agents", closedPort(t), "--token", "t", "--out", out, "--target", "embedded", "--clients", "10"}, exitHarness},
		{"bad flag value", []string{"run", "--clients", "many"}, exitUsage},
		{"invalid plan", []string{"run", "--clients", "0", "--hold", "0s"}, exitUsage},
		{"unknown command", []string{"attack"}, exitUsage},
		{"unknown help topic", []string{"help", "attack"}, exitUsage},
		{"agent without token", []string{"agent"}, exitUsage},
		{"agent on a public address", []string{"agent", "--token", "t", "--listen", "0.0.0.0:0"}, exitUsage},
		{"agent on a public address with --allow-remote only", []string{"agent", "--token", "t", "--listen", "0.0.0.0:0", "--allow-remote"}, exitUsage},
		{"agent with a certificate and no key", []string{"agent", "--token", "t", "--tls-cert", "x.pem"}, exitUsage},
		{"agent with a bad network", []string{"agent", "--token", "t", "--allow-target", "ten"}, exitUsage},
		{"agent CA without agents", []string{"run", "--agent-ca", "ca.pem"}, exitUsage},
	}
	var golden strings.Builder
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(agent.TokenEnv, "")
			code, _, stderr := runCLI(context.Background(), tc.args...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tc.code, stderr)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "loadgen: ") {
				t.Errorf("stderr is not one line starting with loadgen: %q", stderr)
			}
			golden.WriteString(tc.name + " => " + strings.TrimSpace(portRE.ReplaceAllString(stderr, "127.0.0.1:PORT")) + "\n")
		})
	}
	path := filepath.Join("testdata", "bad_input.golden")
	if *update {
		if err := os.WriteFile(path, []byte(golden.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if golden.String() != string(want) {
		t.Errorf("messages differ from %s (-update rewrites it):\ngot:\n%s\nwant:\n%s", path, golden.String(), want)
	}
}

func TestDoctor(t *testing.T) {
	code, stdout, stderr := runCLI(context.Background(), "doctor")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"open-file limit", "ephemeral ports", "somaxconn", "memory", "simulated clients"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestDiagnose(t *testing.T) {
	tests := []struct {
		name     string
		m        machine
		io       string
		warn     string
		capacity int
		bound    string
	}{
		// 2 cores × 0.7 / 20.7 µs per client-second = 67 632 (memory would allow 22 GiB / 48.9 KB = 483 087).
		{"this project's machines", machine{fdSoft: 20000, fdHard: 20000, portLo: 32768, portHi: 60999, somaxconn: 4096, fileMax: 2466170, memTotal: 24 << 30, memAvl: 22 << 30, cores: 2},
			refserver.IOGoroutine, "", 67632, "CPU"},
		// 1 GiB / (26.5 + 16.6 + 5.8 KB) = 21 957 (CPU would allow 33 816).
		{"low limits", machine{fdSoft: 1024, fdHard: 1024, portLo: 50000, portHi: 51000, somaxconn: 128, fileMax: 100000, memTotal: 2 << 30, memAvl: 1 << 30, cores: 1},
			refserver.IOGoroutine, "ulimit", 21957, "memory"},
		// 512 MiB / (4.2 + 4.5 + 5.0 KB) = 39 187 with the nbio gateway and epoll clients.
		{"low limits, nbio", machine{fdSoft: 1024, fdHard: 1024, portLo: 50000, portHi: 51000, somaxconn: 128, fileMax: 100000, memTotal: 2 << 30, memAvl: 512 << 20, cores: 1},
			refserver.IONbio, "ulimit", 39187, "memory"},
		{"small file table", machine{fdSoft: 20000, fdHard: 20000, portLo: 1024, portHi: 65535, somaxconn: 4096, fileMax: 100000, memTotal: 24 << 30, memAvl: 22 << 30, cores: 2},
			refserver.IOGoroutine, "file-max", 50000, "open-file table"},
		// 16 cores would hold ~1.3 million by CPU, 22 GiB ~1.7 million by memory; netfilter's table holds 262 144.
		{"connection tracking", machine{fdSoft: 20000, fdHard: 20000, portLo: 1024, portHi: 65535, somaxconn: 4096, fileMax: 1 << 24, conntrackMax: 262144, conntrackCount: 1000, memTotal: 24 << 30, memAvl: 22 << 30, cores: 16},
			refserver.IONbio, "nf_conntrack_max", 262144, "connection-tracking"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checks, capacity, bound := diagnose(tc.m, harness.DefaultFDsPerProcess, tc.io)
			var fixes []string
			for _, c := range checks {
				if !c.OK {
					fixes = append(fixes, c.Fix)
				}
			}
			if tc.warn == "" && len(fixes) > 0 {
				t.Errorf("unexpected warnings: %v", fixes)
			}
			if tc.warn != "" && !strings.Contains(strings.Join(fixes, " "), tc.warn) {
				t.Errorf("fixes %v lack %q", fixes, tc.warn)
			}
			if capacity != tc.capacity || !strings.Contains(bound, tc.bound) {
				t.Errorf("capacity %d bound by %q, want %d by %s", capacity, bound, tc.capacity, tc.bound)
			}
		})
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestInterruptWritesResult stops a run in its hold phase, as Ctrl-C does, and checks that the
// clients were closed and result.json was still written.
func TestInterruptWritesResult(t *testing.T) {
	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var o, e syncBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"run", "--clients", "40", "--rooms", "2", "--ramp", "200", "--hold", "5m", "--progress", "plain", "--out", out}, &o, &e)
	}()
	waitFor(t, 30*time.Second, "the hold phase with every client connected", func() bool {
		return strings.Contains(o.String(), "hold      conns 40/40")
	})
	start := time.Now()
	cancel()
	var code int
	select {
	case code = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop within 30 s of the interrupt")
	}
	t.Logf("stopped %v after the interrupt", time.Since(start).Round(time.Millisecond))
	if code != exitInterrupted || !strings.Contains(e.String(), "interrupted") {
		t.Errorf("exit %d stderr %q, want 130 and an interrupted line", code, e.String())
	}
	res, err := reports.ReadJSON(filepath.Join(out, reports.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if res.StopReason != reports.StopInterrupted {
		t.Errorf("stop reason %q", res.StopReason)
	}
	checkRenderings(t, out, o.String())
	if got := res.Stats.Counter(stats.CtrConnects); got != 40 {
		t.Errorf("%d connects, want 40", got)
	}
	if got := res.Stats.Gauge(stats.GaugeConnections); got != 0 {
		t.Errorf("%d connections still open after the stop, want 0", got)
	}
	// Cleanly: every connection ended with a normal close, none by error.
	for k, v := range res.Stats.Counters {
		if (strings.HasPrefix(k, stats.PrefixCloseCode) && k != stats.CloseCodeCounter(1000)) || strings.HasPrefix(k, stats.PrefixError) {
			t.Errorf("%s = %d after the stop, want only normal closes", k, v)
		}
	}
	if got := res.Stats.Counter(stats.CloseCodeCounter(1000)); got != 40 {
		t.Errorf("%d connections closed with 1000, want 40", got)
	}
}

func TestVersion(t *testing.T) {
	code, out, errOut := runCLI(context.Background(), "--version")
	if code != 0 || !strings.HasPrefix(out, "loadgen dev (commit ") || !strings.Contains(out, runtime.Version()) || errOut != "" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
