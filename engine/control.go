package engine

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Order is an operator's command with who gave it and, for an approve, the
// gate it was given for: an approval passes that gate and no other, so a
// second approve typed by mistake, or one queued while the release moved
// on, is refused instead of passing the next gate.
type Order struct {
	Command Command `json:"command"`
	// Gate is, for an approve, the key of the approval gate it passes
	// (Gate.Key, as in Snapshot.Gate.Gate.Key).
	Gate string `json:"gate,omitempty"`
	By   Actor  `json:"by"`
}

// Send delivers a command from the release's own actor without blocking.
// An approve is bound to the approval gate waiting when Send is called.
// It fails with ErrNotApplicable when the command means nothing now, and
// when Run is not running.
func (r *Release) Send(cmd Command) error {
	o := Order{Command: cmd, By: r.opts.Actor}
	if cmd == CmdApprove {
		if g := r.Snapshot().Gate; g != nil {
			o.Gate = g.Gate.Key
		}
	}
	return r.Do(o)
}

// Approve passes the approval gate named gate (its Gate.Key, captured when
// the operator was asked), as approved by by. It is refused when another
// gate, or none, waits by the time it arrives.
func (r *Release) Approve(gate string, by Actor) error {
	return r.Do(Order{Command: CmdApprove, Gate: gate, By: by})
}

// staleApproval says why an approval for key does not pass the gate g.
func staleApproval(key string, g *GateView) string {
	return fmt.Sprintf("it was given for %s, and the release now waits at step %d (%s)", orNone(key), g.Step+1, orNone(g.Gate.Key))
}

func orNone(key string) string {
	if key == "" {
		return "no gate"
	}
	return key
}

// Do delivers an order without blocking. A rollback also swaps the traffic
// back to stable at once, beside whatever Docker call the release is in
// (rule 3): the rest of the rollback follows at the next checkpoint.
func (r *Release) Do(o Order) error {
	cmd := o.Command
	r.mu.Lock()
	s, gate, closed := r.snap.State, r.snap.Gate, r.closed
	r.mu.Unlock()
	if s == "" || closed {
		return fmt.Errorf("%s: %w: the release is not running", cmd, ErrNotApplicable)
	}
	ok := false
	why := "the release is " + string(s)
	switch cmd {
	case CmdApprove:
		switch {
		case gate == nil || gate.Gate.Kind != GateApproval:
			why = "no approval gate is waiting"
		case o.Gate != gate.Gate.Key:
			why = staleApproval(o.Gate, gate)
		default:
			ok = true
		}
	case CmdPause:
		ok = s == ReleaseRunning || s == ReleaseWaiting
	case CmdResume:
		ok = s == ReleasePaused
	case CmdPromote, CmdRollback:
		ok = s != ReleaseRollingBack && r.kind == KindDeploy
	case CmdAbort:
		ok = true
	default:
		return fmt.Errorf("unknown command %q", cmd)
	}
	if !ok {
		return fmt.Errorf("%s: %w: %s", cmd, ErrNotApplicable, why)
	}
	select {
	case r.cmds <- o:
	default:
		return fmt.Errorf("%s: too many commands queued", cmd)
	}
	if cmd == CmdRollback {
		go r.swapNow(o.By)
	}
	return nil
}

// checkpoint is where a step may be held: it returns a pending rollback or
// abort, a lost lease, and blocks while the release is paused. Every
// mutation passes one.
func (r *Release) checkpoint(ctx context.Context) error {
	// A rollback or abort sent during a run of mutations (a batch of
	// launches or stops) takes effect before the next one, not at the next
	// tick; other commands wait for the tick, where they always apply.
	for pending := true; pending; {
		select {
		case o := <-r.cmds:
			if o.Command == CmdRollback || o.Command == CmdAbort {
				r.handle(ctx, o)
			} else {
				r.later = append(r.later, o)
			}
		default:
			pending = false
		}
	}
	if err := r.control(); err != nil {
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

// control returns the rollback or abort an operator asked for, or the
// takeover the heartbeat noticed.
func (r *Release) control() error {
	if r.lost.Load() {
		return errLeaseLost(r.spec.Name)
	}
	switch r.want {
	case CmdRollback:
		return errRollback
	case CmdAbort:
		return errAbort
	}
	return nil
}

func errLeaseLost(service string) error {
	return &TakenOverError{Reason: "taken over by another writer: the journal lease of " + service + " went to another release"}
}

func (r *Release) pause(ctx context.Context, by, msg string) {
	r.paused, r.pausedBy = true, by
	r.update(func(s *Snapshot) { s.State, s.PausedBy = ReleasePaused, by })
	_ = r.emit(ctx, Event{Kind: EventPaused, Message: msg})
}

// handle applies an order on the Run goroutine.
func (r *Release) handle(ctx context.Context, o Order) {
	cmd := o.Command
	note := ""
	refuse := func(why string) {
		_ = r.emit(ctx, Event{Kind: EventCommand, Command: cmd, Actor: &o.By, Message: string(cmd) + " by " + o.By.String() + " refused: " + why})
	}
	switch cmd {
	case CmdApprove:
		r.mu.Lock()
		g := r.snap.Gate
		r.mu.Unlock()
		switch {
		case g == nil || g.Gate.Kind != GateApproval:
			refuse("no approval gate is waiting")
			return
		case g.Gate.Key != o.Gate:
			refuse(staleApproval(o.Gate, g))
			return
		case r.approved:
			refuse(fmt.Sprintf("step %d is already approved", g.Step+1))
			return
		}
		r.approved, r.approvedBy = true, o.By
		note = fmt.Sprintf("approved step %d (%s)", g.Step+1, g.Gate.Key)
	case CmdPause:
		if r.paused || r.rollingBack {
			return
		}
		_ = r.emit(ctx, Event{Kind: EventCommand, Command: cmd, Actor: &o.By, Message: "operator " + o.By.String() + ": pause"})
		r.pause(ctx, "operator", "paused by operator: nothing more will change until resume")
		return
	case CmdResume:
		if !r.paused {
			return
		}
		r.paused, r.pausedBy = false, ""
		st := r.baseState()
		r.update(func(s *Snapshot) { s.State, s.PausedBy = st, "" })
		_ = r.emit(ctx, Event{Kind: EventResumed, Command: cmd, Actor: &o.By, Message: "resumed by " + o.By.String()})
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
		r.rollbackBy = o.By
		note = "rollback requested"
	case CmdAbort:
		r.want = CmdAbort
		note = "abort requested: stopping, leaving everything as it is"
	}
	_ = r.emit(ctx, Event{Kind: EventCommand, Command: cmd, Actor: &o.By, Message: "operator " + o.By.String() + ": " + note})
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
		o := r.later[0]
		r.later = r.later[1:]
		r.handle(ctx, o)
	}
	if d <= 0 || d > r.tickEvery() {
		d = r.tickEvery()
	}
	t := r.deps.Clock.NewTimer(d)
	select {
	case <-t.C():
	case <-wake:
		t.Stop()
	case <-r.lostCh:
		t.Stop()
	case o := <-r.cmds:
		t.Stop()
		r.handle(ctx, o)
	case <-ctx.Done():
		t.Stop()
		return ctx.Err()
	}
	if err := r.control(); err != nil {
		return err
	}
	if err := r.housekeep(ctx); err != nil {
		return err
	}
	return r.control()
}
