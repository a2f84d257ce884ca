package refserver

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/squall-dev/squall/refserver/protocol"
)

// fakeClock is a settable clock for the detectors.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestBreakerStates(t *testing.T) {
	clk := newFakeClock()
	var changes []string
	b := newBreaker(3, 5*time.Second, clk.now, func(from, to breakerState) {
		changes = append(changes, from.String()+">"+to.String())
	})
	steps := []struct {
		name      string
		advance   time.Duration
		outcome   string // "ok", "fail", "" (do not call)
		wantAllow bool
		wantState breakerState
	}{
		{"closed passes", 0, "ok", true, breakerClosed},
		{"failure 1", 0, "fail", true, breakerClosed},
		{"failure 2", 0, "fail", true, breakerClosed},
		{"a success resets the count", 0, "ok", true, breakerClosed},
		{"failure 1 again", 0, "fail", true, breakerClosed},
		{"failure 2 again", 0, "fail", true, breakerClosed},
		{"failure 3 opens", 0, "fail", true, breakerOpen},
		{"open refuses", time.Second, "", false, breakerOpen},
		{"still open just before the cooldown", 3999 * time.Millisecond, "", false, breakerOpen},
		{"cooldown over: one probe, which fails", time.Millisecond, "fail", true, breakerOpen},
		{"open again for a full cooldown", 4 * time.Second, "", false, breakerOpen},
		{"second probe succeeds and closes", time.Second, "ok", true, breakerClosed},
		{"closed passes again", 0, "ok", true, breakerClosed},
	}
	for _, st := range steps {
		clk.add(st.advance)
		ok, retry := b.allow()
		if ok != st.wantAllow {
			t.Fatalf("%s: allow = %v, want %v", st.name, ok, st.wantAllow)
		}
		if !ok && retry <= 0 {
			t.Fatalf("%s: refused without a retry hint", st.name)
		}
		if ok {
			b.done(st.outcome == "ok")
		}
		if got := b.current(); got != st.wantState {
			t.Fatalf("%s: state %s, want %s", st.name, got, st.wantState)
		}
	}
	want := "closed>open,open>half-open,half-open>open,open>half-open,half-open>closed"
	if got := joinStrings(changes); got != want {
		t.Fatalf("transitions %s, want %s", got, want)
	}
}

func TestBreakerHalfOpenLetsOneProbeThrough(t *testing.T) {
	clk := newFakeClock()
	b := newBreaker(1, time.Second, clk.now, nil)
	b.allow()
	b.done(false)
	clk.add(time.Second)
	if ok, _ := b.allow(); !ok {
		t.Fatal("no probe after the cooldown")
	}
	for i := 0; i < 10; i++ {
		if ok, retry := b.allow(); ok || retry <= 0 {
			t.Fatalf("a second call passed while the probe is in flight (ok=%v retry=%v)", ok, retry)
		}
	}
	b.cancel() // the probe was abandoned: the next call probes again
	if ok, _ := b.allow(); !ok {
		t.Fatal("no new probe after an abandoned one")
	}
}

func TestAdmissionTokenBucket(t *testing.T) {
	clk := newFakeClock()
	a := newAdmission(100, 10, clk.now, func() float64 { return 0.5 })
	admitted := 0
	for i := 0; i < 30; i++ {
		if ok, retry := a.take(); ok {
			admitted++
		} else if retry < shedRetryMin || retry > shedRetryMax {
			t.Fatalf("retry hint %v outside [%v, %v]", retry, shedRetryMin, shedRetryMax)
		}
	}
	if admitted != 10 {
		t.Fatalf("admitted %d of a burst of 30, want the bucket size 10", admitted)
	}
	if got := a.shedCount(); got != 20 {
		t.Fatalf("shed %d, want 20", got)
	}
	clk.add(50 * time.Millisecond) // refills 5
	admitted = 0
	for i := 0; i < 10; i++ {
		if ok, _ := a.take(); ok {
			admitted++
		}
	}
	if admitted != 5 {
		t.Fatalf("admitted %d after 50 ms at 100/s, want 5", admitted)
	}
	clk.add(time.Hour) // refills to the bucket size, not beyond
	admitted = 0
	for i := 0; i < 20; i++ {
		if ok, _ := a.take(); ok {
			admitted++
		}
	}
	if admitted != 10 {
		t.Fatalf("admitted %d after a long pause, want the bucket size 10", admitted)
	}
	off := newAdmission(-1, 1, clk.now, nil)
	for i := 0; i < 1000; i++ {
		if ok, _ := off.take(); !ok {
			t.Fatal("accept-rate -1 shed an attempt")
		}
	}
}

