package engine

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// A platform may replace an instance by itself: Swarm starts a new task
// when one dies or its node is lost, with a new id and perhaps a new
// address. While a release runs, the router's table follows: an instance
// of another version than the target that appears unbidden is probed
// like a launched one, and once healthy it takes the share of a backend
// whose instance is gone. Replacements of the target's own instances are
// not followed here: the loss of a watched instance is a failure, which
// the failure policy handles.

// newcomer is an instance the platform started by itself, under probe.
type newcomer struct {
	probe
	deadline time.Time // it must pass health by then, as a launch must
}

// notice records the instances listed; ones that were not there before,
// that this release did not launch and that are not the target's, are
// newcomers to probe.
func (r *Release) notice(ctx context.Context, insts []Instance, table RouteTable) {
	first := r.seen == nil
	if first {
		r.seen = make(map[string]bool, len(insts))
	}
	inTable := weightsByID(table)
	for _, in := range insts {
		if r.seen[in.ID] {
			continue
		}
		r.seen[in.ID] = true
		_, watched := r.probes[in.ID]
		_, listed := inTable[in.ID]
		if first || watched || listed || r.rollingBack || in.Version == r.target.Version || in.State == StateGone {
			continue
		}
		r.newcomers[in.ID] = &newcomer{probe: probe{inst: in}, deadline: r.deps.Clock.Now().Add(r.spec.StartTimeout)}
		_ = r.emit(ctx, Event{Kind: EventReplaced, Instance: &in,
			Message: fmt.Sprintf("%s (%s) appeared%s: the platform replaced an instance; it takes a lost one's share once healthy", in.Name, in.Version, in.onNode())})
	}
}

// probeNewcomers probes each newcomer once. One that passes its checks is
// watched like the release's own instances and the table follows; one
// that crashes or runs out of time gets no traffic.
func (r *Release) probeNewcomers(ctx context.Context) error {
	ids := make([]string, 0, len(r.newcomers))
	for id := range r.newcomers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	ready := false
	for _, id := range ids {
		n := r.newcomers[id]
		h := r.probeOnce(ctx, id, &n.probe)
		in := n.inst
		switch {
		case h.Status == HealthHealthy:
			if n.passes++; n.passes < r.spec.Health.Successes {
				continue
			}
			delete(r.newcomers, id)
			n.healthy = true
			r.probes[id] = &n.probe
			ready = true
			_ = r.emit(ctx, Event{Kind: EventHealthy, Instance: &in, Health: &h, Message: fmt.Sprintf("%s (%s) is healthy%s", in.Name, in.Version, in.onNode())})
		case h.Status == HealthCrashed || !r.deps.Clock.Now().Before(n.deadline):
			delete(r.newcomers, id)
			_ = r.emit(ctx, Event{Kind: EventUnhealthy, Instance: &in, Health: &h,
				Message: fmt.Sprintf("%s (%s), started by the platform, gets no traffic: %s: %s", in.Name, in.Version, h.Status, h.Detail)})
		default:
			n.passes = 0
		}
	}
	if !ready {
		return nil
	}
	return r.follow(ctx)
}

// follow gives each backend whose instance is gone, and that still has
// weight, to a healthy newcomer of its version: the one at the same
// address if there is one (Swarm restarted the task on the same node),
// else any. The versions' shares do not move. Nothing changes while
// paused (rule 4) or rolling back (the rollback works from the state).
func (r *Release) follow(ctx context.Context) error {
	if r.paused || r.rollingBack {
		return nil
	}
	insts, cur, err := r.observe(ctx)
	if err != nil {
		return err
	}
	in := weightsByID(cur)
	var free []Instance
	for id, p := range r.probes {
		inst, ok := insts[id]
		if _, listed := in[id]; !listed && ok && p.healthy && !p.failed && inst.State == StateRunning && inst.Version != r.target.Version {
			free = append(free, inst)
		}
	}
	sort.Slice(free, func(i, j int) bool { return free[i].ID < free[j].ID })
	table := RouteTable{Backends: append([]Backend(nil), cur.Backends...)}
	changed := false
	for i, b := range table.Backends {
		if _, alive := insts[b.ID]; alive || b.Weight == 0 {
			continue
		}
		pick := -1
		for k, n := range free {
			if n.Version != b.Version {
				continue
			}
			if pick < 0 || n.Addr == b.Addr {
				pick = k
			}
		}
		if pick < 0 {
			continue
		}
		n := free[pick]
		free = append(free[:pick], free[pick+1:]...)
		table.Backends[i] = Backend{ID: n.ID, Addr: n.Addr, Version: n.Version, Weight: b.Weight}
		changed = true
	}
	if !changed {
		return nil
	}
	return r.apply(ctx, table)
}
