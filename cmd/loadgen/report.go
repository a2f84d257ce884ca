package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/squall-dev/squall/reports"
	"github.com/squall-dev/squall/scenarios"
)

// reportFlags are `loadgen report`'s flags.
type reportFlags struct {
	out, baseline, config string
}

// newReportCmd is `loadgen report RESULT.json [-o DIR] [--baseline OLD.json [--config gate.yaml]]`:
// render a result again, alone or against a baseline.
func newReportCmd(e *env) *cobra.Command {
	var f reportFlags
	cmd := &cobra.Command{
		Use:   "report RESULT.json [-o DIR] [--baseline OLD.json [--config gate.yaml]]",
		Short: "Render report.html, junit.xml and summary.md from a result.json",
		Long: `Read a result.json written by loadgen run (any schema this build reads: 1 and 2) and render
from it, into -o DIR (default: the result's own directory):

  report.html  one self-contained page (opens offline, prints, reads on a phone): the verdict and
               SLO table, the run in one paragraph, timelines with phases and chaos events marked,
               percentile plots, per-cohort, per-phase and per-worker tables, the configuration
  junit.xml    one test case for the run and one per SLO, for CI test reporters
  summary.md   the verdict, SLO table and key figures, small enough for a pull-request comment

With --baseline OLD.json (a result of the same plan), every rendering also shows, for each SLO and
headline figure, the baseline value, the change and whether it regressed beyond its tolerance
(the built-in tolerances, or those of --config gate.yaml, as loadgen gate reads them); junit.xml
gains one test case per figure. Runs whose plans differ (scenario, clients, time scale, target
kind) are refused rather than compared. The exit code does not depend on the comparison: that is
loadgen gate's job.

Every file is rendered in memory first and written atomically: a result that does not decode
(cut short, edited by hand) is reported with the JSON path, line and column at fault and leaves
DIR as it was. A result of a newer schema names the version it needs.

Exit codes: 0 rendered, 1 a file could not be written, 2 usage or a result that does not read.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("report takes one result file, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return renderResult(e.stdout, args[0], f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.out, "out", "o", "", "directory to write the renderings into (default: the directory of RESULT.json)")
	fl.StringVar(&f.baseline, "baseline", "", "baseline result.json of the same plan to compare with")
	fl.StringVar(&f.config, "config", "", "gate file (YAML) with the comparison's tolerances (needs --baseline)")
	return cmd
}

// renderResult reads the result at path and writes its renderings into f.out (path's directory
// when empty), against f.baseline when given, printing their paths.
func renderResult(w io.Writer, path string, f reportFlags) error {
	if f.config != "" && f.baseline == "" {
		return usagef("--config sets the tolerances of a comparison: it needs --baseline OLD.json")
	}
	res, err := readResult(path)
	if err != nil {
		return err
	}
	opts := renderOptions()
	if f.baseline != "" {
		if opts.Comparison, err = compareWithBaseline(res, path, f); err != nil {
			return err
		}
	}
	dir := f.out
	if dir == "" {
		dir = filepath.Dir(path)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return harnessErr(fmt.Errorf("-o %s: %w", dir, err))
	}
	paths, err := res.WriteRenderings(dir, opts)
	if err != nil {
		return harnessErr(err)
	}
	printRenderings(w, paths)
	return nil
}

// compareWithBaseline reads the baseline and the gate file of f and compares res with them.
func compareWithBaseline(res *reports.Result, path string, f reportFlags) (*reports.Comparison, error) {
	base, err := readResult(f.baseline)
	if err != nil {
		return nil, usageErr(fmt.Errorf("--baseline: %w", err))
	}
	if base.StopReason != reports.StopCompleted {
		return nil, usagef("baseline %s did not complete (%s): make the baseline from a completed run", f.baseline, stopText(base))
	}
	var gate *scenarios.Gate
	if f.config != "" {
		if gate, err = scenarios.LoadGate(f.config); err != nil {
			return nil, usageErr(err)
		}
	}
	tol, err := gate.Tolerances(res)
	if err != nil {
		return nil, usageErr(err)
	}
	c, err := reports.Compare(base, res, tol, f.baseline, path)
	if err != nil {
		return nil, usageErr(err) // plans that differ: refused, not compared
	}
	return c, nil
}

// readResult reads a result file; what keeps it from reading is a usage error naming the fault.
func readResult(path string) (*reports.Result, error) {
	res, err := reports.ReadJSON(path)
	if err != nil {
		var de *reports.DecodeError
		switch {
		case errors.Is(err, reports.ErrNewerSchema):
			return nil, usagef("%s: %v: render it with the loadgen that wrote it, or a newer one", path, unwrapPath(err))
		case errors.As(err, &de):
			return nil, usagef("%s does not read as a result: %v", path, de)
		case errors.Is(err, os.ErrNotExist):
			return nil, usagef("%s: no such file", path)
		}
		return nil, usagef("%s: %v", path, unwrapPath(err))
	}
	return res, nil
}

// renderOptions are the renderings' options: the scenario catalogue's explanations.
func renderOptions() reports.RenderOptions {
	return reports.RenderOptions{Glossary: scenarios.Glossary()}
}

// printRenderings prints one line per rendered file, named as printSummary names result.json.
func printRenderings(w io.Writer, paths []string) {
	for _, p := range paths {
		base := filepath.Base(p)
		fmt.Fprintf(w, "  %s: %s\n", strings.TrimSuffix(base, filepath.Ext(base)), p)
	}
}

// unwrapPath drops the "reports: PATH: " prefix ReadJSON puts before its errors.
func unwrapPath(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}
