package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"time"
)

// exec runs one step of the plan.
func (r *Release) exec(ctx context.Context, st Step) error {
	switch st.Kind {
	case StepLaunch:
		ref := VersionRef{Version: st.Version, Image: r.target.Image}
		return r.launchTo(ctx, ref, st.Total)
	case StepVerify:
		return r.verify(ctx, st)
	case StepShift:
		return r.shift(ctx, st)
	case StepGate:
		return r.gate(ctx, st.Gate)
	case StepRetire:
		return r.retire(ctx, st)
	}
	return fmt.Errorf("unknown step kind %q", st.Kind)
}

// observe reads the platform's instances and the router's table.
func (r *Release) observe(ctx context.Context) (map[string]Instance, RouteTable, error) {
	insts, err := r.deps.Platform.Instances(ctx, r.spec.Name)
	if err != nil {
		return nil, RouteTable{}, failf("platform: list instances: %w", err)
	}
	table, _, err := r.deps.Router.State(ctx)
	if err != nil {
		return nil, RouteTable{}, failf("router: read state: %w", err)
	}
	if table.Epoch > r.epoch || table.Epoch == r.epoch && table.Writer != "" && table.Writer != r.id {
		return nil, RouteTable{}, &TakenOverError{Epoch: table.Epoch, Reason: fmt.Sprintf("taken over by another writer (epoch %d)", table.Epoch)}
	}
	byID := make(map[string]Instance, len(insts))
	for _, in := range insts {
		if in.State != StateGone {
			byID[in.ID] = in
		}
	}
	return byID, table, nil
}

func weightsByID(t RouteTable) map[string]int {
	w := make(map[string]int, len(t.Backends))
	for _, b := range t.Backends {
		w[b.ID] = b.Weight
	}
	return w
}

// launchTo brings version v to total instances watched by this release,
// each healthy before it returns (rule 1: only then may it get traffic).
// Instances of v that died without ever serving are stopped and replaced.
func (r *Release) launchTo(ctx context.Context, v VersionRef, total int) error {
	deadline := r.deps.Clock.Now().Add(r.spec.StartTimeout)
	insts, table, err := r.observe(ctx)
	if err != nil {
		return err
	}
	weights := weightsByID(table)
	for _, in := range sortedInstances(insts) {
		if in.Version != v.Version {
			continue
		}
		p, watched := r.probes[in.ID]
		dead := in.State == StateExited || in.State == StateRestarting || watched && p.failed
		switch {
		case dead && weights[in.ID] == 0:
			if err := r.stopInstance(ctx, in, "it failed before getting traffic"); err != nil {
				return err
			}
		case !watched && !dead:
			r.probes[in.ID] = &probe{inst: in}
		}
	}
	have := 0
	for id, p := range r.probes {
		if _, ok := insts[id]; !ok {
			delete(r.probes, id) // gone from the platform
			continue
		}
		if p.inst.Version == v.Version && !p.failed {
			have++
		}
	}
	if v.Image == "" {
		for _, in := range insts {
			if in.Version == v.Version && in.Image != "" {
				v.Image = in.Image
			}
		}
	}
	for i := have; i < total; i++ {
		if err := r.checkpoint(ctx); err != nil {
			return err
		}
		if v.Image == "" {
			return failf("launch %s: no image known for this version", v.Version)
		}
		spec := InstanceSpec{Service: r.spec.Name, Version: v.Version, Image: v.Image, ReleaseID: r.id,
			Port: r.spec.Port, Env: r.spec.Env, Command: r.spec.Command, Network: r.spec.Network,
			Labels: maps.Clone(r.spec.Labels), StopGrace: r.spec.StopGrace,
			Placement: r.spec.Placement, Resources: r.spec.Resources}
		if v.Version == r.target.Version && r.target.Digest != "" {
			if spec.Labels == nil {
				spec.Labels = map[string]string{}
			}
			spec.Labels[LabelDigest] = r.target.Digest
		}
		msg := fmt.Sprintf("launching %s (%d of %d)", v.Version, i+1, total)
		if err := r.emit(ctx, Event{Kind: EventLaunching, Message: msg}); err != nil {
			return &failure{err: err}
		}
		in, err := r.deps.Platform.Launch(ctx, spec)
		if err != nil {
			return failf("platform: launch %s: %w", v.Version, err)
		}
		r.probes[in.ID] = &probe{inst: in}
		msg = fmt.Sprintf("launched %s (%s)", in.Name, in.Version)
		if in.Addr != "" {
			msg += " at " + in.Addr // a Swarm task has none until it runs
		}
		if in.Node != "" {
			msg += " on " + in.Node
		}
		if err := r.emit(ctx, Event{Kind: EventLaunched, Instance: &in, Message: msg}); err != nil {
			return &failure{err: err}
		}
	}
	return r.settle(ctx, deadline)
}

