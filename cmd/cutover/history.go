package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cutover/cutover/engine"
)

func newHistoryCmd() *cobra.Command {
	var output, release string
	var limit int
	cmd := &cobra.Command{
		Use:   "history [SERVICE]",
		Short: "List past releases from the journal, or one release's events",
		Long: `history lists releases newest first: who ran them, from → to, strategy and
outcome, and how many of their notifications did not get through.
--release ID prints that release's events, in order, failed notifications
(notify-failed) among them.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			cfg, err := loadConfigFlag(cmd)
			if err != nil {
				return err
			}
			service := ""
			if len(args) == 1 {
				if _, err := cfg.Service(args[0]); err != nil {
					return err
				}
				service = args[0]
			}
			j, err := openJournal(cfg)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			w := cmd.OutOrStdout()
			if release != "" {
				if _, err := j.Release(ctx, release); err != nil {
					return fmt.Errorf("%w (cutover history lists them)", err)
				}
				evs, err := j.Events(ctx, release)
				if err != nil {
					return fmt.Errorf("release %s: %w", release, err)
				}
				if output == "json" {
					return writeJSON(w, evs)
				}
				for _, ev := range evs {
					fmt.Fprintln(w, eventLine(ev))
				}
				return nil
			}
			recs, err := j.Releases(ctx, service, limit)
			if err != nil {
				return err
			}
			if output == "json" {
				if recs == nil {
					recs = []engine.ReleaseRecord{}
				}
				return writeJSON(w, recs)
			}
			now := time.Now()
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "RELEASE\tSERVICE\tKIND\tFROM → TO\tSTRATEGY\tOUTCOME\tBY\tSTARTED\tTOOK")
			for _, r := range recs {
				took := "-"
				if !r.Ended.IsZero() {
					took = r.Ended.Sub(r.Started).Round(time.Second).String()
				}
				outcome := string(r.State)
				if r.NotifyFailed > 0 {
					// The events say which (history --release ID).
					outcome += fmt.Sprintf(" (notifications failed: %d)", r.NotifyFailed)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
					r.ID, r.Service, r.Kind, r.Summary(), r.Strategy, outcome, r.Actor, engine.Ago(now, r.Started), took)
			}
			if len(recs) == 0 {
				fmt.Fprintln(tw, "(no releases yet)")
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	cmd.Flags().StringVar(&release, "release", "", "print this release's events")
	cmd.Flags().IntVarP(&limit, "limit", "n", 50, "how many releases to list")
	return cmd
}
