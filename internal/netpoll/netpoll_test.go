//go:build linux

package netpoll

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// recorder is a Handler that keeps what it got.
type recorder struct {
	mu     sync.Mutex
	data   bytes.Buffer
	closed chan error
	onData func(c *Conn, b []byte)
}

func newRecorder() *recorder { return &recorder{closed: make(chan error, 1)} }

func (r *recorder) Data(c *Conn, b []byte) {
	r.mu.Lock()
	r.data.Write(b)
	r.mu.Unlock()
	if r.onData != nil {
		r.onData(c, b)
	}
}

func (r *recorder) Closed(c *Conn, err error) { r.closed <- err }

func (r *recorder) waitData(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		got := r.data.String()
		r.mu.Unlock()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("data %q, want %q", got, want)
		}
		time.Sleep(time.Millisecond)
	}
}

func (r *recorder) waitClosed(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.closed:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("Closed not called")
		return nil
	}
}

// pair returns a connection added to p and the server side of it.
func pair(t *testing.T, p *Poller, h Handler) (*Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv := <-accepted
	if srv == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { srv.Close() })
	c, err := p.Add(nc, h)
	if err != nil {
		t.Fatal(err)
	}
	return c, srv
}

func newPoller(t *testing.T, cfg Config) *Poller {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func TestReadWriteAndPeerClose(t *testing.T) {
	p := newPoller(t, Config{Loops: 2})
	r := newRecorder()
	c, srv := pair(t, p, r)
	if _, err := srv.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	r.waitData(t, "hello")
	if err := c.Write([]byte("back")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(srv, buf); err != nil || string(buf) != "back" {
		t.Fatalf("server read %q %v", buf, err)
	}
	if a := c.RemoteAddr(); a == nil || a.String() != srv.LocalAddr().String() {
		t.Errorf("RemoteAddr %v, want %v", a, srv.LocalAddr())
	}
	srv.Write([]byte("last"))
	srv.Close()
	if err := r.waitClosed(t); err != io.EOF {
		t.Fatalf("Closed(%v), want EOF", err)
	}
	r.waitData(t, "hellolast")
	if err := c.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after the end = %v, want ErrClosed", err)
	}
}

func TestCloseFromHandlerAndOutside(t *testing.T) {
	p := newPoller(t, Config{Loops: 1})
	for _, inside := range []bool{true, false} {
		r := newRecorder()
		if inside {
			r.onData = func(c *Conn, b []byte) { c.Close() }
		}
		c, srv := pair(t, p, r)
		if inside {
			srv.Write([]byte("x"))
		} else {
			c.Close()
		}
		if err := r.waitClosed(t); !errors.Is(err, ErrClosed) {
			t.Fatalf("inside=%v: Closed(%v), want ErrClosed", inside, err)
		}
		// The peer sees the end.
		srv.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(srv); err != nil {
			t.Fatalf("inside=%v: peer read: %v", inside, err)
		}
	}
}

// TestPauseReading: a paused connection reads nothing more, and still learns of the peer's close.
func TestPauseReading(t *testing.T) {
	p := newPoller(t, Config{Loops: 1})
	r := newRecorder()
	c, srv := pair(t, p, r)
	srv.Write([]byte("a"))
	r.waitData(t, "a")
	if err := c.PauseReading(); err != nil {
		t.Fatal(err)
	}
	srv.Write([]byte("unread"))
	start := time.Now()
	srv.Close()
	err := r.waitClosed(t)
	if err == nil || errors.Is(err, ErrClosed) {
		t.Fatalf("Closed(%v), want the peer's end", err)
	}
	r.waitData(t, "a")
	if time.Since(start) > 4*time.Second {
		t.Fatal("the peer's close was not seen promptly")
	}
}

// TestQueueFull: a peer that does not read fills the queue up to its bound, then Write fails; the
// queue drains once the peer reads.
func TestQueueFull(t *testing.T) {
	p := newPoller(t, Config{Loops: 1, MaxQueued: 64 << 10})
	r := newRecorder()
	c, srv := pair(t, p, r)
	chunk := bytes.Repeat([]byte("z"), 16<<10)
	var sent int
	var err error
	for range 10000 { // bounded: the kernel buffers a few MB at most
		if err = c.Write(chunk); err != nil {
			break
		}
		sent += len(chunk)
	}
	if !errors.Is(err, ErrQueueFull) {
		t.Fatalf("after %d bytes: %v, want ErrQueueFull", sent, err)
	}
	if q := c.Queued(); q == 0 || q > 64<<10 {
		t.Fatalf("queued %d bytes, want 1..64 KiB", q)
	}
	n, rerr := io.CopyN(io.Discard, srv, int64(sent))
	if rerr != nil || n != int64(sent) {
		t.Fatalf("peer read %d of %d: %v", n, sent, rerr)
	}
	if q := c.Queued(); q != 0 {
		t.Fatalf("%d bytes still queued after the peer read everything", q)
	}
}

// TestChurnNoCrossTalk opens and closes many connections at once, from many goroutines, while
// long-lived connections stay up: no long-lived connection is cut, every short one ends exactly
// once, and a descriptor number reused by a new connection never receives the old one's events.
func TestChurnNoCrossTalk(t *testing.T) {
	p := newPoller(t, Config{Loops: 2})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The server echoes every connection until the client leaves.
	go func() {
		for {
			s, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer s.Close()
				io.Copy(s, s)
			}()
		}
	}()
	dial := func(h Handler) *Conn {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Error(err)
			return nil
		}
		c, err := p.Add(nc, h)
		if err != nil {
			t.Error(err)
		}
		return c
	}
	var steady []*recorder
	var steadyConns []*Conn
	for range 20 {
		r := newRecorder()
		steady = append(steady, r)
		steadyConns = append(steadyConns, dial(r))
	}
	var ends atomic.Int64
	var wg sync.WaitGroup
	const workers, each = 8, 60
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r := newRecorder()
				c := dial(r)
				if c == nil {
					return
				}
				msg := []byte{byte(w), byte(i)}
				c.Write(msg)
				r.waitData(t, string(msg))
				c.Close()
				if err := r.waitClosed(t); !errors.Is(err, ErrClosed) {
					t.Errorf("short connection ended with %v", err)
				}
				select {
				case err := <-r.closed:
					t.Errorf("Closed called twice (%v)", err)
				default:
				}
				ends.Add(1)
			}
		}()
	}
	wg.Wait()
	if ends.Load() != workers*each {
		t.Fatalf("%d short connections ended, want %d", ends.Load(), workers*each)
	}
	for i, c := range steadyConns {
		select {
		case err := <-steady[i].closed:
			t.Fatalf("long-lived connection %d was cut: %v", i, err)
		default:
		}
		if err := c.Write([]byte("ok")); err != nil {
			t.Fatalf("long-lived connection %d: %v", i, err)
		}
		steady[i].waitData(t, "ok")
	}
}

