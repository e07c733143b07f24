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
	err := r.restoreStable(ctx, reason)
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

// rollbackActor is who asked for the rollback being made: the operator
// who sent it, the one who ran a standalone rollback, or nobody (nil) when
// a failure rolls the release back.
func (r *Release) rollbackActor() *Actor {
	switch {
	case r.kind == KindRollback:
		return &r.opts.Actor
	case r.rollbackBy != (Actor{}):
		by := r.rollbackBy
		return &by
	}
	return nil
}

func orNothing(v string) string {
	if v == "" {
		return "nothing (first deploy)"
	}
	return v
}

// restoreStable is the rollback, computed from the actual state (not the
// plan replayed backwards). First ONE table giving all traffic to stable's
// serving instances and 0 to everything else, made from the router's
// table alone (swapToStable); then the platform is read, and if what it
// says of stable differs (an instance that died), the table is made again
// from it, launching stable first where nothing of it runs. Then every
// other instance is drained, stopped and taken out of the table, and
// stable is brought back to Replicas if some of it was retired.
func (r *Release) restoreStable(ctx context.Context, reason string) error {
	if err := r.swapToStable(ctx, reason, r.rollbackActor()); err != nil && !errors.Is(err, errNoSwap) {
		return err
	}
	insts, cur, err := r.observe(ctx)
	if err != nil {
		return err
	}
	sv := r.stable.Version
	if table, ok, err := r.stableTable(ctx, insts, cur); err != nil {
		return err
	} else if !ok {
		if err := r.apply(ctx, table); err != nil {
			return err
		}
		cur = table
	}
	if err := r.stopOthers(ctx, insts, cur); err != nil {
		return err
	}
	if err := r.sweep(ctx); err != nil {
		return err
	}
	if sv == "" {
		return nil
	}
	// Stable's whole fleet back in rotation: relaunch what was retired,
	// and give weight again to instances a rolling batch had taken out of
	// rotation before its retire (probed first, as launchTo does).
	running, idle := 0, 0
	if insts, cur, err = r.observe(ctx); err != nil {
		return err
	}
	w := weightsByID(cur)
	for _, in := range insts {
		if in.Version == sv && in.State == StateRunning && !r.doomed[in.ID] {
			running++
			if w[in.ID] == 0 {
				idle++
			}
		}
	}
	if running >= r.spec.Replicas && idle == 0 {
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

// stableTable checks the table against the platform: ok when all its
// weight is on running, healthy instances of stable (as the swap left it).
// Otherwise it returns the table that gives stable all traffic on what
// really runs: its serving instances that run, else running ones that pass
// a probe, else instances launched now.
func (r *Release) stableTable(ctx context.Context, insts map[string]Instance, cur RouteTable) (RouteTable, bool, error) {
	sv := r.stable.Version
	if sv == "" {
		return RouteTable{}, len(cur.Backends) == 0, nil
	}
	good := func(id string) bool {
		in, ok := insts[id]
		p, watched := r.probes[id]
		return ok && in.Version == sv && in.State == StateRunning && !(watched && p.failed) && !r.doomed[id]
	}
	var keep []string
	fine := true
	for _, b := range cur.Backends {
		if b.Weight > 0 {
			if good(b.ID) {
				keep = append(keep, b.ID)
			} else {
				fine = false
			}
		}
	}
	if fine && len(keep) > 0 {
		return cur, true, nil
	}
	if len(keep) == 0 {
		// None serves: probe what runs, or bring stable back first.
		for _, in := range sortedInstances(insts) {
			if in.Version != sv || in.State != StateRunning || r.doomed[in.ID] {
				continue
			}
			if h, err := r.deps.Platform.Health(ctx, in.ID, r.spec.Health); err == nil && h.Status == HealthHealthy {
				r.probes[in.ID] = &probe{inst: in, health: h, healthy: true}
				keep = append(keep, in.ID)
			}
		}
	}
	if len(keep) == 0 {
		_ = r.emit(ctx, Event{Kind: EventCommand, Message: fmt.Sprintf("no instance of %s can take the traffic: launching %d × %s first; the traffic stays where it is until they are healthy",
			sv, r.spec.Replicas, sv)})
		if err := r.launchTo(ctx, r.stable, r.spec.Replicas); err != nil {
			return RouteTable{}, false, err
		}
		var err error
		if insts, cur, err = r.observe(ctx); err != nil {
			return RouteTable{}, false, err
		}
		for _, id := range r.watchedIDs(func(p *probe) bool { return p.inst.Version == sv && p.healthy && !p.failed }) {
			keep = append(keep, id)
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
	kept := map[string]bool{}
	for _, id := range keep {
		kept[id] = true
		if !have[id] {
			in := insts[id]
			table.Backends = append(table.Backends, Backend{ID: id, Addr: in.Addr, Version: in.Version})
			have[id] = true
		}
	}
	var idx []int
	for i, b := range table.Backends {
		if kept[b.ID] {
			idx = append(idx, i)
		}
	}
	split(table.Backends, idx, Full)
	return table, false, nil
}

// stopOthers drains and stops every instance that is not stable.
func (r *Release) stopOthers(ctx context.Context, insts map[string]Instance, cur RouteTable) error {
	var others []Instance
	for _, in := range sortedInstances(insts) {
		if in.Version != r.stable.Version {
			others = append(others, in)
		}
	}
	if len(others) == 0 {
		return nil
	}
	return r.stopAll(ctx, others, cur, "rollback")
}

// sweep stops what a fenced-out writer launched while this rollback ran:
// its launch was journaled before the takeover, and its container appears
// only when that launch returns. The fenced process removes such an
// instance itself; the sweep covers a process killed before it could.
func (r *Release) sweep(ctx context.Context) error {
	if r.kind == KindRollback && r.rolls != "" && r.deps.Journal != nil && r.deps.OwnerAlive != nil {
		deadline := r.deps.Clock.Now().Add(r.spec.StartTimeout)
		for r.deps.Clock.Now().Before(deadline) {
			rec, err := r.deps.Journal.Release(ctx, r.rolls)
			if err != nil || !rec.Ended.IsZero() || rec.Owner.Same(r.deps.Owner) || !r.deps.OwnerAlive(rec.Owner) {
				break
			}
			if err := r.tick(ctx, 0); err != nil {
				return err
			}
		}
		if rec, err := r.deps.Journal.Release(ctx, r.rolls); err == nil && (!rec.Ended.IsZero() || !r.deps.OwnerAlive(rec.Owner)) {
			// Its owner is done: a stop it journaled and did not make
			// will not happen now, so those instances count again.
			r.fenceMu.Lock()
			clear(r.doomed)
			r.fenceMu.Unlock()
		}
	}
	insts, cur, err := r.observe(ctx)
	if err != nil {
		return err
	}
	return r.stopOthers(ctx, insts, cur)
}
