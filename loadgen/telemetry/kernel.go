package telemetry

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
)

// The kernel's socket memory, which no process's resident memory shows (about 7.5 KB per idle
// loopback connection, DESIGN §8). With Config.Kernel each point also carries these values, read
// from this machine's /proc (the target and the clients must run here: the embedded gateway or a
// loopback URL), under these names in Point.Values.
const (
	KernelTCPInUse     = "kernel_tcp_inuse"      // TCP sockets in use (/proc/net/sockstat), both ends of every loopback connection
	KernelTCPMemBytes  = "kernel_tcp_mem_bytes"  // TCP socket buffer memory (/proc/net/sockstat mem, pages × page size)
	KernelTCPSlabBytes = "kernel_tcp_slab_bytes" // TCP socket objects (/proc/slabinfo TCP and TCPv6, readable by root only; absent otherwise)
)

// KernelSockets is one reading of the kernel's TCP socket memory.
type KernelSockets struct {
	InUse     int64 // TCP sockets in use
	TimeWait  int64 // TCP sockets in TIME-WAIT
	MemPages  int64 // pages of TCP socket buffers
	SlabBytes int64 // bytes of TCP socket objects; 0 when /proc/slabinfo cannot be read
}

// ReadKernelSockets reads /proc/net/sockstat and /proc/slabinfo; ok is false when sockstat cannot
// be read (not Linux).
func ReadKernelSockets() (k KernelSockets, ok bool) {
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return k, false
	}
	k.InUse, k.TimeWait, k.MemPages = ParseSockstat(b)
	if b, err := os.ReadFile("/proc/slabinfo"); err == nil {
		k.SlabBytes = ParseSlabTCP(b)
	}
	return k, true
}

// Bytes is the kernel memory the reading accounts for: socket buffers and socket objects.
func (k KernelSockets) Bytes() int64 { return k.MemPages*int64(os.Getpagesize()) + k.SlabBytes }

// ParseSockstat reads the TCP line of /proc/net/sockstat: sockets in use, in TIME-WAIT, and the
// pages of socket buffer memory.
func ParseSockstat(b []byte) (inuse, tw, memPages int64) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "TCP:" {
			continue
		}
		for i := 1; i+1 < len(f); i += 2 {
			n, _ := strconv.ParseInt(f[i+1], 10, 64)
			switch f[i] {
			case "inuse":
				inuse = n
			case "tw":
				tw = n
			case "mem":
				memPages = n
			}
		}
	}
	return inuse, tw, memPages
}

// ParseSlabTCP sums active objects × object size of the TCP and TCPv6 caches of /proc/slabinfo.
func ParseSlabTCP(b []byte) int64 {
	var total int64
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || (f[0] != "TCP" && f[0] != "TCPv6") {
			continue
		}
		active, _ := strconv.ParseInt(f[1], 10, 64)
		size, _ := strconv.ParseInt(f[3], 10, 64)
		total += active * size
	}
	return total
}
