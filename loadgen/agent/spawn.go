package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/squall-dev/squall/internal/childproc"
)

// SpawnOptions say how to start local worker processes.
type SpawnOptions struct {
	// Exe is the binary; empty means this process's own executable.
	Exe string
	// Args are the arguments that make Exe an agent listening on a loopback port it picks and
	// printing ListenPrefix+address on stdout; nil means {"agent", "--listen", "127.0.0.1:0"}.
	// The token is passed in the environment (TokenEnv), not on the command line.
	Args []string
	// Env is added to the environment of each worker.
	Env []string
	// Token is the shared token.
	Token string
	// StartTimeout bounds how long a worker may take to print its address; zero means 15 s.
	StartTimeout time.Duration
	Logger       *slog.Logger
}

// process is a spawned worker.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	err    error         // exit status, valid after exited
	stderr *tailBuffer
}

// tailBuffer keeps the last bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

// Spawn starts n worker processes and dials each. On error every process already started is
// stopped. The processes die with this one (parent-death signal) and are ended by Release.
func Spawn(ctx context.Context, n int, o SpawnOptions) ([]*Remote, error) {
	if o.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("agent: spawn workers: %w", err)
		}
		o.Exe = exe
	}
	if o.Args == nil {
		o.Args = []string{"agent", "--listen", "127.0.0.1:0"}
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 15 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	type res struct {
		i   int
		r   *Remote
		err error
	}
	out := make(chan res, n)
	for i := range n {
		go func() { // each ends within StartTimeout
			r, err := spawnOne(ctx, i, o)
			out <- res{i, r, err}
		}()
	}
	remotes := make([]*Remote, n)
	var errs []error
	for range n {
		x := <-out
		remotes[x.i] = x.r
		if x.err != nil {
			errs = append(errs, x.err)
		}
	}
	if len(errs) > 0 {
		Release(context.Background(), remotes...)
		return nil, errors.Join(errs...)
	}
	return remotes, nil
}

func spawnOne(ctx context.Context, i int, o SpawnOptions) (*Remote, error) {
	cmd := exec.Command(o.Exe, o.Args...)
	cmd.Env = append(append(os.Environ(), o.Env...), TokenEnv+"="+o.Token)
	cmd.SysProcAttr = childproc.Attr()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("agent: worker %d: %w", i, err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{}), stderr: &tailBuffer{max: 16 << 10}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("agent: start worker %d: %w", i, err)
	}
	addrCh := make(chan string, 1)
	go func() { // reads stdout until the process closes it
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			if !sent && strings.HasPrefix(line, ListenPrefix) {
				addrCh <- strings.TrimSpace(strings.TrimPrefix(line, ListenPrefix))
				sent = true
				continue
			}
			o.Logger.Debug("agent: worker output", "worker", i, "line", line)
		}
		_, _ = io.Copy(io.Discard, stdout)
		if !sent {
			close(addrCh)
		}
	}()
	go func() { // reaps the process
		p.err = cmd.Wait()
		close(p.exited)
	}()
	kill := func() {
		_ = cmd.Process.Kill()
		<-p.exited
	}
	t := time.NewTimer(o.StartTimeout)
	defer t.Stop()
	var addr string
	select {
	case a, ok := <-addrCh:
		if !ok {
			<-p.exited
			return nil, fmt.Errorf("agent: worker %d exited before listening: %v: %s", i, p.err, p.stderr)
		}
		addr = a
	case <-t.C:
		kill()
		return nil, fmt.Errorf("agent: worker %d did not report its address within %v: %s", i, o.StartTimeout, p.stderr)
	case <-ctx.Done():
		kill()
		return nil, fmt.Errorf("agent: worker %d: %w", i, ctx.Err())
	}
	r, err := Dial(ctx, addr, o.Token)
	if err != nil {
		kill()
		return nil, fmt.Errorf("agent: worker %d: %w", i, err)
	}
	r.proc = p
	o.Logger.Debug("agent: worker started", "worker", i, "pid", cmd.Process.Pid, "addr", addr)
	return r, nil
}

// terminate asks a spawned worker's process to stop, as Stop does over HTTP, by SIGTERM: the
// worker then ends its job cleanly and its stream delivers the final report. It reports whether
// the signal was sent (false for an agent this controller did not spawn, or one that has exited).
func (r *Remote) terminate() bool {
	if r.proc == nil || r.exitedWith() != "" {
		return false
	}
	return r.proc.cmd.Process.Signal(syscall.SIGTERM) == nil
}

// exitedWith returns a description of how a spawned process ended, or "" while it runs (or when
// the remote was not spawned).
func (r *Remote) exitedWith() string {
	if r.proc == nil {
		return ""
	}
	select {
	case <-r.proc.exited:
		s := fmt.Sprintf("process %d exited: %v", r.proc.cmd.Process.Pid, r.proc.err)
		if tail := r.proc.stderr.String(); tail != "" {
			s += "; stderr: " + keyLine(tail)
		}
		return s
	default:
		return ""
	}
}

// keyLine picks the line of a dying process's stderr that says why: a panic or fatal error when
// there is one, else the last line.
func keyLine(s string) string {
	lines := strings.Split(s, "\n")
	for _, l := range lines {
		for _, p := range []string{"panic:", "fatal error:", "WARNING: DATA RACE"} {
			if strings.HasPrefix(l, p) {
				return l
			}
		}
	}
	return lines[len(lines)-1]
}

// StderrTail returns the last bytes a spawned agent wrote to stderr ("" for remote agents).
func (r *Remote) StderrTail() string {
	if r.proc == nil {
		return ""
	}
	return r.proc.stderr.String()
}

// Release ends spawned agents: it asks each to shut down, waits up to 5 s, then kills what is
// left. Remotes that were not spawned are only asked to nothing (their jobs were stopped by Run).
func Release(ctx context.Context, remotes ...*Remote) {
	var wg sync.WaitGroup
	for _, r := range remotes {
		if r == nil || r.proc == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_ = r.Shutdown(sctx)
			cancel()
			t := time.NewTimer(5 * time.Second)
			defer t.Stop()
			select {
			case <-r.proc.exited:
			case <-t.C:
				_ = r.proc.cmd.Process.Kill()
				<-r.proc.exited
			}
		}()
	}
	wg.Wait()
}
