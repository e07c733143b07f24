// Command cutover is a release console for containers: it opens the console
// with no subcommand, and runs releases headless from CI with one.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// Exit codes shared by the headless commands; CI scripts rely on them.
const (
	exitOK         = 0
	exitError      = 1 // bad input, unreachable Docker host or router: nothing changed
	exitFailed     = 2 // the release failed and was left paused for an operator
	exitRolledBack = 3 // the release was rolled back
	exitWaiting    = 4 // detached while waiting for an approval
	exitAborted    = 5 // stopped by the operator (Ctrl-C) where it was; resumable
	exitTakenOver  = 6 // another writer (an emergency rollback) took the service over
	exitUsage      = 64
)

// exitError carries an exit code through cobra's error return.
type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string { return e.err.Error() }
func (e *exitCodeError) Unwrap() error { return e.err }

// withCode wraps err so that main exits with code.
func withCode(code int, err error) error { return &exitCodeError{code: code, err: err} }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "cutover",
		Short:         "A release console for containers",
		Long:          "cutover releases container images on Docker hosts with rolling, blue/green and canary strategies.\nWith no subcommand it opens the console.",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE:          runConsole,
	}
	root.PersistentFlags().StringP("config", "c", "cutover.yaml", "path to the config file")
	root.Flags().StringP("service", "s", "", "service to select when the console opens")
	root.AddCommand(
		newRouterCmd(),
		newDemoAppCmd(),
		newConfigCmd(),
		newDemoCmd(),
		newDemoTrafficCmd(),
		newDeployCmd(),
		newRollbackCmd(),
		newApproveCmd(),
		newStatusCmd(),
		newHistoryCmd(),
		newImagesCmd(),
		newPlanCmd(),
		newServeCmd(),
	)
	return root
}

func main() {
	err := newRootCmd().Execute()
	if err == nil {
		return
	}
	code := exitError
	var ce *exitCodeError
	if errors.As(err, &ce) {
		code = ce.code
	}
	if ce == nil || ce.err != nil && ce.err.Error() != "" {
		fmt.Fprintln(os.Stderr, "cutover:", err)
	}
	os.Exit(code)
}
