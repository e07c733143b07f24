package engine

import (
	"context"
	"errors"
	"fmt"
)

// rollBack returns traffic to the stable version and retires the rest.
func (r *Release) rollBack(ctx context.Context, reason string) (Outcome, error) {
	r.want, r.paused, r.rollingBack = "", false, true
	r.update(func(s *Snapshot) { s.State, s.PausedBy, s.Gate = ReleaseRollingBack, "", nil })
	_ = r.emit(ctx, Event{Kind: EventRollingBack, Message: "rolling back to " + orNothing(r.stable.Version) + ": " + reason})
	err := r.restoreStable(ctx)
	var taken *TakenOverError
	switch {
	case err == nil:
		return RolledBack, nil
	case errors.As(err, &taken):
		_ = r.emit(ctx, Event{Kind: EventTakenOver, Message: taken.Reason, Epoch: taken.Epoch})
		return TakenOver, err
	case errors.Is(err, errAbort):
		return Aborted, nil
	}
	_ = r.emit(ctx, Event{Kind: EventFailure, Message: "rollback did not complete", Error: err.Error()})
	return Failed, fmt.Errorf("rollback: %w", err)
}

func orNothing(v string) string {
	if v == "" {
		return "nothing (first deploy)"
	}
	return v
}

// restoreStable is the rollback, computed from the actual state (not the
// plan replayed backwards): first ONE table giving all traffic to stable's
// serving instances and 0 to everything else, then drain and stop every
// other instance, take them out of the table, and relaunch stable up to
// Replicas if some of it was retired.
func (r *Release) restoreStable(ctx context.Context) error {
	insts, cur, err := r.observe(ctx)
	if err != nil {
		return err
	}
	sv := r.stable.Version
	var keep []string
	if sv != "" {
		for _, b := range cur.Backends {
			in, ok := insts[b.ID]
			if p, watched := r.probes[b.ID]; ok && in.Version == sv && in.State == StateRunning && !(watched && p.failed) {
				keep = append(keep, b.ID)
			}
		}
		if len(keep) == 0 {
			// None in the table: probe what runs, or bring stable back first.
			for _, in := range sortedInstances(insts) {
				if in.Version != sv || in.State != StateRunning {
					continue
				}
				if h, err := r.deps.Platform.Health(ctx, in.ID, r.spec.Health); err == nil && h.Status == HealthHealthy {
					r.probes[in.ID] = &probe{inst: in, health: h, healthy: true}
					keep = append(keep, in.ID)
				}
			}
		}
		if len(keep) == 0 {
			if err := r.launchTo(ctx, r.stable, r.spec.Replicas); err != nil {
				return err
			}
			if insts, cur, err = r.observe(ctx); err != nil {
				return err
			}
			for id, p := range r.probes {
				if p.inst.Version == sv && p.healthy && !p.failed {
					keep = append(keep, id)
				}
			}
		}
	}
	table := RouteTable{}
	have := map[string]bool{}
	for _, b := range cur.Backends {
		if _, ok := insts[b.ID]; ok {
			b.Weight = 0
			table.Backends = append(table.Backends, b)
			have[b.ID] = true
		}
	}
	var idx []int
	for _, id := range keep {
		if !have[id] {
			in := insts[id]
			table.Backends = append(table.Backends, Backend{ID: id, Addr: in.Addr, Version: in.Version})
			have[id] = true
		}
	}
	for i, b := range table.Backends {
		for _, id := range keep {
			if b.ID == id {
				idx = append(idx, i)
			}
		}
	}
	split(table.Backends, idx, Full)
	if sv == "" {
		// A first deploy has nothing to return to: the table empties (the
		// router refuses one where every weight is 0), and requests in
		// flight still drain, the router counting them after removal.
		table.Backends = nil
	}
	if err := r.apply(ctx, table); err != nil {
		return err
	}
	var others []Instance
	for _, in := range sortedInstances(insts) {
		if in.Version != sv {
			others = append(others, in)
		}
	}
	if err := r.stopAll(ctx, others, table, "rollback"); err != nil {
		return err
	}
	if sv == "" {
		return nil
	}
	running := 0
	if insts, _, err = r.observe(ctx); err != nil {
		return err
	}
	for _, in := range insts {
		if in.Version == sv && in.State == StateRunning {
			running++
		}
	}
	if running >= r.spec.Replicas {
		return nil
	}
	if err := r.launchTo(ctx, r.stable, r.spec.Replicas); err != nil {
		return err
	}
	full, cur, err := r.buildTable(ctx, []VersionWeight{{Version: sv, BP: Full, Keep: -1}})
	if err != nil {
		return err
	}
	if sameTable(full, cur) {
		return nil
	}
	return r.apply(ctx, full)
}
