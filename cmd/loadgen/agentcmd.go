package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/squall-dev/squall/harness"
	"github.com/squall-dev/squall/internal/version"
	"github.com/squall-dev/squall/loadgen/agent"
	"github.com/squall-dev/squall/loadgen/worker"
)

func newAgentCmd(e *env) *cobra.Command {
	var listen, token, cert, key string
	var allowTargets []string
	var verbose, insecure, allowRemote bool
	var shard, gcPercent int
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Serve the controller/agent protocol (a worker of a larger run)",
		Long: `Serve the controller/agent protocol on --listen and run the jobs a controller sends. It prints
"listening ADDR" on stdout once it listens. Every request must carry the shared token
(--token or $` + agent.TokenEnv + `). It exits when the controller asks it to, or on SIGINT/SIGTERM.

Off loopback the agent serves TLS (--tls-cert and --tls-key; a controller speaking plain HTTP is
refused, and controllers verify the certificate with --agent-ca). Plain HTTP off loopback needs
--insecure: the agent then warns on stderr, and controllers record it in the result (the worker's
transport is "http-insecure"). The agent's clients connect only to the endpoints the controller's
job names; --allow-target restricts which networks those may be in, and --shard which part of
the plan it takes (the controller's --agents list is in shard order).`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if token == "" {
				token = os.Getenv(agent.TokenEnv)
			}
			if gcPercent < 0 {
				return usagef("--gc-percent %d: want a percentage above 0 (0 keeps $GOGC or Go's default)", gcPercent)
			}
			worker.TuneProcess(gcPercent, cmd.Flags().Changed("gc-percent"))
			if token == "" {
				return usagef("agent needs --token or $%s", agent.TokenEnv)
			}
			nets, err := parsePrefixes(allowTargets)
			if err != nil {
				return usagef("--allow-target: %v", err)
			}
			o := harness.AgentOptions{Listen: listen, Token: token, Stdout: e.stdout,
				TLSCert: cert, TLSKey: key, Insecure: insecure, Warn: e.stderr, AllowTargets: nets,
				Logger: newLogger(e.stderr, verbose), Version: version.Version}
			if shard < -1 {
				return usagef("--shard %d: want a shard index (0, 1, ...) or -1 for any", shard)
			}
			if shard >= 0 {
				o.Shard = &shard
			}
			err = harness.ServeAgent(cmd.Context(), o)
			switch {
			case harness.IsUsage(err):
				return usageErr(err)
			case err != nil:
				return harnessErr(err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "address to listen on (off loopback: TLS, or --insecure)")
	cmd.Flags().StringVar(&token, "token", "", "shared token (default $"+agent.TokenEnv+")")
	cmd.Flags().StringVar(&cert, "tls-cert", "", "PEM certificate (with its chain) to serve HTTPS with")
	cmd.Flags().StringVar(&key, "tls-key", "", "PEM private key of --tls-cert")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "serve plain HTTP off loopback: the token and jobs travel in clear (warned, and recorded in the result)")
	cmd.Flags().StringSliceVar(&allowTargets, "allow-target", nil, "networks (CIDR) the jobs' endpoints may be in (default: whatever the controller names)")
	cmd.Flags().IntVar(&gcPercent, "gc-percent", worker.DefaultGCPercent, "garbage collector target: heap growth over the live heap before a collection, in percent "+
		"(a worker's heap is mostly long-lived client state; below Go's 100 it holds less memory per client for a little CPU; 0 keeps $GOGC or Go's default; $GOGC wins over the default)")
	cmd.Flags().IntVar(&shard, "shard", -1, "run only this shard of a plan (a Kubernetes Indexed Job's completion index); -1 any")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "log to stderr")
	cmd.Flags().BoolVar(&allowRemote, "allow-remote", false, "")
	_ = cmd.Flags().MarkDeprecated("allow-remote", "a non-loopback --listen now needs --tls-cert and --tls-key, or --insecure")
	return cmd
}
