package scalebench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/squall-dev/squall/reports"
	"github.com/squall-dev/squall/scenarios"
)

// Options configure one bench run.
type Options struct {
	Scenario string        // the scale scenario file (required)
	Loadgen  string        // the loadgen binary (required)
	Self     string        // the bench binary, re-run for the lean pair's processes (required with Lean)
	Out      string        // directory for the run's result.json and logs
	Doc      string        // the Markdown file the section goes into (docs/bench.md); empty = stdout only
	Label    string        // what distinguishes this configuration (e.g. "io=goroutine"); part of the section key
	Command  string        // the command line that reproduces the run, quoted in the section
	RunArgs  []string      // extra arguments of `loadgen run`
	Lean     bool          // also run the lean gorilla pair at the same count
	LeanHold time.Duration // how long the lean pair holds (default 20s)
	PerProc  int           // connections per lean process (default 15 000; the open-file limit is 20 000)
	Interval time.Duration // sampling interval (default 1s)
	// Pin splits the CPUs between the gateway and the generator (PinClasses); the section says so.
	Pin bool
	Log io.Writer // progress lines (nil discards)
	// MinAvailable stops the run (SIGINT: loadgen stops the ramp, closes its clients and writes
	// the partial result) when the machine's MemAvailable falls below it, so that a run larger than
	// the machine ends cleanly instead of waking the OOM killer (0: no floor).
	MinAvailable int64
	// MaxDuration stops the run the same way after this long (0: no bound).
	MaxDuration time.Duration
	// StopGrace is how long loadgen has to stop after the interrupt (default 2 minutes): past it,
	// SIGQUIT makes it write every goroutine's stack into its log and exit, and StopGrace (at most
	// 30 s) later it is killed, so that the bench ends whatever state a starved run is in.
	StopGrace time.Duration
}

// pin is the CPU split the samplers apply: PinClasses with Pin, else none.
func (o Options) pin() map[string][]int {
	if !o.Pin {
		return nil
	}
	return PinClasses(runtime.NumCPU())
}

