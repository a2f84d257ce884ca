package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/squall-dev/squall/internal/usage"
	"github.com/squall-dev/squall/loadgen/agent"
)

// TestBadInput: each mistake on the command line is a usage error naming it, before anything
// listens.
func TestBadInput(t *testing.T) {
	t.Setenv(agent.TokenEnv, "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"agent", "--listen", "127.0.0.1:0"}, "needs --token or $" + agent.TokenEnv},
		{[]string{"agent", "--token", "t", "--listen", "0.0.0.0:0"}, "loopback only"},
		{[]string{"--token", "t", "--gc-percent", "-1"}, "--gc-percent -1"},
		{[]string{"--token", "t", "extra"}, `unexpected argument "extra"`},
		{[]string{"--no-such-flag"}, "no-such-flag"},
	} {
		var out, errb bytes.Buffer
		err := run(context.Background(), tc.args, &out, &errb)
		if !usage.Is(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want a usage error containing %q", tc.args, err, tc.want)
		}
		if out.Len() > 0 {
			t.Errorf("%v: printed %q", tc.args, out.String())
		}
	}
}

// TestServesUntilCancelled: with a token it prints its address in the line a controller reads
// and returns cleanly once its context ends.
func TestServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	lines := &lineWriter{seen: make(chan string, 1)}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"agent", "--listen", "127.0.0.1:0", "--token", "t"}, lines, &bytes.Buffer{})
	}()
	select {
	case l := <-lines.seen:
		if !strings.HasPrefix(l, agent.ListenPrefix+"127.0.0.1:") {
			t.Errorf("first line %q, want %s127.0.0.1:PORT", l, agent.ListenPrefix)
		}
	case err := <-done:
		t.Fatalf("returned before listening: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("after cancel: %v", err)
	}
}

// lineWriter hands the first line written to it to seen.
type lineWriter struct {
	buf  bytes.Buffer
	seen chan string
	sent bool
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	if l, _, ok := strings.Cut(w.buf.String(), "\n"); ok && !w.sent {
		w.sent = true
		w.seen <- l
	}
	return len(p), nil
}
