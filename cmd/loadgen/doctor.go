package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/squall-dev/squall/harness"
	"github.com/squall-dev/squall/refserver"
)

// connCosts are what one idle-but-alive client costs this machine with the embedded gateway
// (server pings every 30 s, an application heartbeat every 30 s, a trickle of broadcasts), as
// measured by `make bench-scale` on the project's 2-core machine (docs/bench.md):
// resident memory at its peak during the hold without forced collections, for the generator and
// the gateway, the kernel's TCP memory (both sockets), and CPU — per connection-second while idle,
// and per new connection during the ramp (dial, upgrade, authentication, welcome, join; both
// sides).
type connCosts struct {
	clientBytes, gatewayBytes, kernelBytes float64
	cpuHold                                float64 // core-seconds per connection per second
	cpuConnect                             float64 // core-seconds per new connection
}

// costsByIO are the measured costs for each of the gateway's I/O models (refserver --io): the
// goroutine row with the generator's goroutine client I/O at 20 000 clients, the nbio row (the
// default) with its epoll client I/O at 100 000 (nodes from bin/refserver, workers from
// bin/loadgen-worker; per new connection: the ramp's CPU on both sides less what the clients
// already held cost meanwhile).
var costsByIO = map[string]connCosts{
	refserver.IOGoroutine: {clientBytes: 26500, gatewayBytes: 16600, kernelBytes: 5800, cpuHold: 20.7e-6, cpuConnect: 790e-6},
	refserver.IONbio:      {clientBytes: 4200, gatewayBytes: 4500, kernelBytes: 5000, cpuHold: 9.3e-6, cpuConnect: 320e-6},
}

// cpuBudget is the share of the cores a run may use and still keep the generator's schedule lag
// low (the rest goes to the runtime, the kernel's network stack and the machine's other work).
const cpuBudget = 0.7

// check is one line of the doctor's report.
type check struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	OK     bool   `json:"ok"`
	Note   string `json:"note,omitempty"`
	Fix    string `json:"fix,omitempty"`
	number uint64
}

// machine is what doctor reads from the system; tests substitute it.
type machine struct {
	fdSoft, fdHard   uint64
	portLo, portHi   int
	somaxconn        int
	synBacklog       int
	fileMax          uint64
	conntrackMax     uint64 // netfilter's connection-tracking table (0: not tracking)
	conntrackCount   uint64
	memTotal, memAvl uint64
	cores            int
}

func readMachine(procRoot string) machine {
	var m machine
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil {
		m.fdSoft, m.fdHard = rl.Cur, rl.Max
	}
	if f := readFields(procRoot + "/sys/net/ipv4/ip_local_port_range"); len(f) == 2 {
		m.portLo, _ = strconv.Atoi(f[0])
		m.portHi, _ = strconv.Atoi(f[1])
	}
	if f := readFields(procRoot + "/sys/net/core/somaxconn"); len(f) == 1 {
		m.somaxconn, _ = strconv.Atoi(f[0])
	}
	if f := readFields(procRoot + "/sys/net/ipv4/tcp_max_syn_backlog"); len(f) == 1 {
		m.synBacklog, _ = strconv.Atoi(f[0])
	}
	if f := readFields(procRoot + "/sys/fs/file-max"); len(f) == 1 {
		m.fileMax, _ = strconv.ParseUint(f[0], 10, 64)
	}
	if f := readFields(procRoot + "/sys/net/netfilter/nf_conntrack_max"); len(f) == 1 {
		m.conntrackMax, _ = strconv.ParseUint(f[0], 10, 64)
	}
	if f := readFields(procRoot + "/sys/net/netfilter/nf_conntrack_count"); len(f) == 1 {
		m.conntrackCount, _ = strconv.ParseUint(f[0], 10, 64)
	}
	m.memTotal, m.memAvl = meminfo(procRoot + "/meminfo")
	m.cores = runtime.NumCPU()
	return m
}

func readFields(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
}

