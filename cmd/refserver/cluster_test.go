package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/squall-dev/squall/internal/redistest"
	"github.com/squall-dev/squall/internal/wstest"
	"github.com/squall-dev/squall/refserver/protocol"
)

// childEnv makes the test binary run main() instead of the tests: the acceptance tests start
// gateway nodes as child processes of themselves, with real flags, environment and signals.
const childEnv = "REFSERVER_TEST_RUN_AS_NODE"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		main() // exits
	}
	os.Exit(m.Run())
}

const clusterSecret = "cluster-secret"

// node is one gateway child process.
type node struct {
	name string
	addr string
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{}
	err  error // Wait's result, once done is closed
}

func startNode(t *testing.T, name, redisURL string, env []string, args ...string) *node {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	n := &node{name: name, addr: addr, out: &bytes.Buffer{}, done: make(chan struct{})}
	n.cmd = exec.Command(os.Args[0], append([]string{"--addr", addr, "--broker", redisURL, "--node-id", name,
		"--log-level", "warn"}, args...)...)
	n.cmd.Env = append(append(os.Environ(), childEnv+"=1", "SQUALL_AUTH_SECRET="+clusterSecret), env...)
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.err = n.cmd.Wait(); close(n.done) }()
	t.Cleanup(func() {
		select {
		case <-n.done:
			return
		default:
		}
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.done:
			if n.err != nil {
				t.Errorf("node %s: %v\n%s", name, n.err, n.out)
			}
		case <-time.After(15 * time.Second):
			_ = n.cmd.Process.Kill()
			<-n.done
			t.Errorf("node %s did not stop on SIGTERM", name)
		}
	})
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := hc.Get("http://" + addr + protocol.PathReadyz)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return n
			}
		}
		select {
		case <-n.done:
			t.Fatalf("node %s exited: %v\n%s", name, n.err, n.out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s not ready: %v\n%s", name, err, n.out)
		}
	}
}

