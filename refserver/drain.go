package refserver

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/squall-dev/squall/refserver/protocol"
)

// Drain: on SIGTERM (the binary cancels Serve's context), POST /admin/drain or a call to Shutdown,
// the node stops accepting — /ws and the fallback tiers answer 503 with a Retry-After, /readyz
// answers 503 — and closes every connection at once with 1001 and a retry hint drawn uniformly from
// (0, Config.DrainSpread], so that the clients' reconnects spread over the window instead of landing
// together on the surviving nodes. Clients get close-grace to answer the close frame; the rest are
// dropped. Then every connection's cleanup runs (presence leaves announced, limits released), and
// Serve returns nil: the binary exits 0.
//
// FlawNoDrain brings back the bug: every connection is dropped at once, with no close frame and no
// hint, so that all clients reconnect immediately.

// drainHint draws one retry hint, uniform over [1 ms, DrainSpread] in whole milliseconds.
func (s *Server) drainHint() time.Duration {
	ms := s.cfg.DrainSpread.Milliseconds()
	if ms < 1 {
		return time.Millisecond
	}
	return time.Duration(1+rand.Int64N(ms)) * time.Millisecond
}

// drainReason is the close reason of one drained connection: "draining retry_after_ms=N".
func (s *Server) drainReason() string {
	return protocol.FormatReason(protocol.ReasonDrain, s.drainHint())
}

// drainTimeout bounds a drain started by Serve: write-timeout for the close frames, close-grace for
// the clients' answers, plus time for the cleanup of every connection.
func (s *Server) drainTimeout() time.Duration {
	return s.cfg.WriteTimeout + s.cfg.CloseGrace + 10*time.Second
}

// beginClose marks the server as closing (once): new connections are refused from here on, and
// Serve, if running, starts the drain.
func (s *Server) beginClose(why string) bool {
	first := false
	s.closeOnce.Do(func() {
		first = true
		s.allMu.Lock() // startConn registers a connection only while not closing
		s.closing.Store(true)
		s.allMu.Unlock()
		close(s.closed)
		s.sessions.stop()
		s.log.Info("refserver draining", "reason", why, "connections", len(s.liveConns()),
			"drain_spread", s.cfg.DrainSpread, "flaws", s.cfg.Flaws.String())
	})
	return first
}

// Shutdown drains the node: it refuses new connections, closes every open one with 1001 and a
// spread retry hint (see the comment at the top of drain.go; FlawNoDrain drops them instead), gives
// clients close-grace to answer, drops the TCP connections of those that did not, and waits until
// every connection is cleaned up. ctx bounds the whole: when it ends first, every remaining
// connection is dropped at once and Shutdown returns ctx.Err() without waiting (an already cancelled
// ctx means "no grace"). Shutdown may be called more than once and from several goroutines; calls
// run one after the other, and a call after a completed drain returns at once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.beginClose("shutdown")
	s.shutMu.Lock()
	defer s.shutMu.Unlock()
	dropAll := func() {
		for _, c := range s.liveConns() {
			c.abort(causeKicked)
		}
	}
	if s.cfg.Flaws.Has(FlawNoDrain) {
		dropAll()
	}
	kicked := map[*conn]bool{}
	// Each connection's writer sends its close frame within write-timeout and then waits
	// close-grace for the answer; this backstop drops only what outlives both. (With close-grace
	// alone, a busy node that had not yet scheduled every writer dropped the last connections
	// without their close frame: 1006 and no hint.)
	deadline := time.Now().Add(s.cfg.WriteTimeout + s.cfg.CloseGrace)
	for {
		conns := s.liveConns()
		if len(conns) == 0 {
			break
		}
		for _, c := range conns {
			if s.cfg.Flaws.Has(FlawNoDrain) {
				c.abort(causeKicked)
				continue
			}
			if !kicked[c] {
				kicked[c] = true
				c.kick(protocol.CloseDraining, s.drainReason(), causeKicked)
			}
		}
		if ctx.Err() != nil {
			dropAll()
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			dropAll()
			break
		}
		select {
		case <-ctx.Done():
			dropAll()
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	s.wheel.stop()
	s.workers.stop()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.finalOnce.Do(func() {
			s.hub.janitor(time.Now())
			s.stopNbio()
			s.cancel()
			s.finalErr = s.broker.Close()
			s.log.Info("refserver drained")
		})
		return s.finalErr
	case <-ctx.Done():
		dropAll()
		return ctx.Err()
	}
}

// drainStatus is the JSON answer of POST /admin/drain.
type drainStatus struct {
	Draining      bool  `json:"draining"`
	Started       bool  `json:"started"` // false when a drain was already under way
	Connections   int   `json:"connections"`
	DrainSpreadMS int64 `json:"drainSpreadMs"`
}

// serveDrain is POST /admin/drain: it starts a drain, as SIGTERM does — every connection is sent
// its close frame — and answers 202 at once with the connection count; Serve then finishes the drain
// and returns. It
// requires Config.AdminToken as a bearer token when one is set, and a loopback peer otherwise.
func (s *Server) serveDrain(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if !s.adminAllowed(r) {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	st := drainStatus{Draining: true, Connections: len(s.liveConns()), DrainSpreadMS: s.cfg.DrainSpread.Milliseconds()}
	if st.Started = s.beginClose("admin endpoint"); st.Started {
		// Closing frames go out now; Serve notices s.closed and finishes the drain (Shutdown). A
		// Server mounted on someone else's HTTP server is finished by its owner's Shutdown call.
		s.kickAllForDrain()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(st)
}

// kickAllForDrain closes every connection as a drain does, without waiting (the owner of the
// Server still calls Shutdown, which finds them closing and waits for their cleanup).
func (s *Server) kickAllForDrain() {
	for _, c := range s.liveConns() {
		if s.cfg.Flaws.Has(FlawNoDrain) {
			c.abort(causeKicked)
			continue
		}
		c.kick(protocol.CloseDraining, s.drainReason(), causeKicked)
	}
}

// adminAllowed checks the caller of an admin endpoint: the admin token when one is set; else a
// loopback client that is not a browser. Any web page the machine's browser opens can POST to a
// loopback address (a form needs no CORS), so without a token a request carrying an Origin or a
// Sec-Fetch-Site header other than "none" (what browsers send with every page-made POST) is refused.
func (s *Server) adminAllowed(r *http.Request) bool {
	if s.cfg.AdminToken != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		return ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.AdminToken)) == 1
	}
	if site := r.Header.Get("Sec-Fetch-Site"); r.Header.Get("Origin") != "" || site != "" && site != "none" {
		s.log.Warn("admin endpoint refused a browser request (set --admin-token to use it from a page)",
			"origin", r.Header.Get("Origin"), "sec_fetch_site", site, "remote_ip", s.clientIP(r))
		return false
	}
	ip := net.ParseIP(s.clientIP(r)) // behind a trusted proxy: the client, not the proxy
	return ip != nil && ip.IsLoopback()
}
