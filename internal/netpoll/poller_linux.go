//go:build linux

package netpoll

import (
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Poller is a set of epoll loops. Close it to stop them.
type Poller struct {
	cfg   Config
	loops []*loop
	next  uint32
	mu    sync.Mutex
	wg    sync.WaitGroup
	done  bool
}

// New starts a Poller.
func New(cfg Config) (*Poller, error) {
	cfg.Loops = max(cfg.Loops, 1)
	if cfg.ReadBuffer <= 0 {
		cfg.ReadBuffer = 64 << 10
	}
	if cfg.MaxQueued <= 0 {
		cfg.MaxQueued = 1 << 20
	}
	p := &Poller{cfg: cfg}
	for range cfg.Loops {
		l, err := newLoop(p)
		if err != nil {
			p.Close()
			return nil, err
		}
		p.loops = append(p.loops, l)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			l.run()
		}()
	}
	return p, nil
}

// Close stops the loops: every connection still open is closed (its Handler's Closed is called
// with ErrClosed) and Close returns once the loops ended.
func (p *Poller) Close() {
	p.mu.Lock()
	done := p.done
	p.done = true
	p.mu.Unlock()
	if !done {
		for _, l := range p.loops {
			l.wake()
		}
	}
	p.wg.Wait()
}

// Add takes over nc (a *net.TCPConn, or anything with a socket underneath): its descriptor moves
// to a loop and nc itself is closed. Bytes nc's reader already buffered are the caller's to handle
// before Add. From then on h receives the connection's events.
func (p *Poller) Add(nc net.Conn, h Handler) (*Conn, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("netpoll: %T has no descriptor", nc)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var derr error
	if err := raw.Control(func(s uintptr) {
		fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("netpoll: dup: %w", derr)
	}
	// The copy shares the socket (and its non-blocking mode); closing nc takes the original
	// descriptor out of the runtime's poller.
	nc.Close()
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return p.place(fd, h, false)
}

// place puts descriptor fd on the next loop as a connection served by h, connecting (opened by
// Dial, registered for the connect's end) or not; on failure fd is closed. The registration
// happens under p.mu: a Close that follows finds the connection in its loop.
func (p *Poller) place(fd int, h Handler, connecting bool) (*Conn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		unix.Close(fd)
		return nil, ErrClosed
	}
	l := p.loops[int(p.next)%len(p.loops)]
	p.next++
	c := &Conn{fd: fd, l: l, h: h, connecting: connecting}
	ev := events(false, false)
	if connecting {
		ev = unix.EPOLLOUT | unix.EPOLLRDHUP // writability says the connect is over, either way (SO_ERROR tells which)
	}
	if err := l.register(c, ev); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return c, nil
}

// Dial opens a TCP connection to raddr from laddr (any address and port when laddr is not
// valid; an address without a port binds the address only) without blocking: the socket is made,
// bound and connected at once, and its loop calls h.Connected when the connect completes, or
// h.Closed with the connect's error. Bytes written before then are queued and sent once
// connected. Dial's own error (the socket, bind or connect call failing at once) leaves nothing
// behind and calls no Handler method. The socket has TCP_NODELAY set, as Go's dialer sets it.
func (p *Poller) Dial(laddr, raddr netip.AddrPort, h Connector) (*Conn, error) {
	family, rsa := sockaddr(raddr)
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	fail := func(call string, err error) (*Conn, error) {
		unix.Close(fd)
		return nil, os.NewSyscallError(call, err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		return fail("setsockopt", err)
	}
	if laddr.Addr().IsValid() {
		_, lsa := sockaddr(laddr)
		if err := unix.Bind(fd, lsa); err != nil {
			return fail("bind", err)
		}
	}
	if err := unix.Connect(fd, rsa); err != nil && err != unix.EINPROGRESS && err != unix.EINTR {
		return fail("connect", err)
	}
	return p.place(fd, h, true)
}

// sockaddr is ap as a socket address, with its family.
func sockaddr(ap netip.AddrPort) (int, unix.Sockaddr) {
	a := ap.Addr().Unmap()
	if a.Is4() {
		return unix.AF_INET, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}
	}
	return unix.AF_INET6, &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
}

// Conn is a connection on a loop.
type Conn struct {
	fd int
	l  *loop
	h  Handler

	mu      sync.Mutex
	out     []byte // bytes waiting for the socket to be writable
	closing bool   // Close was called (or the loop is ending it)
	closed  bool   // the descriptor is closed
	paused  bool   // not reading: only the peer's close is watched
	wantOut bool   // registered for writability
	// connecting: opened by Dial, its connect not yet over; writes are queued. Set by Dial and
	// cleared on the loop, under mu.
	connecting bool
}

