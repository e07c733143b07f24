package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cutover/cutover/engine"
)

func newRollbackCmd() *cobra.Command {
	var output string
	var to string
	cmd := &cobra.Command{
		Use:   "rollback SERVICE",
		Short: "Emergency rollback: all traffic back to the stable version now",
		Long: `rollback sends 100% of SERVICE's traffic back to the version that was stable
before the latest release, in one router table update, then drains and removes
the new instances and restores stable capacity.

It works from any terminal at any time: while a "cutover deploy" of the service
runs elsewhere (it takes the service over; the router's epoch fences the old
writer out and that process stops), and after the deploying process crashed.
--to picks the version to return to when the journal does not know it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRollback(cmd, args[0], to, output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json (one JSON event per line)")
	cmd.Flags().StringVar(&to, "to", "", "version to roll back to (default: the stable version of the latest release)")
	return cmd
}

func runRollback(cmd *cobra.Command, name, to, output string) error {
	ctx, s, out, done, err := openRelease(cmd, name, output)
	if err != nil {
		return err
	}
	defer done()
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

// stableVersion finds, in the journal, the version a rollback returns to:
// --to if given (with the image the journal pinned for it, where it knows
// one), else the stable version of the latest deploy, which undo names.
func (s *service) stableVersion(ctx context.Context, to string) (engine.VersionRef, string, error) {
	recs, err := s.journal.Releases(ctx, s.svc.Name, 20)
	if err != nil {
		return engine.VersionRef{}, "", err
	}
	var undo string
	var stable engine.VersionRef
	for _, r := range recs {
		if r.Kind != engine.KindDeploy {
			continue
		}
		undo, stable = r.ID, r.Stable()
		break
	}
	if to != "" {
		stable = engine.VersionRef{Version: to}
		for _, r := range recs {
			refs := append([]engine.VersionRef{{Version: r.To.Version, Image: r.To.Image}}, r.From...)
			for _, v := range refs {
				if v.Version == to && v.Image != "" && stable.Image == "" {
					stable.Image = v.Image
				}
			}
		}
	}
	if stable.Version == "" {
		return engine.VersionRef{}, "", fmt.Errorf("%s: the journal has no release with a version to return to; name one with --to VERSION", s.svc.Name)
	}
	return stable, undo, nil
}

// stableTarget finds the version to roll back to: --to if given, else the
// stable version of the service's latest deploy in the journal. The image
// is taken from a running instance of that version when there is one, so
// the rollback runs exactly what ran before.
func (s *service) stableTarget(ctx context.Context, to string) (engine.Target, string, error) {
	stable, undo, err := s.stableVersion(ctx, to)
	if err != nil {
		return engine.Target{}, "", err
	}
	insts, err := s.platform.Instances(ctx, s.svc.Name)
	if err != nil {
		return engine.Target{}, "", err
	}
	t := engine.Target{Version: stable.Version, Image: stable.Image}
	for _, in := range insts {
		if in.Version == stable.Version && in.Image != "" {
			t.Image, t.Digest = in.Image, in.Digest
			break
		}
	}
	if t.Image == "" {
		// Nothing recorded or running names its image: resolve the version
		// as a deploy would, pinned by digest.
		rt, err := s.resolveTarget(ctx, stable.Version)
		if err != nil {
			return engine.Target{}, "", fmt.Errorf("%s: roll back to %s: %w", s.svc.Name, stable.Version, err)
		}
		t = rt
	}
	return t, undo, nil
}
