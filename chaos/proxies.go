package chaos

import (
	"context"
	"errors"
)

// Proxies controls a set of Toxiproxy proxies. [Embedded] and [External]
// implement it; the timeline [Runner] consumes it.
type Proxies interface {
	// Proxy creates and enables a proxy named name that listens on listen
	// (host:port; port 0 picks a free one) and forwards to upstream. It
	// returns the proxy with its actual listen address. A name already in use
	// is ErrProxyExists.
	Proxy(ctx context.Context, name, listen, upstream string) (ProxyInfo, error)
	// DeleteProxy stops a proxy, closes its connections and forgets it.
	DeleteProxy(ctx context.Context, proxy string) error
	// AddToxic adds t to proxy. It applies to the proxy's open connections
	// and to new ones (subject to t.Toxicity).
	AddToxic(ctx context.Context, proxy string, t Toxic) error
	// RemoveToxic removes the toxic named toxic from proxy.
	RemoveToxic(ctx context.Context, proxy, toxic string) error
	// Toxics lists the toxics on proxy.
	Toxics(ctx context.Context, proxy string) ([]Toxic, error)
	// Disable stops the proxy: every connection on it is closed (FIN) and new
	// dials are refused. Toxics are kept.
	Disable(ctx context.Context, proxy string) error
	// Enable listens again on the same address after Disable.
	Enable(ctx context.Context, proxy string) error
}

// ProxyInfo describes a proxy.
type ProxyInfo struct {
	Name     string `json:"name"`
	Listen   string `json:"listen"` // actual host:port clients dial
	Upstream string `json:"upstream"`
	Enabled  bool   `json:"enabled"`
}

// Errors both implementations return (wrapped) so callers can branch with
// errors.Is.
var (
	ErrProxyNotFound = errors.New("proxy not found")
	ErrProxyExists   = errors.New("proxy already exists")
	ErrToxicNotFound = errors.New("toxic not found")
	ErrToxicExists   = errors.New("toxic already exists")
)

var (
	_ Proxies = (*Embedded)(nil)
	_ Proxies = (*External)(nil)
)
