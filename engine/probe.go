package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// probe is the health record of one watched instance.
type probe struct {
	inst    Instance
	health  Health
	passes  int  // consecutive healthy probes
	fails   int  // consecutive failed probes
	healthy bool // passed Successes probes: may take traffic
	failed  bool // crashed or failed Failures probes after being healthy
	// adopted marks a serving instance a previous run left: trusted to
	// carry traffic, but judged once before the release advances.
	adopted bool
}

// judge is a probe's verdict on a watched instance: besides what the
// platform says, a restart since the release first saw the instance is a
// crash (a crash loop that Docker keeps bringing back is not a slow start).
func (p *probe) judge(h Health) Health {
	if h.Restarts > p.inst.Restarts && h.Status != HealthCrashed {
		since := "launch"
		if p.inst.Restarts > 0 {
			since = "the release began"
		}
		h.Detail = fmt.Sprintf("restarted %d times since %s", h.Restarts-p.inst.Restarts, since)
		h.Status = HealthCrashed
	}
	return h
}

// probeView is how a watched instance's health reads: one that has not yet
// passed its checks, nor failed them, is still starting, whatever its last
// probe said (a port not open yet is not a failure while starting).
func probeView(p *probe) (Health, bool) {
	h := p.health
	if !p.healthy && !p.failed && h.Status == HealthUnhealthy {
		h.Status = HealthStarting
	}
	return h, p.healthy && !p.failed
}

// showProbe puts a fresh probe result into the snapshot at once, rather
// than at the next poll of the platform.
func (r *Release) showProbe(id string, p *probe) {
	h, healthy := probeView(p)
	r.update(func(s *Snapshot) {
		for i := range s.Instances {
			if s.Instances[i].Instance.ID == id {
				s.Instances[i].Health, s.Instances[i].Healthy = h, healthy
			}
		}
	})
}

// probeOnce probes a watched instance, judges the answer, records it and
// shows it. A probe that cannot be made reads as unknown.
func (r *Release) probeOnce(ctx context.Context, id string, p *probe) Health {
	h, err := r.deps.Platform.Health(ctx, id, r.spec.Health)
	if err != nil {
		h = Health{Status: HealthUnknown, Detail: "probe: " + err.Error()}
	}
	h = p.judge(h)
	p.health = h
	r.showProbe(id, p)
	return h
}

// watch probes a healthy instance once more: one that crashes, or fails
// Failures probes in a row, fails. It reports whether it just failed.
func (r *Release) watch(ctx context.Context, id string, p *probe) bool {
	h := r.probeOnce(ctx, id, p)
	switch h.Status {
	case HealthHealthy:
		p.fails = 0
		return false
	case HealthCrashed:
		p.fails = r.spec.Health.Failures
	default:
		p.fails++
	}
	if p.fails < r.spec.Health.Failures {
		return false
	}
	p.failed = true
	return true
}

// unhealthy reports a watched instance of the target that failed, and
// returns the step's failure.
func (r *Release) unhealthy(ctx context.Context, p *probe, format string) error {
	in, h := p.inst, p.health
	msg := fmt.Sprintf(format, in.Name, in.Version, h.Status, h.Detail)
	_ = r.emit(ctx, Event{Kind: EventUnhealthy, Message: msg, Instance: &in, Health: &h})
	return failf("instance %s", msg)
}

// probeWatched probes the healthy instances this release watches; one
// of the target that fails is a failure of the step.
func (r *Release) probeWatched(ctx context.Context) error {
	var first error
	for _, id := range r.watchedIDs(func(p *probe) bool { return p.healthy && !p.failed }) {
		p := r.probes[id]
		if !r.watch(ctx, id, p) || r.rollingBack || p.inst.Version != r.target.Version {
			continue
		}
		if err := r.unhealthy(ctx, p, "%s (%s) is %s: %s"); first == nil {
			first = err
		}
	}
	return first
}

// watchedIDs lists the watched instances that match, in a stable order.
func (r *Release) watchedIDs(match func(*probe) bool) []string {
	var ids []string
	for id, p := range r.probes {
		if match(p) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// judgeAdopted looks at the serving instances a previous run left before
// the release advances (rule 5): while nobody watched, one may have
// crashed or moved, and an approve must not carry such a release on. An
// instance that does not run, or listens elsewhere than the router sends
// its traffic, fails at once; one that answers unhealthy gets Failures
// probes, as a watched one would.
func (r *Release) judgeAdopted(ctx context.Context) error {
	ids := r.watchedIDs(func(p *probe) bool { return p.adopted })
	if len(ids) == 0 {
		return nil
	}
	insts, table, err := r.observe(ctx)
	if err != nil {
		return err
	}
	addr := map[string]string{}
	for _, b := range table.Backends {
		addr[b.ID] = b.Addr
	}
	var first error
	fail := func(p *probe, h Health, format string) {
		p.health, p.failed = h, true
		r.showProbe(p.inst.ID, p)
		if err := r.unhealthy(ctx, p, format); first == nil {
			first = err
		}
	}
	var suspects []string
	for _, id := range ids {
		p := r.probes[id]
		p.adopted = false
		in, ok := insts[id]
		switch {
		case !ok:
			fail(p, Health{Status: HealthCrashed, Detail: "its container is gone"}, "%s (%s) serves traffic but is %s: %s")
		case in.State != StateRunning:
			fail(p, Health{Status: HealthCrashed, Detail: describeStopped(in)}, "%s (%s) serves traffic but %s: %s")
		case in.Addr != "" && addr[id] != "" && in.Addr != addr[id]:
			fail(p, Health{Status: HealthUnhealthy, Detail: fmt.Sprintf("it listens on %s, the router sends its traffic to %s", in.Addr, addr[id])},
				"%s (%s) serves traffic but is %s: %s")
		default:
			p.inst = in
			suspects = append(suspects, id)
		}
	}
	// Probe the rest until each is healthy or has failed Failures times.
	for round := 0; len(suspects) > 0 && round < r.spec.Health.Failures; round++ {
		if round > 0 {
			if err := r.tick(ctx, r.spec.Health.Interval); err != nil {
				return err
			}
		}
		var again []string
		for _, id := range suspects {
			p := r.probes[id]
			if r.watch(ctx, id, p) {
				if err := r.unhealthy(ctx, p, "%s (%s) serves traffic but is %s: %s"); first == nil {
					first = err
				}
			} else if p.health.Status != HealthHealthy {
				again = append(again, id)
			}
		}
		suspects = again
	}
	return first
}

// describeStopped says how a container that is not running ended.
func describeStopped(in Instance) string {
	switch in.State {
	case StateExited:
		return fmt.Sprintf("exited with code %d", in.ExitCode)
	case StateRestarting:
		return "is restarting"
	case StateCreated:
		return "was created but never started"
	}
	return "is " + string(in.State)
}

// settle probes watched instances that have not passed health yet, every
// interval, until all pass Successes probes in a row. A crash fails at
// once; still unhealthy at deadline fails too.
func (r *Release) settle(ctx context.Context, deadline time.Time) error {
	for {
		pending := r.watchedIDs(func(p *probe) bool { return !p.healthy && !p.failed })
		if len(pending) == 0 {
			return nil
		}
		left := 0
		for _, id := range pending {
			p := r.probes[id]
			h := r.probeOnce(ctx, id, p)
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
					_ = r.emit(ctx, Event{Kind: EventHealthy, Instance: &in, Health: &h, Message: fmt.Sprintf("%s (%s) is healthy%s", in.Name, in.Version, in.onNode())})
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
