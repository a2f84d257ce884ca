package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/squall-dev/squall/harness"
	"github.com/squall-dev/squall/internal/version"
	"github.com/squall-dev/squall/loadgen/agent"
	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/reports"
	"github.com/squall-dev/squall/scenarios"
)

// runSpec runs spec with the live display, writes result.json, report.html, junit.xml and
// summary.md into out, prints the summary, their paths and the verdicts, and returns the error
// whose exit code DESIGN §6 gives the run.
func runSpec(ctx context.Context, e *env, f runFlags, spec harness.Spec, out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return usagef("--out %s: %v", out, err)
	}
	outPath := filepath.Join(out, reports.FileName)
	logger := newLogger(e.stderr, f.verbose)
	tlsConf, err := agentTLS(f.agentCA)
	if err != nil {
		return err
	}
	var prog *progress
	opts := harness.Options{
		Logger:         logger,
		Workers:        f.workers,
		Agents:         f.agents,
		Token:          f.token,
		AgentsInsecure: f.agentsInsec,
		AgentTLS:       tlsConf,
		ShutdownAgents: f.agentsExit,
		FDsPerProcess:  f.perProcess,
		NodeBinary:     f.nodeBinary,
		WorkerCommand:  workerCommand(f),
		Version:        version.Version,
		OnStart: func(st harness.Start) {
			fmt.Fprintf(e.stdout, "target (%s): %s\n", st.Target, st.Resolved)
			prog = newProgress(e.stdout, f.progress, st.Clients, st.Workers)
		},
		OnUpdate: func(u agent.Update) { prog.update(u) },
		OnNote:   func(line string) { prog.note(line) },
	}
	if f.verbose {
		opts.GatewayLog = e.stderr
	}
	res, err := harness.Run(ctx, spec, opts)
	prog.done()
	if res == nil {
		return runError(err)
	}
	if werr := res.WriteJSON(outPath); werr != nil {
		return harnessErr(werr)
	}
	printSummary(e.stdout, res, outPath)
	rendered, rerr := res.WriteRenderings(out, renderOptions())
	printRenderings(e.stdout, rendered)
	if rerr != nil { // the result is written: it can be rendered again
		return harnessErr(fmt.Errorf("%w (%s is written; loadgen report %s renders it again)", rerr, outPath, outPath))
	}
	if lost := lostWorkers(res); lost > 0 && lost < len(res.Workers) {
		fmt.Fprintf(e.stderr, "loadgen: warning: %d of %d workers lost; the result keeps what they reported\n", lost, len(res.Workers))
	}
	if o := res.ProxyOverhead; o != nil {
		fmt.Fprintf(e.stdout, "  the chaos proxy adds %v p50, %v p99 to a round trip (measured before the run; proxied cohorts' latencies include it)\n",
			o.AddedP50.Round(time.Microsecond), o.AddedP99.Round(time.Microsecond))
	}
	if err != nil {
		if len(res.SLOs) == 0 && spec.Scenario != nil {
			fmt.Fprintln(e.stdout, "SLOs not graded: the run did not complete")
		}
		printDiagnosis(e.stdout, res.Diagnosis)
		return runError(err)
	}
	verdicts := scenarios.VerdictsOf(res.SLOs)
	fmt.Fprintln(e.stdout)
	if spec.Scenario == nil {
		fmt.Fprintln(e.stdout, "the built-in plan's SLOs (every client connected, delivery, abnormal closes, generator health):")
	}
	if err := scenarios.WriteVerdicts(e.stdout, verdicts); err != nil {
		return harnessErr(err)
	}
	if res.StepRamp != nil { // a capacity run: each step graded on its own, and the knee
		fmt.Fprintln(e.stdout)
		if err := scenarios.WriteSteps(e.stdout, res.StepRamp); err != nil {
			return harnessErr(err)
		}
	}
	printDiagnosis(e.stdout, res.Diagnosis)
	if code := scenarios.ExitCode(verdicts); code != scenarios.ExitOK {
		what := "the built-in plan " + res.Name
		if s := spec.Scenario; s != nil {
			what = "scenario " + s.Name
		}
		return &exitError{code, fmt.Errorf("%s: SLO breached (result: %s)", what, outPath)}
	}
	return nil
}