// Run runs the lean pair (when asked), then the scenario, and writes the section.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.LeanHold <= 0 {
		o.LeanHold = 20 * time.Second
	}
	if o.PerProc <= 0 {
		o.PerProc = 15000
	}
	sc, err := scenarios.Load(o.Scenario)
	if err != nil {
		return nil, err
	}
	rep := &Report{Scenario: sc.Name, File: o.Scenario, Label: o.Label, Command: o.Command, Clients: sc.Clients(),
		Machine: ReadMachine(), Date: time.Now().UTC(), Pinning: DescribePinning(o.pin())}
	if o.Lean {
		if err := awaitConntrack(ctx, o.Log, readConntrack, int64(rep.Clients), conntrackWait); err != nil {
			return nil, err
		}
		fmt.Fprintf(o.Log, "bench-scale: lean gorilla pair, %d connections\n", rep.Clients)
		lf, err := runLean(ctx, o, rep.Clients)
		if err != nil {
			return nil, fmt.Errorf("lean pair: %w", err)
		}
		rep.Lean = lf
	}
	if err := awaitConntrack(ctx, o.Log, readConntrack, int64(rep.Clients), conntrackWait); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Log, "bench-scale: loadgen run %s\n", o.Scenario)
	rf, res, err := runScenario(ctx, o)
	if err != nil {
		return nil, err
	}
	rep.Run = rf
	rep.Verdict = res
	rep.Machine.LoadEnd = readLoad()
	if o.Doc != "" {
		if err := UpdateDoc(o.Doc, rep.Key(), rep.Markdown()); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// conntrackWait bounds the wait for room in the connection-tracking table: its TIME_WAIT
// entries last 120 s.
const conntrackWait = 150 * time.Second

// awaitConntrack waits (at most bound, saying so every 10 s) until netfilter's connection-tracking
// table, as read reports it, has room for need more connections. The entries of an earlier run's connections stay in
// it for two minutes after they closed, and once it is full the kernel drops the packets of new
// connections, loopback ones included: back-to-back runs would then measure the table, not the
// gateway. A table too small for need even when empty is said, and the run goes on.
func awaitConntrack(ctx context.Context, log io.Writer, read func() (count, max int64), need int64, bound time.Duration) error {
	count, max := read()
	if max == 0 || count+need <= max {
		return nil
	}
	if need > max {
		fmt.Fprintf(log, "bench-scale: the connection-tracking table (nf_conntrack_max %d) is smaller than the %d connections planned: the kernel will drop new connections' packets once it is full\n", max, need)
		return nil
	}
	deadline := time.Now().Add(bound)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	said := time.Time{}
	for count+need > max {
		if time.Now().After(deadline) {
			fmt.Fprintf(log, "bench-scale: the connection-tracking table still holds %d of %d entries after %s; going on (new connections may be dropped)\n", count, max, bound)
			return nil
		}
		if time.Since(said) >= 10*time.Second {
			fmt.Fprintf(log, "bench-scale: waiting for room in the connection-tracking table: %d of %d entries held (an earlier run's closed connections), %d needed\n", count, max, need)
			said = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		count, _ = read()
	}
	return nil
}

// runScenario runs loadgen on the scenario while sampling its processes.
func runScenario(ctx context.Context, o Options) (RunFigures, string, error) {
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return RunFigures{}, "", err
	}
	logf, err := os.Create(filepath.Join(o.Out, "loadgen.log"))
	if err != nil {
		return RunFigures{}, "", err
	}
	defer logf.Close()
	// A result left by an earlier run must not pass for this one's (a run stopped before it
	// writes one has none).
	resultPath := filepath.Join(o.Out, "result.json")
	if err := os.Remove(resultPath); err != nil && !os.IsNotExist(err) {
		return RunFigures{}, "", err
	}
	args := append([]string{"run", o.Scenario, "--out", o.Out, "--progress", "plain"}, o.RunArgs...)
	cmd := exec.CommandContext(ctx, o.Loadgen, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	base := ReadKernel()
	if err := cmd.Start(); err != nil {
		return RunFigures{}, "", err
	}
	sctx, stop := context.WithCancel(ctx)
	smp := &Sampler{Root: cmd.Process.Pid, Interval: o.Interval, Pin: o.pin()}
	done := make(chan struct{})
	go func() { defer close(done); smp.Run(sctx) }()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var stopped string
	guard := time.NewTicker(o.Interval)
	var deadline <-chan time.Time
	if o.MaxDuration > 0 {
		deadline = time.After(o.MaxDuration)
	}
	grace := o.StopGrace
	if grace <= 0 {
		grace = 2 * time.Minute
	}
	var escalate <-chan time.Time // armed by the interrupt
	quit := false
	interrupt := func(why string) {
		if stopped == "" {
			stopped = why
			_ = cmd.Process.Signal(os.Interrupt)
			escalate = time.After(grace)
		}
	}
	var werr error
wait:
	for {
		select {
		case werr = <-waited:
			break wait
		case <-deadline:
			deadline = nil
			interrupt(fmt.Sprintf("stopped after %s (--max-duration)", o.MaxDuration))
		case <-guard.C:
			if avail := memAvailable(); o.MinAvailable > 0 && avail > 0 && avail < o.MinAvailable {
				interrupt(fmt.Sprintf("stopped: MemAvailable %.1f GiB fell below the %.1f GiB floor (--min-available)",
					float64(avail)/(1<<30), float64(o.MinAvailable)/(1<<30)))
			}
		case <-escalate:
			if !quit {
				quit = true
				fmt.Fprintf(o.Log, "bench-scale: loadgen did not stop within %s of the interrupt: SIGQUIT (goroutine stacks into %s)\n", grace, logf.Name())
				_ = cmd.Process.Signal(syscall.SIGQUIT)
				escalate = time.After(min(30*time.Second, grace))
				continue
			}
			escalate = nil
			fmt.Fprintf(o.Log, "bench-scale: loadgen still running: killed\n")
			_ = cmd.Process.Kill()
		}
	}
	if quit {
		guard.Stop()
		stop()
		<-done
		return RunFigures{}, "", fmt.Errorf("loadgen run did not stop within %s of the interrupt (%s) and was abandoned: no result; its goroutine stacks are in %s", grace, stopped, logf.Name())
	}
	guard.Stop()
	stop()
	<-done
	var ee *exec.ExitError
	verdict := "SLOs held"
	if werr != nil {
		switch {
		case errors.As(werr, &ee) && ee.ExitCode() == 99:
			verdict = "an SLO was breached (exit 99)"
		case errors.As(werr, &ee) && ee.ExitCode() == 130 && stopped != "":
			verdict = "interrupted (exit 130; partial result)"
		default:
			return RunFigures{}, "", fmt.Errorf("loadgen run: %w (log: %s)", werr, logf.Name())
		}
	}
	if stopped != "" {
		verdict += "; " + stopped
	}
	res, err := reports.ReadJSON(resultPath)
	if err != nil {
		if !os.IsNotExist(err) && !errors.Is(err, os.ErrNotExist) {
			return RunFigures{}, "", err
		}
		// No result (stopped before the run wrote one): what the processes cost is all there is.
		res = &reports.Result{Started: smp.Samples[0].At, Ended: smp.Samples[len(smp.Samples)-1].At}
		verdict += "; no result.json was written"
	}
	f := Figures(res, smp.Samples, base)
	if sc, err := scenarios.Load(o.Scenario); err == nil {
		if f.Clients == 0 {
			f.Clients = sc.Clients()
		}
		for _, ph := range sc.Phases {
			if f.RampPlanned == 0 && ph.Kind == scenarios.PhaseRamp {
				f.RampPlanned = ph.Rate
			}
		}
	}
	return f, verdict, nil
}

// runLean starts the lean server and client processes (PerProc connections each), waits for every
// connection, holds, and measures.
func runLean(ctx context.Context, o Options, n int) (LeanFigures, error) {
	procs := (n + o.PerProc - 1) / o.PerProc
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stdins []io.Closer
	var cmds []*exec.Cmd
	defer func() {
		for _, c := range stdins {
			_ = c.Close() // the children exit when their stdin closes
		}
		for _, c := range cmds {
			_ = c.Wait()
		}
	}()
	start := func(args ...string) (*bufio.Reader, error) {
		cmd := exec.CommandContext(ctx, o.Self, args...)
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		cmd.Stderr = o.Log
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		stdins = append(stdins, in)
		cmds = append(cmds, cmd)
		return bufio.NewReader(out), nil
	}
	var addrs []string
	for range procs {
		r, err := start(leanServerCmd)
		if err != nil {
			return LeanFigures{}, err
		}
		addr, err := waitLine(r, "listening ")
		if err != nil {
			return LeanFigures{}, err
		}
		addrs = append(addrs, addr)
	}
	smp := &Sampler{Root: os.Getpid(), Interval: o.Interval, Pin: o.pin()}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); smp.Run(sctx) }()
	began := time.Now()
	var readers []*bufio.Reader
	for i := range procs {
		k := min(o.PerProc, n-i*o.PerProc)
		src := netip.PrefixFrom(netip.AddrFrom4([4]byte{127, byte(96 + i), 0, 0}), 16)
		r, err := start(leanClientCmd, "ws://"+addrs[i]+"/ws", strconv.Itoa(k), src.String())
		if err != nil {
			stop()
			return LeanFigures{}, err
		}
		readers = append(readers, r)
	}
	held := 0
	var errs []error
	for _, r := range readers {
		s, err := waitLine(r, "held ")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f := strings.Fields(s)
		k, _ := strconv.Atoi(f[0])
		held += k
		if len(f) > 1 {
			errs = append(errs, errors.New(strings.Join(f[1:], " ")))
		}
	}
	rampDur := time.Since(began)
	holdFrom := time.Now()
	select {
	case <-ctx.Done():
	case <-time.After(o.LeanHold):
	}
	holdTo := time.Now()
	stop()
	<-done
	lf := LeanFigures{Conns: held, Procs: procs, RampSeconds: rampDur.Seconds(), Hold: holdTo.Sub(holdFrom)}
	lf.Server = classFigures(smp.Samples, ClassLeanServer, holdFrom, holdTo, held)
	lf.Client = classFigures(smp.Samples, ClassLeanClient, holdFrom, holdTo, held)
	if len(errs) > 0 {
		lf.Errors = errors.Join(errs...).Error()
	}
	return lf, nil
}

