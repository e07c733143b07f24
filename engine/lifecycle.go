package engine

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Control errors end a step early; they are not failures.
var (
	errRollback = errors.New("rollback requested")
	errAbort    = errors.New("abort requested")
	errPromote  = errors.New("promote requested")
	errDetach   = errors.New("detached at an approval gate")
)

// TakenOverError says another writer fenced this release out.
type TakenOverError struct {
	Epoch  uint64 // the router's epoch, newer than ours; 0 when the journal lease was lost
	Reason string
}

func (e *TakenOverError) Error() string { return e.Reason }

// failure is a step's failure: it triggers the failure policy.
type failure struct {
	err          error
	inconclusive bool // analysis without enough traffic: always pause
}

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

func failf(format string, args ...any) error { return &failure{err: fmt.Errorf(format, args...)} }

// Run carries the release out and returns how it ended. The error is nil
// on success; with an empty Outcome it means nothing was changed (the plan
// failed, the lease is held, the router is unreachable); otherwise it is
// the failure that led to the outcome. Run may be called once.
func (r *Release) Run(ctx context.Context) (Outcome, error) {
	if !r.started.CompareAndSwap(false, true) {
		return "", errors.New("release already ran")
	}
	r.runCtx = context.WithoutCancel(ctx)
	outcome, err := r.start(ctx)
	if outcome == "" && err != nil {
		r.closeSubs()
		return "", err
	}
	if outcome == "" {
		switch r.kind {
		case KindDeploy:
			outcome, err = r.drive(ctx)
		case KindRollback:
			outcome, err = r.rollBack(ctx, "standalone rollback to "+orNothing(r.stable.Version))
		}
	}
	r.finish(ctx, outcome, err)
	return outcome, err
}

// start plans from the actual state, takes the journal lease and claims
// the router epoch. It returns an empty Outcome to go on.
func (r *Release) start(ctx context.Context) (Outcome, error) {
	now := r.deps.Clock.Now()
	var table RouteTable
	var stats Stats
	var err error
	if r.kind == KindRollback {
		// On the way to the swap: the table alone, not the figures.
		table, err = readTable(ctx, r.deps.Router)
		stats.Epoch = table.Epoch
	} else {
		table, stats, err = r.deps.Router.State(ctx)
	}
	if err != nil {
		return "", fmt.Errorf("read router state: %w", err)
	}
	if table.Epoch >= MaxEpoch || stats.Epoch >= MaxEpoch {
		return "", fmt.Errorf("router epoch %d is at its limit: no writer can claim a newer one; reset the router's state file", max(table.Epoch, stats.Epoch))
	}
	r.epoch = max(table.Epoch, stats.Epoch) + 1
	rec := ReleaseRecord{ID: r.id, Service: r.spec.Name, Kind: r.kind, To: r.target, Actor: r.opts.Actor,
		Owner: r.deps.Owner, Started: now, State: ReleaseRunning, Epoch: r.epoch, RollsBack: r.rolls}
	var obs Observed
	if r.kind == KindDeploy {
		if obs, err = r.planNow(ctx); err != nil {
			return "", err
		}
		rec.From, rec.Strategy, rec.Steps = r.plan.From(), r.plan.Strategy, len(r.plan.Steps)
	} else {
		rec.From = []VersionRef{r.stable}
		rec.To = Target{Version: r.stable.Version, Image: r.stable.Image}
	}
	// A standalone rollback journals its first event with the lease, in
	// one write: it is on the way to the swap. A deploy journals its own
	// once it has checked, holding the lease, what it read before.
	var begun []Event
	if r.kind == KindRollback {
		// The takeover, the rollback and its first step, the swap to
		// stable, are announced in the write that takes the lease.
		begun = []Event{r.stamp(r.startedEvent(rec)), r.stamp(Event{Kind: EventRollingBack, State: ReleaseRollingBack,
			Message: "rolling back to " + orNothing(r.stable.Version) + ": standalone rollback; first one table giving stable all the traffic"})}
		r.announced, r.swapAnnounced = true, true
	}
	if r.deps.Journal != nil {
		if err := r.deps.Journal.Begin(ctx, rec, now, r.kind == KindRollback, begun...); err != nil {
			return "", err
		}
		r.stopBeat = r.keepLease()
		if r.kind == KindRollback && r.rolls != "" {
			// What the release being undone journaled as stopping is
			// being stopped now: the swap must not give it traffic.
			evs, err := r.deps.Journal.Events(ctx, r.rolls)
			if err != nil {
				return Failed, fmt.Errorf("read the events of %s: %w", r.rolls, err)
			}
			for _, ev := range evs {
				if ev.Kind == EventStopping {
					for _, id := range ev.IDs {
						r.doomed[id] = true
					}
				}
			}
		}
	}
	if r.kind == KindDeploy {
		// The router read and the plan came before the lease was ours:
		// another run of this release (a second approve) may have moved
		// it meanwhile. Read again now that no one else can, and plan
		// again if anything changed; the epoch is claimed on what is read
		// now, never on what was read before the lease.
		t2, s2, err := r.deps.Router.State(ctx)
		if err != nil {
			return Failed, failf("router: read state: %w", err)
		}
		if t2.Epoch != table.Epoch || t2.Writer != table.Writer || !sameTable(t2, table) {
			if obs, err = r.planNow(ctx); err != nil {
				return Failed, err
			}
			rec.From, rec.Strategy = r.plan.From(), r.plan.Strategy
		}
		table, stats = t2, s2
		if table.Epoch >= MaxEpoch || stats.Epoch >= MaxEpoch {
			return Failed, fmt.Errorf("router epoch %d is at its limit: no writer can claim a newer one; reset the router's state file", max(table.Epoch, stats.Epoch))
		}
		r.epoch = max(table.Epoch, stats.Epoch) + 1
		rec.Epoch = r.epoch
		begun = []Event{r.startedEvent(rec),
			{Kind: EventPlanned, Message: r.plan.String(), Plan: r.plan.Lines(), State: ReleaseRunning}}
		if err := r.intent(ctx, begun...); err != nil {
			return Failed, err
		}
	}
	r.update(func(s *Snapshot) {
		s.From, s.To, s.Strategy, s.Plan = rec.From, r.target, rec.Strategy, r.plan
		s.Started, s.Epoch, s.Actor, s.Table, s.Stats = now, r.epoch, r.opts.Actor, table, stats
		s.Steps = stepViews(r.plan.Steps)
	})
	r.setState(ReleaseRunning)
	if r.kind == KindRollback {
		r.publish(begun...)
	}
	r.lastPoll = now
	if r.kind == KindDeploy && r.deps.Puller != nil {
		switch err := r.pull(ctx); {
		case err == nil, errors.Is(err, errRollback):
			// A rollback asked for during the pull is carried out by drive.
		case errors.Is(err, errAbort):
			return Aborted, nil
		case ctx.Err() != nil:
			return Aborted, ctx.Err()
		default:
			var taken *TakenOverError
			if errors.As(err, &taken) {
				return TakenOver, err
			}
			return Failed, err
		}
	}
	if r.kind == KindDeploy {
		// Claim the epoch now, so a rollback from another process claims a
		// newer one and fences this release out (rule 7). The table is
		// unchanged but for instances that no longer run: they lose their
		// weight, as no table this release writes gives traffic to them.
		// A pull may have taken minutes: claim on the table as it is now,
		// and while paused change nothing but the epoch (rule 4).
		if r.deps.Puller != nil {
			if table, _, err = r.deps.Router.State(ctx); err != nil {
				return Failed, failf("router: read state: %w", err)
			}
			if obs.Instances, err = r.deps.Platform.Instances(ctx, r.spec.Name); err != nil {
				return Failed, failf("platform: list instances: %w", err)
			}
		}
		claim := withoutDead(table, obs.Instances)
		if r.paused {
			claim = RouteTable{Backends: table.Backends}
		}
		if err := r.apply(ctx, claim); err != nil {
			var taken *TakenOverError
			if errors.As(err, &taken) {
				return TakenOver, err
			}
			return Failed, err
		}
		r.refresh(ctx)
	}
	return "", nil
}

