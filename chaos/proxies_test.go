package chaos

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// impl is one Proxies implementation under test, with the embedded instance
// behind it (External drives an Embedded through its HTTP API).
type impl struct {
	name string
	new  func(t *testing.T) Proxies
}

var impls = []impl{
	{"embedded", func(t *testing.T) Proxies {
		e := NewEmbedded(nil, EmbeddedOptions{})
		t.Cleanup(func() { e.Close() })
		return e
	}},
	{"embedded-source-ip", func(t *testing.T) Proxies {
		e := NewEmbedded(nil, EmbeddedOptions{PreserveSourceIP: true})
		t.Cleanup(func() { e.Close() })
		return e
	}},
	{"external", func(t *testing.T) Proxies {
		return newExternalForTest(t)
	}},
}

// newExternalForTest serves an Embedded's API on loopback and returns an
// External pointed at it.
func newExternalForTest(t *testing.T) *External {
	t.Helper()
	e := NewEmbedded(nil, EmbeddedOptions{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.ServeAPI(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeAPI: %v", err)
		}
		e.Close()
	})
	return NewExternal(ln.Addr().String(), ExternalOptions{})
}

// fixture is an echo server behind a proxy named "p".
type fixture struct {
	p     Proxies
	echo  *EchoServer
	proxy ProxyInfo
}

