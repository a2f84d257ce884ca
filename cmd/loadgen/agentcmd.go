package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

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
			return runAgent(cmd.Context(), e, listen, token, verbose)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "address to listen on")
	cmd.Flags().StringVar(&token, "token", "", "shared token (default $"+agent.TokenEnv+")")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "log to stderr")
	cmd.Flags().BoolVar(&allowRemote, "allow-remote", false, "allow a non-loopback --listen address (the token is then the only protection; the protocol is plain HTTP)")
	return cmd
}

func runAgent(ctx context.Context, e *env, listen, token string, verbose bool) error {
	logger := newLogger(e.stderr, verbose).With("pid", os.Getpid())
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return harnessErr(fmt.Errorf("agent: %w", err))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a := agent.New(token, runJob(logger), logger, agent.Options{Version: version, OnShutdown: cancel, OnSent: testSentHook})
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(e.stdout, "%s%s\n", agent.ListenPrefix, ln.Addr())
	logger.Info("agent listening", "addr", ln.Addr().String())
	select {
	case <-ctx.Done():
	case err = <-served:
	}
	// Stop a running job cleanly (clients closed), then the server.
	a.Close()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return harnessErr(fmt.Errorf("agent: %w", err))
	}
	return nil
}
