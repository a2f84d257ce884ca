//go:build !linux

package refserver

import "net"

// setSendLowWater is a no-op outside Linux: the slow-consumer close relies on its write deadline.
func setSendLowWater(net.Conn, int) {}
