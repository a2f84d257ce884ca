package refserver

import (
	"runtime"

	"github.com/squall-dev/squall/internal/cpuprofile"
	"github.com/squall-dev/squall/internal/gctarget"
)

// I/O models of the WebSocket transport (Config.IO).
const (
	// IOGoroutine parks one reader goroutine per connection in a blocking read (gorilla/websocket),
	// and starts a writer goroutine while frames are queued.
	IOGoroutine = "goroutine"
	// IONbio (the default) hands every upgraded connection to an epoll loop (lesismal/nbio): an
	// idle connection holds no goroutine and no read buffer; frames are read and handled on shared
	// goroutines when bytes arrive, and written by whoever queues them, without blocking. TLS and
	// PROXY-protocol connections keep the goroutine transport (see Config.IO).
	IONbio = "nbio"
)

// ioModes lists the valid Config.IO values.
var ioModes = []string{IOGoroutine, IONbio}

// ioDefaults fills the I/O settings of c from d.
func (c *Config) ioDefaults(d Config) {
	if c.IO == "" {
		c.IO = d.IO
	}
	if c.GCPercent == 0 {
		c.GCPercent = d.GCPercent
	}
}

// ApplyGC sets the process's garbage collector target to GCPercent (defaults filled in; a small
// heap keeps at least 8 MB of headroom, see internal/gctarget), unless
// the GOGC environment variable is set (getenv is os.Getenv outside tests), and, without Pprof,
// turns off the heap profile's sampling (its tables cost a process ~1.5 MB that nobody reads). It
// is process-wide: the refserver binary and child gateway nodes call it; a Server never does, as
// tests and in-process nodes share their process.
func (c Config) ApplyGC(getenv func(string) string) {
	c.ioDefaults(DefaultConfig())
	if getenv("GOGC") == "" && c.GCPercent > 0 {
		gctarget.Set(c.GCPercent) // at least 8 MB of headroom while the heap is small
	}
	if !c.Pprof && getenv(cpuprofile.Env) == "" {
		runtime.MemProfileRate = 0
	}
}

// validateIO reports problems of the I/O settings of v (defaults filled in).
func validateIO(v Config, bad func(string, ...any)) {
	ok := false
	for _, m := range ioModes {
		ok = ok || v.IO == m
	}
	if !ok {
		bad("io: %q is not an I/O model (want %s or %s)", v.IO, IOGoroutine, IONbio)
	}
	if v.GCPercent < 0 {
		bad("gc-percent: must be positive, got %d", v.GCPercent)
	}
	if v.SocketBuffer < 0 {
		bad("socket-buffer: must not be negative, got %d", v.SocketBuffer)
	}
}
