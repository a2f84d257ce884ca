package refserver

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/squall-dev/squall/internal/redistest"
	"github.com/squall-dev/squall/refserver/protocol"
)

// BenchmarkRedisBrokerFanOut measures one broadcast through the cluster broker: the Lua publish
// (INCR, history, PUBLISH) and delivery to a second node's handler, on a local redis-server. It
// reports the delivery rate one publisher reaches and the publish-to-delivery latency.
//
//	go test -run '^$' -bench RedisBrokerFanOut ./refserver/
func BenchmarkRedisBrokerFanOut(b *testing.B) {
	rs := redistest.Start(b)
	ctx := b.Context()
	pub, err := NewRedisBroker(RedisOptions{URL: rs.URL(0), NodeID: "pub"})
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	pub.Bind(func(*RoomEvent) {})
	sub, err := NewRedisBroker(RedisOptions{URL: rs.URL(0), NodeID: "sub"})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	got := make(chan time.Duration, 1024)
	sub.Bind(func(ev *RoomEvent) {
		var sent int64
		_ = json.Unmarshal(ev.Frame.Data, &sent)
		got <- time.Since(time.Unix(0, sent))
	})
	if err := sub.Subscribe(ctx, "bench"); err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		data, _ := json.Marshal(time.Now().UnixNano())
		ev := &RoomEvent{RoomID: "bench", Frame: protocol.Frame{Type: protocol.TypeBroadcast, RoomID: "bench", From: "u", Data: data}}
		if err := pub.Publish(ctx, ev); err != nil {
			b.Fatal(err)
		}
		select {
		case d := <-got:
			total += d
		case <-time.After(5 * time.Second):
			b.Fatalf("broadcast %d not delivered", i)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(total.Microseconds())/float64(b.N), "µs/delivery")
}
