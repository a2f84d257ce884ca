package main

import (
	"github.com/spf13/cobra"

	"github.com/squall-dev/squall/loadgen/embedded"
)

// newNodeCmd is the hidden subcommand the embedded gateway re-executes this binary with to run a
// gateway node as a child process (embedded.NodeCommand). It drains and exits on SIGTERM.
func newNodeCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:                embedded.NodeCommand,
		Short:              "Run one embedded gateway node (used by the embedded gateway)",
		Hidden:             true,
		DisableFlagParsing: true,
		Args:               cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := embedded.RunNodeMain(cmd.Context(), args, e.stderr); err != nil {
				return harnessErr(err)
			}
			return nil
		},
	}
}