// planNow observes the service and plans the release from what it sees,
// taking on the target's instances a previous run left.
func (r *Release) planNow(ctx context.Context) (Observed, error) {
	obs, err := Observe(ctx, r.deps, r.spec, r.target.Version)
	if err != nil {
		return Observed{}, err
	}
	plan, err := PlanRelease(r.spec, r.target, obs)
	if err != nil {
		return Observed{}, err
	}
	r.plan = plan
	r.stable = plan.Stable
	if plan.Repair {
		// The version being repaired is its own stable version: a
		// rollback keeps what serves and undoes nothing else.
		r.stable = VersionRef{Version: r.target.Version, Image: r.target.Image}
	}
	clear(r.probes)
	r.trafficSeen = false
	r.adopt(obs)
	return obs, nil
}

// startedEvent says who started (or resumed) the release and with which epoch.
func (r *Release) startedEvent(rec ReleaseRecord) Event {
	verb := "started"
	if r.opts.ID != "" {
		verb = "resumed"
	}
	return Event{Kind: EventStarted, Epoch: r.epoch, State: ReleaseRunning,
		Message: fmt.Sprintf("%s %s of %s: %s → %s by %s, writing with router epoch %d", verb, r.kind, r.spec.Name,
			versionList(rec.From), r.target.Version, r.opts.Actor, r.epoch)}
}

// adopt takes on the target's instances a previous run left: serving ones
// carried traffic, so they passed health once, but what happened to them
// while nobody watched is judged before the release advances (see
// judgeAdopted); the others must pass health again before they get any.
func (r *Release) adopt(obs Observed) {
	for _, in := range obs.running(r.target.Version) {
		p := &probe{inst: in}
		if obs.weight(in.ID) > 0 {
			p.healthy, p.adopted = true, true
			r.trafficSeen = true
		}
		r.probes[in.ID] = p
	}
	// Serving target instances that no longer run are judged too: they
	// crashed while the release was not watched.
	for _, in := range obs.Instances {
		if !r.plan.Repair && in.Version == r.target.Version && in.State != StateRunning && obs.weight(in.ID) > 0 {
			r.probes[in.ID] = &probe{inst: in, healthy: true, adopted: true}
			r.trafficSeen = true
		}
	}
}

