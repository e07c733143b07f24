package engine

import (
	"context"
	"errors"
)

// The failure policy and the other ends of a step (rule 5).

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
