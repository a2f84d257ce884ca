package chaos

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
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
			var buf bytes.Buffer
			logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tt.level}))
			e := NewEmbedded(logger, EmbeddedOptions{})
			defer e.Close()
			if _, err := e.Proxy(t.Context(), "logged", "", "127.0.0.1:1"); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			if tt.want == "" {
				if strings.Contains(out, "toxiproxy") {
					t.Errorf("unexpected toxiproxy output:\n%s", out)
				}
				return
			}
			if !strings.Contains(out, tt.want) || !strings.Contains(out, "name=logged") {
				t.Errorf("output lacks %q:\n%s", tt.want, out)
			}
		})
	}
}