// whereNow fills in the address and node of a watched instance that
// launched without them: Swarm knows where a task runs only once it runs.
// The restart count stays the one seen at launch, which judge compares with.
func (r *Release) whereNow(ctx context.Context, p *probe) Instance {
	if p.inst.Addr != "" && p.inst.Node != "" {
		return p.inst
	}
	insts, err := r.deps.Platform.Instances(ctx, r.spec.Name)
	if err != nil {
		return p.inst
	}
	for _, in := range insts {
		if in.ID == p.inst.ID {
			p.inst.Addr, p.inst.Node, p.inst.State, p.inst.Started = in.Addr, in.Node, in.State, in.Started
		}
	}
	return p.inst
}

func sortedInstances(m map[string]Instance) []Instance {
	out := make([]Instance, 0, len(m))
	for _, in := range m {
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// settle probes watched instances that have not passed health yet, every
// interval, until all pass Successes probes in a row. A crash fails at
// once; still unhealthy at deadline fails too.
func (r *Release) settle(ctx context.Context, deadline time.Time) error {
	for {
		var pending []string
		for id, p := range r.probes {
			if !p.healthy && !p.failed {
				pending = append(pending, id)
			}
		}
		if len(pending) == 0 {
			return nil
		}
		sort.Strings(pending)
		left := 0
		for _, id := range pending {
			p := r.probes[id]
			h := r.probeOnce(ctx, id, p, HealthUnknown)
			r.showProbe(id, p)
			in := p.inst
			switch h.Status {
			case HealthCrashed:
				p.failed = true
				msg := fmt.Sprintf("%s (%s) crashed while starting: %s", in.Name, in.Version, h.Detail)
				_ = r.emit(ctx, Event{Kind: EventUnhealthy, Instance: &in, Health: &h, Message: msg})
				return failf("%s", msg)
			case HealthHealthy:
				p.passes++
				if p.passes >= r.spec.Health.Successes {
					p.healthy = true
					r.showProbe(id, p)
					in = r.whereNow(ctx, p)
					_ = r.emit(ctx, Event{Kind: EventHealthy, Instance: &in, Health: &h, Message: fmt.Sprintf("%s (%s) is healthy", in.Name, in.Version)})
					continue
				}
			default:
				p.passes = 0
			}
			left++
		}
		if left == 0 {
			return nil
		}
		now := r.deps.Clock.Now()
		if !now.Before(deadline) {
			var names []string
			for _, id := range pending {
				if p := r.probes[id]; !p.healthy {
					p.failed = true
					names = append(names, fmt.Sprintf("%s (%s: %s)", p.inst.Name, p.health.Status, p.health.Detail))
				}
			}
			return failf("not healthy within the start timeout of %s: %s", fmtDuration(r.spec.StartTimeout), strings.Join(names, ", "))
		}
		if err := r.tick(ctx, deadline.Sub(now)); err != nil {
			return err
		}
	}
}

// verify checks each green instance directly, before it gets traffic:
// health once more, then the smoke path if one is set.
func (r *Release) verify(ctx context.Context, st Step) error {
	if err := r.settle(ctx, r.deps.Clock.Now().Add(r.spec.StartTimeout)); err != nil {
		return err
	}
	var ps []*probe
	for _, p := range r.probes {
		if p.inst.Version == st.Version && p.healthy && !p.failed {
			ps = append(ps, p)
		}
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].inst.ID < ps[j].inst.ID })
	if len(ps) < st.Total {
		return failf("verify: only %d of %d %s instances are healthy", len(ps), st.Total, st.Version)
	}
	for _, p := range ps {
		in := p.inst
		h, err := r.deps.Platform.Health(ctx, in.ID, r.spec.Health)
		if err != nil {
			return failf("verify %s: probe: %w", in.Name, err)
		}
		h = p.judge(h)
		if h.Status != HealthHealthy {
			return failf("verify %s: %s: %s", in.Name, h.Status, h.Detail)
		}
		msg := in.Name + " verified: healthy"
		if st.Smoke != "" {
			path := st.Smoke
			if !strings.HasPrefix(path, "/") {
				path = "/" + path
			}
			url := "http://" + in.Addr + path
			code, err := r.httpGet(ctx, url)
			if err != nil {
				return failf("verify %s: GET %s: %w", in.Name, url, err)
			}
			if code < 200 || code > 299 {
				return failf("verify %s: GET %s: status %d, want 2xx", in.Name, url, code)
			}
			msg += fmt.Sprintf(", GET %s %d", path, code)
		}
		_ = r.emit(ctx, Event{Kind: EventVerified, Instance: &in, Health: &h, Message: msg})
	}
	return nil
}

