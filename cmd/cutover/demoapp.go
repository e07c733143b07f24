package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cutover/cutover/engine/demo"
)

// newDemoAppCmd runs the demo HTTP app; the demo images are the cutover
// binary with this as their entrypoint. Hidden: operators never run it.
func newDemoAppCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:    "demo-app",
		Short:  "Run the demo HTTP app (the entrypoint of the demo images)",
		Long:   "Run the demo HTTP app. Knobs come from the environment: DEMO_VERSION, PORT, DEMO_ERROR_RATE,\nDEMO_ERRORS_AFTER, DEMO_LATENCY, DEMO_CRASH, DEMO_SLOW_START, DEMO_FAIL_HEALTH.",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := demo.AppConfigFromEnv()
			if err != nil {
				return withCode(exitUsage, fmt.Errorf("demo-app: %w", err))
			}
			// In a container this is PID 1: without a handler SIGTERM
			// would be ignored and `docker stop` would wait for SIGKILL.
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			err = demo.Serve(ctx, cfg)
			if errors.Is(err, demo.ErrCrash) {
				return withCode(demo.CrashExitCode, fmt.Errorf("demo-app %s: %w (exit %d)", cfg.Version, err, demo.CrashExitCode))
			}
			if err != nil {
				return fmt.Errorf("demo-app %s: %w", cfg.Version, err)
			}
			return nil
		},
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "probe",
		Short: "Probe the demo app's /healthz on 127.0.0.1:$PORT once (for a Docker HEALTHCHECK)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := demo.AppConfigFromEnv()
			if err != nil {
				return withCode(exitUsage, fmt.Errorf("demo-app probe: %w", err))
			}
			return demo.Probe(cmd.Context(), cfg.Port)
		},
	})
	return cmd
}
