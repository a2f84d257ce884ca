package protocol

// HTTP paths served by the gateway.
const (
	PathWS      = "/ws"          // WebSocket upgrade; token in the "token" query parameter or a hello frame
	PathSSE     = "/sse"         // Server-Sent Events fallback (tier 3)
	PathPoll    = "/poll"        // long-polling fallback (tier 4)
	PathSend    = "/send"        // client → server frames for the SSE and long-poll tiers (POST)
	PathMetrics = "/metrics"     // Prometheus exposition
	PathHealthz = "/healthz"     // liveness: 200 while the process serves HTTP
	PathReadyz  = "/readyz"      // readiness: 200 while the node accepts connections, 503 while draining
	PathDrain   = "/admin/drain" // POST: start a drain, as SIGTERM does
)

// TokenQueryParam is the query parameter that carries the JWT on /ws, /sse and /poll.
const TokenQueryParam = "token"

// Metric names exported by the gateway on /metrics. They are a contract: dashboards, alert rules and
// loadgen's telemetry scraper use them.
const (
	MetricConnectionsActive     = "ws_connections_active"       // gauge: open connections
	MetricConnectionsTotal      = "ws_connections_total"        // counter: connections accepted
	MetricDisconnectsTotal      = "ws_disconnects_total"        // counter{code}: connections ended, by close code
	MetricReconnectsTotal       = "ws_reconnects_total"         // counter: connections that continued a session or a recently seen user
	MetricRoomSubscriptions     = "ws_room_subscriptions"       // gauge: (connection, room) memberships
	MetricOrphanedSubscriptions = "ws_orphaned_subscriptions"   // gauge: memberships whose connection is gone
	MetricPresenceEntries       = "ws_presence_entries"         // gauge: (room, user) presence entries
	MetricMessagesInTotal       = "ws_messages_in_total"        // counter: frames received from clients
	MetricMessagesOutTotal      = "ws_messages_out_total"       // counter: frames sent to clients
	MetricSendQueueDepth        = "ws_send_queue_depth"         // gauge: frames queued for sending, all connections
	MetricHeartbeatTimeouts     = "ws_heartbeat_timeouts_total" // counter: connections closed for silence
	MetricConnRejectionsTotal   = "ws_conn_rejections_total"    // counter{reason}: connections refused
	MetricShedTotal             = "ws_shed_total"               // counter: connections shed by admission control
	MetricStormActive           = "ws_storm_active"             // gauge 0/1: reconnect storm detected
	MetricAuthRequestsTotal     = "ws_auth_requests_total"      // counter{result,cached}: token checks
	MetricPoolUsageRatio        = "ws_pool_usage_ratio"         // gauge: active connections / max-conns
	MetricBuildInfo             = "ws_build_info"               // gauge 1{version,commit,go_version}: the gateway's build
)

// Standard process and Go collector metrics the gateway also exports.
const (
	MetricProcessResidentMemory = "process_resident_memory_bytes"
	MetricGoGoroutines          = "go_goroutines"
	MetricProcessOpenFDs        = "process_open_fds"
)
