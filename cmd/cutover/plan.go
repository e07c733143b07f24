package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cutover/cutover/engine"
)

func newPlanCmd() *cobra.Command {
	var strategy, output string
	cmd := &cobra.Command{
		Use:   "plan SERVICE IMAGE",
		Short: "Print the steps a release of IMAGE would take; changes nothing",
		Long: `plan reads the actual state of SERVICE (Docker and the router) and prints the
steps that "cutover deploy SERVICE IMAGE" would take from there. It changes
nothing.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if err := checkStrategy(strategy); err != nil {
				return err
			}
			ctx := cmd.Context()
			s, err := openService(ctx, cmd, args[0])
			if err != nil {
				return err
			}
			defer s.Close()
			if err := s.checkRouter(ctx); err != nil {
				return err
			}
			if strategy != "" {
				s.spec.Strategy.Type = engine.StrategyType(strategy)
			}
			target, err := s.resolveTarget(ctx, args[1])
			if err != nil {
				return err
			}
			plan, err := engine.NewPlan(ctx, s.deps(), s.spec, target)
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), plan)
			}
			fmt.Fprint(cmd.OutOrStdout(), plan.String())
			return nil
		},
	}
	cmd.Flags().StringVar(&strategy, "strategy", "", "rolling, bluegreen or canary (default: the service's configured strategy)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}