func meminfo(path string) (total, avail uint64) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 {
			continue
		}
		kb, _ := strconv.ParseUint(fs[1], 10, 64)
		switch fs[0] {
		case "MemTotal:":
			total = kb * 1024
		case "MemAvailable:":
			avail = kb * 1024
		}
	}
	return total, avail
}

// diagnose turns what was read into checks and a capacity estimate for the gateway's I/O model io.
func diagnose(m machine, perProcess int, io string) (checks []check, capacity int, bound string) {
	perProc := min(uint64(perProcess), m.fdHard)
	if m.fdHard > 1000 {
		perProc = min(perProc, m.fdHard-1000)
	}
	fd := check{Name: "open-file limit", Value: fmt.Sprintf("soft %d, hard %d", m.fdSoft, m.fdHard), OK: m.fdHard >= 4096,
		Note: fmt.Sprintf("one process holds ~%d connections; larger runs are split across worker processes and gateway nodes automatically", perProc)}
	if !fd.OK {
		fd.Fix = "raise the hard limit: `ulimit -Hn 65536` (or LimitNOFILE= in the service unit, nofile in /etc/security/limits.conf)"
	}
	checks = append(checks, fd)

	ports := m.portHi - m.portLo + 1
	pc := check{Name: "ephemeral ports", Value: fmt.Sprintf("%d-%d (%d ports)", m.portLo, m.portHi, ports), OK: ports >= 28000,
		Note: "per source address and gateway port; loadgen spreads clients over source addresses on 127.0.0.0/8, so this rarely binds"}
	if m.portLo == 0 {
		pc.Value, pc.OK, pc.Note = "unknown", true, "could not read /proc/sys/net/ipv4/ip_local_port_range"
	} else if !pc.OK {
		pc.Fix = "sysctl -w net.ipv4.ip_local_port_range=\"1024 65535\""
	}
	checks = append(checks, pc)

	sc := check{Name: "listen backlog (somaxconn)", Value: strconv.Itoa(m.somaxconn), OK: m.somaxconn >= 4096,
		Note: "fast ramps overflow a short accept queue (SYNs dropped, 1 s retransmits show up as connect time)"}
	if m.somaxconn == 0 {
		sc.Value, sc.OK, sc.Note = "unknown", true, "could not read /proc/sys/net/core/somaxconn"
	} else if !sc.OK {
		sc.Fix = "sysctl -w net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535"
	}
	checks = append(checks, sc)

	if m.fileMax > 0 {
		fm := check{Name: "system-wide open files (fs.file-max)", Value: strconv.FormatUint(m.fileMax, 10), OK: m.fileMax >= 1<<20}
		if !fm.OK {
			fm.Fix = "sysctl -w fs.file-max=2097152"
		}
		checks = append(checks, fm)
	}

	if m.conntrackMax > 0 {
		ct := check{Name: "connection tracking (nf_conntrack_max)", Value: fmt.Sprintf("%d entries, %d in use", m.conntrackMax, m.conntrackCount),
			OK:   m.conntrackMax >= 1<<20,
			Note: "netfilter tracks every connection, loopback included, and a closed one keeps its entry for two minutes; once the table is full the kernel drops new connections' packets (dial timeouts while every process idles)"}
		if !ct.OK {
			ct.Fix = "sysctl -w net.netfilter.nf_conntrack_max=2097152, or exempt loopback from tracking: iptables -t raw -A OUTPUT -o lo -j NOTRACK"
		}
		checks = append(checks, ct)
	}

	mem := check{Name: "memory", Value: fmt.Sprintf("%.1f GiB total, %.1f GiB available", gib(m.memTotal), gib(m.memAvl)), OK: m.memAvl >= 1<<30}
	if !mem.OK {
		mem.Fix = "free memory or run agents on more machines (--agents)"
	}
	checks = append(checks, mem)
	checks = append(checks, check{Name: "cores", Value: strconv.Itoa(m.cores), OK: m.cores >= 2,
		Note: "the generator flags a run as unreliable when its own schedule lag grows; more cores keep it honest"})

	// Capacity: the smallest of what memory, CPU and the system-wide file table allow with the
	// embedded gateway on the same machine.
	c := costsByIO[io]
	per := c.clientBytes + c.gatewayBytes + c.kernelBytes
	capacity = int(float64(m.memAvl) / per)
	bound = fmt.Sprintf("memory: ~%.1f KB per client with the embedded gateway (generator %.1f KB + gateway %.1f KB + kernel %.1f KB)",
		per/1000, c.clientBytes/1000, c.gatewayBytes/1000, c.kernelBytes/1000)
	if byCPU := int(float64(m.cores) * cpuBudget / c.cpuHold); byCPU < capacity {
		capacity = byCPU
		bound = fmt.Sprintf("CPU: %.1f µs per client per second while idle (heartbeats, pings, broadcasts; generator and gateway), %.0f %% of %d cores",
			c.cpuHold*1e6, cpuBudget*100, m.cores)
	}
	if m.fileMax > 0 && int(m.fileMax/2) < capacity {
		capacity, bound = int(m.fileMax/2), "the system-wide open-file table (fs.file-max, 2 sockets per loopback connection)"
	}
	if m.conntrackMax > 0 && int(m.conntrackMax) < capacity {
		capacity, bound = int(m.conntrackMax), "the connection-tracking table (nf_conntrack_max, one entry per connection)"
	}
	ramp := int(float64(m.cores) * cpuBudget / c.cpuConnect)
	checks = append(checks, check{Name: "ramp rate", Value: fmt.Sprintf("~%d connections/s", ramp), OK: true,
		Note:   fmt.Sprintf("%.0f µs of CPU per new connection (generator and gateway), %.0f %% of %d cores; faster ramps queue in the listen backlog", c.cpuConnect*1e6, cpuBudget*100, m.cores),
		number: uint64(ramp)})
	return checks, capacity, bound
}

