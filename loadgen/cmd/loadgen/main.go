// Command loadgen is squall's load generator: it runs plans of simulated browser tabs against a
// WebSocket gateway (the embedded reference gateway by default), splits large runs across worker
// processes, shows live progress and writes result.json.
//
//	loadgen run      run the smoke plan (scenarios plug in later)
//	loadgen agent    serve the controller/agent protocol (workers and remote agents)
//	loadgen doctor   check this machine's limits and say how many clients it can hold
//
// Exit codes (DESIGN §6): 0 ok, 1 the harness failed, 2 usage or invalid input, 99 an SLO or
// baseline gate was breached. Errors are printed as one line naming the cause.
//
// main parses nothing itself: it wires signals and calls run, the only function that decides the
// exit code; everything below is a library a test drives in-process.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
