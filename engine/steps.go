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
	if err := r.newerWriter(table, Stats{}); err != nil {
		return nil, RouteTable{}, err
	}
	byID := make(map[string]Instance, len(insts))
	for _, in := range insts {
		if in.State != StateGone {
			byID[in.ID] = in
		}
	}
	return byID, table, nil
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
		if in.Version != v.Version || r.doomed[in.ID] {
			continue // (a doomed instance is being stopped: it counts for nothing)
		}
		p, watched := r.probes[in.ID]
		dead := in.State == StateExited || in.State == StateRestarting || watched && p.failed
		switch {
		case in.State == StateCreated && weights[in.ID] == 0:
			// A launch killed between creating and starting its container:
			// nothing ever ran in it, so a fresh one replaces it.
			if err := r.stopInstance(ctx, in, "it was created but never started (an interrupted launch)"); err != nil {
				return err
			}
		case dead && weights[in.ID] == 0:
			if err := r.stopInstance(ctx, in, "it failed before getting traffic"); err != nil {
				return err
			}
		case !watched && !dead && in.State == StateRunning:
			r.probes[in.ID] = &probe{inst: in}
		}
	}
	have := 0
	for id, p := range r.probes {
		if _, ok := insts[id]; !ok {
			delete(r.probes, id) // gone from the platform
			continue
		}
		if p.inst.Version == v.Version && !p.failed && !r.doomed[id] {
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
		if err := r.fence(ctx); err != nil {
			return err
		}
		msg := fmt.Sprintf("launching %s (%d of %d)", v.Version, i+1, total)
		if err := r.intent(ctx, Event{Kind: EventLaunching, Message: msg}); err != nil {
			return err
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
		msg += in.onNode()
		launched := Event{Kind: EventLaunched, Instance: &in, Message: msg}
		err = r.intent(ctx, launched)
		if err == nil {
			err = r.fence(ctx)
		}
		var taken *TakenOverError
		if errors.As(err, &taken) {
			r.discard(ctx, in, launched)
			return err
		}
		if err != nil {
			return err
		}
	}
	return r.settle(ctx, deadline)
}

// discard removes an instance this release launched while another writer
// took the service over: it never had traffic and the new writer may not
// have seen it, so it is this process's own debris to clear. Nothing else
// is changed after a takeover.
func (r *Release) discard(ctx context.Context, in Instance, launched Event) {
	_ = r.emit(ctx, launched)
	_ = r.emit(ctx, Event{Kind: EventStopping, Instance: &in, IDs: []string{in.ID},
		Message: fmt.Sprintf("removing %s (%s): launched while another writer took over; it never had traffic", in.Name, in.Version)})
	if err := r.deps.Platform.Stop(ctx, in.ID, r.spec.StopGrace); err != nil {
		_ = r.emit(ctx, Event{Kind: EventFailure, Instance: &in, Error: err.Error(), Message: "could not remove " + in.Name})
		return
	}
	delete(r.probes, in.ID)
	_ = r.emit(ctx, Event{Kind: EventStopped, Instance: &in, IDs: []string{in.ID}, Message: fmt.Sprintf("stopped %s (%s)", in.Name, in.Version)})
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

// buildTable makes the table for ws from the actual state (see
// weightedTable): healthy instances this release launched join, and a
// version's share goes to the instances this release saw pass health or,
// for versions it did not launch, to those already serving.
func (r *Release) buildTable(ctx context.Context, ws []VersionWeight) (RouteTable, RouteTable, error) {
	insts, cur, err := r.observe(ctx)
	if err != nil {
		return RouteTable{}, RouteTable{}, err
	}
	curW := weightsByID(cur)
	usable := func(p *probe) bool { return p.healthy && !p.failed }
	may := func(b Backend) bool {
		if p, ok := r.probes[b.ID]; ok {
			return usable(p)
		}
		return curW[b.ID] > 0 // not seen healthy by us and not serving: unknown
	}
	t, err := weightedTable(cur, insts, r.watchedIDs(usable), may, ws)
	return t, cur, err
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

// stopInstance stops one instance, journaling before and after. The stop
// is decided under the fence: after a rollback's swap no step stops
// anything (the swap may have given the instance traffic), and a swap
// made after the decision never gives it any (doomed).
func (r *Release) stopInstance(ctx context.Context, in Instance, why string) error {
	if err := r.checkpoint(ctx); err != nil {
		return err
	}
	if err := r.decideStop(ctx, in, why); err != nil {
		return err
	}
	if err := r.deps.Platform.Stop(ctx, in.ID, r.spec.StopGrace); err != nil {
		r.fenceMu.Lock()
		delete(r.doomed, in.ID) // it did not stop: it counts again
		r.fenceMu.Unlock()
		return failf("platform: stop %s: %w", in.Name, err)
	}
	delete(r.probes, in.ID)
	return r.emit(ctx, Event{Kind: EventStopped, Instance: &in, IDs: []string{in.ID},
		Message: fmt.Sprintf("stopped %s (%s)", in.Name, in.Version)})
}

func (r *Release) decideStop(ctx context.Context, in Instance, why string) error {
	r.fenceMu.Lock()
	defer r.fenceMu.Unlock()
	if r.swapped && !r.rollingBack {
		return errRollback
	}
	if err := r.fence(ctx); err != nil {
		return err
	}
	if err := r.intent(ctx, Event{Kind: EventStopping, Instance: &in, IDs: []string{in.ID},
		Message: fmt.Sprintf("stopping %s (%s): %s", in.Name, in.Version, why)}); err != nil {
		return err
	}
	r.doomed[in.ID] = true
	return nil
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
