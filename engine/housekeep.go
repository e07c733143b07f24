package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
)

// housekeep polls the router (fencing, figures) and probes watched
// instances when each is due.
func (r *Release) housekeep(ctx context.Context) error {
	now := r.deps.Clock.Now()
	if now.Sub(r.lastPoll) >= r.opts.PollEvery {
		r.lastPoll = now
		if err := r.refresh(ctx); err != nil {
			return err
		}
	}
	if now.Sub(r.lastProbe) >= r.spec.Health.Interval {
		r.lastProbe = now
		if err := r.probeNewcomers(ctx); err != nil {
			return err
		}
		return r.probeWatched(ctx)
	}
	return nil
}

// keepLease renews the journal lease every HeartbeatEvery beside the
// steps, so no Docker call however long makes a live owner look dead. A
// lease found taken marks the release as fenced out: the steps stop at
// their next checkpoint and no further mutation is journaled. The
// returned func stops it and waits until it has.
func (r *Release) keepLease() (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	ctx := r.runCtx
	// Each timer is set before the beat it follows is written, so beats
	// come every HeartbeatEvery however long a write takes.
	t := backgroundTimer(r.deps.Clock, HeartbeatEvery)
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				t.Stop()
				return
			case <-t.C():
			}
			t = backgroundTimer(r.deps.Clock, HeartbeatEvery)
			err := r.deps.Journal.Heartbeat(ctx, r.id, r.deps.Owner, r.deps.Clock.Now())
			if errors.Is(err, ErrLeaseLost) {
				t.Stop()
				r.loseLease()
				return
			}
			// Other errors (the journal locked for a while) leave the lease
			// as it was: the next beat tries again.
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// loseLease records that another writer holds the lease now.
func (r *Release) loseLease() {
	if r.lost.CompareAndSwap(false, true) {
		close(r.lostCh)
	}
}

// newerWriter reports whether the router's table or stats show a writer
// other than this release: a newer epoch, or our epoch claimed by another
// release (rule 7).
func (r *Release) newerWriter(table RouteTable, stats Stats) error {
	e := max(table.Epoch, stats.Epoch)
	if e > r.epoch || table.Epoch == r.epoch && table.Writer != "" && table.Writer != r.id {
		return &TakenOverError{Epoch: e, Reason: fmt.Sprintf("taken over by another writer (epoch %d)", e)}
	}
	return nil
}

// refresh reads the router and the platform into the snapshot, and
// notices a newer writer (rule 7).
func (r *Release) refresh(ctx context.Context) error {
	table, stats, err := r.deps.Router.State(ctx)
	if err != nil {
		r.update(func(s *Snapshot) { s.LastError = "router: " + err.Error() })
		return nil
	}
	if err := r.newerWriter(table, stats); err != nil {
		return err
	}
	insts, err := r.deps.Platform.Instances(ctx, r.spec.Name)
	first := ""
	if r.kind == KindDeploy {
		first = RollbackFirst(r.spec, table, r.stable.Version)
	}
	r.update(func(s *Snapshot) {
		s.Table, s.Stats, s.RollbackFirst = table, stats, first
		if err != nil {
			s.LastError = "platform: " + err.Error()
			return
		}
		s.Instances = r.instanceViews(insts, table)
	})
	if err == nil {
		r.notice(ctx, insts, table)
	}
	return nil
}

func (r *Release) instanceViews(insts []Instance, table RouteTable) []InstanceView {
	weights := weightsByID(table)
	out := make([]InstanceView, 0, len(insts))
	for _, in := range insts {
		v := InstanceView{Instance: in, Weight: weights[in.ID], Role: "old"}
		switch in.Version {
		case r.target.Version:
			v.Role = "new"
		case r.stable.Version:
			v.Role = "stable"
		}
		if p, ok := r.probes[in.ID]; ok {
			v.Health, v.Healthy = probeView(p)
		} else {
			v.Health = Health{Status: HealthUnknown}
			v.Healthy = weights[in.ID] > 0
		}
		out = append(out, v)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Instance.Name < out[j].Instance.Name })
	return out
}
