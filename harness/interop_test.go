package harness

// Interop tests: scenarios run against real servers nobody here wrote — gorilla/websocket's chat
// example and a small relay on Debian's node-ws driven with the generic profile, Centrifugo v6
// driven with the centrifugo profile — plus the reference gateway over wss:// (tls_test.go). Each
// reports fan-out p99, messages delivered and order violations from the payload stamps; one runs a
// Toxiproxy fault through the relay. A server that cannot be had (no node, no node-ws, no
// Centrifugo binary in the cache that `make interop-deps` fills) skips its test with the reason.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/reports"
)

// interopCache is where `make interop-deps` puts the servers it fetches or builds
// ($SQUALL_INTEROP_CACHE, default ~/.cache/squall-interop).
func interopCache() string {
	if d := os.Getenv("SQUALL_INTEROP_CACHE"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "squall-interop")
	}
	return filepath.Join(home, ".cache", "squall-interop")
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startServer starts cmd and waits until addr accepts connections (or the process exits, or 30 s
// pass); the process is killed when the test ends.
func startServer(t *testing.T, name string, cmd *exec.Cmd, addr string) {
	t.Helper()
	logf, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		logf.Close()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-exited:
			exited <- err
			out, _ := os.ReadFile(logf.Name())
			t.Fatalf("%s exited before listening on %s: %v\n%s", name, addr, err, out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not listen on %s within 30s", name, addr)
		}
	}
}

// interopScenario is a relay scenario: 20 tabs in rooms, publishing every 200ms for 3s, graded on
// delivery from the stamps. target holds the target's lines (indented by two spaces).
func interopScenario(name, target, cohorts string, rooms int, extra string) string {
	if cohorts == "" {
		cohorts = fmt.Sprintf(`  - name: users
    count: 20
    behaviour:
      rooms: {per_client: 1, count: %d}
      send_interval: 200ms
      heartbeat: 1s
      exit: close
`, rooms)
	}
	return fmt.Sprintf(`name: %s
seed: 1
target:
%s
cohorts:
%s
phases:
  - {kind: ramp, rate: 200}
  - {kind: hold, duration: 3s}
  - {kind: ramp-down, rate: 200}
%s
slos:
  - {metric: ordering_violations, agg: count, bound: "== 0"}
  - {metric: duplicates, agg: count, bound: "== 0"}
  - {metric: unrecovered_gaps, agg: count, bound: "== 0"}
  - {metric: messages_lost, agg: count, bound: "== 0"}
  - {metric: fanout_latency, agg: count, bound: "> 0"}
`, name, target, cohorts, extra)
}

// reportInterop logs what an interop run measured and checks the delivery figures every
// interop test promises: messages delivered, none lost or duplicated, order violations 0.
func reportInterop(t *testing.T, name string, res *reports.Result) {
	t.Helper()
	st := res.Stats
	sent := st.Counter(stats.CtrMessagesSent)
	delivered := st.Counter(loadgen.CtrDelivered)
	t.Logf("interop %s: reliable %v %s, schedule lag p99 %v, workers %d", name, res.Reliable, res.UnreliableReason, st.Percentile(stats.HistScheduleLag, 99), len(res.Workers))
	t.Logf("interop %s: fan-out p99 %v (p50 %v), %d receipts; messages sent %d, delivered %d, late %d, lost %d, unconfirmed %d; order violations %d, duplicates %d, gaps %d",
		name, st.Percentile(stats.HistFanout, 99), st.Percentile(stats.HistFanout, 50), st.Count(stats.HistFanout),
		sent, delivered, st.Counter(loadgen.CtrLate), st.Counter(loadgen.CtrLost), st.Counter(loadgen.CtrUnconfirmed),
		st.Counter(stats.CtrOrderViolations), st.Counter(stats.CtrDuplicates), st.Counter(stats.CtrGaps))
	if sent == 0 || delivered == 0 || st.Count(stats.HistFanout) == 0 {
		t.Errorf("%s: nothing delivered (%d sent, %d delivered)", name, sent, delivered)
	}
	if got := delivered + st.Counter(loadgen.CtrLate) + st.Counter(loadgen.CtrLost) + st.Counter(loadgen.CtrUnconfirmed); got != sent {
		t.Errorf("%s: %d messages accounted for of %d sent", name, got, sent)
	}
	if n := st.Counter(stats.CtrOrderViolations); n != 0 {
		t.Errorf("%s: %d order violations", name, n)
	}
	for _, v := range res.SLOs {
		if !v.Pass {
			t.Errorf("%s: SLO %s %s failed: %v", name, v.Metric, v.Bound, v.Value)
		}
	}
}

