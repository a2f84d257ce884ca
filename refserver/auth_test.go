package refserver

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/refserver/protocol"
)

// attempt dials once with token and returns what the gateway answered: "welcome", a close
// ("close <code> <reason>"), or an HTTP refusal ("http <status> <Retry-After> <body>").
func attempt(ts *testServer, token string, o dialOpts) (string, error) {
	ws, resp, err := dialRaw(ts, token, o)
	if err != nil {
		if resp != nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return fmt.Sprintf("http %d %s %s", resp.StatusCode, resp.Header.Get("Retry-After"), strings.TrimSpace(string(body))), nil
		}
		return "", err
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return fmt.Sprintf("close %d %s", ce.Code, ce.Text), nil
			}
			return "", err
		}
		f, err := protocol.Decode(data, protocol.ServerToClient)
		if err != nil {
			return "", err
		}
		if f.Type == protocol.TypeWelcome {
			_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
			return "welcome", nil
		}
	}
}

// TestThousandReconnectsOneToken is the acceptance test of the auth cache: 1 000 reconnects
// presenting the same token cost one auth backend call with the cache and 1 000 with no-auth-cache.
func TestThousandReconnectsOneToken(t *testing.T) {
	const reconnects, parallel = 1000, 4
	for _, tc := range []struct {
		name      string
		flaws     Flaws
		wantCalls uint64
	}{
		{"cache", nil, 1},
		{"no-auth-cache", Flaws{FlawNoAuthCache: true}, reconnects},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Flaws = tc.flaws
			cfg.AuthLatency = time.Millisecond
			cfg.MaxConnsPerClient = reconnects // old connections may still be cleaning up on a loaded machine
			cfg.MaxConnsPerIP = -1
			ts := startServer(t, cfg)
			tok := mintToken(t, "roamer")
			var wg sync.WaitGroup
			var mu sync.Mutex
			answers := map[string]int{}
			for w := 0; w < parallel; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < reconnects/parallel; i++ {
						got, err := attempt(ts, tok, dialOpts{})
						if err != nil {
							got = "error " + err.Error()
						}
						mu.Lock()
						answers[got]++
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if answers["welcome"] != reconnects {
				t.Fatalf("answers %v, want %d welcomes", answers, reconnects)
			}
			p := ts.Protection()
			if p.AuthBackendCalls != tc.wantCalls {
				t.Fatalf("%d reconnects with one token made %d auth backend calls, want %d", reconnects, p.AuthBackendCalls, tc.wantCalls)
			}
			uncached := counterValue(t, ts.Server, protocol.MetricAuthRequestsTotal, map[string]string{"result": "ok", "cached": "false"})
			cached := counterValue(t, ts.Server, protocol.MetricAuthRequestsTotal, map[string]string{"result": "ok", "cached": "true"})
			if uncached != float64(tc.wantCalls) || uncached+cached != reconnects {
				t.Fatalf("ws_auth_requests_total ok: cached=false %v cached=true %v, want %d and %d", uncached, cached, tc.wantCalls, reconnects-int(tc.wantCalls))
			}
			t.Logf("%s: %d reconnects, %d backend calls, ws_auth_requests_total{ok,cached=true} %v", tc.name, reconnects, p.AuthBackendCalls, cached)
		})
	}
}

// TestAuthBreakerOpensAnd1013 is the acceptance test of the circuit breaker: a failing backend opens
// it after AuthBreakerFailures calls; from then on the gateway keeps answering 1013 auth_unavailable
// with a retry hint without calling the backend, while cached tokens still get in; once the backend
// recovers, the half-open probe closes it.
func TestAuthBreakerOpensAnd1013(t *testing.T) {
	cfg := testConfig()
	cfg.AuthBreakerFailures = 3
	cfg.AuthBreakerCooldown = 400 * time.Millisecond
	cfg.MaxConnsPerIP = -1
	ts := startServer(t, cfg)
	regular := mintToken(t, "regular")
	if got, err := attempt(ts, regular, dialOpts{}); err != nil || got != "welcome" {
		t.Fatalf("before the failure: %q %v", got, err)
	}
	ts.AuthBackend().SetFailRate(1)
	const attempts = 200
	for i := 0; i < attempts; i++ {
		got, err := attempt(ts, mintToken(t, fmt.Sprintf("u%d", i)), dialOpts{})
		if err != nil {
			t.Fatal(err)
		}
		code, reason, ok := strings.Cut(strings.TrimPrefix(got, "close "), " ")
		if !strings.HasPrefix(got, "close ") || !ok || code != "1013" || protocol.ReasonWord(reason) != protocol.ReasonAuthDown {
			t.Fatalf("attempt %d with the backend down: %q, want close 1013 %s", i, got, protocol.ReasonAuthDown)
		}
		if d, ok := protocol.ParseRetryAfter(reason); !ok || d <= 0 || d > 10*time.Second {
			t.Fatalf("attempt %d: retry hint %v %v in %q", i, d, ok, reason)
		}
		if i == 10 && !ts.Protection().AuthBreakerOpen {
			t.Fatal("breaker not open after 10 failing checks")
		}
	}
	// The breaker let only the failures that opened it reach the backend (plus at most a probe per
	// cooldown that passed while the attempts ran).
	calls := ts.Protection().AuthBackendCalls - 1
	if calls < 3 || calls > 3+20 {
		t.Fatalf("%d attempts against a failing backend made %d backend calls, want about 3", attempts, calls)
	}
	if got, err := attempt(ts, regular, dialOpts{}); err != nil || got != "welcome" {
		t.Fatalf("a cached token while the breaker is open: %q %v", got, err)
	}
	unavailable := counterValue(t, ts.Server, protocol.MetricAuthRequestsTotal, map[string]string{"result": "unavailable"})
	if unavailable < attempts-20 {
		t.Fatalf("ws_auth_requests_total{result=unavailable} = %v, want about %d", unavailable, attempts-3)
	}
	if v := counterValue(t, ts.Server, metricAuthBreakerOpen, nil); v != 1 {
		t.Fatalf("%s = %v while open", metricAuthBreakerOpen, v)
	}

	ts.AuthBackend().SetFailRate(0)
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := attempt(ts, mintToken(t, "after"), dialOpts{})
		if err != nil {
			t.Fatal(err)
		}
		if got == "welcome" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend recovered but still %q after 5 s", got)
		}
		time.Sleep(50 * time.Millisecond) // pacing the retries, not synchronisation
	}
	if ts.Protection().AuthBreakerOpen {
		t.Fatal("breaker still open after a successful probe")
	}
	if v := counterValue(t, ts.Server, metricAuthBreakerOpen, nil); v != 0 {
		t.Fatalf("%s = %v after recovery", metricAuthBreakerOpen, v)
	}
	t.Logf("%d attempts with the backend down: %d backend calls, %v answered unavailable without a call", attempts, calls, unavailable)
}

