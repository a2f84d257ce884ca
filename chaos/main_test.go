package chaos

import (
	"bufio"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"go.uber.org/goleak"
)

// childEnv makes the test binary act as a fake gateway node (see
// runChild) instead of running tests.
const childEnv = "SQUALL_CHAOS_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	goleak.VerifyTestMain(m)
}

// runChild is a stand-in for a gateway process: it prints "ready", echoes
// every stdin line back as "echo: <line>", and on SIGTERM prints "draining"
// and exits 0 — unless mode is "ignore-term", when it ignores SIGTERM.
func runChild(mode string) int {
	term := make(chan os.Signal, 1)
	if mode == "ignore-term" {
		signal.Ignore(syscall.SIGTERM)
	} else {
		signal.Notify(term, syscall.SIGTERM)
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	fmt.Printf("ready %d\n", os.Getpid())
	for {
		select {
		case <-term:
			fmt.Println("draining")
			return 0
		case l, ok := <-lines:
			if !ok {
				return 0
			}
			fmt.Printf("echo: %s\n", l)
		}
	}
}
