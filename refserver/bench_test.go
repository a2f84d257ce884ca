package refserver

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/refserver/protocol"
)

// BenchmarkIdleConnMemory measures the gateway's resident memory per idle connection at 10 000
// connections. The gateway runs as a child process (built into a temporary directory) so that its
// RSS is its own; this process holds the 10 000 client connections, spread over source addresses
// 127.0.0.2–127.0.0.201. Each connection authenticates with a token in the URL, receives welcome and
// joins one of 100 rooms, then stays idle. The metric is (VmRSS after − VmRSS before) / connections.
// Both processes stay well under the 20 000 open-file limit (10 000 sockets each).
//
// It also reports peak-rss-bytes/conn: (VmHWM − VmRSS before) / connections, the high-water mark
// of the gateway's RSS over the connects and the hold, with no collection forced (what a node
// needs while connections pile up, garbage of their handshakes included).
func BenchmarkIdleConnMemory(b *testing.B) {
	const conns = 10000
	for i := 0; i < b.N; i++ {
		m := measureIdleConnMemory(b, conns)
		b.ReportMetric(m.bytesPerConn, "rss-bytes/conn")
		b.ReportMetric(m.peakBytesPerConn, "peak-rss-bytes/conn")
		b.ReportMetric(m.goroutinesPerConn, "goroutines/conn")
	}
}

// idleConnMemory is what measureIdleConnMemory measures.
type idleConnMemory struct {
	bytesPerConn, peakBytesPerConn, goroutinesPerConn float64
}

func measureIdleConnMemory(b *testing.B, conns int) idleConnMemory {
	b.Helper()
	// REFSERVER_BENCH_BIN measures another build of the gateway (an earlier commit, to compare).
	bin := os.Getenv("REFSERVER_BENCH_BIN")
	if bin == "" {
		bin = filepath.Join(b.TempDir(), "refserver")
		build := exec.Command(filepath.Join(goRoot(), "bin", "go"), "build", "-o", bin, refserverPackage)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			b.Fatalf("go build: %v\n%s", err, out)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Admission control off: the benchmark opens its connections faster than --accept-rate admits,
	// and it measures idle memory, not shedding.
	cmd := exec.CommandContext(ctx, bin, "--dev", "--addr", addr, "--max-conns-per-ip", "-1", "--accept-rate", "-1",
		"--log-level", "warn", "--pprof")
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.Env = append(os.Environ(), "GODEBUG="+os.Getenv("REFSERVER_BENCH_GODEBUG"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		cancel()
		_ = cmd.Wait()
	}()
	base := "http://" + addr
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := hc.Get(base + protocol.PathHealthz)
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("gateway did not start: %v\n%s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	pid := cmd.Process.Pid
	time.Sleep(500 * time.Millisecond)
	rssBefore := procStatus(b, pid, "VmRSS")
	gBefore := scrapeGauge(b, hc, base, protocol.MetricGoGoroutines)
	allocBefore := scrapeGauge(b, hc, base, "go_memstats_alloc_bytes_total")

	b.ResetTimer()
	clients := make([]*websocket.Conn, conns)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	errs := make(chan error, conns)
	dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 256, WriteBufferSize: 256}
	for i := 0; i < conns; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ws, err := idleClient(dialer, addr, i)
			if err != nil {
				errs <- err
				return
			}
			clients[i] = ws
		}()
	}
	wg.Wait()
	b.StopTimer()
	defer func() {
		for _, ws := range clients {
			if ws != nil {
				ws.Close()
			}
		}
	}()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatalf("connecting: %v (and %d more errors)", err, len(errs))
	}
	active := scrapeGauge(b, hc, base, protocol.MetricConnectionsActive)
	if int(active) != conns {
		b.Fatalf("%s = %v, want %d", protocol.MetricConnectionsActive, active, conns)
	}
	time.Sleep(3 * time.Second) // let the runtime settle (GC, freed handshake buffers)
	rssAfter := procStatus(b, pid, "VmRSS")
	rssPeak := procStatus(b, pid, "VmHWM")
	gAfter := scrapeGauge(b, hc, base, protocol.MetricGoGoroutines)
	allocated := scrapeGauge(b, hc, base, "go_memstats_alloc_bytes_total") - allocBefore
	heap := scrapeGauge(b, hc, base, "go_memstats_heap_inuse_bytes")
	stack := scrapeGauge(b, hc, base, "go_memstats_stack_inuse_bytes")
	if path := os.Getenv("REFSERVER_BENCH_ALLOCS_PROFILE"); path != "" {
		saveURL(b, hc, base+"/debug/pprof/allocs", path) // every allocation since the start
	}
	if path := os.Getenv("REFSERVER_BENCH_HEAP_PROFILE"); path != "" {
		// The profile's ?gc=1 collects garbage first; it is fetched after RSS was read.
		saveURL(b, hc, base+"/debug/pprof/heap?gc=1", path)
		saveURL(b, hc, base+"/debug/pprof/heap?gc=1", path)
		b.Logf("after two forced GCs: VmRSS %d KiB, heap in use %.1f MiB, stacks %.1f MiB", procStatus(b, pid, "VmRSS")/1024,
			scrapeGauge(b, hc, base, "go_memstats_heap_inuse_bytes")/(1<<20), scrapeGauge(b, hc, base, "go_memstats_stack_inuse_bytes")/(1<<20))
	}
	m := idleConnMemory{
		bytesPerConn:      float64(rssAfter-rssBefore) / float64(conns),
		peakBytesPerConn:  float64(rssPeak-rssBefore) / float64(conns),
		goroutinesPerConn: (gAfter - gBefore) / float64(conns),
	}
	b.Logf("%d idle connections: VmRSS %d → %d KiB (peak %d KiB), %.0f bytes/conn (peak %.0f); heap in use %.1f MiB, stacks %.1f MiB; goroutines %.0f → %.0f; %.0f bytes allocated per connection",
		conns, rssBefore/1024, rssAfter/1024, rssPeak/1024, m.bytesPerConn, m.peakBytesPerConn, heap/(1<<20), stack/(1<<20), gBefore, gAfter, allocated/float64(conns))
	return m
}

