package scenarios

import (
	"fmt"
	"strconv"

	"github.com/squall-dev/squall/loadgen"
)

// PlanSLOs are the SLOs a plan run without a scenario file (the built-in plan of `loadgen run`
// with flags) is graded by, so that such a run cannot report success while its clients failed:
//
//   - every client connected: at least as many upgrades (connect_time count) as the plan has
//     clients;
//   - delivery: nothing the gateway acknowledged was lost, no gap stayed open, no room's order
//     broke;
//   - abnormal closes: no connection ended without a close frame (close code 1006) and no live
//     client was cut for a heartbeat reason (false disconnects);
//   - generator health: the generator kept its schedule (schedule-lag p99 within the plan's bound),
//     so that the latencies measured are the target's.
func PlanSLOs(p loadgen.Plan) []SLO {
	slo := func(name, metric, label string, agg Agg, bound string) SLO {
		m, _ := LookupMetric(metric)
		b, err := parseBound(bound, aggUnit(m.Unit, agg))
		if err != nil {
			panic(fmt.Sprintf("scenarios: built-in SLO %s: %v", name, err)) // a programming error, caught by the tests
		}
		return SLO{Name: name, Metric: metric, Label: label, Agg: agg, Bound: b}
	}
	return []SLO{
		slo("every client connected", "connect_time", "", AggCount, ">= "+strconv.Itoa(p.Clients())),
		slo("lost_acked_messages count", "lost_acked_messages", "", AggCount, "== 0"),
		slo("unrecovered_gaps count", "unrecovered_gaps", "", AggCount, "== 0"),
		slo("ordering_violations count", "ordering_violations", "", AggCount, "== 0"),
		slo("close_codes{1006} count", "close_codes", "1006", AggCount, "== 0"),
		slo("false_disconnects count", "false_disconnects", "", AggCount, "== 0"),
		slo("schedule_lag p99", "schedule_lag", "", AggP99, "<= "+p.LagBound().String()),
	}
}
