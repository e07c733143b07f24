package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// errNoSwap says no stable instance can take the traffic from the
// router's table alone: the rollback must launch stable first.
var errNoSwap = errors.New("no stable instance to swap to")

// fence returns a *TakenOverError when this release no longer writes: the
// heartbeat saw the lease go, or the router shows a newer writer. Every
// Launch and Stop is preceded by it and by a journal write that checks
// the lease again (intent), so a fenced-out process changes nothing more.
func (r *Release) fence(ctx context.Context) error {
	if r.lost.Load() {
		return errLeaseLost(r.spec.Name)
	}
	table, stats, err := r.deps.Router.State(ctx)
	if err != nil {
		return failf("router: read state: %w", err)
	}
	return r.newerWriter(table, stats)
}

// write applies table with this release's epoch, journaling evs and the
// intent before it in one fenced write (rule 6) and the result after. A
// stale epoch means another writer took over (rule 7), except for a
// standalone rollback, which claims the next epoch and writes again.
// The caller holds fenceMu.
func (r *Release) write(ctx context.Context, table RouteTable, evs ...Event) error {
	return r.writeAnnounced(ctx, table, false, evs...)
}

// writeAnnounced is write; announced says the journal already holds this
// write's intent: a standalone rollback's swap, announced (rolling-back)
// in the write that took the lease, needs no write of its own between the
// takeover and the traffic moving.
func (r *Release) writeAnnounced(ctx context.Context, table RouteTable, announced bool, evs ...Event) error {
	table.Epoch, table.Writer = r.epoch, r.id
	desc := describeTable(table)
	// The intent is journaled before the write; watchers hear of it right
	// after, so redrawing screens never compete with the write itself.
	release := r.hold()
	defer release()
	if !announced {
		evs = append(evs, Event{Kind: EventApplying, Table: &table, Epoch: r.epoch,
			Message: fmt.Sprintf("about to apply table epoch %d: %s", r.epoch, desc)})
		if err := r.intent(ctx, evs...); err != nil {
			return err
		}
	}
	err := r.deps.Router.Apply(ctx, table)
	release()
	for try := 0; errors.Is(err, ErrStaleEpoch) && r.kind == KindRollback && try < 3; try++ {
		cur, _, serr := r.deps.Router.State(ctx)
		if serr != nil || cur.Epoch >= MaxEpoch {
			break
		}
		r.epoch = cur.Epoch + 1
		table.Epoch = r.epoch
		r.update(func(s *Snapshot) { s.Epoch = r.epoch })
		if err := r.intent(ctx, Event{Kind: EventApplying, Table: &table, Epoch: r.epoch,
			Message: fmt.Sprintf("epoch taken: about to apply table epoch %d: %s", r.epoch, desc)}); err != nil {
			return err
		}
		err = r.deps.Router.Apply(ctx, table)
	}
	if errors.Is(err, ErrStaleEpoch) {
		e := r.epoch + 1
		if t, _, serr := r.deps.Router.State(ctx); serr == nil {
			e = t.Epoch
		}
		return &TakenOverError{Epoch: e, Reason: fmt.Sprintf("taken over by another writer (epoch %d)", e)}
	}
	if err != nil {
		return failf("router: apply table epoch %d: %w", r.epoch, err)
	}
	r.update(func(s *Snapshot) { s.Table = table })
	return r.emit(ctx, Event{Kind: EventApplied, Table: &table, Epoch: r.epoch,
		Message: fmt.Sprintf("applied table epoch %d: %s", r.epoch, desc)})
}

// apply writes a table a step computed. Once a rollback swap stands, no
// step's table may follow it: the step ends as a rollback.
func (r *Release) apply(ctx context.Context, table RouteTable) error {
	r.fenceMu.Lock()
	defer r.fenceMu.Unlock()
	if r.swapped && !r.rollingBack {
		return errRollback
	}
	if err := r.write(ctx, table); err != nil {
		return err
	}
	if !r.rollingBack && table.Weights()[r.target.Version] > 0 {
		r.trafficSeen = true
	}
	return nil
}

