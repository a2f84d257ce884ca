// Package scenarios loads, validates and grades squall scenario files.
//
// A scenario is a YAML file (see README.md in this folder for every field) that describes a
// population of simulated browser tabs (cohorts), how it ramps, holds and leaves (phases, in a closed
// or open load model), a timeline of faults and behaviour switches, the system under test (the
// embedded reference gateway with its flaws, or a URL), and the SLOs that grade the run.
//
// Load and Parse read a file strictly: an unknown field, a value of the wrong type, a bad duration,
// an SLO on a metric the catalogue does not know, a timeline event after the end of the phases, ...
// are all reported at once, each as an *Error that names the file, line, column and field path and
// says what was expected. The loader fills in every default and applies the time scale, so the
// returned *Scenario holds exactly what will run.
//
// A loaded scenario converts into what runs it, each in one place: Plan gives the load generator's
// plan (behaviour switches included) and the routes of its cohorts (direct, or through a named chaos
// proxy); Target.GatewayConfig maps the target's gateway settings onto refserver.Config through
// refserver's own flags, and EmbeddedOptions adds the node count; ChaosTimeline gives the fault
// timeline, where behaviour switches appear as the custom chaos action ChaosBehaviour.
//
// Grading is separate from running: Grade evaluates SLOs against a MetricSource (anything that can
// answer "p99 of ping_rtt for cohort X"; ResultSource answers from a run's reports.Result and says
// "no data" for what the run did not measure), WriteVerdicts renders the verdict table, ExitCode
// turns the verdicts into the exit code of DESIGN §6 and ReportVerdicts into the result model's
// form (VerdictsOf reads them back). The harness package runs a scenario and grades it. A plan run
// without a scenario file is graded by PlanSLOs; a step ramp's steps and knee (Steps, Knee) go into
// the result as StepRampOf makes them.
//
// LoadGate and ParseGate read a gate file (gate.yaml: the tolerances of a comparison with a
// baseline, see Gate) through the same decoder, with the same file:line:field errors; its
// Tolerances resolve against a run (the SLO names and units it has) into reports.Tolerances.
//
// The metric catalogue (Metrics) is the one place a metric is defined: its unit, aggregations,
// time scaling, whether it is kept per cohort, its meaning, and the Resolver that reads it off a
// run. README.md's table is checked against it.
//
// Concurrency: a *Scenario is a plain value; Load, Parse, Grade and the catalogue are safe to call
// from several goroutines, but a Scenario must not be modified (ApplyTimeScale, fields) while another
// goroutine reads it.
package scenarios