func TestAdmissionRetryHintSpreadsWithThePressure(t *testing.T) {
	clk := newFakeClock()
	a := newAdmission(100, 1, clk.now, func() float64 { return 0.999 })
	a.take()
	var last time.Duration
	for i := 0; i < 400; i++ {
		_, last = a.take()
	}
	// 400 shed within one second at 100/s: the retries spread over about 4 s.
	if last < 4*time.Second || last > 5*time.Second {
		t.Fatalf("hint after 400 sheds at 100/s = %v, want about 0.5 s + 4 s", last)
	}
	clk.add(2 * time.Second)
	a.tokens = 0
	a.last = clk.now()
	if _, h := a.take(); h > 1600*time.Millisecond {
		t.Fatalf("hint once the pressure is gone = %v, want at most 1.5 s", h)
	}
	if got := retryAfterHeader(1200 * time.Millisecond); got != "2" {
		t.Fatalf("Retry-After for 1.2 s = %s, want 2 (rounded up)", got)
	}
	if got := retryAfterHeader(10 * time.Millisecond); got != "1" {
		t.Fatalf("Retry-After for 10 ms = %s, want 1", got)
	}
}

func TestStormDetector(t *testing.T) {
	clk := newFakeClock()
	d := newStormDetector(100, 50, 10*time.Second, clk.now)
	var rises, falls int
	d.onRise = func(int, float64) { rises++ }
	d.onFall = func(time.Duration, uint64, time.Time) { falls++ }
	attempts := func(n int, over time.Duration) {
		for i := 0; i < n; i++ {
			d.observe()
			clk.add(over / time.Duration(n))
		}
	}
	// 50 within one second is the threshold, not beyond it.
	attempts(50, 900*time.Millisecond)
	if d.isActive() || rises != 0 {
		t.Fatal("50 attempts within a second raised the alert (the threshold is more than 50)")
	}
	clk.add(2 * time.Second)
	attempts(51, 900*time.Millisecond)
	if !d.isActive() || rises != 1 {
		t.Fatalf("51 attempts within a second: active=%v rises=%d", d.isActive(), rises)
	}
	// More waves close together are the same storm.
	clk.add(time.Second)
	attempts(60, 500*time.Millisecond)
	if rises != 1 {
		t.Fatalf("a second wave 1 s later counted as a new storm (%d rises)", rises)
	}
	clk.add(1900 * time.Millisecond)
	if !d.isActive() {
		t.Fatal("storm over less than 2 s after its last hot attempt")
	}
	clk.add(200 * time.Millisecond)
	if d.isActive() || falls != 1 {
		t.Fatalf("storm not over 2 s after the last hot attempt (active=%v falls=%d)", d.isActive(), falls)
	}
	// A sustained rate above 100/s with no second above the burst threshold: 40 every 0.3 s is 133/s.
	for i := 0; i < 30; i++ {
		attempts(40, 300*time.Millisecond)
		if d.isActive() {
			break
		}
	}
	if !d.isActive() || rises != 2 {
		t.Fatalf("a sustained 133/s did not raise the alert (active=%v rises=%d)", d.isActive(), rises)
	}
	// 2000 attempts in the window keep it above 100/s until they age out.
	clk.add(30 * time.Second)
	if d.isActive() || falls != 2 {
		t.Fatalf("storm not over 30 s after the attempts stopped (falls=%d)", falls)
	}
	// Detection never refuses anyone: it has no say in admission (nothing to assert but the API:
	// observe returns nothing).
}

// countingBackend counts calls and can fail or block.
type countingBackend struct {
	calls atomic.Int64
	fail  atomic.Bool
	delay time.Duration
}

