package embedded

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/refserver"
)

// TestNodeArgsRoundTrip checks that a child node reads back what NodeArgs writes (the settings and
// the log level); refserver's TestArgsRoundTrip covers every field.
func TestNodeArgsRoundTrip(t *testing.T) {
	cfg := refserver.Config{HeartbeatInterval: 1234 * time.Millisecond, Flaws: refserver.Flaws{refserver.FlawNoDrain: true}, AllowedOrigins: []string{"http://a"}}
	got, level, format, err := parseNodeArgs(NodeArgs(cfg), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got.HeartbeatInterval != cfg.HeartbeatInterval || !got.Flaws.Has(refserver.FlawNoDrain) || len(got.AllowedOrigins) != 1 ||
		got.AcceptBurst != refserver.DefaultConfig().AcceptBurst || level != "warn" || format != "text" {
		t.Errorf("read back %+v at %s/%s", got, level, format)
	}
}

// TestChildNodeTakesAdmissionSettings starts a child-process node with a two-token admission
// bucket that hardly refills: the third attempt is shed (503), which a node running on the default
// bucket (1 000 tokens) would not do.
func TestChildNodeTakesAdmissionSettings(t *testing.T) {
	cfg := refserver.Config{AcceptRate: 0.001, AcceptBurst: 2, AuthLatency: 10 * time.Millisecond, SessionTTL: 3 * time.Second}
	e := startEmbedded(t, Options{Process: true, Config: cfg})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var codes []int
	for range 3 {
		ws, resp, err := websocket.DefaultDialer.DialContext(ctx, e.Nodes()[0].URL(), nil)
		if ws != nil {
			ws.Close()
		}
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		codes = append(codes, resp.StatusCode)
	}
	want := []int{http.StatusSwitchingProtocols, http.StatusSwitchingProtocols, http.StatusServiceUnavailable}
	if !slices.Equal(codes, want) {
		t.Errorf("three upgrades: %v, want %v (admitted, admitted, shed)", codes, want)
	}
}

// TestNodesFromRefserverBinary runs two child nodes with bin/refserver (Options.Binary) instead of
// this binary's node mode: both processes are that binary, and they take the run's settings (a
// two-token admission bucket sheds the third upgrade on each node).
func TestNodesFromRefserverBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/refserver")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "refserver")
	if out, err := exec.Command(goBin, "build", "-o", bin, "../../cmd/refserver").CombinedOutput(); err != nil {
		t.Fatalf("build refserver: %v\n%s", err, out)
	}
	cfg := refserver.Config{AcceptRate: 0.001, AcceptBurst: 2}
	e := startEmbedded(t, Options{Nodes: 2, Binary: bin, Config: cfg})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, n := range e.Nodes() {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", n.PID()))
		if err != nil {
			t.Skipf("no /proc here: %v", err)
		}
		if exe != bin {
			t.Errorf("node %d runs %s, want %s", i, exe, bin)
		}
		var codes []int
		for range 3 {
			ws, resp, err := websocket.DefaultDialer.DialContext(ctx, n.URL(), nil)
			if ws != nil {
				ws.Close()
			}
			if resp == nil {
				t.Fatalf("node %d: dial: %v", i, err)
			}
			codes = append(codes, resp.StatusCode)
		}
		if want := []int{http.StatusSwitchingProtocols, http.StatusSwitchingProtocols, http.StatusServiceUnavailable}; !slices.Equal(codes, want) {
			t.Errorf("node %d: three upgrades: %v, want %v (admitted, admitted, shed)", i, codes, want)
		}
	}
}
