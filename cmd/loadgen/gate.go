package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/squall-dev/squall/reports"
	"github.com/squall-dev/squall/scenarios"
)

// gateFlags are `loadgen gate`'s flags.
type gateFlags struct {
	baseline string
	config   string
}

// newGateCmd is `loadgen gate NEW.json --baseline OLD.json [--config gate.yaml]`.
func newGateCmd(e *env) *cobra.Command {
	var f gateFlags
	cmd := &cobra.Command{
		Use:   "gate NEW.json --baseline OLD.json [--config gate.yaml]",
		Short: "Compare a result with a baseline and exit 99 on a regression (for CI)",
		Long: `Compare a run's result.json with a baseline result of the same plan and turn the comparison
into an exit code for CI. For every SLO of the new run and every headline figure (connect time,
fan-out latency, ping round trip and reconnect time percentiles, error and disconnect rates, false
disconnects, memory per connection, messages delivered) it prints the baseline value, the new
value, the change and its tolerance, and says whether it regressed: got worse by more than the
tolerance allows (both its relative and its absolute part), or, for an SLO, passed in the baseline
and fails now. An SLO the new run fails fails the gate too, unless the gate file says "slos: ignore".
When either run's generator was saturated (the result says it was unreliable), the changes of
timings (durations, per-second rates) are shown but not judged: they measure the generator.

Runs whose plans differ — scenario, number of clients, time scale or kind of target — are not
compared: the gate refuses them (exit 2) rather than give a meaningless verdict.

Tolerances default to: latencies 25 % and 2 ms, error and disconnect rates 50 % and one
percentage point, memory 20 % and 2 KiB, counts 50 % and one event, throughput 10 %. A gate file
(--config, YAML) changes them per class or per figure:

  slos: fail                       # or ignore: only regressions against the baseline fail
  classes:                         # latency, rate, memory, count, throughput
    latency: {relative: 50%, absolute: 5ms}
  metrics:                         # a headline figure or an SLO, as the table names it
    fanout_latency p99: {relative: 30%, absolute: 2ms}
    memory_per_connection: {ignore: true}

Exit codes: 0 no regression (and no failing SLO); 99 a regression or a failing SLO; 2 usage error,
a result or gate file that does not read, or runs whose plans differ; 1 the new run did not
complete (nothing to gate).`,
		Example: `  loadgen gate out/result.json --baseline ci/baselines/smoke.json --config ci/gate.yaml`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("gate takes one result file (the new run), got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runGate(e, f, args[0])
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.baseline, "baseline", "", "baseline result.json of the same plan (required)")
	fl.StringVar(&f.config, "config", "", "gate file (YAML) with tolerances; default: the built-in tolerances")
	return cmd
}

// runGate compares newPath with the baseline and returns the error whose exit code the gate ends with.
func runGate(e *env, f gateFlags, newPath string) error {
	if f.baseline == "" {
		return usagef("gate needs --baseline OLD.json (the result of an earlier run of the same plan)")
	}
	cur, err := reports.ReadJSON(newPath)
	if err != nil {
		return usageErr(err)
	}
	base, err := reports.ReadJSON(f.baseline)
	if err != nil {
		return usageErr(fmt.Errorf("--baseline: %w", err))
	}
	if base.StopReason != reports.StopCompleted {
		return usagef("baseline %s did not complete (%s): make the baseline from a completed run", f.baseline, stopText(base))
	}
	if cur.StopReason != reports.StopCompleted {
		return harnessErr(fmt.Errorf("%s did not complete (%s): nothing to gate", newPath, stopText(cur)))
	}
	var gate *scenarios.Gate
	if f.config != "" {
		if gate, err = scenarios.LoadGate(f.config); err != nil {
			return usageErr(err)
		}
	}
	tol, err := gate.Tolerances(cur)
	if err != nil {
		return usageErr(err)
	}
	c, err := reports.Compare(base, cur, tol, f.baseline, newPath)
	if err != nil {
		var pm *reports.PlanMismatchError
		if errors.As(err, &pm) {
			return usageErr(err)
		}
		return harnessErr(err)
	}
	fmt.Fprintf(e.stdout, "%s against baseline %s\n", newPath, f.baseline)
	if err := c.WriteText(e.stdout); err != nil {
		return harnessErr(err)
	}
	var breaches []string
	for _, m := range c.Regressions() {
		breaches = append(breaches, m.Name)
	}
	if gate.FailOnSLO() {
		for _, m := range c.Metrics {
			if m.Kind == reports.ComparisonSLO && !m.NewPass && !m.Regression && !m.Tolerance.Ignore {
				breaches = append(breaches, "SLO "+m.Name+" fails")
			}
		}
	}
	if len(breaches) > 0 {
		fmt.Fprintf(e.stdout, "GATE FAILED: %s\n", strings.Join(breaches, ", "))
		return &exitError{exitSLO, fmt.Errorf("gate: %d breach(es) against baseline %s: %s", len(breaches), f.baseline, strings.Join(breaches, ", "))}
	}
	notJudged := 0
	for _, m := range c.Metrics {
		if m.NotJudged {
			notJudged++
		}
	}
	line := fmt.Sprintf("gate passed: no regression beyond tolerance in %d figures", len(c.Metrics))
	if notJudged > 0 {
		line += fmt.Sprintf(" (%d timings worse but not judged: a run's generator was saturated)", notJudged)
	}
	fmt.Fprintln(e.stdout, line)
	return nil
}

// stopText says how a run stopped.
func stopText(r *reports.Result) string {
	if r.Error != "" {
		return r.StopReason + ": " + r.Error
	}
	return "stop reason " + r.StopReason
}
