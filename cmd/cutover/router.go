package main

import "github.com/spf13/cobra"

// newRouterCmd runs cutover's traffic router (data plane).
func newRouterCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "router",
		Short: "Run the traffic router (data plane)",
	}
}
