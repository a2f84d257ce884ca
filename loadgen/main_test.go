package loadgen

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that every goroutine a test starts has ended when the tests finish.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
