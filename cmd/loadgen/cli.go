package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/squall-dev/squall/internal/version"
)

// Exit codes of loadgen (DESIGN §6).
const (
	exitOK      = 0
	exitHarness = 1  // the harness failed: target unreachable, upgrade refused, workers lost, ...
	exitUsage   = 2  // usage or invalid input: bad flags, unknown target, invalid plan, rejected token
	exitSLO     = 99 // an SLO or a baseline gate was breached
	// exitInterrupted: the run was stopped by SIGINT or SIGTERM (what shells report after Ctrl-C);
	// the partial result was written.
	exitInterrupted = 130
)

// exitError carries the exit code of an error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(err error) error { return &exitError{exitUsage, err} }
func harnessErr(err error) error {
	return &exitError{exitHarness, err}
}

// usagef makes a usage error.
func usagef(format string, a ...any) error { return usageErr(fmt.Errorf(format, a...)) }

// exitCode maps an error to the process exit code.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitHarness
}

// oneLine flattens an error message to one line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, "\r", "")
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

// env is what every subcommand writes to.
type env struct {
	stdout, stderr io.Writer
}

// run executes the CLI with args and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	root := newRoot(e)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %s\n", oneLine(err.Error()))
	}
	return exitCode(err)
}

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "loadgen",
		Short: "Load generator for WebSocket gateways",
		Long: `loadgen runs simulated browser tabs against a WebSocket gateway, measures honestly
(latency from intended send times, HDR histograms) and writes result.json.

Exit codes: 0 ok, 1 the harness failed, 2 usage or invalid input, 99 an SLO was breached,
130 interrupted (the partial result is written).`,
		Version:       version.String("loadgen"),
		SilenceUsage:  true,
		SilenceErrors: true,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q (try loadgen --help)", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("no command given (try loadgen run, loadgen doctor or loadgen --help)")
		},
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr(err) })
	root.AddCommand(newRunCmd(e), newReportCmd(e), newValidateCmd(e), newGateCmd(e), newAgentCmd(e), newDoctorCmd(e), newNodeCmd(e))
	for _, c := range root.Commands() {
		c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr(err) })
		if c.Args == nil {
			c.Args = noArgs
		}
	}
	// Unknown subcommands and stray arguments are usage errors.
	root.SetHelpCommand(&cobra.Command{Use: "help [command]", Short: "Help about any command", RunE: func(cmd *cobra.Command, args []string) error {
		c, rest, err := root.Find(args)
		if err != nil || c == nil || len(rest) > 0 {
			return usagef("unknown help topic %q", strings.Join(args, " "))
		}
		return c.Help()
	}})
	return root
}

// noArgs rejects positional arguments as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments, got %q", cmd.CommandPath(), strings.Join(args, " "))
	}
	return nil
}