// runError gives a run's error its exit code: usage errors 2, an interruption 130, everything
// else 1.
func runError(err error) error {
	switch {
	case err == nil:
		return nil
	case harness.IsUsage(err):
		return usageErr(err)
	case errors.Is(err, harness.ErrInterrupted):
		return &exitError{exitInterrupted, fmt.Errorf("%w; the partial result was written", err)}
	}
	return harnessErr(err)
}

// workerCommand is how a spawned worker is started: the --worker-binary, or this binary, as an
// agent.
func workerCommand(f runFlags) []string {
	exe := f.workerBinary
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			exe = os.Args[0]
		}
	}
	cmd := []string{exe, "agent", "--listen", "127.0.0.1:0"}
	if f.verbose {
		cmd = append(cmd, "--verbose")
	}
	return cmd
}

func lostWorkers(r *reports.Result) int {
	lost := 0
	for _, w := range r.Workers {
		if w.Status != reports.WorkerOK {
			lost++
		}
	}
	return lost
}

// printSummary prints a few lines about the result. Its "errors" are reports.Headline's: every
// failed connect (HTTP 503 included), every connection that ended other than with 1000 or 1001
// (1006, 1008, 1011, 1013, 4xxx, or no close at all) and every client-side cut, false disconnects
// among them; its connect_time is the connect_time SLO's span (dial to 101).
func printSummary(w io.Writer, r *reports.Result, path string) {
	h := reports.HeadlineOf(r)
	s := r.Stats
	fmt.Fprintf(w, "%s %s in %v: %d clients on %d worker(s), %d connects, %d errors%s\n",
		r.Name, r.StopReason, r.Duration.Round(100*time.Millisecond), h.Clients, len(r.Workers), h.Connects, h.Errors, errorDetail(h))
	fmt.Fprintf(w, "  connect_time p50 %v p99 %v | fanout p50 %v p99 %v | sent %d received %d | order violations %d, acked-undelivered %d\n",
		ms(h.ConnectTime.P50), ms(h.ConnectTime.P99), ms(h.Fanout.P50), ms(h.Fanout.P99),
		h.MessagesSent, h.MessagesReceived, s.Counter(stats.CtrOrderViolations), s.Counter(stats.CtrAckedUndelivered))
	if !r.Reliable {
		fmt.Fprintf(w, "  unreliable: %s\n", r.UnreliableReason)
	}
	fmt.Fprintf(w, "  result: %s\n", path)
}

// errorDetail names the largest kinds of error and the false disconnects among them.
func errorDetail(h reports.Headline) string {
	if h.Errors == 0 {
		return ""
	}
	var parts []string
	for i, k := range h.ErrorKinds {
		if i == 3 {
			parts = append(parts, "...")
			break
		}
		parts = append(parts, fmt.Sprintf("%s %d", k.Kind, k.Count))
	}
	if h.FalseDisconnects > 0 {
		parts = append(parts, fmt.Sprintf("false disconnects %d", h.FalseDisconnects))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func ms(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	default:
		return d.Round(10 * time.Microsecond).String()
	}
}

// printDiagnosis prints what the diagnosis found: each finding's severity, class and title, its
// evidence and the fix it suggests.
func printDiagnosis(w io.Writer, d *reports.Diagnosis) {
	if d == nil {
		return
	}
	fmt.Fprintln(w)
	if len(d.Findings) == 0 {
		fmt.Fprintln(w, "diagnosis: nothing in the figures points to a fault (client side, between or server side)")
		return
	}
	fmt.Fprintf(w, "diagnosis: %d finding(s)\n", len(d.Findings))
	for _, f := range d.Findings {
		fmt.Fprintf(w, "  %s, %s: %s\n", strings.ToUpper(f.Severity), f.Class, f.Title)
		for _, ev := range f.Evidence {
			fmt.Fprintf(w, "    - %s\n", ev)
		}
		if f.Fix != "" {
			fmt.Fprintf(w, "    fix: %s\n", f.Fix)
		}
	}
}
