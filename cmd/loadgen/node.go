package main

import (
	"github.com/spf13/cobra"

	"github.com/squall-dev/squall/loadgen"
)

// newNodeCmd is the hidden subcommand the embedded target re-executes this binary with to run a
// gateway node as a child process (loadgen.NodeCommand). It drains and exits on SIGTERM/SIGINT.
func newNodeCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:                loadgen.NodeCommand,
		Short:              "Run one embedded gateway node (used by the embedded target)",
		Hidden:             true,
		DisableFlagParsing: true,
		Args:               cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := loadgen.RunNodeMain(cmd.Context(), args, e.stderr); err != nil {
				return harnessErr(err)
			}
			return nil
		},
	}
}