func newFixture(t *testing.T, im impl) *fixture {
	t.Helper()
	p := im.new(t)
	echo, err := NewEchoServer("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })
	info, err := p.Proxy(t.Context(), "p", "127.0.0.1:0", echo.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if !info.Enabled || info.Listen == "127.0.0.1:0" {
		t.Fatalf("proxy info = %+v, want enabled with a real port", info)
	}
	return &fixture{p: p, echo: echo, proxy: info}
}

// dial opens a connection through the proxy whose every read and write
// fails after 5 s, so a broken test ends instead of hanging.
func (f *fixture) dial(t *testing.T) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", f.proxy.Listen)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	return c.(*net.TCPConn)
}

func (f *fixture) add(t *testing.T, tx Toxic) {
	t.Helper()
	if err := f.p.AddToxic(t.Context(), "p", tx); err != nil {
		t.Fatal(err)
	}
}

func echoOnce(t *testing.T, c net.Conn, msg []byte) time.Duration {
	t.Helper()
	start := time.Now()
	if _, err := c.Write(msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
	return time.Since(start)
}

// readUntilClosed reads until the connection ends and returns what was read
// and the error that ended it.
func readUntilClosed(c net.Conn) ([]byte, error) {
	var buf bytes.Buffer
	_, err := io.Copy(&buf, c)
	if err == nil {
		err = io.EOF
	}
	return buf.Bytes(), err
}

func TestToxics(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 64) // 1 KiB
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			t.Run("latency", func(t *testing.T) {
				f := newFixture(t, im)
				c := f.dial(t)
				base := echoOnce(t, c, []byte("x"))
				f.add(t, Toxic{Name: "lag", Type: Latency, Attributes: map[string]int64{"latency": 100}})
				if d := echoOnce(t, c, []byte("y")); d < 90*time.Millisecond || d > 2*time.Second {
					t.Errorf("round trip with 100 ms latency = %v (without: %v)", d, base)
				}
			})
			t.Run("timeout blackholes and removal closes", func(t *testing.T) {
				f := newFixture(t, im)
				c := f.dial(t)
				echoOnce(t, c, []byte("x"))
				f.add(t, Toxic{Name: "hole", Type: Timeout, Stream: Upstream})
				if _, err := c.Write([]byte("lost")); err != nil {
					t.Fatal(err)
				}
				// Nothing may come back: this is the one assertion that has
				// to wait for something not to happen.
				_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				var b [1]byte
				if n, err := c.Read(b[:]); !errors.Is(err, syscall.ETIMEDOUT) && !isTimeout(err) {
					t.Fatalf("read through timeout toxic = %d, %v; want a deadline error", n, err)
				}
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if err := f.p.RemoveToxic(t.Context(), "p", "hole"); err != nil {
					t.Fatal(err)
				}
				if _, err := readUntilClosed(c); isTimeout(err) {
					t.Fatalf("connection still open 5 s after removing the timeout toxic")
				}
			})
			t.Run("timeout closes after its timeout", func(t *testing.T) {
				f := newFixture(t, im)
				f.add(t, Toxic{Name: "hole", Type: Timeout, Attributes: map[string]int64{"timeout": 100}})
				c := f.dial(t)
				start := time.Now()
				_, _ = c.Write([]byte("lost"))
				got, err := readUntilClosed(c)
				if isTimeout(err) || len(got) > 0 {
					t.Fatalf("read = %q, %v; want the connection closed with no data", got, err)
				}
				if d := time.Since(start); d < 80*time.Millisecond {
					t.Errorf("closed after %v, want ≥ 100 ms", d)
				}
			})
			t.Run("reset_peer resets new connections", func(t *testing.T) {
				f := newFixture(t, im)
				f.add(t, Toxic{Name: "rst", Type: ResetPeer, Stream: Upstream})
				c := f.dial(t)
				_, _ = c.Write([]byte("hello"))
				_, err := readUntilClosed(c)
				if !errors.Is(err, syscall.ECONNRESET) {
					t.Fatalf("read after reset_peer = %v, want ECONNRESET", err)
				}
			})
			t.Run("reset_peer closes older connections without RST", func(t *testing.T) {
				f := newFixture(t, im)
				c := f.dial(t)
				echoOnce(t, c, []byte("x"))
				f.add(t, Toxic{Name: "rst", Type: ResetPeer, Stream: Upstream})
				_, _ = c.Write([]byte("hello"))
				_, err := readUntilClosed(c)
				if isTimeout(err) || errors.Is(err, syscall.ECONNRESET) {
					t.Fatalf("read on a connection older than reset_peer = %v, want a plain close", err)
				}
			})
			t.Run("limit_data closes after N bytes", func(t *testing.T) {
				f := newFixture(t, im)
				f.add(t, Toxic{Name: "cap", Type: LimitData, Attributes: map[string]int64{"bytes": 10}})
				c := f.dial(t)
				if _, err := c.Write(payload[:64]); err != nil {
					t.Fatal(err)
				}
				got, err := readUntilClosed(c)
				if isTimeout(err) {
					t.Fatal("connection not closed after the limit")
				}
				if !bytes.Equal(got, payload[:10]) {
					t.Fatalf("received %q, want the first 10 bytes", got)
				}
			})
			t.Run("slicer delivers everything", func(t *testing.T) {
				f := newFixture(t, im)
				f.add(t, Toxic{Name: "slices", Type: Slicer, Attributes: map[string]int64{
					"average_size": 16, "size_variation": 8, "delay": 50}})
				c := f.dial(t)
				echoOnce(t, c, payload)
			})
			t.Run("bandwidth throttles", func(t *testing.T) {
				f := newFixture(t, im)
				c := f.dial(t)
				big := bytes.Repeat(payload, 5) // 5 KiB
				if d := echoOnce(t, c, big); d > 250*time.Millisecond {
					t.Logf("unthrottled 5 KiB round trip took %v (slow machine)", d)
				}
				f.add(t, Toxic{Name: "narrow", Type: Bandwidth, Attributes: map[string]int64{"rate": 10}})
				// 5 KiB at 10 KB/s is ~500 ms.
				if d := echoOnce(t, c, big); d < 300*time.Millisecond {
					t.Errorf("5 KiB at 10 KB/s took %v, want ≥ 300 ms", d)
				}
			})
			t.Run("slow_close delays the close", func(t *testing.T) {
				f := newFixture(t, im)
				f.add(t, Toxic{Name: "lingering", Type: SlowClose, Attributes: map[string]int64{"delay": 300}})
				c := f.dial(t)
				echoOnce(t, c, []byte("x"))
				start := time.Now()
				if err := c.CloseWrite(); err != nil {
					t.Fatal(err)
				}
				if _, err := readUntilClosed(c); isTimeout(err) {
					t.Fatal("never closed")
				}
				if d := time.Since(start); d < 250*time.Millisecond {
					t.Errorf("close arrived after %v, want ≥ 300 ms", d)
				}
			})
		})
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
