package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// child is the test side of a ProcessNode running runChild: the pipes of
// the latest instance.
type child struct {
	mu    sync.Mutex
	stdin io.WriteCloser
	out   *bufio.Reader
	files []*os.File // pipe ends to close when the test ends
}

func (c *child) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.files {
		f.Close()
	}
}

func (c *child) command(mode string) func() *exec.Cmd {
	return func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		// A race-enabled child would otherwise sleep 1 s at exit.
		cmd.Env = append(os.Environ(), childEnv+"="+mode, "GORACE=atexit_sleep_ms=0")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			panic(err)
		}
		// Not StdoutPipe: the node calls Wait at once, which would close
		// that pipe under the reader.
		r, w, err := os.Pipe()
		if err != nil {
			panic(err)
		}
		cmd.Stdout = w
		c.mu.Lock()
		c.stdin, c.out = stdin, bufio.NewReader(r)
		c.files = append(c.files, r, w)
		c.mu.Unlock()
		return cmd
	}
}

// readLine reads one line from the latest instance, failing the test after
// 5 s.
func (c *child) readLine(t *testing.T) string {
	t.Helper()
	c.mu.Lock()
	r := c.out
	c.mu.Unlock()
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() { s, err := r.ReadString('\n'); ch <- res{strings.TrimSpace(s), err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("child output: %v", r.err)
		}
		return r.s
	case <-time.After(5 * time.Second):
		t.Fatal("no line from child within 5 s")
		return ""
	}
}

func (c *child) ready(ctx context.Context) error {
	c.mu.Lock()
	r := c.out
	c.mu.Unlock()
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "ready ") {
		return fmt.Errorf("unexpected first line %q", line)
	}
	return nil
}

func (c *child) send(t *testing.T, line string) {
	t.Helper()
	c.mu.Lock()
	w := c.stdin
	c.mu.Unlock()
	if _, err := io.WriteString(w, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

func newChildNode(t *testing.T, mode string, grace time.Duration) (*ProcessNode, *child) {
	t.Helper()
	c := &child{}
	t.Cleanup(c.close)
	n, err := NewProcessNode("node-1", ProcessOptions{Command: c.command(mode), Ready: c.ready, GracePeriod: grace})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := n.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return n, c
}

// procState is the state letter of /proc/<pid>/stat ("S", "R", "T", ...).
func procState(pid int) (string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+3 > len(s) {
		return "", fmt.Errorf("odd stat %q", s)
	}
	return s[i+2 : i+3], nil
}

// waitState polls /proc until the process is (or is not) stopped.
func waitState(t *testing.T, pid int, stopped bool) {
	t.Helper()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc to observe process state")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := procState(pid)
		if err != nil {
			t.Fatal(err)
		}
		if (st == "T") == stopped {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d state %s, want stopped=%v", pid, st, stopped)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

func TestProcessPauseResume(t *testing.T) {
	n, c := newChildNode(t, "normal", time.Second)
	ctx := t.Context()
	if err := n.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	waitState(t, n.PID(), true)
	c.send(t, "while paused")
	if err := n.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	waitState(t, n.PID(), false)
	if got := c.readLine(t); got != "echo: while paused" {
		t.Fatalf("after resume got %q", got)
	}
}

func TestProcessDrain(t *testing.T) {
	for _, paused := range []bool{false, true} {
		t.Run(fmt.Sprintf("paused=%v", paused), func(t *testing.T) {
			n, c := newChildNode(t, "normal", time.Second)
			ctx := t.Context()
			if paused {
				if err := n.Pause(ctx); err != nil {
					t.Fatal(err)
				}
				waitState(t, n.PID(), true)
			}
			if err := n.Drain(ctx); err != nil {
				t.Fatal(err)
			}
			if got := c.readLine(t); got != "draining" {
				t.Fatalf("after SIGTERM got %q", got)
			}
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if err := n.Wait(wctx); err != nil {
				t.Fatalf("drained process exit: %v", err)
			}
		})
	}
}

func TestProcessKillAndRestart(t *testing.T) {
	n, c := newChildNode(t, "normal", time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	pid1 := n.PID()
	if err := n.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	var exit *exec.ExitError
	if err := n.Wait(ctx); !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("killed process exit = %v, want SIGKILL", err)
	}
	for _, f := range []struct {
		name string
		do   func(context.Context) error
	}{{"kill", n.Kill}, {"pause", n.Pause}, {"resume", n.Resume}, {"drain", n.Drain}} {
		if err := f.do(ctx); !errors.Is(err, ErrNotRunning) {
			t.Errorf("%s on a dead node = %v, want ErrNotRunning", f.name, err)
		}
	}
	// Restart after a kill starts a new process.
	if err := n.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	pid2 := n.PID()
	if pid2 == pid1 {
		t.Fatal("restart kept the pid")
	}
	c.send(t, "one")
	if got := c.readLine(t); got != "echo: one" {
		t.Fatalf("got %q", got)
	}
	// Restart of a running node stops it gracefully first.
	if err := n.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if n.PID() == pid2 {
		t.Fatal("restart kept the pid")
	}
	c.send(t, "two")
	if got := c.readLine(t); got != "echo: two" {
		t.Fatalf("got %q", got)
	}
}

// A process that ignores SIGTERM is killed after the grace period.
func TestProcessRestartPastGrace(t *testing.T) {
	n, _ := newChildNode(t, "ignore-term", 100*time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	pid := n.PID()
	if err := n.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if n.PID() == pid {
		t.Fatal("restart kept the pid")
	}
}
