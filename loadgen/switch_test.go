package loadgen

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/squall-dev/squall/loadgen/stats"
)

// TestBehaviourSwitch switches a silent cohort to sending at 50 ms and back to silent 700 ms later:
// the tabs already connected start and stop sending, and the other cohort is untouched.
func TestBehaviourSwitch(t *testing.T) {
	g := newFakeGateway(t)
	const n = 10
	quiet := Behaviour{RoomCount: 2}
	p := Plan{
		Name: "switch", Seed: 5,
		Cohorts: []Cohort{
			{Name: "switched", Count: n, Behaviour: quiet, SourceIPs: "127.9.9.0/24"},
			{Name: "steady", Count: n, Behaviour: quiet, SourceIPs: "127.9.10.0/24"},
		},
		Phases: []Phase{{Kind: PhaseRamp, Rate: 200}, {Kind: PhaseHold, Duration: 2 * time.Second}, {Kind: PhaseRampDown}},
		Switches: []Switch{
			{At: 1200 * time.Millisecond, Cohort: "switched", Behaviour: quiet}, // back to silent
			{At: 500 * time.Millisecond, Cohort: "switched", Behaviour: Behaviour{SendInterval: 50 * time.Millisecond}},
		},
		ScheduleLagBound: 5 * time.Second,
	}
	rec := stats.NewRecorder(time.Now())
	if _, err := RunLocal(context.Background(), p, g.target(), rec, RunOptions{}); err != nil {
		t.Fatal(err)
	}
	snap := rec.Snapshot()
	sent := snap.Cohort("switched").Counter(stats.CtrMessagesSent)
	// 700 ms at one per 50 ms: 14 per tab, give or take the random first send and a loaded machine.
	if sent < n*5 || sent > n*20 {
		t.Errorf("switched cohort sent %d, want about %d (14 per tab)", sent, n*14)
	}
	if s := snap.Cohort("steady").Counter(stats.CtrMessagesSent); s != 0 {
		t.Errorf("steady cohort sent %d, want 0", s)
	}
	if v := snap.Counter(stats.CtrOrderViolations) + snap.Counter(stats.CtrGaps); v != 0 {
		t.Errorf("order violations + gaps = %d", v)
	}
}

func TestSwitchValidation(t *testing.T) {
	p := smallPlan(2, 1, time.Second)
	p.Switches = []Switch{{At: -time.Second, Cohort: "nobody", Behaviour: Behaviour{SendInterval: -1}}}
	err := p.Validate()
	for _, want := range []string{`switches[0]: unknown cohort "nobody"`, "switches[0]: negative at", "switches[0]: negative interval"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to say %q", err, want)
		}
	}
}
