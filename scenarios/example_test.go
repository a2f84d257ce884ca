package scenarios_test

import (
	"fmt"
	"os"
	"time"

	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/reports"
	"github.com/squall-dev/squall/scenarios"
)

func ExampleParse() {
	src := []byte(`
name: broken
cohorts:
  - name: users
    count: 10
    behaviour:
      reconnect: expo
phases:
  - {kind: hold, duration: 10}
slos:
  - {metric: ghost_presence, bound: "< 5s"}
`)
	_, err := scenarios.Parse("broken.yaml", src)
	fmt.Println(err)
	// Output:
	// scenarios: broken.yaml:7:18: cohorts[0].behaviour.reconnect: unknown policy "expo" (want backoff, ladder, constant or immediate)
	// scenarios: broken.yaml:9:28: phases[0].duration: bad duration 10: a number needs a unit (want a Go duration such as 30s or 250ms)
	// scenarios: broken.yaml:11:14: slos[0].metric: unknown metric "ghost_presence" (did you mean "ghost_presence_duration"?)
}

func ExampleGrade() {
	s, err := scenarios.Load("smoke.yaml", scenarios.WithTimeScale(0.5))
	if err != nil {
		fmt.Println(err)
		return
	}
	// A run result answers through a MetricSource; here, a fixed one.
	measured := scenarios.StaticSource{
		{Metric: "ordering_violations", Agg: "count"}: 0,
		{Metric: "connect_time", Agg: "p99"}:          0.0042,
		{Metric: "fanout_latency", Agg: "p99"}:        0.31,
	}
	verdicts := scenarios.Grade(s.SLOs[:5], measured)
	if err := scenarios.WriteVerdicts(os.Stdout, verdicts); err != nil {
		fmt.Println(err)
	}
	fmt.Println("exit code", scenarios.ExitCode(verdicts))
	// Output:
	// RESULT          SLO                        COHORT  BOUND    OBSERVED
	// PASS            ordering_violations count  all     == 0     0
	// FAIL (no data)  unrecovered_gaps count     all     == 0     no data
	// FAIL (no data)  duplicates count           all     == 0     no data
	// FAIL (no data)  lost_acked_messages count  all     == 0     no data
	// PASS            connect_time p99           all     < 500ms  4.2ms
	// verdict: FAIL (3 of 5 SLOs breached, 3 without data)
	// exit code 99
}

func ExampleResultSource() {
	s, err := scenarios.Parse("inline.yaml", []byte(`
cohorts: [{name: users, count: 2}]
phases: [{kind: hold, duration: 1s}]
slos:
  - {metric: ordering_violations, bound: "== 0"}
  - {metric: connect_time, agg: p99, bound: "< 100ms"}
  - {metric: false_disconnects, bound: "== 0"}
`))
	if err != nil {
		panic(err)
	}
	// A result as a run writes it: two connections, one ordering violation.
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rec := stats.NewRecorder(start)
	rec.Record(stats.HistUpgrade, 2*time.Millisecond)
	rec.Record(stats.HistUpgrade, 3*time.Millisecond)
	rec.Add(stats.CtrOrderViolations, 1)
	res := reports.New(s.Name, 1)
	res.Started, res.Duration, res.Stats = start, time.Second, reports.StatsFrom(rec.Snapshot())

	vs := scenarios.Grade(s.SLOs, scenarios.ResultSource{Result: res, Scenario: s})
	_ = scenarios.WriteVerdicts(os.Stdout, vs)
	fmt.Println("exit", scenarios.ExitCode(vs))
	// Output:
	// RESULT  SLO                        COHORT  BOUND    OBSERVED
	// FAIL    ordering_violations count  all     == 0     1
	// PASS    connect_time p99           all     < 100ms  3ms
	// PASS    false_disconnects count    all     == 0     0
	// verdict: FAIL (1 of 3 SLOs breached)
	// exit 99
}
