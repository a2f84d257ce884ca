package chaos

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestToxiproxyLogsGoToSlog(t *testing.T) {
	tests := []struct {
		name  string
		level slog.Level
		want  string // substring expected in the output, "" for none
	}{
		{"debug shows toxiproxy info as debug", slog.LevelDebug, "level=DEBUG msg=\"Started proxy\" component=toxiproxy"},
		{"info shows nothing", slog.LevelInfo, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := &logBuffer{wrote: make(chan struct{}, 1)}
			logger := slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: tt.level}))
			e := NewEmbedded(logger, EmbeddedOptions{})
			defer e.Close()
			if _, err := e.Proxy(t.Context(), "logged", "", "127.0.0.1:1"); err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				out := buf.String()
				if strings.Contains(out, "toxiproxy") {
					t.Errorf("unexpected toxiproxy output:\n%s", out)
				}
				return
			}
			// Toxiproxy logs the start from the proxy's own goroutine, after Proxy has returned.
			if out, ok := buf.await(func(out string) bool {
				return strings.Contains(out, tt.want) && strings.Contains(out, "name=logged")
			}, 10*time.Second); !ok {
				t.Errorf("output lacks %q:\n%s", tt.want, out)
			}
		})
	}
}

// logBuffer is a log destination safe for the goroutines that write to it, which a test can wait on.
type logBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{} // signalled after each write
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	n, err := b.buf.Write(p)
	b.mu.Unlock()
	select {
	case b.wrote <- struct{}{}:
	default:
	}
	return n, err
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// await waits, at most d, until the output satisfies ok, and returns it.
func (b *logBuffer) await(ok func(string) bool, d time.Duration) (string, bool) {
	deadline := time.After(d)
	for {
		if out := b.String(); ok(out) {
			return out, true
		}
		select {
		case <-b.wrote:
		case <-deadline:
			return b.String(), false
		}
	}
}