// shift applies the step's weights to the instances that may carry them.
func (r *Release) shift(ctx context.Context, st Step) error {
	if err := r.settle(ctx, r.deps.Clock.Now().Add(r.spec.StartTimeout)); err != nil {
		return err
	}
	if err := r.checkpoint(ctx); err != nil {
		return err
	}
	table, cur, err := r.buildTable(ctx, st.Weights)
	if err != nil {
		return err
	}
	if sameTable(table, cur) {
		return nil
	}
	return r.apply(ctx, table)
}

// buildTable makes the table for ws from the actual state: every backend
// still on the platform stays (weight 0 unless ws gives it some), healthy
// instances this release launched join, and each version's share is split
// evenly over the instances that may carry it: ones this release saw pass
// health, or, for versions it did not launch, ones already serving.
func (r *Release) buildTable(ctx context.Context, ws []VersionWeight) (RouteTable, RouteTable, error) {
	insts, cur, err := r.observe(ctx)
	if err != nil {
		return RouteTable{}, RouteTable{}, err
	}
	curW := weightsByID(cur)
	var bs []Backend
	in := map[string]bool{}
	for _, b := range cur.Backends {
		if inst, ok := insts[b.ID]; ok {
			in[b.ID] = true
			b.Weight = 0
			if inst.Addr != "" {
				b.Addr = inst.Addr
			}
			bs = append(bs, b)
		}
	}
	for id, p := range r.probes {
		if inst, ok := insts[id]; ok && !in[id] && p.healthy && !p.failed && inst.State == StateRunning {
			bs = append(bs, Backend{ID: id, Addr: inst.Addr, Version: inst.Version})
		}
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].ID < bs[j].ID })
	for _, w := range ws {
		var elig []int
		for i, b := range bs {
			if b.Version != w.Version || insts[b.ID].State != StateRunning {
				continue
			}
			if p, ok := r.probes[b.ID]; ok {
				if !p.healthy || p.failed {
					continue
				}
			} else if curW[b.ID] == 0 {
				continue // not seen healthy by us and not serving: unknown
			}
			elig = append(elig, i)
		}
		if w.Keep >= 0 && len(elig) > w.Keep {
			// Keep the newest in rotation; the oldest go first.
			sort.SliceStable(elig, func(a, b int) bool {
				return insts[bs[elig[a]].ID].Started.After(insts[bs[elig[b]].ID].Started)
			})
			elig = elig[:w.Keep]
			sort.Ints(elig)
		}
		if w.BP > 0 && len(elig) == 0 {
			return RouteTable{}, RouteTable{}, failf("no healthy instance of %s to carry %s of traffic", w.Version, fmtBP(w.BP))
		}
		split(bs, elig, w.BP)
	}
	// An instance that is not running has nothing in flight to drain: it
	// leaves the table rather than lingering at weight 0.
	kept := bs[:0]
	for _, b := range bs {
		if b.Weight > 0 || insts[b.ID].State == StateRunning {
			kept = append(kept, b)
		}
	}
	return RouteTable{Backends: kept}, cur, nil
}

// split gives bp to the backends at idx in equal integer parts, the
// remainder one by one to the first ones.
func split(bs []Backend, idx []int, bp int) {
	if len(idx) == 0 {
		return
	}
	base, rem := bp/len(idx), bp%len(idx)
	for k, i := range idx {
		bs[i].Weight = base
		if k < rem {
			bs[i].Weight++
		}
	}
}

func sameTable(a, b RouteTable) bool {
	if len(a.Backends) != len(b.Backends) {
		return false
	}
	m := map[string]Backend{}
	for _, x := range b.Backends {
		m[x.ID] = x
	}
	for _, x := range a.Backends {
		y, ok := m[x.ID]
		if !ok || x.Weight != y.Weight || x.Addr != y.Addr || x.Version != y.Version {
			return false
		}
	}
	return true
}