// swapNow is the instant part of a rollback an operator asked for: the
// swap to stable, made beside whatever the release's steps are doing (a
// launch or stop can take seconds), so the traffic is back on stable in
// the time of a router write. The steps see it at their next checkpoint
// and carry the rest of the rollback out.
func (r *Release) swapNow(by Actor) {
	err := r.swapToStable(r.runCtx, "rollback by "+by.String(), &by)
	if err != nil && !errors.Is(err, errNoSwap) {
		_ = r.emit(r.runCtx, Event{Kind: EventFailure, Error: err.Error(),
			Message: "the instant swap to " + orNothing(r.stable.Version) + " failed; the rollback goes on from the actual state"})
	}
}

// swapToStable announces the rollback and makes its first table from the
// router's table alone (swapTable): no Docker call, image lookup or full
// state read stands between the decision and the swap, and the journal
// writes before it are one fenced write. It returns errNoSwap when no
// stable instance can take the traffic yet. by is the operator who asked
// for the rollback (nil when a failure did). Safe from any goroutine.
func (r *Release) swapToStable(ctx context.Context, reason string, by *Actor) error {
	r.fenceMu.Lock()
	defer r.fenceMu.Unlock()
	if r.swapped || r.ended {
		return nil
	}
	var evs []Event
	if !r.announced {
		r.announced = true
		r.update(func(s *Snapshot) { s.State, s.PausedBy, s.Gate = ReleaseRollingBack, "", nil })
		evs = append(evs, Event{Kind: EventRollingBack, State: ReleaseRollingBack, Actor: by,
			Message: "rolling back to " + orNothing(r.stable.Version) + ": " + reason})
	}
	flush := func(err error) error {
		if len(evs) > 0 {
			if ierr := r.intent(ctx, evs...); ierr != nil {
				return ierr
			}
		}
		return err
	}
	if r.lost.Load() {
		return flush(errLeaseLost(r.spec.Name))
	}
	cur, err := readTable(ctx, r.deps.Router)
	if err != nil {
		return flush(failf("router: read state: %w", err))
	}
	if err := r.newerWriter(cur, Stats{}); err != nil {
		return flush(err)
	}
	table, ok := RouteTable{}, true
	if sv := r.stable.Version; sv != "" {
		// (A first deploy has nothing to return to: the table empties.)
		if table, ok = swapTable(cur, sv, r.doomed, nil); !ok {
			var warm []Backend
			for _, b := range cur.Backends {
				if b.Version == sv && !r.doomed[b.ID] {
					warm = append(warm, b)
				}
			}
			alive := r.answersAll(warm)
			table, ok = swapTable(cur, sv, r.doomed, func(b Backend) bool { return alive[b.ID] })
		}
	}
	if !ok {
		r.swapAnnounced = false // the swap waits for a launch: its write will say so itself
		return flush(errNoSwap)
	}
	// Written even when the table already is all on stable: the write is
	// what claims this release's epoch at the router, fencing out a table
	// the old writer has on its way there.
	announced := r.swapAnnounced && len(evs) == 0
	r.swapAnnounced = false
	if err := r.writeAnnounced(ctx, table, announced, evs...); err != nil {
		return err
	}
	r.swapped = true
	return nil
}

// answers probes a backend straight at its address, without asking the
// platform: a stable backend at weight 0 must answer before a swap gives
// it traffic (rule 1).
func (r *Release) answers(b Backend) bool {
	if b.Addr == "" {
		return false
	}
	path := r.spec.Health.Path
	if path == "" {
		path = "/"
	}
	code, err := r.httpGet(r.runCtx, "http://"+b.Addr+path)
	return err == nil && code >= 200 && code < 400
}

// answersAll probes backends at once; the swap waits for the slowest, at
// most the health check's timeout.
func (r *Release) answersAll(bs []Backend) map[string]bool {
	out := make(map[string]bool, len(bs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, b := range bs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok := r.answers(b)
			mu.Lock()
			out[b.ID] = ok
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}
