package chaos

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/stream"
)

// sourceProxy is an embedded proxy whose connections to the upstream leave
// from the client's own loopback address, so a gateway that limits
// connections per remote IP sees each client's address rather than the
// proxy's. Toxiproxy dials upstream with a plain net.Dial and offers no
// hook, so this proxy runs its own listener and accept loop and hands each
// connection pair to the Toxiproxy proxy's toxic collection, exactly as
// Toxiproxy's own loop does. The Toxiproxy proxy itself is registered but
// never started.
type sourceProxy struct {
	tp     *toxiproxy.Proxy
	server *toxiproxy.ApiServer

	mu      sync.Mutex
	ln      net.Listener
	listen  string
	conns   map[net.Conn]struct{} // both sides of every linked pair
	pruneAt int                   // prune closed conns when the map reaches this size
	done    chan struct{}         // closed when the accept loop has ended
}

func startSourceProxy(server *toxiproxy.ApiServer, tp *toxiproxy.Proxy, listen string) (*sourceProxy, error) {
	sp := &sourceProxy{tp: tp, server: server, listen: listen, conns: map[net.Conn]struct{}{}, pruneAt: 1024}
	if err := sp.start(); err != nil {
		return nil, err
	}
	// Toxiproxy labels its links with the proxy's listen address; set it
	// before any link exists.
	tp.Lock()
	tp.Listen = sp.listen
	tp.Unlock()
	return sp, nil
}

func (sp *sourceProxy) info() ProxyInfo {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return ProxyInfo{Name: sp.tp.Name, Listen: sp.listen, Upstream: sp.tp.Upstream, Enabled: sp.ln != nil}
}

// start listens (again) on the proxy's address. Starting a started proxy is
// a no-op.
func (sp *sourceProxy) start() error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", sp.listen)
	if err != nil {
		return err
	}
	sp.ln = ln
	sp.listen = ln.Addr().String()
	sp.done = make(chan struct{})
	go sp.accept(ln, sp.done)
	return nil
}

// stop closes the listener and every connection (FIN), and waits for the
// accept loop. Stopping a stopped proxy is a no-op.
func (sp *sourceProxy) stop() {
	sp.mu.Lock()
	ln, done := sp.ln, sp.done
	sp.ln = nil
	if ln != nil {
		ln.Close()
	}
	sp.mu.Unlock()
	if ln == nil {
		return
	}
	<-done
	sp.mu.Lock()
	for c := range sp.conns {
		c.Close()
	}
	clear(sp.conns)
	sp.mu.Unlock()
}

func (sp *sourceProxy) accept(ln net.Listener, done chan struct{}) {
	defer close(done)
	for {
		client, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				sp.tp.Logger.Warn().Err(err).Msg("Error while accepting client")
			}
			return
		}
		upstream, err := dialFrom(client.RemoteAddr(), sp.tp.Upstream)
		if err != nil {
			sp.tp.Logger.Err(err).Str("client", client.RemoteAddr().String()).
				Msg("Unable to open connection to upstream")
			client.Close()
			continue
		}
		sp.mu.Lock()
		if sp.ln != ln { // stopped while dialling
			sp.mu.Unlock()
			client.Close()
			upstream.Close()
			return
		}
		sp.conns[client] = struct{}{}
		sp.conns[upstream] = struct{}{}
		if len(sp.conns) >= sp.pruneAt {
			sp.pruneLocked()
		}
		sp.mu.Unlock()
		name := client.RemoteAddr().String()
		sp.tp.Toxics.StartLink(sp.server, name+"upstream", client, upstream, stream.Upstream)
		sp.tp.Toxics.StartLink(sp.server, name+"downstream", upstream, client, stream.Downstream)
	}
}

// pruneLocked forgets connections the links have closed. Toxiproxy's links
// close them without telling us; a closed conn fails SetReadDeadline with
// net.ErrClosed (live ones have no deadline, so clearing it is harmless).
func (sp *sourceProxy) pruneLocked() {
	for c := range sp.conns {
		if err := c.SetReadDeadline(time.Time{}); errors.Is(err, net.ErrClosed) {
			delete(sp.conns, c)
		}
	}
	sp.pruneAt = max(1024, 2*len(sp.conns))
}

// dialFrom connects to upstream from the client's IP when that IP is a
// loopback address (every 127/8 address is local, so it can be bound), and
// from the default address otherwise or when that fails (an IPv6
// upstream, say).
func dialFrom(client net.Addr, upstream string) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if ta, ok := client.(*net.TCPAddr); ok && ta.IP.IsLoopback() {
		bound := d
		bound.LocalAddr = &net.TCPAddr{IP: ta.IP}
		if c, err := bound.Dial("tcp", upstream); err == nil {
			return c, nil
		}
	}
	c, err := d.Dial("tcp", upstream)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", upstream, err)
	}
	return c, nil
}
