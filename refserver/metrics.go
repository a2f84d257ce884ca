package refserver

import (
	"runtime"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/squall-dev/squall/internal/version"
	"github.com/squall-dev/squall/refserver/protocol"
)

// metrics holds one Server's Prometheus collectors, registered on the Server's own registry so that
// several servers can live in one process (tests do). Names are the contract in protocol/names.go.
type metrics struct {
	reg *prometheus.Registry

	// connsTotal counts connections accepted (upgraded).
	connsTotal prometheus.Counter
	// disconnects counts connections ended, by close code ("1000", "1006" for no close frame, ...).
	disconnects *prometheus.CounterVec
	// reconnects counts connections of a user whose previous connection ended within ReconnectWindow.
	reconnects prometheus.Counter
	// messagesIn counts frames received from clients (text and binary, valid or not).
	messagesIn prometheus.Counter
	// messagesOut counts frames written to clients (data frames; pings and closes excluded).
	messagesOut prometheus.Counter
	// heartbeatTimeouts counts connections closed because they stayed silent past the timeout.
	heartbeatTimeouts prometheus.Counter
	// rejections counts connections refused, by reason: conn_limit, overloaded, origin, unauthorized.
	rejections *prometheus.CounterVec
	// shed counts connection attempts shed by admission control.
	shed prometheus.Counter
	// stormActive is 1 while a reconnect storm is detected (read from the storm detector).
	stormActive prometheus.GaugeFunc
	// authRequests counts token checks by result (ok, invalid, error) and cached (true, false).
	authRequests *prometheus.CounterVec
	// resumes counts resume frames by result: "ok" or the protocol.Resume* reason of the failure.
	resumes *prometheus.CounterVec
	// poolAlert is 1 while pool usage is at or above the threshold label (0.70, 0.85).
	poolAlert *prometheus.GaugeVec
	// authBreakerOpen, stormsTotal: see addAdmission (metrics_authstorm.go).
	authBreakerOpen prometheus.Gauge
	stormsTotal     prometheus.Counter
}