// TestInteropGorillaChat drives gorilla/websocket's chat example (one audience, raw text relayed,
// queued messages joined with newlines in one frame), built from the module cache.
func TestInteropGorillaChat(t *testing.T) {
	bin := filepath.Join(interopCache(), "bin", "gorilla-chat")
	if _, err := os.Stat(bin); err != nil {
		gobin, lerr := exec.LookPath("go")
		if lerr != nil {
			t.Skipf("gorilla chat example not built (%s) and no go tool to build it: run make interop-deps", bin)
		}
		bin = filepath.Join(t.TempDir(), "gorilla-chat")
		out, err := exec.Command(gobin, "build", "-o", bin, "github.com/gorilla/websocket/examples/chat").CombinedOutput()
		if err != nil {
			t.Skipf("cannot build gorilla/websocket's chat example from the module cache: %v\n%s", err, out)
		}
	}
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	cmd := exec.Command(bin, "-addr", addr)
	cmd.Dir = t.TempDir() // it serves home.html from its directory; not needed here
	startServer(t, "gorilla-chat", cmd, addr)
	target := fmt.Sprintf(`  url: ws://%s/ws
  protocol:
    name: generic
    generic: {publish: '{{.Payload}}', batch: newline}`, addr)
	res, err := runScenarioText(t, interopScenario("gorilla-chat", target, "", 1, ""))
	if err != nil {
		t.Fatal(err)
	}
	reportInterop(t, "gorilla chat example", res)
}

// nodeRelay starts harness/testdata/interop/broadcast.js on Debian's node-ws and returns its
// address, or skips.
func nodeRelay(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed (apt-get install nodejs node-ws)")
	}
	const nodePath = "/usr/share/nodejs"
	if _, err := os.Stat(filepath.Join(nodePath, "ws", "package.json")); err != nil {
		t.Skipf("Debian's node-ws is not installed (%s/ws): make interop-deps installs it", nodePath)
	}
	script, err := filepath.Abs(filepath.Join("testdata", "interop", "broadcast.js"))
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(node, script, port)
	cmd.Env = append(os.Environ(), "NODE_PATH="+nodePath)
	startServer(t, "node-ws-relay", cmd, addr)
	return addr
}

// nodeTarget is the generic profile of broadcast.js: rooms, acks by correlation id, a server
// sequence per room, an application ping.
func nodeTarget(addr string) string {
	return fmt.Sprintf(`  url: ws://%s/
  protocol:
    name: generic
    generic:
      subscribe: '{"op":"sub","room":"{{.Room}}"}'
      unsubscribe: '{"op":"unsub","room":"{{.Room}}"}'
      publish: '{"op":"pub","room":"{{.Room}}","id":"{{.ID}}","data":{{.Payload}}}'
      ping: '{"op":"ping"}'
      delivery: {match: {type: msg}, room: room, payload: data, seq: seq}
      ack: {match: {type: ack}, id: id}
      pong: {match: {type: pong}}`, addr)
}

// TestInteropNodeWS drives a rooms relay on node-ws with the generic profile: per-sender and
// room-level order, acks, application pings.
func TestInteropNodeWS(t *testing.T) {
	addr := nodeRelay(t)
	sc := interopScenario("node-ws", nodeTarget(addr), "", 4, "")
	sc = strings.Replace(sc, "slos:\n", "slos:\n  - {metric: lost_acked_messages, agg: count, bound: \"== 0\"}\n", 1)
	res, err := runScenarioText(t, sc)
	if err != nil {
		t.Fatal(err)
	}
	reportInterop(t, "node-ws relay", res)
	st := res.Stats
	if st.Counter(stats.CtrAcks) == 0 || st.Count(stats.HistAppPingRTT) == 0 {
		t.Errorf("acks %d, application ping round trips %d: the profile's matchers saw nothing", st.Counter(stats.CtrAcks), st.Count(stats.HistAppPingRTT))
	}
}

// TestInteropNodeWSToxiproxy runs the node-ws relay scenario with one cohort behind the embedded
// Toxiproxy, adding 100ms of latency to what the relay sends it halfway through: the proxied
// cohort's fan-out latency shows it, and delivery stays whole and in order.
func TestInteropNodeWSToxiproxy(t *testing.T) {
	addr := nodeRelay(t)
	cohorts := `  - name: direct
    count: 10
    behaviour:
      rooms: {per_client: 1, count: 1}
      send_interval: 500ms
      heartbeat: 1s
      exit: close
  - name: proxied
    count: 10
    proxy: lan
    behaviour:
      rooms: {per_client: 1, count: 1}
      send_interval: 500ms
      heartbeat: 1s
      exit: close
`
	timeline := `timeline:
  - {at: 1s, action: toxic-add, proxy: lan, toxic: slow, type: latency, stream: downstream, attributes: {latency: 100ms}}
`
	sc := interopScenario("node-ws-toxiproxy", nodeTarget(addr), cohorts, 1, timeline)
	sc = strings.Replace(sc, `bound: "> 0"}`, `bound: "> 0"}
  - {metric: fanout_latency, cohort: proxied, agg: p99, bound: ">= 100ms"}`, 1)
	res, err := runScenarioText(t, sc)
	if err != nil {
		t.Fatal(err)
	}
	reportInterop(t, "node-ws relay through Toxiproxy", res)
	direct, proxied := res.Stats.Cohort("direct"), res.Stats.Cohort("proxied")
	t.Logf("fan-out p99: direct cohort %v, proxied cohort %v (100ms latency toxic from 1s)",
		direct.Percentile(stats.HistFanout, 99), proxied.Percentile(stats.HistFanout, 99))
	if len(res.Events) == 0 {
		t.Error("no fault recorded in the result")
	}
}

