// Command bench-scale runs a scale scenario with the loadgen binary and the lean gorilla pair at the
// same count, samples their processes and the kernel, and writes the figures into docs/bench.md
// (`make bench-scale`; see internal/scalebench).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/squall-dev/squall/internal/scalebench"
)

func main() {
	if ok, err := scalebench.IsLeanCommand(os.Args); ok {
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench-scale:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-scale:", err)
		os.Exit(1)
	}
}

func run() error {
	var o scalebench.Options
	var runArgs string
	fs := flag.NewFlagSet("bench-scale", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: bench-scale --scenario FILE [flags]

Runs the scale scenario with the loadgen binary while sampling every process of the run from /proc
(VmRSS and VmHWM, CPU) and the kernel's TCP memory (/proc/net/sockstat, /proc/slabinfo), runs a
lean gorilla/websocket server+client pair at the same count as the reference, and writes the
figures as a section of --doc (replacing the section of the same scenario and label).

`)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.Scenario, "scenario", "scenarios/scale-100k.yaml", "the scale scenario")
	fs.StringVar(&o.Loadgen, "loadgen", "bin/loadgen", "the loadgen binary")
	fs.StringVar(&o.Out, "out", "out/bench-scale", "directory for result.json and the loadgen log")
	fs.StringVar(&o.Doc, "doc", "docs/bench.md", "the Markdown file to update (empty: print only)")
	fs.StringVar(&o.Label, "label", "", "what distinguishes this configuration, e.g. \"io=goroutine\" (part of the section key)")
	fs.StringVar(&runArgs, "run-args", "", "extra arguments of `loadgen run`, space-separated")
	fs.BoolVar(&o.Lean, "lean", true, "also run the lean gorilla pair at the same count")
	fs.BoolVar(&o.Pin, "pin", false, "split the CPUs: gateway processes on the last CPU, the generator's on the others (machines of two CPUs or more)")
	fs.DurationVar(&o.LeanHold, "lean-hold", 20*time.Second, "how long the lean pair holds its connections")
	fs.IntVar(&o.PerProc, "per-process", 15000, "connections per lean process (the open-file limit is 20 000)")
	var minAvailGiB float64
	fs.Float64Var(&minAvailGiB, "min-available", 3, "stop the run cleanly (SIGINT, partial result) when MemAvailable falls below this many GiB (0: never)")
	fs.DurationVar(&o.MaxDuration, "max-duration", 0, "stop the run cleanly after this long (0: no bound)")
	fs.DurationVar(&o.StopGrace, "stop-grace", 2*time.Minute, "after the interrupt (--max-duration, --min-available), how long loadgen has to stop before it is made to dump its goroutines and exit (SIGQUIT), then killed")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	o.RunArgs = strings.Fields(runArgs)
	o.MinAvailable = int64(minAvailGiB * (1 << 30))
	self, err := os.Executable()
	if err != nil {
		return err
	}
	o.Self = self
	o.Log = os.Stderr
	o.Command = "make bench-scale SCALE_PLAN=" + o.Scenario
	for _, kv := range os.Environ() {
		// Gateway settings of the embedded nodes, and the Go runtime's memory settings (every
		// process of the run inherits them).
		if strings.HasPrefix(kv, "REFSERVER_") || strings.HasPrefix(kv, "GOGC=") || strings.HasPrefix(kv, "GOMEMLIMIT=") {
			o.Command = kv + " " + o.Command
		}
	}
	if o.Label != "" {
		o.Command += " SCALE_LABEL='" + o.Label + "'"
	}
	if runArgs != "" {
		o.Command += " SCALE_ARGS='" + runArgs + "'"
	}
	if o.Pin {
		o.Command += " SCALE_FLAGS=--pin"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := scalebench.Run(ctx, o)
	if err != nil {
		return err
	}
	fmt.Print(rep.Markdown())
	return nil
}