// TestPollerClose ends every open connection with ErrClosed and refuses new ones.
func TestPollerClose(t *testing.T) {
	p, err := New(Config{Loops: 2})
	if err != nil {
		t.Fatal(err)
	}
	var rs []*recorder
	for range 4 {
		r := newRecorder()
		rs = append(rs, r)
		pair(t, p, r)
	}
	p.Close()
	for _, r := range rs {
		if err := r.waitClosed(t); !errors.Is(err, ErrClosed) {
			t.Fatalf("Closed(%v), want ErrClosed", err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Add(nc, newRecorder()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add after Close = %v, want ErrClosed", err)
	}
}

// dialer is a recorder that also records Connected (a Connector).
type dialer struct {
	*recorder
	connected chan struct{}
	onConnect func(c *Conn)
	after     atomic.Bool // Connected came after Closed
	ended     atomic.Bool
}

func newDialer() *dialer { return &dialer{recorder: newRecorder(), connected: make(chan struct{}, 1)} }

func (d *dialer) Connected(c *Conn) {
	if d.ended.Load() {
		d.after.Store(true)
	}
	if d.onConnect != nil {
		d.onConnect(c)
	}
	d.connected <- struct{}{}
}

func (d *dialer) Closed(c *Conn, err error) {
	d.ended.Store(true)
	d.recorder.Closed(c, err)
}

func listen(t *testing.T) (net.Listener, netip.AddrPort) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, netip.MustParseAddrPort(ln.Addr().String())
}

// TestDial: a connection the poller opens itself is connected without blocking, from the source
// address asked for; what is written before the connect is over is sent once it is, before what
// Connected writes, and the peer's bytes and close come as for any connection.
func TestDial(t *testing.T) {
	p := newPoller(t, Config{Loops: 2})
	ln, addr := listen(t)
	d := newDialer()
	d.onConnect = func(c *Conn) {
		if err := c.Write([]byte(" world")); err != nil {
			t.Errorf("write from Connected: %v", err)
		}
	}
	c, err := p.Dial(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), 0), addr, d)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if host, _, _ := net.SplitHostPort(srv.RemoteAddr().String()); host != "127.0.0.2" {
		t.Errorf("the server sees %v, want the source 127.0.0.2", srv.RemoteAddr())
	}
	select {
	case <-d.connected:
	case <-time.After(5 * time.Second):
		t.Fatal("Connected not called")
	}
	buf := make([]byte, len("hello world"))
	if _, err := io.ReadFull(srv, buf); err != nil || string(buf) != "hello world" {
		t.Fatalf("server read %q %v", buf, err)
	}
	srv.Write([]byte("back"))
	d.waitData(t, "back")
	srv.Close()
	if err := d.waitClosed(t); err != io.EOF {
		t.Fatalf("Closed(%v), want EOF", err)
	}
}

// TestDialRefused: a connect the peer refuses ends the connection with the connect's error, and
// Connected is never called.
func TestDialRefused(t *testing.T) {
	p := newPoller(t, Config{Loops: 1})
	ln, addr := listen(t)
	ln.Close() // nothing listens there now
	d := newDialer()
	if _, err := p.Dial(netip.AddrPort{}, addr, d); err != nil {
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("Dial = %v, want nil or ECONNREFUSED", err)
		}
		return // refused at once: no Handler call
	}
	err := d.waitClosed(t)
	var se *os.SyscallError
	if !errors.Is(err, syscall.ECONNREFUSED) || !errors.As(err, &se) || se.Syscall != "connect" {
		t.Fatalf("Closed(%v), want connect: ECONNREFUSED", err)
	}
	select {
	case <-d.connected:
		t.Fatal("Connected called for a refused connect")
	default:
	}
}

// TestDialClosedWhileConnecting: Close before the connect is over ends the connection with
// ErrClosed, once, and Connected never comes after that.
func TestDialClosedWhileConnecting(t *testing.T) {
	p := newPoller(t, Config{Loops: 1})
	_, addr := listen(t)
	for range 50 {
		d := newDialer()
		c, err := p.Dial(netip.AddrPort{}, addr, d)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := d.waitClosed(t); !errors.Is(err, ErrClosed) {
			t.Fatalf("Closed(%v), want ErrClosed", err)
		}
		if d.after.Load() {
			t.Fatal("Connected called after Closed")
		}
		select {
		case err := <-d.closed:
			t.Fatalf("Closed called twice (%v)", err)
		default:
		}
	}
}