// dialNode connects user to node n (from localIP when set) with a token of the cluster's secret.
func dialNode(t *testing.T, n *node, user, localIP string) *wstest.Client {
	t.Helper()
	tok, err := protocol.SignToken([]byte(clusterSecret), user, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	url := "ws://" + n.addr + protocol.PathWS + "?" + protocol.TokenQueryParam + "=" + tok
	return wstest.Connect(t, url, wstest.DialOptions{LocalIP: localIP, Name: user + "@" + n.name})
}

func isPresence(event, user string) func(protocol.Frame) bool {
	return func(f protocol.Frame) bool {
		return f.Type == protocol.TypePresence && f.Event == event && f.UserID == user
	}
}

// Three nodes, each a child process, on one Redis. Users on different nodes
// share a room, its presence and one gap-free roomSeq order; the per-user limit counts the whole
// cluster; after SIGKILL of one node, its users' presence disappears from the other nodes within
// the registry TTL.
func TestThreeNodeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three gateway processes and a redis-server")
	}
	rs := redistest.Start(t)
	const ttl = 2 * time.Second
	common := []string{"--heartbeat-interval", "500ms", "--heartbeat-timeout", "10s", "--max-conns-per-client", "5"}
	nodes := make([]*node, 3)
	for i := range nodes {
		// the registry TTL through its environment twin, the rest as flags
		nodes[i] = startNode(t, "n"+strconv.Itoa(i), rs.URL(0), []string{"REFSERVER_REGISTRY_TTL=" + ttl.String()}, common...)
	}

	// One user per node joins the hall; each joiner sees everyone before it in room_joined.
	clients := make([]*wstest.Client, 3)
	for i, n := range nodes {
		clients[i] = dialNode(t, n, "user"+strconv.Itoa(i), "")
		clients[i].ExpectMatch(15*time.Second, "welcome", func(f protocol.Frame) bool { return f.Type == protocol.TypeWelcome })
		j := clients[i].Join("hall", 15*time.Second)
		var want []string
		for k := 0; k <= i; k++ {
			want = append(want, "user"+strconv.Itoa(k))
		}
		if strings.Join(j.Members, ",") != strings.Join(want, ",") {
			t.Fatalf("user%d on %s: room_joined members %v, want %v", i, n.name, j.Members, want)
		}
		for k := 0; k < i; k++ {
			clients[k].ExpectMatch(15*time.Second, "presence join of user"+strconv.Itoa(i), isPresence(protocol.PresenceJoin, "user"+strconv.Itoa(i)))
		}
	}

	// Everyone broadcasts at once; everyone receives every broadcast, roomSeq 1..N, in one order.
	const each = 50
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range each {
				c.Send(protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "hall", Seq: c.NextSeq(), Data: json.RawMessage(strconv.Itoa(k))})
			}
		}()
	}
	wg.Wait()
	orders := make([][]string, len(clients))
	for i, c := range clients {
		for n := 1; n <= each*len(clients); n++ {
			f := c.ExpectMatch(10*time.Second, "broadcast", func(f protocol.Frame) bool { return f.Type == protocol.TypeBroadcast })
			if f.RoomSeq != uint64(n) {
				t.Fatalf("user%d: broadcast %d carries roomSeq %d", i, n, f.RoomSeq)
			}
			orders[i] = append(orders[i], f.From+":"+string(f.Data))
		}
	}
	for i := 1; i < len(orders); i++ {
		if strings.Join(orders[i], " ") != strings.Join(orders[0], " ") {
			t.Fatalf("user%d saw another order than user0", i)
		}
	}
	t.Logf("%d broadcasts from 3 nodes: every client saw roomSeq 1..%d in the same order", each*3, each*3)

	// Per-user limit across the cluster: 2 + 2 + 1 connections of "multi" are fine, the 6th is not.
	for i := range 5 {
		c := dialNode(t, nodes[i%3], "multi", "127.0.0."+strconv.Itoa(20+i))
		c.ExpectMatch(15*time.Second, "welcome", func(f protocol.Frame) bool { return f.Type == protocol.TypeWelcome })
	}
	sixth := dialNode(t, nodes[2], "multi", "127.0.0.30")
	if code, reason := sixth.ExpectClose(5 * time.Second); code != int(protocol.ClosePolicy) || reason != protocol.ReasonConnLimit {
		t.Fatalf("6th connection ended with %d %q, want 1008 conn_limit", code, reason)
	}

	// SIGKILL node n2: user2's presence leaves the other nodes within the registry TTL.
	killed := time.Now()
	if err := nodes[2].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var elapsed [2]time.Duration
	for i := range 2 {
		f := clients[i].ExpectMatch(ttl+5*time.Second, "user2's presence leave", isPresence(protocol.PresenceLeave, "user2"))
		elapsed[i] = time.Since(killed)
		if f.Reason != protocol.ReasonTimeout {
			t.Errorf("user%d: leave reason %q, want %q", i, f.Reason, protocol.ReasonTimeout)
		}
	}
	t.Logf("SIGKILL of n2: user2's leave reached n0 after %s and n1 after %s (registry TTL %s)",
		elapsed[0].Round(time.Millisecond), elapsed[1].Round(time.Millisecond), ttl)
	for i, e := range elapsed {
		if e > ttl+time.Second { // a second of slack for a shared 2-core machine
			t.Errorf("user%d saw the leave %s after the kill; registry TTL %s", i, e, ttl)
		}
	}
	if j := clients[0].Join("hall", 15*time.Second); strings.Join(j.Members, ",") != "user0,user1" {
		t.Fatalf("members after the kill: %v", j.Members)
	}
	// The dead node's connections stopped counting: multi's connection on n2 lapsed with it, so one
	// more fits on a live node.
	for attempt := 0; ; attempt++ {
		c := dialNode(t, nodes[0], "multi", "127.0.0."+strconv.Itoa(40+attempt))
		f, ok := c.Next(15 * time.Second)
		if ok && f.Type == protocol.TypeWelcome {
			break
		}
		code, reason := c.ExpectClose(15 * time.Second)
		if time.Since(killed) > ttl+time.Second {
			t.Fatalf("multi's connection on the dead node still counts %s after the kill: closed %d %q", time.Since(killed), code, reason)
		}
		time.Sleep(50 * time.Millisecond) // retry pacing while the dead node's entries lapse
	}
	t.Logf("the dead node's registry entries stopped counting %s after the kill", time.Since(killed).Round(time.Millisecond))
	<-nodes[2].done
	if ws, ok := nodes[2].cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("n2 ended with %v", nodes[2].err)
	}
}

