package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/squall-dev/squall/scenarios"
)

// newValidateCmd is `loadgen validate FILE...`: load every scenario file without running it.
func newValidateCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check scenario files without running them",
		Long: `Load and check every scenario file: unknown fields, bad durations, SLOs on unknown metrics,
timeline events after the end of the phases, ... Prints "ok FILE (...)" for a good file and one
line per problem otherwise, each naming file:line:column and the field.

Exit codes: 0 every file is valid, 2 a file has a problem (or no file was given).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("validate needs at least one scenario file")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if !scenarios.ValidateFiles(args, e.stdout) {
				return usageErr(fmt.Errorf("invalid scenario (problems listed above)"))
			}
			return nil
		},
	}
}
