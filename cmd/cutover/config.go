package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cutover/cutover/config"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Inspect the config file",
	}
	cmd.AddCommand(newConfigCheckCmd())
	return cmd
}

func newConfigCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check [FILE]",
		Short: "Validate the config file and print the effective config",
		Long: `check validates the config file (--config, or FILE) and prints the effective
config, every default filled in, as YAML on stdout. If the file has problems it
prints all of them on stderr, one per line as file:line: key: problem, prints
nothing on stdout, and exits 1.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := cmd.Flags().GetString("config")
			if err != nil {
				return withCode(exitUsage, fmt.Errorf("config check: %w", err))
			}
			if len(args) == 1 {
				path = args[0]
			}
			c, err := loadConfigFile(cmd, path)
			if err != nil {
				return err
			}
			out, err := c.Marshal()
			if err != nil {
				return fmt.Errorf("config check: %w", err)
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
}

// loadConfigFlag loads the file named by the --config flag; see loadConfigFile.
func loadConfigFlag(cmd *cobra.Command) (*config.Config, error) {
	path, err := cmd.Flags().GetString("config")
	if err != nil {
		return nil, withCode(exitUsage, err)
	}
	return loadConfigFile(cmd, path)
}

// loadConfigFile loads a config file. Its problems are printed on stderr as
// they are, one "file:line: ..." per line, so editors and CI can jump to them;
// the error returned then carries only exit code 1 and main prints nothing more.
func loadConfigFile(cmd *cobra.Command, path string) (*config.Config, error) {
	c, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(cmd.ErrOrStderr(), err)
		return nil, withCode(exitError, errors.New(""))
	}
	return c, nil
}
