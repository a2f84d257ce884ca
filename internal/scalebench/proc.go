package scalebench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/squall-dev/squall/loadgen/telemetry"
)

// Process classes of a run, from a process's command line.
const (
	ClassGateway    = "gateway"     // a refserver node (loadgen __refserver-node, or bin/refserver)
	ClassGenerator  = "generator"   // a loadgen worker (loadgen agent)
	ClassController = "controller"  // the loadgen run itself (holds clients only when it runs no workers)
	ClassLeanServer = "lean-server" // the lean gorilla server
	ClassLeanClient = "lean-client" // the lean gorilla client
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat (100 on every Linux
// architecture Go supports).
const clockTicks = 100

// ClassSample is the sum over a class's live processes at one instant.
type ClassSample struct {
	Procs    int
	RSSBytes int64  // VmRSS
	HWMBytes int64  // VmHWM: each process's own peak so far
	CPUTicks uint64 // utime + stime, in clockTicks
}

// Kernel is the kernel's socket memory at one instant.
type Kernel struct {
	TCPInUse    int64 // /proc/net/sockstat TCP inuse: sockets
	TCPTimeWait int64 // TCP tw
	TCPMemPages int64 // TCP mem: pages of socket buffers (the figure tcp_mem limits)
	TCPSlab     int64 // bytes of the TCP socket slab caches (TCP, TCPv6), from /proc/slabinfo (root only; 0 otherwise)
	SlabBytes   int64 // /proc/meminfo Slab: every slab cache (noisy: files, dentries of other work)
	Conntrack   int64 // connection-tracking entries (nf_conntrack_count; 0 without netfilter)
}

// Sample is one reading of every class and of the kernel.
type Sample struct {
	At      time.Time
	Classes map[string]ClassSample
	Kernel  Kernel
}

// Sampler reads /proc every Interval for the processes below Root (Root included).
type Sampler struct {
	Root     int
	Interval time.Duration
	// Pin, when set, gives each class the CPUs its processes run on: every thread of a process of
	// the class is pinned at each sample (a process started since, or its new threads, at the next).
	Pin     map[string][]int
	Samples []Sample
}

// PinClasses is the bench's CPU split on a machine of n CPUs (nil below two): the gateway's
// processes on the last CPU, the generator's and the controller's on the others, as a load test
// sharing one machine with its target should be, so that a burst of the gateway's work does not
// delay the generator's schedule, nor the other way round. The lean pair is split the same way.
func PinClasses(n int) map[string][]int {
	if n < 2 {
		return nil
	}
	gen := make([]int, n-1)
	for i := range gen {
		gen[i] = i
	}
	gw := []int{n - 1}
	return map[string][]int{ClassGateway: gw, ClassLeanServer: gw, ClassGenerator: gen, ClassController: gen, ClassLeanClient: gen}
}

// Run samples until ctx ends.
func (s *Sampler) Run(ctx context.Context) {
	tk := time.NewTicker(s.Interval)
	defer tk.Stop()
	for {
		s.Samples = append(s.Samples, s.Once())
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
	}
}

// Once takes one sample.
func (s *Sampler) Once() Sample {
	smp := Sample{At: time.Now(), Classes: map[string]ClassSample{}, Kernel: ReadKernel()}
	for _, pid := range descendants(s.Root) {
		cls := classify(pid)
		if cls == "" {
			continue
		}
		if cpus, ok := s.Pin[cls]; ok {
			pinTasks(pid, cpus)
		}
		st, err := os.ReadFile(procPath(pid, "status"))
		if err != nil {
			continue // exited meanwhile
		}
		sf, err := os.ReadFile(procPath(pid, "stat"))
		if err != nil {
			continue
		}
		rss, hwm := ParseStatus(st)
		_, ticks, err := ParseStat(sf)
		if err != nil {
			continue
		}
		cs := smp.Classes[cls]
		cs.Procs++
		cs.RSSBytes += rss
		cs.HWMBytes += hwm
		cs.CPUTicks += ticks
		smp.Classes[cls] = cs
	}
	return smp
}

func procPath(pid int, name string) string { return filepath.Join("/proc", strconv.Itoa(pid), name) }

// descendants lists root and every process below it.
func descendants(root int) []int {
	ents, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(procPath(pid, "stat"))
		if err != nil {
			continue
		}
		ppid, _, err := ParseStat(b)
		if err != nil {
			continue
		}
		children[ppid] = append(children[ppid], pid)
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// classify names a process's class from its command line ("" for none of the run's).
func classify(pid int) string {
	b, err := os.ReadFile(procPath(pid, "cmdline"))
	if err != nil {
		return ""
	}
	return ClassOf(strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"))
}

// ClassOf names the class of a command line.
func ClassOf(args []string) string {
	if len(args) == 0 {
		return ""
	}
	base := filepath.Base(args[0])
	sub := ""
	if len(args) > 1 {
		sub = args[1]
	}
	switch {
	case sub == "__refserver-node" || base == "refserver":
		return ClassGateway
	case sub == leanServerCmd:
		return ClassLeanServer
	case sub == leanClientCmd:
		return ClassLeanClient
	case base == "loadgen" && sub == "agent" || base == "loadgen-worker":
		return ClassGenerator
	case base == "loadgen" && sub == "run":
		return ClassController
	}
	return ""
}

// ParseStatus reads VmRSS and VmHWM (bytes) from /proc/PID/status.
func ParseStatus(b []byte) (rss, hwm int64) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			rss = kbField(line)
		case strings.HasPrefix(line, "VmHWM:"):
			hwm = kbField(line)
		}
	}
	return rss, hwm
}

func kbField(line string) int64 {
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.ParseInt(f[1], 10, 64)
	return n * 1024
}

// ParseStat reads the parent pid and utime+stime from /proc/PID/stat. The command name (field 2)
// may hold spaces and parentheses: fields are counted from the last ')'.
func ParseStat(b []byte) (ppid int, ticks uint64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("stat: %d fields after the name, want at least 13", len(f))
	}
	ppid, err = strconv.Atoi(f[1])
	if err != nil {
		return 0, 0, fmt.Errorf("stat: ppid: %w", err)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("stat: utime/stime: %q %q", f[11], f[12])
	}
	return ppid, ut + st, nil
}

// ReadKernel reads the kernel's socket figures; what cannot be read stays 0.
func ReadKernel() Kernel {
	var k Kernel
	if ks, ok := telemetry.ReadKernelSockets(); ok {
		k.TCPInUse, k.TCPTimeWait, k.TCPMemPages, k.TCPSlab = ks.InUse, ks.TimeWait, ks.MemPages, ks.SlabBytes
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "Slab:") {
				k.SlabBytes = kbField(line)
			}
		}
	}
	k.Conntrack, _ = readConntrack()
	return k
}

// readConntrack reads the connection-tracking table's entries and its size
// (/proc/sys/net/netfilter/nf_conntrack_count and _max); max is 0 when netfilter does not track
// connections here. Once the table is full the kernel drops the packets of new connections
// ("nf_conntrack: table full, dropping packet"), loopback ones included: a SYN goes unanswered.
func readConntrack() (count, max int64) {
	read := func(name string) int64 {
		b, err := os.ReadFile("/proc/sys/net/netfilter/" + name)
		if err != nil {
			return 0
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		return n
	}
	if max = read("nf_conntrack_max"); max == 0 {
		return 0, 0
	}
	return read("nf_conntrack_count"), max
}
