package refserver

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	proxyproto "github.com/pires/go-proxyproto"
)

// Behind a proxy. Without Config.TrustedProxies the client address of a request is its TCP peer.
// With it, a peer inside one of the trusted networks is a proxy, and the client address comes from
// what it says:
//
//   - the PROXY protocol, v1 (text) or v2 (binary), as HAProxy sends it (send-proxy,
//     send-proxy-v2): a header at the start of the TCP connection, read by go-proxyproto before the
//     HTTP server sees a byte. It is optional from a trusted peer and never read from another (an
//     untrusted peer's PROXY header is not HTTP: 400);
//   - X-Forwarded-For, as nginx sends it (proxy_add_x_forwarded_for): the rightmost address that is
//     not itself a trusted proxy is the client (the hops to its left were written by the client and
//     prove nothing).
//
// The client address is what the per-IP limits count, what logs show, and what the admin endpoint's
// loopback check looks at. The per-IP TCP cap (httpguard.go) does not count trusted peers.

// trustedNets is the parsed Config.TrustedProxies. The zero value trusts no one.
type trustedNets []netip.Prefix

// parseTrustedProxies reads CIDR prefixes ("10.0.0.0/8") and single addresses ("127.0.0.1").
func parseTrustedProxies(list []string) (trustedNets, error) {
	var out trustedNets
	for _, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR prefix (10.0.0.0/8) nor an IP address", s)
		}
		a = a.Unmap().WithZone("")
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// contains reports whether ip is a trusted proxy.
func (t trustedNets) contains(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("") // a link-local zone does not change who the peer is
	for _, p := range t {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// containsIP is contains for a net.IP (nil: false).
func (t trustedNets) containsIP(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	return ok && t.contains(a)
}

// clientFromForwarded returns the client address a trusted proxy at peer names in its
// X-Forwarded-For header values: walking the hops from the right, the first that is not a trusted
// proxy. When every hop is trusted, the leftmost; when a hop does not parse, the hop to its right
// (nothing left of an unparsable hop can be believed); with no hops, peer.
func clientFromForwarded(peer netip.Addr, xff []string, trusted trustedNets) netip.Addr {
	client := peer
	for i := len(xff) - 1; i >= 0; i-- {
		hops := strings.Split(xff[i], ",")
		for j := len(hops) - 1; j >= 0; j-- {
			h := strings.TrimSpace(hops[j])
			if h == "" {
				continue
			}
			a, err := netip.ParseAddr(h)
			if err != nil {
				return client
			}
			client = a.Unmap()
			if !trusted.contains(client) {
				return client
			}
		}
	}
	return client
}

// clientIP returns the client address of r (see the comment at the top of this file): its TCP
// peer (or the PROXY protocol's source), or with a trusted peer what X-Forwarded-For says.
func (s *Server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if len(s.trusted) == 0 {
		return host
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !s.trusted.contains(peer) {
		return host
	}
	xff := r.Header.Values("X-Forwarded-For")
	if len(xff) == 0 {
		return host
	}
	return clientFromForwarded(peer.Unmap(), xff, s.trusted).String()
}

// proxyListener reads PROXY protocol headers (v1 and v2) on connections from trusted peers; the
// others are passed through untouched.
func (s *Server) proxyListener(ln net.Listener) net.Listener {
	return &proxyproto.Listener{
		Listener:          ln,
		ReadHeaderTimeout: headerTimeout,
		ConnPolicy: func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
			if ta, ok := o.Upstream.(*net.TCPAddr); ok && s.trusted.containsIP(ta.IP) {
				return proxyproto.USE, nil // a header is read when there is one
			}
			return proxyproto.SKIP, nil
		},
	}
}

// sameHost reports whether an Origin URL names the host of the request (the default same-host
// Origin check). The hostnames must match; the ports too when the Host header carries one (a proxy
// configured with `proxy_set_header Host $host` sends the hostname alone), the scheme's default port
// standing for a missing one.
func sameHost(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	oHost, oPort := u.Hostname(), u.Port()
	if oPort == "" {
		oPort = map[string]string{"http": "80", "https": "443", "ws": "80", "wss": "443"}[strings.ToLower(u.Scheme)]
	}
	rHost, rPort, err := net.SplitHostPort(host)
	if err != nil {
		rHost, rPort = strings.Trim(host, "[]"), ""
	}
	if !strings.EqualFold(oHost, rHost) {
		return false
	}
	return rPort == "" || rPort == oPort
}
