package refserver

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the auth guard, admission control and storm detection beyond the contract names of
// protocol/names.go (ws_shed_total, ws_storm_active and ws_auth_requests_total are registered in
// newMetrics).
const (
	metricAuthBreakerOpen  = "ws_auth_breaker_open"  // gauge 0/1: the auth circuit breaker is open or probing
	metricAuthCacheEntries = "ws_auth_cache_entries" // gauge: validated tokens held by the auth cache
	metricStormsTotal      = "ws_storms_total"       // counter: reconnect storms detected
)

// addAdmission registers the auth guard and storm metrics and pre-creates the label sets of
// ws_auth_requests_total.
func (m *metrics) addAdmission(s *Server) {
	m.authBreakerOpen = prometheus.NewGauge(prometheus.GaugeOpts{Name: metricAuthBreakerOpen,
		Help: "1 while the auth backend's circuit breaker is open or half-open (probing)."})
	m.stormsTotal = prometheus.NewCounter(prometheus.CounterOpts{Name: metricStormsTotal,
		Help: "Reconnect storms detected (each raised ws_storm_active once)."})
	m.reg.MustRegister(m.authBreakerOpen, m.stormsTotal,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: metricAuthCacheEntries,
			Help: "Validated tokens held by the auth cache (0 under no-auth-cache)."},
			func() float64 {
				if s.authGuard == nil {
					return 0
				}
				return float64(s.authGuard.cacheLen())
			}))
	for _, r := range []string{authOK, authInvalid, authError, authUnavailable} {
		for _, c := range []string{"true", "false"} {
			m.authRequests.WithLabelValues(r, c)
		}
	}
}
