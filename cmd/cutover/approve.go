package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cutover/cutover/engine"
)

func newApproveCmd() *cobra.Command {
	var output string
	var detach bool
	var step int
	cmd := &cobra.Command{
		Use:   "approve SERVICE",
		Short: "Approve the gate a detached release waits at, and continue it",
		Long: `approve resumes SERVICE's release that stopped at an approval gate
("cutover deploy --detach", or a console or deploy that left), passes that
gate as approved by you, and carries the release on in the foreground. It
says which gate it approves; --step N refuses if the release waits at any
other step (the number "cutover status" shows), so an approval given for
one gate never passes another.

Before passing the gate, the release looks at what happened while nobody
watched: a new instance that crashed, or that the router can no longer
reach, is a failure, handled as on_failure says (the gate is not passed).

At the next approval gate it asks on a terminal; with no terminal, or with
--detach, it stops there again (exit 4) for the next "cutover approve".

When "cutover serve" runs the release, the approval goes to it (through its
control socket) and approve returns once the release took it (exit 0): the
release carries on in serve, where every session sees who approved.`,
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
			evs, err := s.journal.Events(ctx, rec.ID)
			if err != nil {
				return err
			}
			gate, ok := engine.WaitingGate(evs)
			if !ok {
				return fmt.Errorf("%s: release %s is waiting, but its journal shows no approval gate waiting", s.svc.Name, rec.ID)
			}
			if step > 0 && step != gate.Step+1 {
				return fmt.Errorf("%s: release %s waits at step %d (%s), not step %d: nothing approved", s.svc.Name, rec.ID, gate.Step+1, gate.Gate.Key, step)
			}
			if c, l, ok := s.servedBy(ctx); ok {
				return approveThroughServe(ctx, cmd, c, l, rec, gate, out)
			}
			s.resumeAs(rec)
			interactive := term.IsTerminal(int(os.Stdin.Fd()))
			by := actor()
			opts := engine.Options{ID: rec.ID, Actor: by, Approve: &engine.Order{Command: engine.CmdApprove, Gate: gate.Gate.Key, By: by},
				Detach: detach || !interactive}
			fmt.Fprintf(cmd.ErrOrStderr(), "approving step %d (%s: %s) of release %s (%s → %s) as %s\n",
				gate.Step+1, gate.Gate.Key, gate.Gate, rec.ID, rec.Stable().Version, rec.To.Version, opts.Actor)
			// An approval the release refused (another run passed that gate
			// meanwhile) approved nothing: the command fails, saying why,
			// rather than exiting as if it had passed the gate.
			passed, refused := false, ""
			err = s.driveWatching(ctx, cmd, rec.To, opts, out, interactive, func(ev engine.Event) {
				switch {
				case ev.Kind == engine.EventGatePassed && ev.Gate != nil && ev.Gate.Key == gate.Gate.Key:
					passed = true
				case ev.Kind == engine.EventCommand && ev.Command == engine.CmdApprove && refused == "" && strings.Contains(ev.Message, "refused"):
					refused = ev.Message
				}
			})
			var ce *exitCodeError
			if !passed && refused != "" && errors.As(err, &ce) && ce.code == exitWaiting {
				return fmt.Errorf("%s: nothing approved: %s", s.svc.Name, refused)
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json (one JSON event per line)")
	cmd.Flags().BoolVar(&detach, "detach", false, "stop at the next approval gate even on a terminal")
	cmd.Flags().IntVar(&step, "step", 0, "approve only if the release waits at this step (as status shows it)")
	return cmd
}

// approveThroughServe passes the gate of a release cutover serve runs: the
// order goes to serve, which answers once the release took it or refused it.
func approveThroughServe(ctx context.Context, cmd *cobra.Command, c *controlClient, l engine.Lease, rec engine.ReleaseRecord, gate engine.GateView, out *eventWriter) error {
	by := actor()
	fmt.Fprintf(cmd.ErrOrStderr(), "approving step %d (%s: %s) of release %s (%s → %s) as %s, through cutover serve (pid %d), which runs it\n",
		gate.Step+1, gate.Gate.Key, gate.Gate, rec.ID, rec.Stable().Version, rec.To.Version, by, l.Owner.PID)
	last, err := c.order(ctx, rec.Service, engine.Order{Command: engine.CmdApprove, Gate: gate.Gate.Key, By: by}, "answer", func(cl controlLine) {
		if cl.Event != nil {
			out.write(*cl.Event)
		}
	})
	switch {
	case errors.Is(err, errNoAnswer):
		return fmt.Errorf("%s: nothing approved: %w; `cutover rollback %s` still works without it", rec.Service, err, rec.Service)
	case err != nil:
		return fmt.Errorf("%s: nothing approved: %w", rec.Service, err)
	case last.Refused != "":
		return fmt.Errorf("%s: %s", rec.Service, last.Refused)
	case last.Note != "":
		fmt.Fprintln(cmd.ErrOrStderr(), last.Note)
	}
	return nil
}
