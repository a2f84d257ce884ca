package loadgen

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"go.uber.org/goleak"
)

// TestMain lets the test binary act as a gateway node: the embedded target re-executes the current
// binary with NodeCommand to start nodes as child processes. Every goroutine a test starts must
// have ended when the tests finish.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == NodeCommand {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		err := RunNodeMain(ctx, os.Args[2:], os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "node:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}
