package chaos

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"
)

// EchoServer is a TCP server on loopback that writes back whatever it
// reads. It is the reference upstream for overhead measurements and tests.
type EchoServer struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// NewEchoServer listens on addr ("127.0.0.1:0" if empty) and serves until
// Close.
func NewEchoServer(addr string) (*EchoServer, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("chaos: echo server: %w", err)
	}
	s := &EchoServer{ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr is the address the server listens on.
func (s *EchoServer) Addr() string { return s.ln.Addr().String() }

func (s *EchoServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.conns == nil { // closed
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_, _ = io.Copy(c, c)
			c.Close()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Close stops the server, closes its connections and waits for its
// goroutines.
func (s *EchoServer) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.conns = nil
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// RTTStats summarises round-trip times.
type RTTStats struct {
	N   int           `json:"n"`
	Min time.Duration `json:"min_ns"`
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
}

func summarise(samples []time.Duration) RTTStats {
	if len(samples) == 0 {
		return RTTStats{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	q := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.5) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return RTTStats{N: len(s), Min: s[0], P50: q(0.50), P99: q(0.99), Max: s[len(s)-1]}
}

// rttConn times round trips of a fixed payload on one connection.
type rttConn struct {
	c       net.Conn
	payload []byte
	buf     []byte
}

func dialRTT(ctx context.Context, addr string, size int) (*rttConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	p := make([]byte, size)
	_, _ = rand.Read(p)
	return &rttConn{c: c, payload: p, buf: make([]byte, size)}, nil
}

func (r *rttConn) roundTrip() (time.Duration, error) {
	start := time.Now()
	if _, err := r.c.Write(r.payload); err != nil {
		return 0, err
	}
	if _, err := io.ReadFull(r.c, r.buf); err != nil {
		return 0, err
	}
	d := time.Since(start)
	if !bytes.Equal(r.buf, r.payload) {
		return 0, errors.New("echo returned different bytes")
	}
	return d, nil
}

// MeasureRTT opens one TCP connection to addr, which must echo what it
// receives, and times n round trips of a size-byte payload (64 if size ≤ 0).
func MeasureRTT(ctx context.Context, addr string, n, size int) (RTTStats, error) {
	if size <= 0 {
		size = 64
	}
	r, err := dialRTT(ctx, addr, size)
	if err != nil {
		return RTTStats{}, fmt.Errorf("chaos: measure rtt to %s: %w", addr, err)
	}
	defer r.c.Close()
	stop := context.AfterFunc(ctx, func() { r.c.Close() })
	defer stop()
	samples := make([]time.Duration, 0, n)
	for range n {
		d, err := r.roundTrip()
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return summarise(samples), fmt.Errorf("chaos: measure rtt to %s: %w", addr, err)
		}
		samples = append(samples, d)
	}
	return summarise(samples), nil
}

// Overhead is what a Toxiproxy proxy without toxics adds to a loopback
// round trip.
type Overhead struct {
	Direct  RTTStats `json:"direct"`
	Proxied RTTStats `json:"proxied"`
	// AddedP50 and AddedP99 are Proxied minus Direct at that percentile;
	// noise can make them slightly negative.
	AddedP50 time.Duration `json:"added_p50_ns"`
	AddedP99 time.Duration `json:"added_p99_ns"`
}

// MeasureOverhead starts an echo server on loopback, puts a temporary proxy
// of p in front of it, and times n round trips of a 64-byte payload directly
// and n through the proxy, alternating so that both see the same machine
// load. The proxy and the echo server are removed before it returns.
func MeasureOverhead(ctx context.Context, p Proxies, n int) (Overhead, error) {
	echo, err := NewEchoServer("")
	if err != nil {
		return Overhead{}, err
	}
	defer echo.Close()
	var id [4]byte
	_, _ = rand.Read(id[:])
	name := "squall-overhead-" + hex.EncodeToString(id[:])
	info, err := p.Proxy(ctx, name, "127.0.0.1:0", echo.Addr())
	if err != nil {
		return Overhead{}, fmt.Errorf("chaos: measure overhead: %w", err)
	}
	defer p.DeleteProxy(context.WithoutCancel(ctx), name)

	direct, err := dialRTT(ctx, echo.Addr(), 64)
	if err != nil {
		return Overhead{}, fmt.Errorf("chaos: measure overhead: %w", err)
	}
	defer direct.c.Close()
	proxied, err := dialRTT(ctx, info.Listen, 64)
	if err != nil {
		return Overhead{}, fmt.Errorf("chaos: measure overhead: %w", err)
	}
	defer proxied.c.Close()
	stop := context.AfterFunc(ctx, func() { direct.c.Close(); proxied.c.Close() })
	defer stop()

	// A few unrecorded round trips warm both paths up (goroutines started,
	// buffers allocated).
	for range 10 {
		if _, err := direct.roundTrip(); err != nil {
			return Overhead{}, fmt.Errorf("chaos: measure overhead: direct: %w", err)
		}
		if _, err := proxied.roundTrip(); err != nil {
			return Overhead{}, fmt.Errorf("chaos: measure overhead: proxied: %w", err)
		}
	}
	ds := make([]time.Duration, 0, n)
	ps := make([]time.Duration, 0, n)
	for range n {
		d, err := direct.roundTrip()
		if err != nil {
			return Overhead{}, fmt.Errorf("chaos: measure overhead: direct: %w", err)
		}
		ds = append(ds, d)
		d, err = proxied.roundTrip()
		if err != nil {
			return Overhead{}, fmt.Errorf("chaos: measure overhead: proxied: %w", err)
		}
		ps = append(ps, d)
	}
	o := Overhead{Direct: summarise(ds), Proxied: summarise(ps)}
	o.AddedP50 = o.Proxied.P50 - o.Direct.P50
	o.AddedP99 = o.Proxied.P99 - o.Direct.P99
	return o, nil
}