func (b *countingBackend) Authenticate(ctx context.Context, token string) (string, error) {
	b.calls.Add(1)
	if b.delay > 0 {
		select {
		case <-time.After(b.delay):
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if b.fail.Load() {
		return "", errors.New("backend down")
	}
	user, err := protocol.VerifyToken([]byte(testSecret), token, time.Now())
	if err != nil {
		return "", errors.Join(ErrUnauthorized, err)
	}
	return user, nil
}

func TestAuthCacheRespectsTTLAndTokenExpiry(t *testing.T) {
	clk := newFakeClock()
	c := newAuthCache(5*time.Minute, 3, clk.now)
	k := func(b byte) tokenKey { return tokenKey{b} }
	finish := func(key tokenKey, user string, exp time.Time) {
		_, hit, wait, own := c.lookup(key)
		if hit || wait != nil || own == nil {
			t.Fatalf("lookup of a new key: hit=%v wait=%v", hit, wait)
		}
		c.complete(key, own, user, nil, exp)
	}
	finish(k(1), "u1", time.Time{})
	finish(k(2), "u2", clk.now().Add(time.Minute)) // the token expires before the TTL
	if u, hit, _, _ := c.lookup(k(1)); !hit || u != "u1" {
		t.Fatalf("cached token missed: %q %v", u, hit)
	}
	clk.add(61 * time.Second)
	if _, hit, _, own := c.lookup(k(2)); hit {
		t.Fatal("a token past its exp was answered from the cache")
	} else {
		c.complete(k(2), own, "", ErrUnauthorized, time.Time{}) // failures are not cached
	}
	if _, hit, _, own := c.lookup(k(2)); hit {
		t.Fatal("a failed check was cached")
	} else {
		c.complete(k(2), own, "", ErrUnauthorized, time.Time{})
	}
	clk.add(4 * time.Minute)
	if _, hit, _, own := c.lookup(k(1)); hit {
		t.Fatal("a token validated more than the TTL ago was answered from the cache")
	} else {
		c.complete(k(1), own, "", errors.New("x"), time.Time{})
	}
	// Size bound.
	for i := byte(10); i < 20; i++ {
		finish(k(i), "u", time.Time{})
	}
	if n := c.len(); n > 3 {
		t.Fatalf("cache holds %d entries, bound 3", n)
	}
	if tokenExpiry("not-a-jwt") != (time.Time{}) {
		t.Fatal("tokenExpiry of garbage is not zero")
	}
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	tok, _ := protocol.SignToken([]byte("s"), "u", exp)
	if got := tokenExpiry(tok); !got.Equal(exp) {
		t.Fatalf("tokenExpiry = %v, want %v", got, exp)
	}
}

func TestAuthGuardCoalescesConcurrentChecks(t *testing.T) {
	cfg := testConfig()
	be := &countingBackend{delay: 50 * time.Millisecond}
	srv, err := New(cfg, nil, WithAuthBackend(be))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Shutdown(context.Background()) }()
	tok := mintToken(t, "alice")
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, err := srv.authGuard.check(context.Background(), tok)
			if err == nil && u != "alice" {
				err = errors.New("wrong user " + u)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := be.calls.Load(); n != 1 {
		t.Fatalf("50 concurrent checks of one token made %d backend calls, want 1", n)
	}
	if got := counterValue(t, srv, protocol.MetricAuthRequestsTotal, map[string]string{"result": "ok", "cached": "false"}); got != 1 {
		t.Fatalf("ok/uncached = %v, want 1", got)
	}
	if got := counterValue(t, srv, protocol.MetricAuthRequestsTotal, map[string]string{"result": "ok", "cached": "true"}); got != 49 {
		t.Fatalf("ok/cached = %v, want 49", got)
	}
	// A bad token is judged by the backend every time (failures are not cached).
	for i := 0; i < 3; i++ {
		if _, err := srv.authGuard.check(context.Background(), "garbage"); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("garbage token: %v", err)
		}
	}
	if n := be.calls.Load(); n != 4 {
		t.Fatalf("backend calls %d after 3 bad tokens, want 4", n)
	}
}

func TestSimulatedBackend(t *testing.T) {
	inner := NewJWTBackend([]byte(testSecret), nil)
	tok := mintToken(t, "bob")
	b := NewSimulatedBackend(inner, 30*time.Millisecond, 0)
	start := time.Now()
	if u, err := b.Authenticate(context.Background(), tok); err != nil || u != "bob" {
		t.Fatalf("%q %v", u, err)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("call took %v, latency 30ms", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Authenticate(ctx, tok); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v", err)
	}
	b.SetLatency(0)
	b.SetFailRate(1)
	for i := 0; i < 10; i++ {
		if _, err := b.Authenticate(context.Background(), tok); !errors.Is(err, ErrBackendFailure) {
			t.Fatalf("fail rate 1: %v", err)
		}
	}
	b.SetFailRate(0.5)
	fails := 0
	for i := 0; i < 2000; i++ {
		if _, err := b.Authenticate(context.Background(), tok); err != nil {
			fails++
		}
	}
	if fails < 800 || fails > 1200 {
		t.Fatalf("fail rate 0.5 failed %d of 2000", fails)
	}
	if b.Calls() != 2012 || b.Failures() != uint64(10+fails) {
		t.Fatalf("calls %d failures %d", b.Calls(), b.Failures())
	}
}

func TestValidateAuthStorm(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string // "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"admission off", func(c *Config) { c.AcceptRate = -1 }, ""},
		{"fail rate above 1", func(c *Config) { c.AuthFailRate = 1.1 }, "auth-fail-rate: must be within 0..1, got 1.1"},
		{"negative fail rate", func(c *Config) { c.AuthFailRate = -0.1 }, "auth-fail-rate"},
		{"negative latency", func(c *Config) { c.AuthLatency = -time.Second }, "auth-latency: must not be negative"},
		{"negative cache ttl", func(c *Config) { c.AuthCacheTTL = -time.Second }, "auth-cache-ttl: must not be negative"},
		{"negative accept rate", func(c *Config) { c.AcceptRate = -2 }, "accept-rate: must be positive or -1"},
		{"negative burst", func(c *Config) { c.AcceptBurst = -1 }, "accept-burst: must be at least 1"},
		{"breaker failures", func(c *Config) { c.AuthBreakerFailures = -3 }, "auth-breaker-failures: must be at least 1"},
		{"storm rate", func(c *Config) { c.StormAlertRate = -1 }, "storm-alert-rate: must be positive"},
		{"storm burst", func(c *Config) { c.StormAlertBurst = -1 }, "storm-alert-burst: must be at least 1"},
		{"storm window", func(c *Config) { c.StormAlertWindow = 100 * time.Millisecond }, "storm-alert-window: must be at least 1s"},
		{"shed mode", func(c *Config) { c.ShedMode = "drop" }, `shed-mode: want "http" or "close", got "drop"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Dev: true}
			tt.mod(&cfg)
			err := cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// BenchmarkAuthCacheHit measures a token check answered by the cache (the reconnect fast path).
func BenchmarkAuthCacheHit(b *testing.B) {
	cfg := testConfig()
	srv, err := New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = srv.Shutdown(context.Background()) }()
	tok := mintToken(b, "bench")
	if _, err := srv.authGuard.check(context.Background(), tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := srv.authGuard.check(context.Background(), tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	if calls := srv.authGuard.backend.Calls(); calls != 1 {
		b.Fatalf("%d backend calls", calls)
	}
}

// BenchmarkAdmissionAndStorm measures what every connection attempt pays: the token bucket and the
// storm detector.
func BenchmarkAdmissionAndStorm(b *testing.B) {
	a := newAdmission(2000, 1000, nil, nil)
	d := newStormDetector(100, 50, 10*time.Second, nil)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		d.observe()
		a.take()
	}
}

// TestAuthCheckWithin: a check is bounded by the hello timeout unless the backend answers at once
// (the built-in JWT check without simulated latency), which is asked without a deadline of its own.
func TestAuthCheckWithin(t *testing.T) {
	srv, err := New(testConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Shutdown(context.Background()) }()
	g := srv.authGuard
	if !g.backend.instant() {
		t.Fatal("the built-in JWT backend without latency is not instant")
	}
	if u, err := g.checkWithin(context.Background(), time.Nanosecond, mintToken(t, "alice")); err != nil || u != "alice" {
		t.Fatalf("instant check = %q, %v; want alice", u, err)
	}
	g.backend.SetLatency(time.Hour)
	if g.backend.instant() {
		t.Fatal("a backend with latency is instant")
	}
	start := time.Now()
	_, err = g.checkWithin(context.Background(), 50*time.Millisecond, mintToken(t, "bob"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow check = %v, want the deadline's error", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("slow check took %v, bound 50ms", d)
	}
	slow, err := New(testConfig(), nil, WithAuthBackend(&countingBackend{}))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = slow.Shutdown(context.Background()) }()
	if slow.authGuard.backend.instant() {
		t.Fatal("a backend other than the built-in one is instant")
	}
}
