package chaos

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestDisableEnable(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			f := newFixture(t, im)
			c := f.dial(t)
			echoOnce(t, c, []byte("before"))

			if err := f.p.Disable(t.Context(), "p"); err != nil {
				t.Fatal(err)
			}
			// Open connections get a FIN, not a reset.
			if _, err := readUntilClosed(c); !errors.Is(err, io.EOF) {
				t.Fatalf("read on a disabled proxy = %v, want EOF", err)
			}
			if c2, err := net.DialTimeout("tcp", f.proxy.Listen, 5*time.Second); err == nil {
				c2.Close()
				t.Fatal("dial to a disabled proxy succeeded")
			} else if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("dial to a disabled proxy = %v, want connection refused", err)
			}

			if err := f.p.Enable(t.Context(), "p"); err != nil {
				t.Fatal(err)
			}
			echoOnce(t, f.dial(t), []byte("after"))
			// Enable is idempotent.
			if err := f.p.Enable(t.Context(), "p"); err != nil {
				t.Fatalf("second Enable: %v", err)
			}
		})
	}
}

func TestProxyErrors(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			f := newFixture(t, im)
			ctx := t.Context()
			lag := Toxic{Name: "lag", Type: Latency, Attributes: map[string]int64{"latency": 1}}
			tests := []struct {
				name string
				err  error
				want error
			}{
				{"duplicate proxy", func() error { _, err := f.p.Proxy(ctx, "p", "127.0.0.1:0", f.echo.Addr()); return err }(), ErrProxyExists},
				{"toxic on unknown proxy", f.p.AddToxic(ctx, "nope", lag), ErrProxyNotFound},
				{"first toxic", f.p.AddToxic(ctx, "p", lag), nil},
				{"duplicate toxic", f.p.AddToxic(ctx, "p", lag), ErrToxicExists},
				{"remove unknown toxic", f.p.RemoveToxic(ctx, "p", "nope"), ErrToxicNotFound},
				{"disable unknown proxy", f.p.Disable(ctx, "nope"), ErrProxyNotFound},
				{"delete unknown proxy", f.p.DeleteProxy(ctx, "nope"), ErrProxyNotFound},
			}
			for _, tt := range tests {
				if !errors.Is(tt.err, tt.want) || (tt.want == nil) != (tt.err == nil) {
					t.Errorf("%s: err = %v, want %v", tt.name, tt.err, tt.want)
				}
			}
			if err := f.p.AddToxic(ctx, "p", Toxic{Name: "bad", Type: "latncy"}); err == nil ||
				!strings.Contains(err.Error(), `unknown toxic type "latncy"`) {
				t.Errorf("invalid toxic: err = %v", err)
			}
			got, err := f.p.Toxics(ctx, "p")
			if err != nil {
				t.Fatal(err)
			}
			want := Toxic{Name: "lag", Type: Latency, Stream: Downstream, Toxicity: 1,
				Attributes: map[string]int64{"latency": 1, "jitter": 0}}
			if len(got) != 1 || got[0].Name != want.Name || got[0].Type != want.Type ||
				got[0].Stream != want.Stream || got[0].Toxicity != want.Toxicity ||
				got[0].Attributes["latency"] != 1 {
				t.Errorf("Toxics = %+v, want [%+v]", got, want)
			}
			if err := f.p.DeleteProxy(ctx, "p"); err != nil {
				t.Fatal(err)
			}
			if _, err := net.DialTimeout("tcp", f.proxy.Listen, 5*time.Second); err == nil {
				t.Error("dial to a deleted proxy succeeded")
			}
		})
	}
}

// The Toxiproxy API refuses browsers; External must not look like one.
func TestAPIRejectsBrowserAgent(t *testing.T) {
	x := newExternalForTest(t)
	if v, err := x.Version(t.Context()); err != nil || v == "" {
		t.Fatalf("Version = %q, %v", v, err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, x.endpoint+"/version", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", "Mozilla/5.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("status with a Mozilla agent = %d, want 403", resp.StatusCode)
	}
}

func TestToxicValidate(t *testing.T) {
	tests := []struct {
		name  string
		toxic Toxic
		want  string // "" = valid
	}{
		{"valid latency", Toxic{Name: "a", Type: Latency, Attributes: map[string]int64{"latency": 5, "jitter": 1}}, ""},
		{"valid timeout without attributes", Toxic{Name: "a", Type: Timeout}, ""},
		{"missing name and type", Toxic{}, "name: missing\ntype: missing (want one of bandwidth, latency, limit_data, reset_peer, slicer, slow_close, timeout)"},
		{"bad stream and toxicity", Toxic{Name: "a", Type: Timeout, Stream: "sideways", Toxicity: 1.5}, "stream: \"sideways\" is not upstream or downstream\ntoxicity: 1.5 is outside 0..1"},
		{"unknown and negative attributes", Toxic{Name: "a", Type: Latency, Attributes: map[string]int64{"latency": -1, "rate": 3}},
			"attributes.latency: -1 is negative\nattributes.rate: unknown attribute for latency (want latency, jitter)"},
		{"missing required", Toxic{Name: "a", Type: LimitData}, "attributes.bytes: missing (bytes let through before the close, in bytes)"},
		{"slicer variation", Toxic{Name: "a", Type: Slicer, Attributes: map[string]int64{"average_size": 4, "size_variation": 4}},
			"attributes.size_variation: 4 must be smaller than average_size 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.toxic.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Validate() =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

// With PreserveSourceIP the upstream sees the client's loopback address;
// without it, the proxy's.
func TestPreserveSourceIP(t *testing.T) {
	for _, tt := range []struct {
		preserve bool
		want     string
	}{{true, "127.0.0.5"}, {false, "127.0.0.1"}} {
		t.Run(fmt.Sprintf("preserve=%v", tt.preserve), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			seen := make(chan string, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					seen <- err.Error()
					return
				}
				host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
				c.Close()
				seen <- host
			}()
			e := NewEmbedded(nil, EmbeddedOptions{PreserveSourceIP: tt.preserve})
			defer e.Close()
			info, err := e.Proxy(t.Context(), "p", "", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.5")}, Timeout: 5 * time.Second}
			c, err := d.Dial("tcp", info.Listen)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			select {
			case got := <-seen:
				if got != tt.want {
					t.Errorf("upstream saw %s, want %s", got, tt.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("upstream saw no connection")
			}
		})
	}
}

// Connections the links have closed are forgotten, so a long run with many
// short connections does not grow the proxy's bookkeeping.
func TestSourceProxyPrunesClosedConns(t *testing.T) {
	f := newFixture(t, impls[1])
	sp := f.p.(*Embedded).sourceProxy("p")
	for range 10 {
		c := f.dial(t)
		echoOnce(t, c, []byte("x"))
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		sp.mu.Lock()
		sp.pruneLocked()
		n := len(sp.conns)
		sp.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still tracked after all closed", n)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}