func gib(b uint64) float64 { return float64(b) / (1 << 30) }

func newDoctorCmd(e *env) *cobra.Command {
	var asJSON bool
	var io string
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check this machine's limits and say how many clients it can hold",
		Long: `Check this machine's limits and say how many idle-but-alive clients it can hold against the
embedded gateway: the smallest of what memory, CPU and the system-wide file table allow, from the
per-connection costs measured by make bench-scale (docs/bench.md), and how fast it can ramp.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, ok := costsByIO[io]; !ok {
				return usagef("--io %q: want %s or %s", io, refserver.IOGoroutine, refserver.IONbio)
			}
			m := readMachine("/proc")
			checks, capacity, bound := diagnose(m, harness.DefaultFDsPerProcess, io)
			return writeDoctor(e.stdout, checks, capacity, bound, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().StringVar(&io, "io", refserver.DefaultConfig().IO, "the embedded gateway's I/O model the estimate is for: goroutine or nbio")
	return cmd
}

func writeDoctor(w io.Writer, checks []check, capacity int, bound string, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"checks": checks, "capacity_clients": capacity, "capacity_bound": bound})
	}
	for _, c := range checks {
		mark := "ok  "
		if !c.OK {
			mark = "WARN"
		}
		fmt.Fprintf(w, "%s %-38s %s\n", mark, c.Name, c.Value)
		if c.Note != "" {
			fmt.Fprintf(w, "     %s\n", c.Note)
		}
		if c.Fix != "" {
			fmt.Fprintf(w, "     fix: %s\n", c.Fix)
		}
	}
	procs := (capacity + harness.DefaultFDsPerProcess - 1) / harness.DefaultFDsPerProcess
	fmt.Fprintf(w, "\nthis machine can hold about %d simulated clients against the embedded gateway\n", capacity)
	fmt.Fprintf(w, "  (bound by %s;\n   %d worker processes and as many gateway nodes at ~%d connections each)\n", bound, procs, harness.DefaultFDsPerProcess)
	return nil
}
