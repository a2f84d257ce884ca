package refserver

import (
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/refserver/protocol"
)

// admission is the per-node token bucket in front of every new connection (storm protection, DESIGN
// §2): it holds up to burst tokens and refills at rate per second; an attempt that finds no token is
// shed. The retry hint it gives a shed attempt is jittered and widens with the number of attempts shed
// in the last second, so that a storm's retries spread over the time the bucket needs to admit them.
// Safe for concurrent use.
type admission struct {
	rate  float64 // tokens per second; <= 0 means admission control is off
	burst float64
	now   func() time.Time
	rnd   func() float64 // uniform in [0, 1)

	shed atomic.Uint64 // attempts shed so far

	mu     sync.Mutex
	tokens float64
	last   time.Time
	shedAt []time.Time // shed attempts of the last second, oldest first (bounded by rate)
}

// Bounds of the shed retry hint.
const (
	shedRetryMin = 500 * time.Millisecond
	shedRetryMax = 30 * time.Second
)

func newAdmission(rate float64, burst int, now func() time.Time, rnd func() float64) *admission {
	if now == nil {
		now = time.Now
	}
	if rnd == nil {
		rnd = rand.Float64
	}
	return &admission{rate: rate, burst: float64(burst), now: now, rnd: rnd, tokens: float64(burst)}
}

// take asks to admit one connection. When it is refused, retry is the jittered hint for the client.
func (a *admission) take() (ok bool, retry time.Duration) {
	if a.rate <= 0 {
		return true, 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if !a.last.IsZero() {
		a.tokens = math.Min(a.burst, a.tokens+now.Sub(a.last).Seconds()*a.rate)
	}
	a.last = now
	if a.tokens >= 1 {
		a.tokens--
		return true, 0
	}
	cut := now.Add(-time.Second)
	i := 0
	for i < len(a.shedAt) && !a.shedAt[i].After(cut) {
		i++
	}
	a.shedAt = a.shedAt[i:]
	a.shed.Add(1)
	if float64(len(a.shedAt)) < 4*a.rate+1 {
		a.shedAt = append(a.shedAt, now)
	}
	// Spread the retries of everyone shed in the last second over the time the bucket needs to
	// admit them again, at least one second.
	spread := time.Duration(math.Max(1, float64(len(a.shedAt))/a.rate) * float64(time.Second))
	retry = shedRetryMin + time.Duration(a.rnd()*float64(spread))
	return false, min(retry, shedRetryMax)
}

// shedCount returns the attempts shed so far.
func (a *admission) shedCount() uint64 { return a.shed.Load() }

// retryAfterHeader is the Retry-After value (whole seconds, at least 1) for a hint.
func retryAfterHeader(d time.Duration) string {
	return strconv.FormatInt(max(1, int64(math.Ceil(d.Seconds()))), 10)
}

// isAttempt reports whether r opens a connection (a plain GET /ws without an upgrade does not:
// serveWS answers it 426).
func isAttempt(r *http.Request) bool {
	return r.URL.Path != protocol.PathWS || websocket.IsWebSocketUpgrade(r)
}

// observeAttempt counts a connection attempt (any transport) for storm detection, whatever answer it
// gets afterwards: attempts refused while draining or at max-conns are part of a storm too.
func (s *Server) observeAttempt(r *http.Request) {
	if isAttempt(r) {
		s.storm.observe()
	}
}

// admit runs admission control for one connection attempt (any transport; admitHTTP calls it last).
// When the attempt is shed it has answered it — HTTP 503 with Retry-After, or under ShedClose an
// upgrade closed at once with 1013 — and returns false.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) bool {
	if !isAttempt(r) {
		return true
	}
	ok, retry := s.admission.take()
	if ok {
		return true
	}
	s.metrics.shed.Inc()
	reason := protocol.FormatReason(protocol.ReasonShed, retry)
	if s.cfg.ShedMode == ShedClose && websocket.IsWebSocketUpgrade(r) {
		if ws, err := s.upgrader.Upgrade(w, r, nil); err == nil {
			s.wg.Add(1)
			go s.closeShed(ws, reason)
		}
		return false
	}
	w.Header().Set("Retry-After", retryAfterHeader(retry))
	http.Error(w, reason, http.StatusServiceUnavailable)
	return false
}

// closeShed closes an upgraded, shed connection with 1013 and its hint: the close frame, then the
// client's answer for at most close-grace, then the socket. It holds no node slot.
func (s *Server) closeShed(ws *websocket.Conn, reason string) {
	defer s.wg.Done()
	defer ws.Close()
	deadline := time.Now().Add(min(s.cfg.CloseGrace, s.cfg.WriteTimeout))
	msg := websocket.FormatCloseMessage(int(protocol.CloseTryAgainLater), reason)
	if err := ws.WriteControl(websocket.CloseMessage, msg, deadline); err != nil {
		return
	}
	_ = ws.SetReadDeadline(time.Now().Add(s.cfg.CloseGrace))
	ws.SetReadLimit(1024)
	for {
		if _, _, err := ws.NextReader(); err != nil {
			return
		}
	}
}

// ProtectionStats are the counts of the auth guard, admission control and storm detection, for tests
// and tools (Stats holds the counts that return to zero when connections end; these do not).
type ProtectionStats struct {
	AuthBackendCalls uint64 // token checks that reached the auth backend (the cache skips them)
	AuthCacheEntries int    // validated tokens cached (ws_auth_cache_entries)
	AuthBreakerOpen  bool   // the auth circuit breaker is open or probing (ws_auth_breaker_open)
	Shed             uint64 // connection attempts shed by admission control (ws_shed_total)
	StormActive      bool   // a reconnect storm is detected now (ws_storm_active)
}

// Protection returns the current ProtectionStats.
func (s *Server) Protection() ProtectionStats {
	return ProtectionStats{
		AuthBackendCalls: s.authGuard.backend.Calls(),
		AuthCacheEntries: s.authGuard.cacheLen(),
		AuthBreakerOpen:  s.authGuard.breaker.current() != breakerClosed,
		Shed:             s.admission.shedCount(),
		StormActive:      s.storm.isActive(),
	}
}

// AuthBackend returns the simulated auth backend every token check that misses the cache goes
// through (it wraps the configured backend): tests and chaos timelines change its latency and fail
// rate while the server runs.
func (s *Server) AuthBackend() *SimulatedBackend { return s.authGuard.backend }