// TestInteropCentrifugo drives Centrifugo v6 (built once into the interop cache by `make
// interop-deps`) with the centrifugo profile: JWT connect, subscribe, publish, pushes with
// offsets (the channels keep history), its ping/pong.
func TestInteropCentrifugo(t *testing.T) {
	bin := filepath.Join(interopCache(), "bin", "centrifugo")
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("Centrifugo is not built (%s): run make interop-deps (builds github.com/centrifugal/centrifugo/v6 once, ~5 min)", bin)
	}
	port := freePort(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`{
  "http_server": {"address": "127.0.0.1", "port": %d},
  "client": {"token": {"hmac_secret_key": "squall-interop"}, "allowed_origins": ["*"], "ping_interval": "2s", "pong_timeout": "1s"},
  "channel": {"without_namespace": {"allow_subscribe_for_client": true, "allow_publish_for_client": true, "history_size": 1000, "history_ttl": "300s"}},
  "log": {"level": "warn"}
}`, port)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", "config.json")
	cmd.Dir = dir
	addr := "127.0.0.1:" + strconv.Itoa(port)
	startServer(t, "centrifugo", cmd, addr)
	target := fmt.Sprintf(`  url: ws://%s/connection/websocket
  protocol: {name: centrifugo}
  auth: {secret: squall-interop}`, addr)
	sc := interopScenario("centrifugo", target, "", 4, "")
	sc = strings.Replace(sc, "slos:\n", "slos:\n  - {metric: lost_acked_messages, agg: count, bound: \"== 0\"}\n", 1)
	res, err := runScenarioText(t, sc)
	if err != nil {
		t.Fatal(err)
	}
	reportInterop(t, "centrifugo", res)
	if n := res.Stats.Counter(stats.CtrAcks); n == 0 {
		t.Error("no publish reply counted as an ack")
	}

	// A wrong secret is refused by the probe, naming the setting.
	_, err = runScenarioText(t, strings.Replace(sc, "secret: squall-interop", "secret: wrong", 1))
	if err == nil || !strings.Contains(err.Error(), "target.auth") {
		t.Errorf("a refused token: %v, want an error naming target.auth", err)
	}
	// The reference protocol against Centrifugo fails the probe, naming target.protocol.
	squall := strings.Replace(sc, "protocol: {name: centrifugo}", "protocol: {name: squall}", 1)
	squall = strings.Replace(squall, "  - {metric: messages_lost, agg: count, bound: \"== 0\"}\n", "", 1)
	_, err = runScenarioText(t, squall)
	if err == nil || !strings.Contains(err.Error(), "target.protocol") {
		t.Errorf("squall against Centrifugo: %v, want an error naming target.protocol", err)
	}
}

// TestInteropSocketIO drives a Socket.IO v4 rooms relay on github.com/zishang520/socket.io (its
// own module under testdata/interop/socketio, built once into the interop cache) with the
// socketio profile: Engine.IO open and pings, connect with the token, subscribe and publish
// events with acks, message events carrying the stamps.
func TestInteropSocketIO(t *testing.T) {
	bin := filepath.Join(interopCache(), "bin", "socketio-server")
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("the Socket.IO server is not built (%s): run make interop-deps", bin)
	}
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	startServer(t, "socketio-server", exec.Command(bin, addr), addr)
	target := fmt.Sprintf(`  url: ws://%s/socket.io/
  protocol: {name: socketio}`, addr)
	sc := interopScenario("socketio", target, "", 4, "")
	sc = strings.Replace(sc, "slos:\n", "slos:\n  - {metric: lost_acked_messages, agg: count, bound: \"== 0\"}\n", 1)
	res, err := runScenarioText(t, sc)
	if err != nil {
		t.Fatal(err)
	}
	reportInterop(t, "socket.io", res)
	if n := res.Stats.Counter(stats.CtrAcks); n == 0 {
		t.Error("no publish acknowledged")
	}
	// The squall protocol against it fails the probe, naming target.protocol.
	squall := strings.Replace(sc, "protocol: {name: socketio}", "protocol: {name: squall}", 1)
	squall = strings.Replace(squall, "  - {metric: messages_lost, agg: count, bound: \"== 0\"}\n", "", 1)
	if _, err = runScenarioText(t, squall); err == nil || !strings.Contains(err.Error(), "target.protocol") {
		t.Errorf("squall against Socket.IO: %v, want an error naming target.protocol", err)
	}
}
