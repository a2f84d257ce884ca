// Package loopback says whether an address is on the loopback interface. It holds no state.
package loopback

import (
	"net"
	"strings"
)

// IsAddr reports whether a host:port (or bare host) address is on loopback ("localhost" counts;
// an empty host, which means every interface, does not).
func IsAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
