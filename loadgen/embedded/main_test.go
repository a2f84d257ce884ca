package embedded

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/squall-dev/squall/internal/wstest"
	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/refserver"
)

// TestMain lets the test binary act as a gateway node (Start re-executes the current binary with
// NodeCommand to start child nodes). Every goroutine a test starts must have ended when the tests
// finish.
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

func startEmbedded(t testing.TB, opts Options) *Embedded {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			t.Errorf("close embedded gateway: %v", err)
		}
	})
	return e
}

// fastGateway is a gateway configuration with short heartbeats.
func fastGateway() refserver.Config {
	return refserver.Config{HeartbeatInterval: 300 * time.Millisecond, HeartbeatTimeout: time.Second, ReorderTimeout: 300 * time.Millisecond}
}

// smallPlan is clients in rooms rooms, sending every 200ms for hold.
func smallPlan(clients, rooms int, hold time.Duration) loadgen.Plan {
	return loadgen.Plan{Name: "small", Seed: 1,
		Cohorts: []loadgen.Cohort{{Name: "tabs", Count: clients, Behaviour: loadgen.Behaviour{
			RoomCount: rooms, SendInterval: 200 * time.Millisecond, HeartbeatInterval: 500 * time.Millisecond, PayloadSize: 16,
		}}},
		Phases: []loadgen.Phase{
			{Kind: loadgen.PhaseRamp, Rate: 500},
			{Kind: loadgen.PhaseHold, Duration: hold},
			{Kind: loadgen.PhaseRampDown, Rate: 1000},
		},
	}
}

// runUntil starts loadgen.RunLocal in the background and returns a stop function that cancels it
// and waits (safe to call more than once).
func runUntil(t *testing.T, p loadgen.Plan, tg loadgen.Target, rec *stats.Recorder, opts loadgen.RunOptions) (stop func() loadgen.RunSummary) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan loadgen.RunSummary, 1)
	go func() {
		sum, err := loadgen.RunLocal(ctx, p, tg, rec, opts)
		if err != nil {
			t.Error(err)
		}
		done <- sum
	}()
	var once sync.Once
	var sum loadgen.RunSummary
	return func() loadgen.RunSummary {
		once.Do(func() {
			cancel()
			sum = <-done
		})
		return sum
	}
}

var waitFor = wstest.WaitFor
