package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cutover/cutover/engine"
)

func newApproveCmd() *cobra.Command {
	var output string
	var detach bool
	cmd := &cobra.Command{
		Use:   "approve SERVICE",
		Short: "Approve the gate a detached release waits at, and continue it",
		Long: `approve resumes SERVICE's release that stopped at an approval gate
("cutover deploy --detach", or a console or deploy that left), passes that
gate as approved by you, and carries the release on in the foreground.

At the next approval gate it asks on a terminal; with no terminal, or with
--detach, it stops there again (exit 4) for the next "cutover approve".`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, s, out, done, err := openRelease(cmd, args[0], output)
			if err != nil {
				return err
			}
			defer done()
			recs, err := s.journal.Releases(ctx, s.svc.Name, 1)
			if err != nil {
				return err
			}
			if len(recs) == 0 || recs[0].State != engine.ReleaseWaiting {
				state := "no release"
				if len(recs) > 0 {
					state = "its latest release " + recs[0].ID + " is " + string(recs[0].State)
				}
				return fmt.Errorf("%s: nothing waits for approval (%s)", s.svc.Name, state)
			}
			rec := recs[0]
			s.resumeAs(rec)
			interactive := term.IsTerminal(int(os.Stdin.Fd()))
			opts := engine.Options{ID: rec.ID, Actor: actor(), Approved: 1, Detach: detach || !interactive}
			fmt.Fprintf(cmd.ErrOrStderr(), "approving release %s (%s → %s) as %s\n", rec.ID, rec.Stable().Version, rec.To.Version, opts.Actor)
			return s.drive(ctx, cmd, rec.To, opts, out, interactive)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json (one JSON event per line)")
	cmd.Flags().BoolVar(&detach, "detach", false, "stop at the next approval gate even on a terminal")
	return cmd
}