// describeTable summarizes a table: "1.0.0 90% on 3, 1.1.0 10% on 1, 2 at weight 0".
func describeTable(t RouteTable) string {
	total := 0
	var order []string
	n := map[string]int{}
	w := map[string]int{}
	zero := 0
	for _, b := range t.Backends {
		total += b.Weight
		if b.Weight == 0 {
			zero++
			continue
		}
		if n[b.Version] == 0 {
			order = append(order, b.Version)
		}
		n[b.Version]++
		w[b.Version] += b.Weight
	}
	sort.Strings(order)
	var parts []string
	for _, v := range order {
		parts = append(parts, fmt.Sprintf("%s %s on %d", v, fmtBP(int(int64(w[v])*Full/int64(total))), n[v]))
	}
	if zero > 0 {
		parts = append(parts, fmt.Sprintf("%d at weight 0", zero))
	}
	if len(parts) == 0 {
		return "empty"
	}
	return strings.Join(parts, ", ")
}

// apply writes table with this release's epoch, journaling before and
// after (rule 6). A stale epoch means another writer took over (rule 7).
func (r *Release) apply(ctx context.Context, table RouteTable) error {
	table.Epoch, table.Writer = r.epoch, r.id
	desc := describeTable(table)
	if err := r.emit(ctx, Event{Kind: EventApplying, Table: &table, Epoch: r.epoch,
		Message: fmt.Sprintf("about to apply table epoch %d: %s", r.epoch, desc)}); err != nil {
		return &failure{err: err}
	}
	err := r.deps.Router.Apply(ctx, table)
	for try := 0; errors.Is(err, ErrStaleEpoch) && r.kind == KindRollback && try < 3; try++ {
		// A standalone rollback takes over whoever writes now: it claims
		// the epoch after the router's and writes again.
		cur, _, serr := r.deps.Router.State(ctx)
		if serr != nil {
			break
		}
		r.epoch = cur.Epoch + 1
		table.Epoch = r.epoch
		r.update(func(s *Snapshot) { s.Epoch = r.epoch })
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
	if !r.rollingBack && table.Weights()[r.target.Version] > 0 {
		r.trafficSeen = true
	}
	r.update(func(s *Snapshot) { s.Table = table })
	return r.emit(ctx, Event{Kind: EventApplied, Table: &table, Epoch: r.epoch,
		Message: fmt.Sprintf("applied table epoch %d: %s", r.epoch, desc)})
}

// retire drains and stops instances of a version until Total are left,
// choosing those out of rotation first, then the oldest.
func (r *Release) retire(ctx context.Context, st Step) error {
	insts, cur, err := r.observe(ctx)
	if err != nil {
		return err
	}
	w := weightsByID(cur)
	var list []Instance
	for _, in := range sortedInstances(insts) {
		if in.Version == st.Version {
			list = append(list, in)
		}
	}
	k := len(list) - st.Total
	if k <= 0 {
		return nil
	}
	sort.SliceStable(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if (w[a.ID] == 0) != (w[b.ID] == 0) {
			return w[a.ID] == 0
		}
		if (a.State == StateRunning) != (b.State == StateRunning) {
			return a.State != StateRunning
		}
		return a.Started.Before(b.Started)
	})
	chosen := list[:k]
	var ids []string
	serving := false
	for _, in := range chosen {
		ids = append(ids, in.ID)
		serving = serving || w[in.ID] > 0
	}
	if serving {
		if err := r.checkpoint(ctx); err != nil {
			return err
		}
		table, err := zeroOut(cur, ids)
		if err != nil {
			return err
		}
		if err := r.apply(ctx, table); err != nil {
			return err
		}
	}
	return r.stopAll(ctx, chosen, cur, "retire")
}

// stopAll drains the instances that are in the table, stops them all and
// takes them out of the table (rule 2: weight 0 and drained before stop).
func (r *Release) stopAll(ctx context.Context, insts []Instance, cur RouteTable, why string) error {
	var inTable, ids []string
	w := weightsByID(cur)
	for _, in := range insts {
		ids = append(ids, in.ID)
		if _, ok := w[in.ID]; ok {
			inTable = append(inTable, in.ID)
		}
	}
	if err := r.drain(ctx, inTable); err != nil {
		return err
	}
	for _, in := range insts {
		if err := r.stopInstance(ctx, in, why); err != nil {
			return err
		}
	}
	return r.removeBackends(ctx, ids)
}

