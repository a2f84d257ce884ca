package refserver

import (
	"math"
	"net"
	"syscall"
)

// tcpNotSentLowat is TCP_NOTSENT_LOWAT (linux/tcp.h).
const tcpNotSentLowat = 25

// setSendLowWater sets TCP_NOTSENT_LOWAT on a TCP connection: writes wait while more than n bytes
// are unsent. n == 0 lifts the limit. Errors are ignored (the slow-consumer close then relies on its
// write deadline alone).
func setSendLowWater(nc net.Conn, n int) {
	tc := tcpConn(nc)
	if tc == nil {
		return
	}
	if n <= 0 {
		n = math.MaxInt32
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpNotSentLowat, n)
	})
}