// LeanServerMain and LeanClientMain are the lean pair's processes (the bench binary dispatches
// its hidden subcommands to them). Each runs until its stdin closes.
func LeanServerMain(args []string) error {
	ln, err := listenLoopback()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); cancel() }()
	fmt.Printf("listening %s\n", ln.Addr())
	return ServeLean(ctx, ln)
}

// LeanClientMain takes url, count and source prefix.
func LeanClientMain(args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("usage: %s URL COUNT SOURCE-CIDR", leanClientCmd)
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	src, err := netip.ParsePrefix(args[2])
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); cancel() }()
	held, err := DialLean(ctx, args[0], n, src, 128)
	if err != nil {
		fmt.Printf("held %d first-error: %v\n", held, err)
	} else {
		fmt.Printf("held %d\n", held)
	}
	<-ctx.Done()
	return nil
}

// IsLeanCommand reports whether args[1] is one of the lean pair's hidden subcommands, and runs it.
func IsLeanCommand(args []string) (bool, error) {
	if len(args) < 2 {
		return false, nil
	}
	switch args[1] {
	case leanServerCmd:
		return true, LeanServerMain(args[2:])
	case leanClientCmd:
		return true, LeanClientMain(args[2:])
	}
	return false, nil
}

// memAvailable is /proc/meminfo's MemAvailable in bytes (0 when unknown).
func memAvailable() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "MemAvailable:") {
			return kbField(l)
		}
	}
	return 0
}