// idleClient connects client i from 127.0.0.(2 + i%200), waits for welcome and joins a room.
func idleClient(d websocket.Dialer, addr string, i int) (*websocket.Conn, error) {
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%200))}}
	d.NetDialContext = nd.DialContext
	tok, err := protocol.SignToken([]byte(protocol.DevSecret), fmt.Sprint("user-", i), time.Now().Add(time.Hour))
	if err != nil {
		return nil, err
	}
	ws, _, err := d.Dial("ws://"+addr+protocol.PathWS+"?token="+tok, nil)
	if err != nil {
		return nil, err
	}
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	join, _ := protocol.Encode(&protocol.Frame{Type: protocol.TypeJoinRoom, RoomID: fmt.Sprint("room-", i%100), Seq: 1})
	if err := ws.WriteMessage(websocket.TextMessage, join); err != nil {
		ws.Close()
		return nil, err
	}
	for { // welcome, room_joined, presence events of others..., ack 1
		_, data, err := ws.ReadMessage()
		if err != nil {
			ws.Close()
			return nil, err
		}
		f, err := protocol.Decode(data, protocol.ServerToClient)
		if err == nil && f.Type == protocol.TypeAck && f.Seq == 1 {
			return ws, nil
		}
	}
}

func saveURL(b *testing.B, hc *http.Client, url, path string) {
	resp, err := hc.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
}

// procStatus reads a size field of a process's /proc status (VmRSS: resident set size, VmHWM:
// its peak) in bytes.
func procStatus(b *testing.B, pid int, field string) int64 {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb * 1024
		}
	}
	b.Fatalf("no %s in /proc status", field)
	return 0
}

// scrapeGauge reads one unlabelled sample from /metrics.
func scrapeGauge(b *testing.B, hc *http.Client, base, name string) float64 {
	b.Helper()
	resp, err := hc.Get(base + protocol.PathMetrics)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				b.Fatal(err)
			}
			return v
		}
	}
	b.Fatalf("metric %s not found", name)
	return 0
}
