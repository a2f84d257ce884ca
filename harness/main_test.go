package harness

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/squall-dev/squall/loadgen/agent"
	"github.com/squall-dev/squall/loadgen/embedded"
	"github.com/squall-dev/squall/loadgen/stats"
)

var update = flag.Bool("update", false, "rewrite golden files (the flaw matrix in scenarios/README.md)")

// scenarioDir is the scenario library.
var scenarioDir = filepath.Join("..", "scenarios")

// dieWorker names the index of a worker that kills its own process mid-run (tests only).
const dieWorker = "HARNESS_TEST_DIE_WORKER"

// TestMain lets the test binary act as what a run starts: a worker ("agent --listen ADDR", as
// Options.WorkerCommand's default spawns it) or a gateway node (embedded.NodeCommand). Every
// goroutine a test starts must have ended when the tests finish.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case embedded.NodeCommand:
			os.Exit(serve(func(ctx context.Context) error { return embedded.RunNodeMain(ctx, os.Args[2:], os.Stderr) }))
		case "agent":
			fs := flag.NewFlagSet("agent", flag.ExitOnError)
			listen := fs.String("listen", "127.0.0.1:0", "")
			_ = fs.Parse(os.Args[2:])
			o := AgentOptions{Listen: *listen, Token: os.Getenv(agent.TokenEnv), Stdout: os.Stdout}
			if die := os.Getenv(dieWorker); die != "" {
				// The worker dies, with everything it holds, right after it has sent the controller
				// a report with connections in it: every tick carries one (by default one in five
				// does, which a short run may end before).
				o.SnapshotEvery = 1
				o.OnSent = func(m agent.Message) {
					if strconv.Itoa(m.Worker) == die && m.Type == agent.MsgTick && m.Snapshot != nil && m.Snapshot.Counter(stats.CtrConnects) > 0 {
						os.Exit(7)
					}
				}
			}
			os.Exit(serve(func(ctx context.Context) error { return ServeAgent(ctx, o) }))
		}
	}
	// No test of this package runs Toxiproxy's timeout toxic in this process (proxy-idle-timeout
	// runs in the flaw matrix, in loadgen's own process): that toxic leaves the goroutines of a
	// link it cut blocked after the proxy is closed (Toxiproxy v2.12.0's own behaviour), which
	// goleak would report here.
	goleak.VerifyTestMain(m)
}

// serve runs fn until SIGTERM or SIGINT and returns its exit code.
func serve(fn func(ctx context.Context) error) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := fn(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// buildLoadgen builds bin/loadgen without the race detector, for runs whose latency SLOs must hold
// (a race-enabled generator is several times slower than the real one) or that hold more
// goroutines than the race detector allows.
func buildLoadgen(ctx context.Context, t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "loadgen")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	build := exec.CommandContext(ctx, goBin, "build", "-o", bin, "../cmd/loadgen")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
