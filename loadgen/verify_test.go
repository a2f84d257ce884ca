package loadgen

import (
	"context"
	"testing"
	"time"

	"github.com/squall-dev/squall/loadgen/stats"
)

// TestDeliveryChecksCatchBrokenGateways runs against gateways that lose, reorder, duplicate or
// swallow acknowledged broadcasts, and checks that the matching counter sees it (and a sound gateway
// leaves them at zero).
func TestDeliveryChecksCatchBrokenGateways(t *testing.T) {
	tests := []struct {
		fault   string
		dropAck bool
		want    []string // counters that must be above zero
		zero    []string // counters that must stay zero
	}{
		{fault: "", zero: []string{stats.CtrGaps, stats.CtrAckedUndelivered, stats.CtrOrderViolations, stats.CtrDuplicates}},
		{fault: "skip", want: []string{stats.CtrGaps, stats.CtrAckedUndelivered}, zero: []string{stats.CtrDuplicates}},
		// (A frame the gateway still holds when sending stops is never delivered: acked-undelivered
		// may then be above zero too.)
		{fault: "swap", want: []string{stats.CtrOrderViolations}, zero: []string{stats.CtrGaps, stats.CtrDuplicates}},
		{fault: "dupe", want: []string{stats.CtrDuplicates}, zero: []string{stats.CtrGaps, stats.CtrAckedUndelivered, stats.CtrOrderViolations}},
		{fault: "ack-without-delivery", dropAck: true, want: []string{stats.CtrAckedUndelivered}, zero: []string{stats.CtrDuplicates, stats.CtrOrderViolations}},
	}
	for _, tc := range tests {
		name := tc.fault
		if name == "" {
			name = "sound"
		}
		t.Run(name, func(t *testing.T) {
			g := newFakeGateway(t)
			g.fault.Store(tc.fault)
			p := smallPlan(30, 3, time.Second)
			p.ScheduleLagBound = 5 * time.Second
			rec := stats.NewRecorder(time.Now())
			g.dropAck.Store(tc.dropAck)
			sum, err := RunLocal(context.Background(), p, g.target(), rec, RunOptions{})
			if err != nil {
				t.Fatal(err)
			}
			snap := rec.Snapshot()
			t.Logf("delivery %+v counters %v", sum.Delivery, snap.Counters)
			for _, c := range tc.want {
				if snap.Counter(c) == 0 {
					t.Errorf("%s = 0: the fault went unnoticed", c)
				}
			}
			for _, c := range tc.zero {
				if n := snap.Counter(c); n != 0 {
					t.Errorf("%s = %d, want 0", c, n)
				}
			}
		})
	}
}
