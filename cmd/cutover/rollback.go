package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cutover/cutover/engine"
)

func newRollbackCmd() *cobra.Command {
	var output string
	var to string
	var dry bool
	cmd := &cobra.Command{
		Use:   "rollback SERVICE",
		Short: "Emergency rollback: all traffic back to the stable version now",
		Long: `rollback sends 100% of SERVICE's traffic back to the version that was stable
before the latest release, in one router table update, then drains and removes
the new instances and restores stable capacity.

It works from any terminal at any time: while a "cutover deploy" of the service
runs elsewhere (it takes the service over; the router's epoch fences the old
writer out and that process stops), and after the deploying process crashed.
--to picks the version to return to when the journal does not know it.

When "cutover serve" runs the release, the rollback is ordered there (its
swap to stable is immediate) and followed to its end. If serve does not
answer within 2s (dead or hung) or stops answering, the rollback runs here
instead and takes the service over.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dry {
				return previewRollback(cmd, args[0], to)
			}
			return runRollback(cmd, args[0], to, output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json (one JSON event per line)")
	cmd.Flags().StringVar(&to, "to", "", "version to roll back to (default: the stable version of the latest release)")
	cmd.Flags().BoolVar(&dry, "dry-run", false, "say what the rollback would do first and how long that takes; change nothing")
	return cmd
}

func runRollback(cmd *cobra.Command, name, to, output string) error {
	ctx, s, out, done, err := openReleaseWith(cmd, name, output, true)
	if err != nil {
		return err
	}
	defer done()
	if c, l, ok := s.servedBy(ctx); ok && to == "" {
		if handled, err := rollbackThroughServe(ctx, cmd, c, l, name, out); handled {
			return err
		}
	}
	stable, undo, err := s.stableTarget(ctx, to)
	if err != nil {
		return err
	}
	rel, err := engine.NewRollback(s.deps(), s.spec, stable, undo, engine.Options{Actor: actor()})
	if err != nil {
		return err
	}
	outcome, runErr := follow(ctx, rel, out, nil)
	if outcome == engine.Succeeded || outcome == engine.RolledBack {
		return nil
	}
	return outcomeError(name, outcome, runErr)
}

// previewRollback prints what a rollback would do first, from the
// journal and the router's table; it changes nothing.
func previewRollback(cmd *cobra.Command, name, to string) error {
	ctx := cmd.Context()
	s, err := openServiceWith(ctx, cmd, name, true)
	if err != nil {
		return err
	}
	defer s.Close()
	recs, err := s.journal.Releases(ctx, name, 0) // all: the deploy to undo may be behind many rollbacks
	if err != nil {
		return err
	}
	stable, _, err := engine.RollbackTo(name, recs, to)
	if err != nil {
		return err
	}
	table, _, err := s.router.State(ctx)
	if err != nil {
		return s.routerDown(err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s would return to %s: %s; then every other instance is drained and removed, and %s brought back to %d instances if fewer run\n",
		name, stable.Version, engine.RollbackFirst(s.spec, table, stable.Version), stable.Version, s.spec.Replicas)
	return nil
}

// stableTarget finds the version to roll back to (engine.RollbackTo) and
// the image to run it from: the one the journal pinned for it. Only when
// the journal knows none does it ask the platform (the image of a running
// instance of that version) or, failing that, resolve the version as a
// deploy would: the usual path to the swap reads nothing but the journal.
func (s *service) stableTarget(ctx context.Context, to string) (engine.Target, string, error) {
	recs, err := s.journal.Releases(ctx, s.svc.Name, 0) // all: the deploy to undo may be behind many rollbacks
	if err != nil {
		return engine.Target{}, "", err
	}
	stable, undo, err := engine.RollbackTo(s.svc.Name, recs, to)
	if err != nil {
		return engine.Target{}, "", err
	}
	t := engine.Target{Version: stable.Version, Image: stable.Image}
	if t.Image != "" {
		return t, undo, nil
	}
	if err := s.connected(); err != nil {
		return engine.Target{}, "", err
	}
	insts, err := s.instances().Instances(ctx, s.svc.Name)
	if err != nil {
		return engine.Target{}, "", err
	}
	for _, in := range insts {
		if in.Version == stable.Version && in.Image != "" {
			t.Image, t.Digest = in.Image, in.Digest
			return t, undo, nil
		}
	}
	// Nothing recorded or running names its image: resolve the version
	// as a deploy would, pinned by digest.
	rt, err := s.resolveTarget(ctx, stable.Version)
	if err != nil {
		return engine.Target{}, "", fmt.Errorf("%s: roll back to %s: %w", s.svc.Name, stable.Version, err)
	}
	return rt, undo, nil
}

// rollbackThroughServe orders the release cutover serve runs to roll back
// and follows it to its end. handled is false when serve did not take the
// order or stopped answering: the caller then rolls back on its own,
// taking the service over (an emergency rollback must not depend on serve).
func rollbackThroughServe(ctx context.Context, cmd *cobra.Command, c *controlClient, l engine.Lease, name string, out *eventWriter) (handled bool, err error) {
	stderr := cmd.ErrOrStderr()
	fmt.Fprintf(stderr, "%s: cutover serve (pid %d) runs release %s; ordering it to roll back\n", name, l.Owner.PID, l.Release)
	last, err := c.order(ctx, name, engine.Order{Command: engine.CmdRollback, By: actor()}, "end", func(cl controlLine) {
		if cl.Event != nil {
			out.write(*cl.Event)
		}
		if cl.Note != "" {
			fmt.Fprintln(stderr, cl.Note)
		}
	})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v; rolling back from here, taking the service over\n", name, err)
		return false, nil
	}
	if last.Outcome == engine.RolledBack || last.Outcome == engine.Succeeded {
		return true, nil
	}
	var runErr error
	if last.Error != "" {
		runErr = errors.New(last.Error)
	}
	return true, outcomeError(name, last.Outcome, runErr)
}