func stepViews(steps []Step) []StepView {
	out := make([]StepView, len(steps))
	for i, s := range steps {
		out[i] = StepView{Step: s, Description: s.String(), Status: StepPending}
	}
	return out
}

func versionList(vs []VersionRef) string {
	if len(vs) == 0 {
		return "nothing"
	}
	s := vs[0].Version
	for _, v := range vs[1:] {
		s += "+" + v.Version
	}
	return s
}

// finish records the outcome, releases the lease and ends subscriptions.
func (r *Release) finish(ctx context.Context, outcome Outcome, err error) {
	ctx = context.WithoutCancel(ctx)
	r.fenceMu.Lock()
	r.ended = true
	r.fenceMu.Unlock()
	if r.stopBeat != nil {
		r.stopBeat()
	}
	// The last snapshot shows what runs now, not what ran at the last
	// poll (a rolled-back canary would linger in the instances).
	_ = r.refresh(ctx)
	now := r.deps.Clock.Now()
	state := outcome.State()
	r.update(func(s *Snapshot) {
		s.State, s.Outcome, s.Ended, s.Gate = state, outcome, now, nil
		if err != nil {
			s.LastError = err.Error()
		}
	})
	ev := Event{Kind: EventFinished, Outcome: outcome, Message: fmt.Sprintf("%s %s → %s: %s", r.spec.Name, versionList(r.snap.From), r.target.Version, outcome)}
	if err != nil {
		ev.Error = err.Error()
	}
	if outcome == RolledBack {
		ev.Actor = r.rollbackActor() // who rolled it back; nil for a failure
	}
	_ = r.emit(ctx, ev)
	if r.deps.Journal != nil {
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		_ = r.deps.Journal.End(ctx, r.id, r.deps.Owner, state, now, msg)
		if r.kind == KindRollback && outcome == RolledBack && r.rolls != "" {
			// The fenced release may already have ended as taken over: that
			// is this rollback, which says better how it ended.
			if rec, err := r.deps.Journal.Release(ctx, r.rolls); err == nil && (!rec.State.Finished() || rec.State == ReleaseTakenOver) {
				_ = r.deps.Journal.End(ctx, r.rolls, r.deps.Owner, ReleaseRolledBack, now, "rolled back by "+r.id)
			}
		}
	}
	r.closeSubs()
}

// drive runs the plan's steps in order until the end or an interruption.
func (r *Release) drive(ctx context.Context) (Outcome, error) {
	r.step = 0
	if r.plan.Repair {
		// A repair is for lost instances: what died is what it replaces.
		for _, p := range r.probes {
			p.adopted = false
		}
	}
	if err := r.judgeAdopted(ctx); err != nil {
		if o, e, done := r.interrupted(ctx, err); done {
			return o, e
		}
	}
	for {
		if err := r.checkpoint(ctx); err != nil {
			if o, e, done := r.interrupted(ctx, err); done {
				return o, e
			}
			continue
		}
		if r.want == CmdPromote {
			r.want = ""
			if err := r.promote(ctx); err != nil {
				if o, e, done := r.interrupted(ctx, err); done {
					return o, e
				}
			}
			continue
		}
		if r.step >= len(r.plan.Steps) {
			return Succeeded, nil
		}
		st := r.plan.Steps[r.step]
		if st.Done {
			r.setStep(StepSkipped)
			_ = r.emit(ctx, Event{Kind: EventStepSkipped, Message: st.String() + ": " + skipReason(st)})
			r.step++
			continue
		}
		r.setStep(StepRunning)
		err := r.emit(ctx, Event{Kind: EventStepStarted, Message: st.String()})
		if err == nil {
			err = r.exec(ctx, st)
		} else {
			err = &failure{err: err}
		}
		if err == nil {
			r.setStep(StepDoneOK)
			_ = r.emit(ctx, Event{Kind: EventStepDone, Message: st.String() + ": done"})
			r.step++
			continue
		}
		if o, e, done := r.interrupted(ctx, err); done {
			return o, e
		}
	}
}

func skipReason(st Step) string {
	if st.Note == "skipped by promote" {
		return "skipped by promote"
	}
	return "already done"
}

func (r *Release) setStep(st StepStatus) {
	now := r.deps.Clock.Now()
	i := r.step
	r.update(func(s *Snapshot) {
		s.Step = i
		if i < 0 || i >= len(s.Steps) {
			return
		}
		steps := append([]StepView(nil), s.Steps...)
		v := &steps[i]
		v.Status = st
		switch st {
		case StepRunning:
			v.Started, v.Ended = now, time.Time{}
		default:
			v.Ended = now
		}
		s.Steps = steps
	})
}
