package scenarios

import (
	"github.com/squall-dev/squall/refserver/protocol"
	"github.com/squall-dev/squall/reports"
)

// authBackendCalls is auth_backend_calls: the calls that reached the gateway's auth backend during
// the run, the rise of ws_auth_requests_total from the scrape before the clients started to the
// one after they ended. The gateway counts a token check under
// cached="false" with result ok, invalid or error exactly when the backend was asked (a cache hit
// or a check that shared a concurrent one is cached="true"; result unavailable means the open
// circuit breaker answered without asking). No data when the gateway never exported the counter.
func authBackendCalls(t reports.Telemetry, a Agg, runSeconds float64) (float64, bool) {
	found, total := false, 0.0
	for _, result := range []string{"ok", "invalid", "error"} {
		key := protocol.MetricAuthRequestsTotal + `{cached="false",result="` + result + `"}`
		if v, ok := t.Increase(key); ok { // the run's own calls, not the counter since the gateway started
			found, total = true, total+v
		}
	}
	if !found {
		return 0, false
	}
	return counterValue(total, a, runSeconds)
}
