package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sort"
	"time"

	"github.com/rs/zerolog"
)

// newZerolog returns a zerolog.Logger that forwards to logger: zerolog's
// error level and above become slog Warn, everything else Debug (Toxiproxy
// logs every accepted connection at Info). A nil logger, or one that takes
// neither level, gives a disabled zerolog.Logger so nothing is formatted.
func newZerolog(logger *slog.Logger) zerolog.Logger {
	if logger == nil {
		return zerolog.Nop()
	}
	ctx := context.Background()
	switch {
	case logger.Enabled(ctx, slog.LevelDebug):
		return zerolog.New(slogWriter{logger}).Level(zerolog.DebugLevel)
	case logger.Enabled(ctx, slog.LevelWarn):
		return zerolog.New(slogWriter{logger}).Level(zerolog.ErrorLevel)
	}
	return zerolog.Nop()
}

// slogWriter turns zerolog's JSON lines back into slog records.
type slogWriter struct{ logger *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	var fields map[string]any
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil {
		w.logger.Debug("toxiproxy", "raw", string(bytes.TrimSpace(p)))
		return len(p), nil
	}
	level := slog.LevelDebug
	if l, _ := fields[zerolog.LevelFieldName].(string); l != "" {
		if zl, err := zerolog.ParseLevel(l); err == nil && zl >= zerolog.ErrorLevel {
			level = slog.LevelWarn
		}
	}
	msg, _ := fields[zerolog.MessageFieldName].(string)
	delete(fields, zerolog.LevelFieldName)
	delete(fields, zerolog.MessageFieldName)
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	attrs := make([]slog.Attr, 0, len(keys)+1)
	attrs = append(attrs, slog.String("component", "toxiproxy"))
	for _, k := range keys {
		attrs = append(attrs, slog.Any(k, fields[k]))
	}
	r := slog.NewRecord(time.Now(), level, msg, 0)
	r.AddAttrs(attrs...)
	ctx := context.Background()
	if w.logger.Handler().Enabled(ctx, level) {
		_ = w.logger.Handler().Handle(ctx, r)
	}
	return len(p), nil
}
