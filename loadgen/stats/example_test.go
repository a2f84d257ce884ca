package stats_test

import (
	"fmt"
	"time"

	"github.com/squall-dev/squall/loadgen/stats"
)

// Two workers record into their own recorders; their snapshots merge into what one recorder
// would have seen.
func Example() {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, b := stats.NewRecorder(start), stats.NewRecorder(start)
	for i := 1; i <= 99; i++ {
		a.Record(stats.HistFanout, time.Duration(i)*time.Millisecond)
	}
	b.Record(stats.HistFanout, 2*time.Second) // one slow delivery on the other worker
	a.Add(stats.CtrMessagesReceived, 99)
	b.Add(stats.CtrMessagesReceived, 1)
	a.SetGauge(stats.GaugeConnections, 60)
	b.SetGauge(stats.GaugeConnections, 40)

	iv := a.Tick(start.Add(time.Second)) // the one-second point of worker a
	m := a.Snapshot().Merge(b.Snapshot())

	fmt.Println("interval", iv.Second, "received", iv.Counters[stats.CtrMessagesReceived])
	fmt.Println("count", m.Count(stats.HistFanout), "received", m.Counter(stats.CtrMessagesReceived), "connections", m.Gauge(stats.GaugeConnections))
	// Values are kept to three significant digits: 2 s reads back as the top of its bucket.
	fmt.Println("p50", m.Percentile(stats.HistFanout, 50).Round(time.Millisecond), "max", m.Percentile(stats.HistFanout, 100).Round(time.Millisecond))
	// Output:
	// interval 1 received 99
	// count 100 received 100 connections 100
	// p50 50ms max 2.001s
}
