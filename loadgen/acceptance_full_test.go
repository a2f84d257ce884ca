package loadgen

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestAcceptance2000ClientsFull makes the race-enabled test run (make test) check the 2 000-client
// run at full scale as well: under the race detector TestAcceptance2000Clients runs a
// quarter of the clients, so this test builds this package's tests without the race detector and
// runs that one test in the result — 2 000 clients, 20 rooms, ramp 500/s, 20 s of broadcasts —
// with its checks (zero ordering violations, zero lost acknowledged messages, percentiles that
// agree with the raw samples). Without the race detector the test itself already runs at full
// scale, so this one skips. `go test -short` skips it.
func TestAcceptance2000ClientsFull(t *testing.T) {
	if testing.Short() {
		t.Skip("2 000 clients for 30 s")
	}
	if !raceEnabled {
		t.Skip("TestAcceptance2000Clients runs at full scale in this binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "loadgen.test")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	build := exec.CommandContext(ctx, goBin, "test", "-c", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go test -c: %v\n%s", err, out)
	}
	start := time.Now()
	run := exec.CommandContext(ctx, bin, "-test.run", "^TestAcceptance2000Clients$", "-test.v", "-test.count", "1")
	var out bytes.Buffer
	run.Stdout, run.Stderr = &out, &out
	err = run.Run()
	t.Logf("full-scale run took %v", time.Since(start).Round(100*time.Millisecond))
	text := out.String()
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, "histogram") || strings.Contains(line, "delivery") || strings.Contains(line, "stop ") {
			t.Log(strings.TrimSpace(line))
		}
	}
	if err != nil || !strings.Contains(text, "--- PASS: TestAcceptance2000Clients") {
		t.Fatalf("TestAcceptance2000Clients at 2 000 clients without the race detector: %v\n%s", err, text)
	}
}
