package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
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
			outcome, err = r.rollBack(ctx, "standalone rollback to "+r.stable.Version)
		}
	}
	r.finish(ctx, outcome, err)
	return outcome, err
}

// start plans from the actual state, claims the router epoch and takes the
// journal lease.
func (r *Release) start(ctx context.Context) (Outcome, error) {
	now := r.deps.Clock.Now()
	table, stats, err := r.deps.Router.State(ctx)
	if err != nil {
		return "", fmt.Errorf("read router state: %w", err)
	}
	r.epoch = max(table.Epoch, stats.Epoch) + 1
	rec := ReleaseRecord{ID: r.id, Service: r.spec.Name, Kind: r.kind, To: r.target, Actor: r.opts.Actor,
		Owner: r.deps.Owner, Started: now, State: ReleaseRunning, Epoch: r.epoch, RollsBack: r.rolls}
	var obs Observed
	if r.kind == KindDeploy {
		obs, err = Observe(ctx, r.deps, r.spec, r.target.Version)
		if err != nil {
			return "", err
		}
		plan, err := PlanRelease(r.spec, r.target, obs)
		if err != nil {
			return "", err
		}
		r.plan = plan
		r.stable = plan.Stable
		if plan.Repair {
			// The version being repaired is its own stable version: a
			// rollback keeps what serves and undoes nothing else.
			r.stable = VersionRef{Version: r.target.Version, Image: r.target.Image}
		}
		rec.From, rec.Strategy, rec.Steps = plan.From(), plan.Strategy, len(plan.Steps)
		r.adopt(obs)
	} else {
		rec.From = []VersionRef{r.stable}
		rec.To = Target{Version: r.stable.Version, Image: r.stable.Image}
	}
	if r.deps.Journal != nil {
		if err := r.deps.Journal.Begin(ctx, rec, now, r.kind == KindRollback); err != nil {
			return "", err
		}
	}
	r.lastBeat, r.lastPoll = now, now
	r.update(func(s *Snapshot) {
		s.State = ReleaseRunning
		s.From, s.To, s.Strategy, s.Plan = rec.From, r.target, rec.Strategy, r.plan
		s.Started, s.Epoch, s.Actor, s.Table, s.Stats = now, r.epoch, r.opts.Actor, table, stats
		s.Steps = stepViews(r.plan.Steps)
	})
	verb := "started"
	if r.opts.ID != "" {
		verb = "resumed"
	}
	msg := fmt.Sprintf("%s %s of %s: %s → %s by %s, writing with router epoch %d", verb, r.kind, r.spec.Name,
		versionList(rec.From), r.target.Version, r.opts.Actor, r.epoch)
	if err := r.emit(ctx, Event{Kind: EventStarted, Message: msg, Epoch: r.epoch}); err != nil {
		return Failed, err
	}
	if r.kind == KindDeploy {
		if err := r.emit(ctx, Event{Kind: EventPlanned, Message: r.plan.String(), Plan: r.plan.Lines()}); err != nil {
			return Failed, err
		}
	}
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
	}
	r.refresh(ctx)
	return "", nil
}

// withoutDead is t with no weight on backends whose instance is gone or not
// running, unless that would leave no weight at all (then t as it is: the
// router holds dead backends out by itself).
func withoutDead(t RouteTable, insts []Instance) RouteTable {
	running := make(map[string]bool, len(insts))
	for _, in := range insts {
		running[in.ID] = in.State == StateRunning
	}
	out := RouteTable{Backends: make([]Backend, len(t.Backends))}
	sum := 0
	for i, b := range t.Backends {
		if !running[b.ID] {
			b.Weight = 0
		}
		sum += b.Weight
		out.Backends[i] = b
	}
	if sum == 0 {
		return RouteTable{Backends: t.Backends}
	}
	return out
}

