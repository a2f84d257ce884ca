//go:build !linux

package loadgen

import (
	"errors"

	"golang.org/x/sys/unix"
)

// peerClosed reports whether the peer of the TCP socket fd has closed (FIN) or reset it, without
// consuming data: a non-blocking one-byte peek reads end of stream (0 bytes) or a reset error once
// the peer is gone, and would-block while the connection stands.
func peerClosed(fd uintptr) bool {
	var b [1]byte
	n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	switch {
	case err == nil:
		return n == 0
	case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
		return false
	}
	return true // ECONNRESET and the like: the connection is gone
}