// TestAdmissionShedsBeyondTheBucket drives a small bucket in-process in both shed modes.
func TestAdmissionShedsBeyondTheBucket(t *testing.T) {
	for _, mode := range []string{ShedHTTP, ShedClose} {
		t.Run(mode, func(t *testing.T) {
			cfg := testConfig()
			cfg.AcceptRate = 2
			cfg.AcceptBurst = 5
			cfg.ShedMode = mode
			cfg.MaxConnsPerIP = -1
			ts := startServer(t, cfg)
			admitted, shed := 0, 0
			for i := 0; i < 15; i++ {
				got, err := attempt(ts, mintToken(t, fmt.Sprintf("u%d", i)), dialOpts{})
				if err != nil {
					t.Fatal(err)
				}
				var hint time.Duration
				var ok bool
				switch {
				case got == "welcome":
					admitted++
					continue
				case mode == ShedHTTP && strings.HasPrefix(got, "http 503 "):
					f := strings.Fields(got)
					if len(f) < 5 || f[3] != protocol.ReasonShed || f[2] == "" {
						t.Fatalf("503 without Retry-After or reason: %q", got)
					}
					hint, ok = protocol.ParseRetryAfter(got)
				case mode == ShedClose && strings.HasPrefix(got, "close 1013 "+protocol.ReasonShed):
					hint, ok = protocol.ParseRetryAfter(got)
				default:
					t.Fatalf("attempt %d: %q", i, got)
				}
				if !ok || hint < shedRetryMin {
					t.Fatalf("shed without a usable hint: %q", got)
				}
				shed++
			}
			if admitted < 5 || admitted > 7 || admitted+shed != 15 {
				t.Fatalf("admitted %d, shed %d of 15 with a bucket of 5 at 2/s", admitted, shed)
			}
			if got := counterValue(t, ts.Server, protocol.MetricShedTotal, nil); got != float64(shed) {
				t.Fatalf("%s = %v, want %d", protocol.MetricShedTotal, got, shed)
			}
			if got := ts.Protection().Shed; got != uint64(shed) {
				t.Fatalf("Protection().Shed = %d, want %d", got, shed)
			}
			// A plain HTTP request is not a connection attempt: it costs no token.
			resp, err := http.Get("http://" + ts.addr + protocol.PathWS)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUpgradeRequired {
				t.Fatalf("plain GET /ws: %d", resp.StatusCode)
			}
		})
	}
}

// TestStormDetectionCountsEveryAttempt: attempts refused at max-conns count for storm detection,
// and detection alone refuses no one.
func TestStormDetectionCountsEveryAttempt(t *testing.T) {
	for _, tc := range []struct {
		name     string
		maxConns int
		want     string // answer of every attempt after the first
	}{
		{"admitted", 100, "welcome"},
		{"refused at max-conns", 1, "http 503"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.MaxConns = tc.maxConns
			cfg.MaxConnsPerIP = -1
			cfg.StormAlertBurst = 5
			ts := startServer(t, cfg)
			connect(t, ts, "holder", dialOpts{}) // keeps the node full when max-conns is 1
			if ts.Protection().StormActive {
				t.Fatal("storm active before any burst")
			}
			for i := 0; i < 8; i++ {
				got, err := attempt(ts, mintToken(t, fmt.Sprintf("u%d", i)), dialOpts{})
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(got, tc.want) {
					t.Fatalf("attempt %d: %q, want %s (detection refuses no one)", i, got, tc.want)
				}
			}
			if !ts.Protection().StormActive {
				t.Fatal("9 attempts within a second (alert burst 5) did not raise the storm alert")
			}
			if v := counterValue(t, ts.Server, protocol.MetricStormActive, nil); v != 1 {
				t.Fatalf("%s = %v", protocol.MetricStormActive, v)
			}
			if v := counterValue(t, ts.Server, metricStormsTotal, nil); v != 1 {
				t.Fatalf("%s = %v, want 1", metricStormsTotal, v)
			}
			if ts.Protection().Shed != 0 {
				t.Fatal("attempts shed by detection")
			}
		})
	}
}
