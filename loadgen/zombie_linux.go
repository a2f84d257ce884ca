package loadgen

import "golang.org/x/sys/unix"

// peerClosed reports whether the peer of the TCP socket fd has closed (FIN) or reset it, without
// reading: poll(2) with POLLRDHUP and no wait.
func peerClosed(fd uintptr) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0
}