// Rejection reasons (label values of ws_conn_rejections_total).
const (
	rejectConnLimit    = "conn_limit"
	rejectOverloaded   = "overloaded"
	rejectOrigin       = "origin"
	rejectUnauthorized = "unauthorized"
)

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.connsTotal = prometheus.NewCounter(prometheus.CounterOpts{Name: protocol.MetricConnectionsTotal,
		Help: "Connections accepted (WebSocket upgrades, SSE streams, long-poll opens)."})
	m.disconnects = prometheus.NewCounterVec(prometheus.CounterOpts{Name: protocol.MetricDisconnectsTotal,
		Help: "Connections ended, by close code (1006: no close frame)."}, []string{"code"})
	m.reconnects = prometheus.NewCounter(prometheus.CounterOpts{Name: protocol.MetricReconnectsTotal,
		Help: "Connections of a user whose previous connection ended within the reconnect window."})
	m.messagesIn = prometheus.NewCounter(prometheus.CounterOpts{Name: protocol.MetricMessagesInTotal,
		Help: "Frames received from clients."})
	m.messagesOut = prometheus.NewCounter(prometheus.CounterOpts{Name: protocol.MetricMessagesOutTotal,
		Help: "Data frames written to clients."})
	m.heartbeatTimeouts = prometheus.NewCounter(prometheus.CounterOpts{Name: protocol.MetricHeartbeatTimeouts,
		Help: "Connections closed for silence past the heartbeat timeout."})
	m.rejections = prometheus.NewCounterVec(prometheus.CounterOpts{Name: protocol.MetricConnRejectionsTotal,
		Help: "Connections refused, by reason."}, []string{"reason"})
	m.shed = prometheus.NewCounter(prometheus.CounterOpts{Name: protocol.MetricShedTotal,
		Help: "Connections shed by admission control."})
	m.stormActive = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: protocol.MetricStormActive,
		Help: "1 while a reconnect storm is detected."}, func() float64 {
		if s.storm != nil && s.storm.isActive() {
			return 1
		}
		return 0
	})
	m.authRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: protocol.MetricAuthRequestsTotal,
		Help: "Token checks by result and whether the cache answered."}, []string{"result", "cached"})
	m.resumes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: protocol.MetricResumesTotal,
		Help: "Resume frames by result: ok, or the reason of the failure."}, []string{"result"})
	m.poolAlert = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ws_pool_usage_alert",
		Help: "1 while ws_pool_usage_ratio is at or above the threshold."}, []string{"threshold"})

	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	m.reg.MustRegister(
		m.connsTotal, m.disconnects, m.reconnects, m.messagesIn, m.messagesOut, m.heartbeatTimeouts,
		m.rejections, m.shed, m.stormActive, m.authRequests, m.poolAlert, m.resumes,
		gauge(protocol.MetricConnectionsActive, "Open connections.",
			func() float64 { return float64(s.limits.active()) }),
		newHubCollector(s.hub),
		gauge(protocol.MetricSendQueueDepth, "Frames queued for sending, all connections.",
			func() float64 { return float64(s.queueDepth.Load()) }),
		gauge(protocol.MetricPoolUsageRatio, "Active connections divided by max-conns.",
			func() float64 { return s.limits.usage() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: protocol.MetricBuildInfo,
			Help:        "Always 1; the labels say which build of the gateway runs.",
			ConstLabels: prometheus.Labels{"version": version.Version, "commit": version.Commit(), "go_version": runtime.Version()}},
			func() float64 { return 1 }),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
	)
	for _, code := range []protocol.CloseCode{protocol.CloseNormal, protocol.CloseAbnormal} {
		m.disconnects.WithLabelValues(strconv.Itoa(int(code)))
	}
	for _, r := range []string{rejectConnLimit, rejectOverloaded, rejectOrigin, rejectUnauthorized} {
		m.rejections.WithLabelValues(r)
	}
	for _, r := range []string{"ok", protocol.ResumeSessionUnknown, protocol.ResumeHistoryGap, protocol.ResumeNotMember,
		protocol.ResumeAlreadyJoined, protocol.ResumeRoomLimit, protocol.ResumeInternal} {
		m.resumes.WithLabelValues(r)
	}
	m.poolAlert.WithLabelValues("0.70")
	m.poolAlert.WithLabelValues("0.85")
	m.addAdmission(s)
	return m
}

// updatePoolAlerts refreshes the 70 % / 85 % pool usage flags.
func (m *metrics) updatePoolAlerts(usage float64) {
	set := func(label string, threshold float64) {
		v := 0.0
		if usage >= threshold {
			v = 1
		}
		m.poolAlert.WithLabelValues(label).Set(v)
	}
	set("0.70", 0.70)
	set("0.85", 0.85)
}

// hubCollector reports the gauges that count what the rooms hold (memberships, orphaned ones,
// presence entries). They come from one walk over every room and member (hub.stats), taken once
// per scrape for the three: the gateway is scraped every second, and three walks over 16 000
// connections' rooms were ~5 % of a node's CPU.
type hubCollector struct {
	h                                 *hub
	subscriptions, orphaned, presence *prometheus.Desc
}

func newHubCollector(h *hub) *hubCollector {
	return &hubCollector{h: h,
		subscriptions: prometheus.NewDesc(protocol.MetricRoomSubscriptions, "(connection, room) memberships, live or orphaned.", nil, nil),
		orphaned:      prometheus.NewDesc(protocol.MetricOrphanedSubscriptions, "Memberships whose connection is gone.", nil, nil),
		presence:      prometheus.NewDesc(protocol.MetricPresenceEntries, "(room, user) presence entries.", nil, nil),
	}
}

func (c *hubCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.subscriptions
	ch <- c.orphaned
	ch <- c.presence
}

func (c *hubCollector) Collect(ch chan<- prometheus.Metric) {
	hc := c.h.stats()
	ch <- prometheus.MustNewConstMetric(c.subscriptions, prometheus.GaugeValue, float64(hc.subscriptions))
	ch <- prometheus.MustNewConstMetric(c.orphaned, prometheus.GaugeValue, float64(hc.orphaned))
	ch <- prometheus.MustNewConstMetric(c.presence, prometheus.GaugeValue, float64(hc.presence))
}
