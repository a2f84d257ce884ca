package refserver

import "github.com/prometheus/client_golang/prometheus"

// Metrics of cluster mode, registered only when the broker reports them (RedisBroker).
const (
	metricClusterGapFills        = "ws_cluster_gap_fills_total"          // counter: roomSeq gaps in a node's subscription filled from the room's history
	metricClusterLostBroadcasts  = "ws_cluster_lost_broadcasts_total"    // counter: broadcasts a node could not deliver (the history no longer covered a gap)
	metricClusterMaintenanceErrs = "ws_cluster_maintenance_errors_total" // counter: failed refreshes of this node's registry/presence entries and failed reaps
	metricClusterRooms           = "ws_cluster_subscribed_rooms"         // gauge: rooms this node receives from the broker
)

// ClusterStats are a cluster broker's counts for metrics and tests.
type ClusterStats struct {
	GapFills          uint64 // gaps in the subscription filled from history
	LostBroadcasts    uint64 // broadcasts not delivered: the history no longer covered a gap
	MaintenanceErrors uint64 // failed refresh or reap rounds
	SubscribedRooms   int    // rooms this node is subscribed to
}

// clusterStatser is implemented by brokers that report ClusterStats.
type clusterStatser interface{ ClusterStats() ClusterStats }

// addCluster registers the cluster metrics when the broker reports them.
func (m *metrics) addCluster(s *Server) {
	cs, ok := s.broker.(clusterStatser)
	if !ok {
		return
	}
	counter := func(name, help string, f func(ClusterStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(f(cs.ClusterStats())) })
	}
	m.reg.MustRegister(
		counter(metricClusterGapFills, "RoomSeq gaps in this node's subscription filled from the room's history in Redis.",
			func(st ClusterStats) uint64 { return st.GapFills }),
		counter(metricClusterLostBroadcasts, "Broadcasts this node could not deliver because the room's history no longer covered a gap.",
			func(st ClusterStats) uint64 { return st.LostBroadcasts }),
		counter(metricClusterMaintenanceErrs, "Failed refresh rounds of this node's registry and presence entries, and failed presence reaps.",
			func(st ClusterStats) uint64 { return st.MaintenanceErrors }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: metricClusterRooms, Help: "Rooms this node receives from the broker."},
			func() float64 { return float64(cs.ClusterStats().SubscribedRooms) }),
	)
}
