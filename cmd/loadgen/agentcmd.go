package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/squall-dev/squall/harness"
	"github.com/squall-dev/squall/internal/version"
	"github.com/squall-dev/squall/loadgen/agent"
	"github.com/squall-dev/squall/refserver"
)

func newAgentCmd(e *env) *cobra.Command {
	var listen, token string
	var verbose, allowRemote bool
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Serve the controller/agent protocol (a worker of a larger run)",
		Long: `Serve the controller/agent protocol on --listen and run the jobs a controller sends. It prints
"listening ADDR" on stdout once it listens. Every request must carry the shared token
(--token or $` + agent.TokenEnv + `). It exits when the controller asks it to, or on SIGINT/SIGTERM.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if token == "" {
				token = os.Getenv(agent.TokenEnv)
			}
			if token == "" {
				return usagef("agent needs --token or $%s", agent.TokenEnv)
			}
			if !refserver.IsLoopbackAddr(listen) && !allowRemote {
				return usagef("--listen %s: not a loopback address (add --allow-remote to serve controllers on other machines)", listen)
			}
			err := harness.ServeAgent(cmd.Context(), harness.AgentOptions{Listen: listen, Token: token, Stdout: e.stdout,
				Logger: newLogger(e.stderr, verbose), Version: version.Version})
			if err != nil {
				return harnessErr(err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "address to listen on")
	cmd.Flags().StringVar(&token, "token", "", "shared token (default $"+agent.TokenEnv+")")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "log to stderr")
	cmd.Flags().BoolVar(&allowRemote, "allow-remote", false, "allow a non-loopback --listen address (the token is then the only protection; the protocol is plain HTTP)")
	return cmd
}
