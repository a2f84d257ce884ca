package loadgen

// Connection attempts carried by the run's poller from their first system call: the socket is
// connected without blocking (netpoll.Poller.Dial), the upgrade request written once the connect
// is over, and the answer's head read as it arrives, on the loop; the connection then stays where
// it is as the client's WebSocket. Nothing waits for the attempt: no goroutine, no deadline timer
// of the runtime's, no copy of the socket for the poller. A plain WebSocket (no transport ladder)
// to a ws:// URL whose host is an IP address goes this way; other attempts dial on a goroutine
// (connect: gorilla's dialer, or dialUpgrade and the poller's Add).

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/squall-dev/squall/internal/netpoll"
	"github.com/squall-dev/squall/loadgen/stats"
)

// handshakeTimeout bounds a connection attempt, connect and upgrade, on every path.
const handshakeTimeout = 10 * time.Second

// pollerDialAddr is the address an attempt on the poller connects to: dialURL's host and port
// (the scheme's port when none), when the host is an IP address; false for a name, which needs a
// resolver the loop must not wait for.
func pollerDialAddr(dialURL string) (netip.AddrPort, bool) {
	rest, ok := strings.CutPrefix(dialURL, "ws://")
	if !ok {
		return netip.AddrPort{}, false
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if strings.ContainsRune(rest, '@') {
		return netip.AddrPort{}, false
	}
	if ap, err := netip.ParseAddrPort(rest); err == nil {
		return ap, ap.Addr().Zone() == "" // a zone comes URL-escaped: the goroutine path reads it
	}
	host := strings.TrimSuffix(strings.TrimPrefix(rest, "["), "]")
	if a, err := netip.ParseAddr(host); err == nil && a.Zone() == "" {
		return netip.AddrPortFrom(a, 80), true
	}
	return netip.AddrPort{}, false
}

// dialsOnPoller reports whether c's next attempt runs on the run's poller from its start.
func (c *client) dialsOnPoller() bool {
	env := c.env
	if env.poller == nil || c.currentTier(c.behaviour()) != "" {
		return false
	}
	_, ok := pollerDialAddr(env.endpoint(int(c.index)).URL)
	return ok
}

// pollerDial is the state of an attempt on the poller until its upgrade is answered. Its fields
// belong to the connection's loop (the epollConn's readMu), but for timedOut.
type pollerDial struct {
	gen       uint32
	reconnect bool
	start     time.Time
	deadline  time.Time
	key       [24]byte
	req       []byte  // the request, until it is written
	buf       *[]byte // the request's and then the answer's buffer (pooled)
	answer    upgradeAnswer
	timedOut  bool
	laddr     netip.AddrPort // the source address asked for (not valid: any)
	raddr     netip.AddrPort
}

// dialOnPoller starts attempt gen of c (started at start) to raddr with the upgrade request for
// dialURL and hdr, from di's source address. The attempt holds a dial slot and a count of the
// run's wait group until it ends (pollerDialEnded).
func (c *client) dialOnPoller(gen uint32, reconnect bool, start time.Time, dialURL string, raddr netip.AddrPort, hdr http.Header, di dialInfo) {
	env := c.env
	pd := &pollerDial{gen: gen, reconnect: reconnect, start: start, deadline: start.Add(handshakeTimeout), raddr: raddr}
	newChallengeKey(&pd.key)
	pd.answer = upgradeAnswer{key: &pd.key, offered: hdr["Sec-Websocket-Protocol"]}
	u, err := url.Parse(dialURL)
	if err == nil {
		pd.buf = handshakeBufs.Get().(*[]byte)
		pd.req, err = appendUpgradeRequest((*pd.buf)[:0], u, hdr, pd.key[:])
		*pd.buf = pd.req[:0]
		pd.answer.buf = pd.req[:0] // the answer is read into the same buffer once the request is sent
	}
	if err != nil {
		c.pollerDialFailed(pd, nil, err)
		return
	}
	if di.addr.IsValid() && (!di.addr.IsLoopback() || raddr.Addr().IsLoopback()) {
		// As the goroutine dialer: a loopback source address only reaches loopback.
		pd.laddr = netip.AddrPortFrom(di.addr, 0)
	}
	pc := &epollConn{cl: c, dial: pd, rc: readCtx{gen: gen, reconnect: reconnect, first: true}}
	pc.rc.cs = &pc.cs
	pc.emit = pc.event
	env.wg.Add(1) // until the attempt ends
	pc.readMu.Lock()
	defer pc.readMu.Unlock()
	pn, err := env.poller.Dial(pd.laddr, raddr, pc)
	if err != nil {
		pc.dial = nil
		c.pollerDialFailed(pd, nil, pd.opError(err))
		env.wg.Done()
		return
	}
	pc.nc = pn
	env.dials.add(pc)
	if env.ctx.Err() != nil {
		// The run ended meanwhile, perhaps after the watcher's last look: the attempt ends now.
		pn.Close()
	}
}

// opError is err, a system call's, as Go's dialer reports it: "dial tcp ADDR: connect: ...".
func (pd *pollerDial) opError(err error) error {
	return &net.OpError{Op: "dial", Net: "tcp", Source: tcpAddr(pd.laddr), Addr: tcpAddr(pd.raddr), Err: err}
}

// tcpAddr is ap as a *net.TCPAddr (nil when ap is not valid).
func tcpAddr(ap netip.AddrPort) net.Addr {
	if !ap.IsValid() {
		return nil
	}
	return net.TCPAddrFromAddrPort(ap)
}

// Connected is the poller's: the connect is over, the request goes out.
func (pc *epollConn) Connected(pn *netpoll.Conn) {
	pc.readMu.Lock()
	defer pc.readMu.Unlock()
	pd := pc.dial
	if pd == nil {
		return
	}
	pc.cl.record(stats.HistConnect, time.Since(pd.start))
	err := pn.Write(pd.req)
	pd.req = nil
	if err != nil {
		pc.dialEnd(nil, pd.opError(err))
	}
}

// dialData takes bytes of the gateway's answer to the upgrade (readMu held): a valid 101 ends the
// attempt with the connection open, and what followed its head is handled as the connection's
// first bytes; a refusal or a malformed answer fails it (upgradeAnswer).
func (pc *epollConn) dialData(b []byte) {
	done, rest, resp, err := pc.dial.answer.feed(b)
	if !done {
		return
	}
	pc.dialEnd(resp, err)
	if err == nil && rest != nil && pc.live {
		pc.feed(rest)
	}
}

// dialClosed ends the attempt of a connection that ended before its upgrade was answered
// (readMu held): err is the connect's error, or how the socket ended.
func (pc *epollConn) dialClosed(err error) {
	pd := pc.dial
	env := pc.cl.env
	switch {
	case pd.timedOut:
		err = context.DeadlineExceeded
	case env.ctx.Err() != nil:
		err = env.ctx.Err()
	case pd.answer.status != 0 || errors.Is(err, io.EOF):
		pc.dialEnd(pd.answer.end(err))
		return
	default:
		err = pd.opError(err) // the connect's error, or the socket's
	}
	pc.dialEnd(nil, err)
}

// dialEnd ends the attempt (readMu held): with err nil, the connection becomes the client's
// WebSocket; otherwise it is closed and the failure handled as any attempt's (resp: the refusal).
func (pc *epollConn) dialEnd(resp *http.Response, err error) {
	pd := pc.dial
	pc.dial = nil
	c := pc.cl
	env := c.env
	env.dials.remove(pc)
	*pd.buf = pd.answer.buf[:0]
	putHandshakeBuf(pd.buf)
	pd.buf = nil
	pd.answer.buf = nil
	defer func() {
		env.releaseDial()
		env.wg.Done()
	}()
	if err != nil {
		pc.nc.Close()
		c.pollerDialFailed(pd, resp, err)
		return
	}
	upgraded := time.Now()
	c.record(stats.HistUpgrade, upgraded.Sub(pd.start))
	pc.rc.upgraded = upgraded
	if !c.open(pc, pd.gen, upgraded) {
		return
	}
	pc.live = true
	env.wg.Add(1) // until the connection's end is handled (end)
	env.proto.opened(c, pd.gen, upgraded)
}

// pollerDialFailed handles the failure of attempt pd (resp: the gateway's refusal).
func (c *client) pollerDialFailed(pd *pollerDial, resp *http.Response, err error) {
	if pd.buf != nil {
		putHandshakeBuf(pd.buf)
		pd.buf = nil
	}
	c.dialFailed(pd.gen, resp, err)
}

// pollerDials are the attempts in progress on the poller: a watcher ends those past their
// deadline, and every one when the run ends.
type pollerDials struct {
	mu  sync.Mutex
	set map[*epollConn]struct{}
}

func (d *pollerDials) add(pc *epollConn) {
	d.mu.Lock()
	if d.set == nil {
		d.set = map[*epollConn]struct{}{}
	}
	d.set[pc] = struct{}{}
	d.mu.Unlock()
}

func (d *pollerDials) remove(pc *epollConn) {
	d.mu.Lock()
	delete(d.set, pc)
	d.mu.Unlock()
}

// dialWatchEvery is how often the attempts on the poller are checked against their deadline.
const dialWatchEvery = 100 * time.Millisecond

// watch closes the attempts past their deadline, every dialWatchEvery, until ctx ends, and then
// every attempt left; a closed attempt's end comes from the poller (dialClosed).
func (d *pollerDials) watch(ctx context.Context) {
	t := time.NewTicker(dialWatchEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			d.closeWhere(func(*epollConn) bool { return true })
			return
		case now := <-t.C:
			d.closeWhere(func(pc *epollConn) bool {
				if pc.dial == nil || now.Before(pc.dial.deadline) {
					return false
				}
				pc.dial.timedOut = true
				return true
			})
		}
	}
}

// closeWhere closes the attempts for which pick says so (pick runs under each one's readMu).
func (d *pollerDials) closeWhere(pick func(*epollConn) bool) {
	d.mu.Lock()
	pcs := make([]*epollConn, 0, len(d.set))
	for pc := range d.set {
		pcs = append(pcs, pc)
	}
	d.mu.Unlock()
	for _, pc := range pcs {
		pc.readMu.Lock()
		closing := pc.dial != nil && pick(pc)
		pc.readMu.Unlock()
		if closing {
			pc.nc.Close()
		}
	}
}