// A rolling restart in cluster mode: SIGTERM drains one node (1001 with a retry hint, exit 0); its
// client reconnects to another node, resumes its session there and misses nothing, and the other
// members see it leave and come back.
func TestClusterDrainedClientResumesOnAnotherNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two gateway processes and a redis-server")
	}
	rs := redistest.Start(t)
	args := []string{"--heartbeat-interval", "500ms", "--heartbeat-timeout", "10s", "--drain-spread", "1s", "--registry-ttl", "2s"}
	n0 := startNode(t, "n0", rs.URL(0), nil, args...)
	n1 := startNode(t, "n1", rs.URL(0), nil, args...)
	isType := func(typ protocol.Type) func(protocol.Frame) bool {
		return func(f protocol.Frame) bool { return f.Type == typ }
	}
	broadcast := func(c *wstest.Client, data string) {
		c.Send(protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "hall", Seq: c.NextSeq(), Data: json.RawMessage(data)})
	}

	bob := dialNode(t, n1, "bob", "")
	bob.ExpectMatch(15*time.Second, "welcome", isType(protocol.TypeWelcome))
	bob.Join("hall", 15*time.Second)
	alice := dialNode(t, n0, "alice", "")
	w := alice.ExpectMatch(15*time.Second, "welcome", isType(protocol.TypeWelcome))
	alice.Join("hall", 15*time.Second)
	bob.ExpectMatch(15*time.Second, "alice's join", isPresence(protocol.PresenceJoin, "alice"))
	broadcast(bob, `"before"`)
	if f := alice.ExpectMatch(15*time.Second, "broadcast", isType(protocol.TypeBroadcast)); f.RoomSeq != 1 {
		t.Fatalf("alice got %+v", f)
	}

	if err := n0.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, reason := alice.ExpectClose(10 * time.Second)
	if code != int(protocol.CloseDraining) {
		t.Fatalf("alice's connection ended with %d %q, want 1001", code, reason)
	}
	if hint, ok := protocol.ParseRetryAfter(reason); !ok || hint <= 0 || hint > time.Second {
		t.Fatalf("close reason %q: want a retry hint within the 1s drain spread", reason)
	}
	select {
	case <-n0.done:
		if n0.err != nil {
			t.Fatalf("drained node exited with %v\n%s", n0.err, n0.out)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("drained node did not exit")
	}
	bob.ExpectMatch(15*time.Second, "alice's leave", isPresence(protocol.PresenceLeave, "alice"))
	broadcast(bob, `"missed-1"`)
	broadcast(bob, `"missed-2"`)
	// Both are published (and in the room's history) once bob has his own copy of the second: a
	// resume that overtook it would rightly get it live after "resumed", not in the replay.
	bob.ExpectMatch(15*time.Second, "bob's own missed-2", func(f protocol.Frame) bool {
		return f.Type == protocol.TypeBroadcast && f.RoomSeq == 3
	})

	again := dialNode(t, n1, "alice", "") // the load balancer sends the reconnect to a live node
	again.ExpectMatch(15*time.Second, "welcome", isType(protocol.TypeWelcome))
	again.Send(protocol.Frame{Type: protocol.TypeResume, Session: w.Session, Rooms: map[string]uint64{"hall": 1}})
	for i, want := range []string{`"missed-1"`, `"missed-2"`} {
		f := again.ExpectMatch(15*time.Second, "replay", isType(protocol.TypeBroadcast))
		if string(f.Data) != want || f.RoomSeq != uint64(i+2) {
			t.Fatalf("replay %d: %+v", i, f)
		}
	}
	if f := again.ExpectMatch(15*time.Second, "resumed", func(f protocol.Frame) bool {
		return f.Type == protocol.TypeResumed || f.Type == protocol.TypeResumeFailed
	}); f.Type != protocol.TypeResumed || f.Rooms["hall"] != 2 {
		t.Fatalf("resume on another node: %+v", f)
	}
	bob.ExpectMatch(15*time.Second, "alice's join after the resume", isPresence(protocol.PresenceJoin, "alice"))
	broadcast(bob, `"live"`)
	if f := again.ExpectMatch(15*time.Second, "live broadcast", isType(protocol.TypeBroadcast)); string(f.Data) != `"live"` || f.RoomSeq != 4 {
		t.Fatalf("live after the resume: %+v", f)
	}
}
