package refserver

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// metricTransportConnections is the gauge of open connections by transport, beyond the contract
// names of protocol/names.go.
const metricTransportConnections = "ws_transport_connections"

// transportKinds are the label values of ws_transport_connections, in transportIndex order.
var transportKinds = [...]string{"ws", "sse", "poll"}

func transportIndex(kind string) int {
	for i, k := range transportKinds {
		if k == kind {
			return i
		}
	}
	return 0
}

// transportCounts counts the connections not yet cleaned up, by transport. startConn adds, forget
// subtracts.
type transportCounts [len(transportKinds)]atomic.Int64

func (tc *transportCounts) add(kind string, d int64) { tc[transportIndex(kind)].Add(d) }

// register adds ws_transport_connections{transport} to reg.
func (tc *transportCounts) register(reg *prometheus.Registry) {
	for i, k := range transportKinds {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        metricTransportConnections,
			Help:        "Connections open (not yet cleaned up), by transport: ws (WebSocket), sse (Server-Sent Events), poll (long polling).",
			ConstLabels: prometheus.Labels{"transport": k},
		}, func() float64 { return float64(tc[i].Load()) }))
	}
}