// Write sends b without blocking: what the socket does not take now is queued and written when it
// can be. It fails once the connection is closing, or with ErrQueueFull when the queue is over its
// bound (nothing of b is queued then).
func (c *Conn) Write(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing || c.closed {
		return ErrClosed
	}
	if len(c.out) > 0 || c.connecting {
		if len(c.out)+len(b) > c.l.p.cfg.MaxQueued {
			return ErrQueueFull
		}
		c.out = append(c.out, b...)
		return nil
	}
	b, err := writeSome(c.fd, b)
	if err != nil {
		return err
	}
	if len(b) == 0 {
		return nil
	}
	if len(b) > c.l.p.cfg.MaxQueued {
		return ErrQueueFull
	}
	c.out = append(c.out[:0], b...)
	return c.l.modLocked(c, true)
}

// Queued is the number of bytes waiting for the socket.
func (c *Conn) Queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.out)
}

// Close ends the connection: the socket is shut down at once (the peer sees FIN; queued bytes are
// dropped) and the loop then closes it and calls the Handler's Closed with ErrClosed.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing || c.closed {
		return nil
	}
	c.closing = true
	c.out = nil
	if c.connecting {
		// A socket still connecting has nothing to shut down (and no event may come for it for
		// minutes): the loop is asked to end it.
		c.l.requestFinish(c)
		return nil
	}
	// SHUT_RDWR makes the socket readable (EOF) and hung up: the loop wakes for it even when the
	// connection's reading is paused.
	return unix.Shutdown(c.fd, unix.SHUT_RDWR)
}

// PauseReading stops reading the connection for good: what the peer sends stays in the socket,
// and the connection ends (Closed) when the peer closes or resets it, or on Close.
func (c *Conn) PauseReading() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing || c.closed || c.paused {
		return nil
	}
	c.paused = true
	return c.l.modLocked(c, c.wantOut)
}

// LocalAddr and RemoteAddr are the socket's addresses (nil once it is closed).
func (c *Conn) LocalAddr() net.Addr { return c.addr(unix.Getsockname) }

func (c *Conn) RemoteAddr() net.Addr { return c.addr(unix.Getpeername) }

func (c *Conn) addr(get func(int) (unix.Sockaddr, error)) net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	sa, err := get(c.fd)
	if err != nil {
		return nil
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	}
	return nil
}

// loop is one epoll instance and its goroutine.
type loop struct {
	p     *Poller
	epfd  int
	wakeR int // eventfd that wakes the loop to stop
	buf   []byte

	mu      sync.Mutex
	conns   map[int]*Conn // by descriptor
	toClose []*Conn       // connections Close asked the loop to end (requestFinish)
}

// requestFinish asks the loop to end c (closed while connecting) and wakes it.
func (l *loop) requestFinish(c *Conn) {
	l.mu.Lock()
	l.toClose = append(l.toClose, c)
	l.mu.Unlock()
	l.wake()
}

// woken serves a wake-up of the loop: it reports whether the Poller is closing; otherwise it
// ends the connections requestFinish queued.
func (l *loop) woken() bool {
	var b [8]byte
	_, _ = unix.Read(l.wakeR, b[:])
	l.p.mu.Lock()
	done := l.p.done
	l.p.mu.Unlock()
	if done {
		return true
	}
	l.mu.Lock()
	cs := l.toClose
	l.toClose = nil
	l.mu.Unlock()
	for _, c := range cs {
		l.finish(c, ErrClosed)
	}
	return false
}

func newLoop(p *Poller) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("netpoll: epoll_create: %w", err)
	}
	// Non-blocking, so that os.NewFile registers it with the runtime's poller (run).
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("netpoll: %w", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("netpoll: eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd)}); err != nil {
		unix.Close(epfd)
		unix.Close(efd)
		return nil, err
	}
	return &loop{p: p, epfd: epfd, wakeR: efd, buf: make([]byte, p.cfg.ReadBuffer), conns: map[int]*Conn{}}, nil
}

func (l *loop) wake() {
	var one [8]byte
	one[0] = 1
	_, _ = unix.Write(l.wakeR, one[:])
}

// events is the epoll mask of a connection.
func events(paused, out bool) uint32 {
	ev := uint32(unix.EPOLLRDHUP)
	if !paused {
		ev |= unix.EPOLLIN
	}
	if out {
		ev |= unix.EPOLLOUT
	}
	return ev
}

// register puts c in the loop's set with the epoll mask ev.
func (l *loop) register(c *Conn, ev uint32) error {
	l.mu.Lock()
	l.conns[c.fd] = c
	l.mu.Unlock()
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, c.fd, &unix.EpollEvent{Events: ev, Fd: int32(c.fd)}); err != nil {
		l.mu.Lock()
		delete(l.conns, c.fd)
		l.mu.Unlock()
		return fmt.Errorf("netpoll: epoll_ctl add: %w", err)
	}
	return nil
}

// modLocked sets c's registration (c.mu held).
func (l *loop) modLocked(c *Conn, out bool) error {
	c.wantOut = out
	return unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: events(c.paused, out), Fd: int32(c.fd)})
}

