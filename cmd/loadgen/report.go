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

// newReportCmd is `loadgen report RESULT.json [-o DIR]`: render a result again.
func newReportCmd(e *env) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "report RESULT.json",
		Short: "Render report.html, junit.xml and summary.md from a result.json",
		Long: `Read a result.json written by loadgen run (any schema this build reads: 1 and 2) and render
from it, into -o DIR (default: the result's own directory):

  report.html  one self-contained page (opens offline, prints, reads on a phone): the verdict and
               SLO table, the run in one paragraph, timelines with phases and chaos events marked,
               percentile plots, per-cohort, per-phase and per-worker tables, the configuration
  junit.xml    one test case for the run and one per SLO, for CI test reporters
  summary.md   the verdict, SLO table and key figures, small enough for a pull-request comment

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
			return renderResult(e.stdout, args[0], out)
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "directory to write the renderings into (default: the directory of RESULT.json)")
	return cmd
}

// renderResult reads the result at path and writes its renderings into dir (path's directory
// when empty), printing their paths.
func renderResult(w io.Writer, path, dir string) error {
	res, err := reports.ReadJSON(path)
	if err != nil {
		var de *reports.DecodeError
		switch {
		case errors.Is(err, reports.ErrNewerSchema):
			return usagef("%s: %v: render it with the loadgen that wrote it, or a newer one", path, unwrapPath(err))
		case errors.As(err, &de):
			return usagef("%s does not read as a result: %v", path, de)
		case errors.Is(err, os.ErrNotExist):
			return usagef("%s: no such file", path)
		}
		return usagef("%s: %v", path, unwrapPath(err))
	}
	if dir == "" {
		dir = filepath.Dir(path)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return harnessErr(fmt.Errorf("-o %s: %w", dir, err))
	}
	paths, err := res.WriteRenderings(dir, renderOptions())
	if err != nil {
		return harnessErr(err)
	}
	printRenderings(w, paths)
	return nil
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
