package telemetry

import "testing"

func TestParseSockstatAndSlab(t *testing.T) {
	in, tw, mem := ParseSockstat([]byte("sockets: used 31\nTCP: inuse 40001 orphan 0 tw 12 alloc 40003 mem 228\nUDP: inuse 0 mem 0\n"))
	if in != 40001 || tw != 12 || mem != 228 {
		t.Errorf("inuse %d tw %d mem %d", in, tw, mem)
	}
	if in, tw, mem := ParseSockstat([]byte("garbage\nTCP: inuse\n")); in != 0 || tw != 0 || mem != 0 {
		t.Errorf("garbage read as %d %d %d", in, tw, mem)
	}
	slab := "slabinfo - version: 2.1\n# name <active_objs> <num_objs> <objsize> ...\ntw_sock_TCP 20438 20528 256 16 1\nTCP 66 117 2368 13 8\nTCPv6 2 13 2496 13 8\n"
	if got := ParseSlabTCP([]byte(slab)); got != 66*2368+2*2496 {
		t.Errorf("TCP slab %d", got)
	}
}
