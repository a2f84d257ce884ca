// Package redistest starts a private redis-server for tests: on a free loopback port, with its
// working directory in the test's temp dir, no persistence, and stopped when the test ends. A test
// that needs Redis calls Start; when redis-server is not installed the test is skipped with the
// reason (`make deps` installs it from Debian's packages).
//
// Start may be called from any test goroutine; each call starts its own server.
package redistest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is one running redis-server.
type Server struct {
	Addr string // 127.0.0.1:port
	cmd  *exec.Cmd
	done chan struct{}
	out  *bytes.Buffer
}

// URL returns the redis:// URL of database db.
func (s *Server) URL(db int) string { return "redis://" + s.Addr + "/" + strconv.Itoa(db) }

// Start runs a redis-server for the test, or skips the test when none is installed.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed (run `make deps`, which installs it from Debian's packages): " + err.Error())
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		s, err := start(t, bin)
		if err == nil {
			return s
		}
		lastErr = err // most likely the free port was taken in between: try another
	}
	t.Fatalf("redistest: could not start redis-server: %v", lastErr)
	return nil
}

func start(t testing.TB, bin string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), done: make(chan struct{}), out: &bytes.Buffer{}}
	s.cmd = exec.Command(bin,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes",
		"--loglevel", "warning", "--maxclients", "1000")
	s.cmd.Stdout = s.out
	s.cmd.Stderr = s.out
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := ping(s.Addr); err == nil {
			break
		} else if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("no PONG from %s: %v; output: %s", s.Addr, err, s.out.String())
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("redis-server exited: %s", s.out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Cleanup(s.stop)
	return s, nil
}

func (s *Server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// Do sends one command (inline form, arguments without spaces) and returns the first reply line.
func (s *Server) Do(args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", s.Addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprintf(c, "%s\r\n", strings.Join(args, " ")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}

func ping(addr string) error {
	s := &Server{Addr: addr}
	line, err := s.Do("PING")
	if err != nil {
		return err
	}
	if line != "+PONG" {
		return fmt.Errorf("answer %q", line)
	}
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