func (l *loop) run() {
	// The epoll set is itself parked in the runtime's poller (an epoll descriptor is readable while
	// any of its members is ready): the loop's goroutine waits like any network goroutine instead
	// of holding a thread in epoll_wait, which would keep the scheduler's monitor spinning.
	defer unix.Close(l.wakeR)
	var stopErr error
	stop := func(err error) bool {
		stopErr = err
		return true
	}
	evs := make([]unix.EpollEvent, 256)
	serve := func(uintptr) bool {
		for {
			n, err := unix.EpollWait(l.epfd, evs, 0)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return stop(err)
			}
			if n == 0 {
				return false // nothing ready: park until the set is readable
			}
			for i := range n {
				fd := int(evs[i].Fd)
				if fd == l.wakeR {
					if l.woken() {
						return stop(ErrClosed)
					}
					continue
				}
				l.mu.Lock()
				c := l.conns[fd]
				l.mu.Unlock()
				if c != nil {
					l.handle(c, evs[i].Events)
				}
			}
		}
	}
	f := os.NewFile(uintptr(l.epfd), "epoll")
	defer f.Close()
	raw, err := f.SyscallConn()
	if err == nil {
		err = raw.Read(serve)
	}
	if stopErr == nil {
		stopErr = err
	}
	l.closeAll(stopErr)
}

// connected ends c's connect (an event came for it): on success c is registered for reading (and
// for writing, if bytes are queued) and its Handler's Connected is called; it reports whether c
// is still open.
func (l *loop) connected(c *Conn) bool {
	var err error
	if e, gerr := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR); gerr != nil {
		err = os.NewSyscallError("getsockopt", gerr)
	} else if e != 0 {
		err = os.NewSyscallError("connect", unix.Errno(e))
	}
	c.mu.Lock()
	c.connecting = false
	closing := c.closing
	if err == nil && !closing {
		err = l.modLocked(c, len(c.out) > 0)
	}
	c.mu.Unlock()
	if closing {
		l.finish(c, ErrClosed)
		return false
	}
	if err != nil {
		l.finish(c, err)
		return false
	}
	c.h.(Connector).Connected(c)
	return true
}

// handle serves one event of c.
func (l *loop) handle(c *Conn, ev uint32) {
	c.mu.Lock()
	connecting := c.connecting
	c.mu.Unlock()
	if connecting {
		if !l.connected(c) {
			return
		}
		ev &^= unix.EPOLLOUT // the queue, if any, waits for the next writability
	}
	if ev&unix.EPOLLOUT != 0 {
		l.flush(c)
	}
	c.mu.Lock()
	closing, paused := c.closing, c.paused
	c.mu.Unlock()
	if closing {
		l.finish(c, ErrClosed)
		return
	}
	if !paused && ev&^uint32(unix.EPOLLOUT) != 0 {
		// Read what is there (level-triggered: more comes with the next wait); a peer's close
		// after its data is read as EOF.
		for range 4 {
			n, err := unix.Read(c.fd, l.buf)
			if err == unix.EINTR {
				continue
			}
			if err == unix.EAGAIN {
				break
			}
			if err != nil {
				l.finish(c, err)
				return
			}
			if n == 0 {
				l.finish(c, io.EOF)
				return
			}
			c.h.Data(c, l.buf[:n])
			c.mu.Lock()
			closing, paused = c.closing, c.paused
			c.mu.Unlock()
			if closing {
				l.finish(c, ErrClosed)
				return
			}
			if paused || n < len(l.buf) {
				break
			}
		}
		return
	}
	if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		err := error(io.EOF)
		if ev&unix.EPOLLERR != 0 {
			if e, gerr := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR); gerr == nil && e != 0 {
				err = unix.Errno(e)
			}
		}
		l.finish(c, err)
	}
}

// writeSome writes b to the non-blocking socket fd until it is all written or the socket is full;
// it returns what is left.
func writeSome(fd int, b []byte) ([]byte, error) {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		switch err {
		case nil:
			b = b[n:]
		case unix.EINTR:
		case unix.EAGAIN:
			return b, nil
		default:
			return b, err
		}
	}
	return b, nil
}

// flush writes c's queue as far as the socket takes it.
func (l *loop) flush(c *Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing || c.closed {
		return
	}
	rest, err := writeSome(c.fd, c.out)
	if err == nil && len(rest) > 0 {
		c.out = rest // the socket is full again: wait for the next writability
		return
	}
	// Everything went, or the socket failed (its read side reports the end).
	c.out = nil
	_ = l.modLocked(c, false)
}

// finish takes c out of the loop, closes its descriptor and tells its Handler (once).
func (l *loop) finish(c *Conn, err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if c.closing {
		err = ErrClosed
	}
	c.closed, c.closing = true, true
	c.out = nil
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	l.mu.Lock()
	delete(l.conns, c.fd)
	l.mu.Unlock()
	unix.Close(c.fd)
	c.mu.Unlock()
	c.h.Closed(c, err)
}

// closeAll ends every connection of the loop (the Poller is closing).
func (l *loop) closeAll(err error) {
	l.mu.Lock()
	cs := slices.Collect(maps.Values(l.conns))
	l.mu.Unlock()
	for _, c := range cs {
		l.finish(c, err)
	}
}
