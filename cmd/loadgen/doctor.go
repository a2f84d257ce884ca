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
)

// Per-connection costs behind doctor's capacity estimate (harness owns them).
const (
	clientBytes  = harness.ClientMemory
	gatewayBytes = harness.GatewayConnMemory
	kernelBytes  = harness.KernelLoopbackConnMemory
)

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

// diagnose turns what was read into checks and a capacity estimate.
func diagnose(m machine, perProcess int) (checks []check, capacity int, bound string) {
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

	mem := check{Name: "memory", Value: fmt.Sprintf("%.1f GiB total, %.1f GiB available", gib(m.memTotal), gib(m.memAvl)), OK: m.memAvl >= 1<<30}
	if !mem.OK {
		mem.Fix = "free memory or run agents on more machines (--agents)"
	}
	checks = append(checks, mem)
	checks = append(checks, check{Name: "cores", Value: strconv.Itoa(m.cores), OK: m.cores >= 2,
		Note: "the generator flags a run as unreliable when its own schedule lag grows; more cores keep it honest"})

	// Capacity: memory-bound with the embedded gateway on the same machine; the system-wide file
	// table and the port space are the other bounds.
	per := uint64(clientBytes + gatewayBytes + kernelBytes)
	capacity, bound = int(m.memAvl/per), fmt.Sprintf("memory: ~%d KiB per client with the embedded gateway (client %d KiB + gateway %d KiB + kernel %.1f KiB)", per>>10, clientBytes>>10, gatewayBytes>>10, float64(kernelBytes)/1024)
	if m.fileMax > 0 && int(m.fileMax/2) < capacity {
		capacity, bound = int(m.fileMax/2), "the system-wide open-file table (fs.file-max, 2 sockets per loopback connection)"
	}
	return checks, capacity, bound
}

func gib(b uint64) float64 { return float64(b) / (1 << 30) }

func newDoctorCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check this machine's limits and say how many clients it can hold",
		RunE: func(cmd *cobra.Command, _ []string) error {
			m := readMachine("/proc")
			checks, capacity, bound := diagnose(m, harness.DefaultFDsPerProcess)
			return writeDoctor(e.stdout, checks, capacity, bound, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
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
