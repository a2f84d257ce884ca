package chaos

import (
	"context"
	"testing"
	"time"
)

func TestMeasureOverhead(t *testing.T) {
	e := NewEmbedded(nil, EmbeddedOptions{})
	defer e.Close()
	o, err := MeasureOverhead(t.Context(), e, 300)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("direct p50 %v p99 %v; proxied p50 %v p99 %v; added p50 %v p99 %v",
		o.Direct.P50, o.Direct.P99, o.Proxied.P50, o.Proxied.P99, o.AddedP50, o.AddedP99)
	if o.Direct.N != 300 || o.Proxied.N != 300 {
		t.Fatalf("samples = %d/%d, want 300", o.Direct.N, o.Proxied.N)
	}
	if o.Proxied.P50 <= 0 || o.Direct.P50 <= 0 || o.Direct.Min > o.Direct.P50 || o.Direct.P50 > o.Direct.P99 || o.Direct.P99 > o.Direct.Max {
		t.Fatalf("inconsistent stats %+v", o)
	}
	// Generous: two extra hops on loopback are well under a millisecond on
	// an idle machine; 20 ms means something is badly wrong.
	if o.AddedP50 > 20*time.Millisecond {
		t.Errorf("proxy adds %v at p50", o.AddedP50)
	}
	// The temporary proxy is gone.
	if got := len(e.server.Collection.Proxies()); got != 0 {
		t.Errorf("%d proxies left after MeasureOverhead", got)
	}
}

// A 100 ms latency toxic shows up as ~100 ms more round trip, net of the
// proxy's own cost, and removing it brings the round trip back.
func TestLatencyToxicAddsItsLatency(t *testing.T) {
	f := newFixture(t, impls[0])
	ctx := t.Context()
	base, err := MeasureRTT(ctx, f.proxy.Listen, 50, 64)
	if err != nil {
		t.Fatal(err)
	}
	f.add(t, Toxic{Name: "lag", Type: Latency, Attributes: map[string]int64{"latency": 100}})
	slow, err := MeasureRTT(ctx, f.proxy.Listen, 5, 64)
	if err != nil {
		t.Fatal(err)
	}
	if added := slow.P50 - base.P50; added < 90*time.Millisecond || added > 250*time.Millisecond {
		t.Errorf("latency toxic of 100 ms added %v at p50 (base %v, with toxic %v)", added, base.P50, slow.P50)
	}
	if err := f.p.RemoveToxic(ctx, "p", "lag"); err != nil {
		t.Fatal(err)
	}
	after, err := MeasureRTT(ctx, f.proxy.Listen, 50, 64)
	if err != nil {
		t.Fatal(err)
	}
	if after.P50 > base.P50+20*time.Millisecond {
		t.Errorf("after removing the toxic p50 = %v, before it %v", after.P50, base.P50)
	}
}

func TestMeasureRTTCancelled(t *testing.T) {
	f := newFixture(t, impls[0])
	f.add(t, Toxic{Name: "hole", Type: Timeout})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { _, err := MeasureRTT(ctx, f.proxy.Listen, 10, 64); done <- err }()
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("MeasureRTT through a black hole returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("MeasureRTT ignored its context")
	}
}

// BenchmarkRoundTrip reports a 64-byte echo round trip directly and through
// an embedded proxy without toxics.
func BenchmarkRoundTrip(b *testing.B) {
	echo, err := NewEchoServer("")
	if err != nil {
		b.Fatal(err)
	}
	defer echo.Close()
	e := NewEmbedded(nil, EmbeddedOptions{})
	defer e.Close()
	info, err := e.Proxy(b.Context(), "bench", "", echo.Addr())
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct{ name, addr string }{{"direct", echo.Addr()}, {"proxied", info.Listen}} {
		b.Run(tc.name, func(b *testing.B) {
			r, err := dialRTT(b.Context(), tc.addr, 64)
			if err != nil {
				b.Fatal(err)
			}
			defer r.c.Close()
			for b.Loop() {
				if _, err := r.roundTrip(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
