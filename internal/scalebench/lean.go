package scalebench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// The hidden subcommands the bench binary runs the lean pair's processes under.
const (
	leanServerCmd = "__lean-server"
	leanClientCmd = "__lean-client"
)

// The lean pair is the reference: the least a goroutine-per-connection gorilla/websocket program
// spends on an idle connection. The server upgrades and parks one goroutine per connection in
// ReadMessage; the client dials and does the same (answering pings with gorilla's default
// handler). Buffers are small (512 B read, pooled writes); nobody sends anything.
var leanUpgrader = websocket.Upgrader{
	ReadBufferSize:  512,
	WriteBufferSize: 512,
	WriteBufferPool: &sync.Pool{},
	CheckOrigin:     func(*http.Request) bool { return true },
}

// ServeLean runs the lean server on ln until ctx ends.
func ServeLean(ctx context.Context, ln net.Listener) error {
	var held atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := leanUpgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		held.Add(1)
		go func() { // ends when the client closes or ctx closes the listener's connections
			defer held.Add(-1)
			defer c.Close()
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}()
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = hs.Close()
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// DialLean opens n connections to url from the addresses of src, at most inflight handshakes at
// once, and leaves them open (each with its reader). It returns how many opened and the first error.
func DialLean(ctx context.Context, url string, n int, src netip.Prefix, inflight int) (int, error) {
	addrs := hostsOf(src, n)
	if len(addrs) == 0 {
		return 0, fmt.Errorf("lean client: no source addresses in %s", src)
	}
	var (
		opened   atomic.Int64
		firstErr error
		errOnce  sync.Once
		wg       sync.WaitGroup
	)
	sem := make(chan struct{}, inflight)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := websocket.Dialer{
				ReadBufferSize: 512, WriteBufferSize: 512, WriteBufferPool: &sync.Pool{},
				HandshakeTimeout: 30 * time.Second,
				NetDialContext:   (&net.Dialer{LocalAddr: &net.TCPAddr{IP: addrs[i%len(addrs)].AsSlice()}}).DialContext,
			}
			c, _, err := d.DialContext(ctx, url, nil)
			<-sem
			if err != nil {
				errOnce.Do(func() { firstErr = err })
				return
			}
			opened.Add(1)
			// One parked reader per connection, as a lean client has. It ends when the server
			// closes; the process exits with the connections open when the bench is done.
			go func() {
				for {
					if _, _, err := c.ReadMessage(); err != nil {
						return
					}
				}
			}()
		}()
	}
	wg.Wait()
	return int(opened.Load()), firstErr
}

// hostsOf lists up to limit addresses of p (host bytes 0 and 255 skipped).
func hostsOf(p netip.Prefix, limit int) []netip.Addr {
	var out []netip.Addr
	for a := p.Masked().Addr(); p.Contains(a) && len(out) < limit; a = a.Next() {
		if b := a.As4(); b[3] == 0 || b[3] == 255 {
			continue
		}
		out = append(out, a)
	}
	return out
}

// waitLine reads r until a line starting with prefix and returns the rest of it.
func waitLine(r io.Reader, prefix string) (string, error) {
	var line []byte
	buf := make([]byte, 1)
	for {
		if _, err := r.Read(buf); err != nil {
			return "", fmt.Errorf("waiting for %q: %w", prefix, err)
		}
		if buf[0] != '\n' {
			line = append(line, buf[0])
			continue
		}
		if s := string(line); len(s) >= len(prefix) && s[:len(prefix)] == prefix {
			return s[len(prefix):], nil
		}
		line = line[:0]
	}
}