// adopt takes on the target's instances a previous run left: serving ones
// are trusted (they passed health to get traffic), the others must pass
// health again before they get any.
func (r *Release) adopt(obs Observed) {
	for _, in := range obs.running(r.target.Version) {
		p := &probe{inst: in}
		if obs.weight(in.ID) > 0 {
			p.healthy = true
			r.trafficSeen = true
		}
		r.probes[in.ID] = p
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
	now := r.deps.Clock.Now()
	state := outcome.state()
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
	_ = r.emit(ctx, ev)
	if r.deps.Journal != nil {
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		_ = r.deps.Journal.End(ctx, r.id, state, now, msg)
		if r.kind == KindRollback && outcome == RolledBack && r.rolls != "" {
			// The fenced release may already have ended as taken over: that
			// is this rollback, which says better how it ended.
			if rec, err := r.deps.Journal.Release(ctx, r.rolls); err == nil && (!rec.State.Finished() || rec.State == ReleaseTakenOver) {
				_ = r.deps.Journal.End(ctx, r.rolls, ReleaseRolledBack, now, "rolled back by "+r.id)
			}
		}
	}
	r.closeSubs()
}

// drive runs the plan's steps in order until the end or an interruption.
func (r *Release) drive(ctx context.Context) (Outcome, error) {
	r.step = 0
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

// interrupted handles what stopped a step: a command, a takeover, a
// cancelled context or a failure. done says Run should return.
func (r *Release) interrupted(ctx context.Context, err error) (Outcome, error, bool) {
	var taken *TakenOverError
	switch {
	case errors.Is(err, errRollback):
		reason := "operator asked for a rollback"
		var lastErr error
		if r.pausedBy == "failure" {
			lastErr = r.lastFailure
		}
		o, e := r.rollBack(ctx, reason)
		if e == nil {
			e = lastErr
		}
		return o, e, true
	case errors.Is(err, errAbort):
		r.want = ""
		if r.pausedBy == "failure" {
			return Failed, r.lastFailure, true
		}
		return Aborted, nil, true
	case errors.Is(err, errDetach):
		return WaitingForApproval, nil, true
	case errors.Is(err, errPromote):
		return "", nil, false // drive promotes before the next step
	case errors.As(err, &taken):
		r.setStep(StepFailed)
		_ = r.emit(ctx, Event{Kind: EventTakenOver, Message: taken.Reason, Epoch: taken.Epoch})
		return TakenOver, err, true
	case ctx.Err() != nil:
		r.setStep(StepFailed)
		_ = r.emit(ctx, Event{Kind: EventCommand, Message: "stopped: " + ctx.Err().Error(), Error: ctx.Err().Error()})
		if r.pausedBy == "failure" {
			return Failed, r.lastFailure, true
		}
		return Aborted, ctx.Err(), true
	}
	// A failure: roll back or pause, per policy (rule 5).
	r.setStep(StepFailed)
	r.lastFailure = err
	var f *failure
	inconclusive := errors.As(err, &f) && f.inconclusive
	action := r.spec.OnFailure.BeforeTraffic
	when := "before traffic"
	if r.hadTraffic() {
		action, when = r.spec.OnFailure.AfterTraffic, "after traffic"
	}
	var msg string
	switch {
	case inconclusive:
		action, msg = FailPause, "pausing: analysis was inconclusive; resume re-runs it, promote or rollback decide"
	case r.paused:
		action, msg = FailPause, "staying paused: the operator paused the release"
	case action == FailRollback:
		msg = "failed " + when + ": rolling back (on_failure." + policyKey(when) + ": rollback)"
	default:
		msg = "failed " + when + ": pausing for an operator (on_failure." + policyKey(when) + ": pause); resume retries the step"
	}
	_ = r.emit(ctx, Event{Kind: EventFailure, Message: msg, Error: err.Error()})
	if action == FailRollback {
		o, e := r.rollBack(ctx, err.Error())
		if e == nil {
			e = err
		}
		return o, e, true
	}
	r.pause(ctx, "failure", msg)
	if r.opts.Detach || r.opts.DetachOnFailure {
		return Failed, err, true
	}
	if werr := r.waitWhilePaused(ctx); werr != nil {
		return r.interrupted(ctx, werr)
	}
	return "", nil, false
}

func policyKey(when string) string {
	if when == "before traffic" {
		return "before_traffic"
	}
	return "after_traffic"
}

// hadTraffic says whether the new version has been given any traffic.
func (r *Release) hadTraffic() bool {
	if r.trafficSeen {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snap.Table.Weights()[r.target.Version] > 0
}

func (r *Release) pause(ctx context.Context, by, msg string) {
	r.paused, r.pausedBy = true, by
	r.update(func(s *Snapshot) { s.State, s.PausedBy = ReleasePaused, by })
	_ = r.emit(ctx, Event{Kind: EventPaused, Message: msg})
}

// checkpoint is where a step may be held: it returns a pending rollback or
// abort, and blocks while the release is paused. Every mutation passes one.
func (r *Release) checkpoint(ctx context.Context) error {
	// A rollback or abort sent during a run of mutations (a batch of
	// launches or stops) takes effect before the next one, not at the next
	// tick; other commands wait for the tick, where they always apply.
	for pending := true; pending; {
		select {
		case cmd := <-r.cmds:
			if cmd == CmdRollback || cmd == CmdAbort {
				r.handle(ctx, cmd)
			} else {
				r.later = append(r.later, cmd)
			}
		default:
			pending = false
		}
	}
	if err := r.control(); err != nil {
		return err
	}
	// Long runs of mutations (a batch of stops, each up to the stop grace)
	// never tick: renew the lease here too, or it would go stale under us.
	if err := r.heartbeat(ctx, r.deps.Clock.Now()); err != nil {
		return err
	}
	if r.paused {
		return r.waitWhilePaused(ctx)
	}
	return nil
}

// waitWhilePaused ticks until resumed. Failures seen meanwhile are
// reported and the release stays paused.
func (r *Release) waitWhilePaused(ctx context.Context) error {
	for r.paused {
		err := r.tick(ctx, 0)
		var f *failure
		if errors.As(err, &f) {
			r.lastFailure = err
			_ = r.emit(ctx, Event{Kind: EventFailure, Message: "failure while paused; staying paused", Error: err.Error()})
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// control returns the rollback or abort an operator asked for.
func (r *Release) control() error {
	switch r.want {
	case CmdRollback:
		return errRollback
	case CmdAbort:
		return errAbort
	}
	return nil
}

// handle applies a command on the Run goroutine.
func (r *Release) handle(ctx context.Context, cmd Command) {
	note := ""
	switch cmd {
	case CmdApprove:
		r.mu.Lock()
		ok := r.snap.Gate != nil && r.snap.Gate.Gate.Kind == GateApproval
		r.mu.Unlock()
		if !ok {
			_ = r.emit(ctx, Event{Kind: EventCommand, Command: cmd, Message: "approve ignored: no approval gate is waiting"})
			return
		}
		r.approved = true
		note = "approved"
	case CmdPause:
		if r.paused || r.rollingBack {
			return
		}
		_ = r.emit(ctx, Event{Kind: EventCommand, Command: cmd, Message: "operator: pause"})
		r.pause(ctx, "operator", "paused by operator: nothing more will change until resume")
		return
	case CmdResume:
		if !r.paused {
			return
		}
		r.paused, r.pausedBy = false, ""
		st := r.baseState()
		r.update(func(s *Snapshot) { s.State, s.PausedBy = st, "" })
		_ = r.emit(ctx, Event{Kind: EventResumed, Command: cmd, Message: "resumed by operator"})
		return
	case CmdPromote:
		if r.rollingBack || r.kind != KindDeploy {
			return
		}
		if r.paused {
			// Promote is an explicit decision: it resumes a paused release.
			r.paused, r.pausedBy = false, ""
			r.update(func(s *Snapshot) { s.State, s.PausedBy = ReleaseRunning, "" })
		}
		r.want = CmdPromote
		note = "promote: skipping the remaining steps; launching the rest, then 100% to " + r.target.Version
	case CmdRollback:
		if r.rollingBack || r.kind != KindDeploy {
			return
		}
		r.want = CmdRollback
		note = "rollback requested"
	case CmdAbort:
		r.want = CmdAbort
		note = "abort requested: stopping, leaving everything as it is"
	}
	_ = r.emit(ctx, Event{Kind: EventCommand, Command: cmd, Message: "operator: " + note})
}

// tickEvery is the engine's heartbeat: the health interval, at most the
// router poll interval.
func (r *Release) tickEvery() time.Duration {
	return min(r.spec.Health.Interval, r.opts.PollEvery)
}

// tick waits for the next tick (or d, if shorter and positive), a command
// or ctx, then does the periodic work that is due. It returns a pending
// rollback or abort, a takeover, or a failure of a watched instance.
func (r *Release) tick(ctx context.Context, d time.Duration) error {
	return r.tickOr(ctx, d, nil)
}

// tickOr is tick that also wakes when wake is closed.
func (r *Release) tickOr(ctx context.Context, d time.Duration, wake <-chan struct{}) error {
	for len(r.later) > 0 {
		cmd := r.later[0]
		r.later = r.later[1:]
		r.handle(ctx, cmd)
	}
	if d <= 0 || d > r.tickEvery() {
		d = r.tickEvery()
	}
	t := r.deps.Clock.NewTimer(d)
	select {
	case <-t.C():
	case <-wake:
		t.Stop()
	case cmd := <-r.cmds:
		t.Stop()
		r.handle(ctx, cmd)
	case <-ctx.Done():
		t.Stop()
		return ctx.Err()
	}
	if err := r.housekeep(ctx); err != nil {
		return err
	}
	return r.control()
}

// housekeep polls the router (fencing, figures), renews the lease and
// probes watched instances when each is due.
func (r *Release) housekeep(ctx context.Context) error {
	now := r.deps.Clock.Now()
	if now.Sub(r.lastPoll) >= r.opts.PollEvery {
		r.lastPoll = now
		if err := r.refresh(ctx); err != nil {
			return err
		}
	}
	if err := r.heartbeat(ctx, now); err != nil {
		return err
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

// heartbeat renews the journal lease when it is due.
func (r *Release) heartbeat(ctx context.Context, now time.Time) error {
	if r.deps.Journal != nil && now.Sub(r.lastBeat) >= HeartbeatEvery {
		r.lastBeat = now
		err := r.deps.Journal.Heartbeat(ctx, r.id, now)
		if errors.Is(err, ErrLeaseLost) {
			return &TakenOverError{Reason: "taken over by another writer: the journal lease of " + r.spec.Name + " went to another release"}
		}
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
	if e := max(table.Epoch, stats.Epoch); e > r.epoch || table.Epoch == r.epoch && table.Writer != "" && table.Writer != r.id {
		return &TakenOverError{Epoch: e, Reason: fmt.Sprintf("taken over by another writer (epoch %d)", e)}
	}
	insts, err := r.deps.Platform.Instances(ctx, r.spec.Name)
	r.update(func(s *Snapshot) {
		s.Table, s.Stats = table, stats
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
	weights := map[string]int{}
	for _, b := range table.Backends {
		weights[b.ID] = b.Weight
	}
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

// probeOnce probes an instance once and keeps the judged verdict; an error
// of the platform reads as onError, with what it said.
func (r *Release) probeOnce(ctx context.Context, id string, p *probe, onError HealthStatus) Health {
	h, err := r.deps.Platform.Health(ctx, id, r.spec.Health)
	if err != nil {
		h = Health{Status: onError, Detail: "probe: " + err.Error()}
	}
	h = p.judge(h)
	p.health = h
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

// probeWatched probes the healthy instances this release watches; one
// that crashes or fails Failures probes in a row is a failure.
func (r *Release) probeWatched(ctx context.Context) error {
	ids := make([]string, 0, len(r.probes))
	for id, p := range r.probes {
		if p.healthy && !p.failed {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	var first error
	for _, id := range ids {
		p := r.probes[id]
		h := r.probeOnce(ctx, id, p, HealthUnhealthy)
		r.showProbe(id, p)
		switch {
		case h.Status == HealthHealthy:
			p.fails = 0
			continue
		case h.Status == HealthCrashed:
			p.fails = r.spec.Health.Failures
		default:
			p.fails++
		}
		if p.fails < r.spec.Health.Failures {
			continue
		}
		p.failed = true
		if r.rollingBack || p.inst.Version != r.target.Version {
			continue
		}
		in := p.inst
		msg := fmt.Sprintf("%s (%s) is %s: %s", in.Name, in.Version, h.Status, h.Detail)
		_ = r.emit(ctx, Event{Kind: EventUnhealthy, Message: msg, Instance: &in, Health: &h})
		if first == nil {
			first = failf("instance %s", msg)
		}
	}
	return first
}
