// Command loadgen is squall's harness: it runs plans of simulated browser tabs against a WebSocket
// gateway (the embedded reference gateway by default) through package harness, shows live progress
// and writes result.json.
//
//	loadgen run FILE     run a scenario: target, proxies, fault timeline, SLO verdicts
//	loadgen run          run the built-in plan shaped by flags (--clients, --rooms, ...)
//	loadgen report R     render report.html, junit.xml and summary.md from a result.json (--baseline)
//	loadgen validate F.. check scenario files without running them
//	loadgen gate NEW     compare a result with a baseline (--baseline OLD): exit 99 on a regression
//	loadgen agent        serve the controller/agent protocol (workers and remote agents)
//	loadgen doctor       check this machine's limits and say how many clients it can hold
//
// Exit codes (DESIGN §6): 0 ok, 1 the harness failed, 2 usage or invalid input, 99 an SLO or
// baseline gate was breached, 130 interrupted. Errors are printed as one line naming the cause.
//
// main only wires signals and calls run, which decides the exit code; everything below is a
// library a test drives in-process. The first SIGINT or SIGTERM cancels the run's context (the
// ramp stops, clients close cleanly, result.json is written, exit 130); a second one abandons the
// run (exit 130, no result).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/squall-dev/squall/internal/cpuprofile"
	"github.com/squall-dev/squall/loadgen/embedded"
)

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 2)
	stopOn := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if len(os.Args) > 1 && os.Args[1] == embedded.NodeCommand {
		// A gateway node is a child of a run, which stops it with SIGTERM once the clients have
		// closed. A terminal's Ctrl-C reaches the whole process group; it is the run's to handle.
		signal.Ignore(os.Interrupt)
		stopOn = []os.Signal{syscall.SIGTERM}
	}
	signal.Notify(sigs, stopOn...)
	go func() { // lives as long as the process
		s := <-sigs
		cancel(fmt.Errorf("%v received", s))
		if len(os.Args) > 1 && os.Args[1] == "run" {
			fmt.Fprintln(os.Stderr, "loadgen: stopping: closing the clients and writing the result (press Ctrl-C again to abandon)")
		}
		<-sigs
		fmt.Fprintln(os.Stderr, "loadgen: abandoned without a result")
		os.Exit(exitInterrupted)
	}()
	role := "loadgen"
	if len(os.Args) > 1 {
		role = strings.TrimLeft(os.Args[1], "_")
	}
	stopProfile := cpuprofile.Start(role, os.Stderr) // $SQUALL_CPU_PROFILE_DIR
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stopProfile()
	signal.Stop(sigs)
	cancel(nil)
	os.Exit(code)
}