// zeroOut sets ids to weight 0, giving their weight to the other serving
// instances of the same version.
func zeroOut(cur RouteTable, ids []string) (RouteTable, error) {
	drop := map[string]bool{}
	for _, id := range ids {
		drop[id] = true
	}
	t := RouteTable{Backends: append([]Backend(nil), cur.Backends...)}
	freed := map[string]int{}
	for i, b := range t.Backends {
		if drop[b.ID] && b.Weight > 0 {
			freed[b.Version] += b.Weight
			t.Backends[i].Weight = 0
		}
	}
	for v, bp := range freed {
		var rest []int
		total := bp
		for i, b := range t.Backends {
			if b.Version == v && b.Weight > 0 {
				rest = append(rest, i)
				total += b.Weight
			}
		}
		if len(rest) == 0 {
			return RouteTable{}, failf("cannot retire the last serving instances of %s: they still carry traffic", v)
		}
		split(t.Backends, rest, total)
	}
	return t, nil
}

// drain waits until ids have no requests in flight, at most DrainTimeout;
// a timeout is reported and the caller goes on (rule 2).
func (r *Release) drain(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := r.emit(ctx, Event{Kind: EventDraining, IDs: ids, Message: fmt.Sprintf("draining %d instance(s)", len(ids))}); err != nil {
		return &failure{err: err}
	}
	timedOut, err := r.await(ctx, r.spec.DrainTimeout, func(c context.Context) error {
		return r.deps.Router.WaitDrained(c, ids)
	})
	if err != nil {
		return err
	}
	if timedOut {
		return r.emit(ctx, Event{Kind: EventDrainTimeout, IDs: ids,
			Message: fmt.Sprintf("drain timeout %s passed with requests still in flight: stopping anyway", fmtDuration(r.spec.DrainTimeout))})
	}
	return r.emit(ctx, Event{Kind: EventDrained, IDs: ids, Message: fmt.Sprintf("drained %d instance(s)", len(ids))})
}

// await runs fn while the engine keeps ticking (commands, fencing,
// probes), and cancels it after timeout.
func (r *Release) await(ctx context.Context, timeout time.Duration, fn func(context.Context) error) (timedOut bool, err error) {
	c, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	var ferr error
	go func() {
		ferr = fn(c)
		close(done)
	}()
	deadline := r.deps.Clock.Now().Add(timeout)
	for {
		select {
		case <-done:
			if ferr != nil {
				return false, failf("router: wait for drain: %w", ferr)
			}
			return false, nil
		default:
		}
		now := r.deps.Clock.Now()
		if !now.Before(deadline) {
			cancel()
			<-done
			return true, nil
		}
		if err := r.tickOr(ctx, deadline.Sub(now), done); err != nil {
			var f *failure
			if errors.As(err, &f) {
				continue // a watched instance failing does not stop a drain
			}
			cancel()
			<-done
			return false, err
		}
	}
}

// stopInstance stops one instance, journaling before and after.
func (r *Release) stopInstance(ctx context.Context, in Instance, why string) error {
	if err := r.checkpoint(ctx); err != nil {
		return err
	}
	if err := r.emit(ctx, Event{Kind: EventStopping, Instance: &in, IDs: []string{in.ID},
		Message: fmt.Sprintf("stopping %s (%s): %s", in.Name, in.Version, why)}); err != nil {
		return &failure{err: err}
	}
	if err := r.deps.Platform.Stop(ctx, in.ID, r.spec.StopGrace); err != nil {
		return failf("platform: stop %s: %w", in.Name, err)
	}
	delete(r.probes, in.ID)
	return r.emit(ctx, Event{Kind: EventStopped, Instance: &in, IDs: []string{in.ID},
		Message: fmt.Sprintf("stopped %s (%s)", in.Name, in.Version)})
}

// removeBackends takes stopped instances out of the table.
func (r *Release) removeBackends(ctx context.Context, ids []string) error {
	_, cur, err := r.observe(ctx)
	if err != nil {
		return err
	}
	drop := map[string]bool{}
	for _, id := range ids {
		drop[id] = true
	}
	t := RouteTable{}
	for _, b := range cur.Backends {
		if !drop[b.ID] {
			t.Backends = append(t.Backends, b)
		}
	}
	if len(t.Backends) == len(cur.Backends) {
		return nil
	}
	if err := r.checkpoint(ctx); err != nil {
		return err
	}
	return r.apply(ctx, t)
}
