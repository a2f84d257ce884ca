//go:build !linux

package netpoll

import (
	"errors"
	"net"
	"net/netip"
)

// Poller is not available off Linux: New fails.
type Poller struct{}

// Conn is a connection on a loop (never made off Linux).
type Conn struct{}

var errUnsupported = errors.New("netpoll: epoll is Linux only")

func New(Config) (*Poller, error)                      { return nil, errUnsupported }
func (p *Poller) Close()                               {}
func (p *Poller) Add(net.Conn, Handler) (*Conn, error) { return nil, errUnsupported }
func (p *Poller) Dial(netip.AddrPort, netip.AddrPort, Connector) (*Conn, error) {
	return nil, errUnsupported
}
func (c *Conn) Write([]byte) error  { return errUnsupported }
func (c *Conn) Close() error        { return nil }
func (c *Conn) PauseReading() error { return nil }
