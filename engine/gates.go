package engine

import (
	"context"
	"fmt"
	"time"
)

// analysisMargin is how long past its window an analysis gate may wait for
// the router's figures before it counts as failed.
const analysisMargin = 30 * time.Second

// gate holds the release until g is satisfied. Promote ends any gate.
// While the release is paused, timed gates stand still: a pause gate
// continues with the time it had left, an analysis window starts over on
// resume (its verdict covers one stretch the operator did not interrupt).
func (r *Release) gate(ctx context.Context, g Gate) error {
	defer r.update(func(s *Snapshot) { s.Gate = nil })
	switch g.Kind {
	case GateApproval:
		return r.approvalGate(ctx, g)
	case GatePause:
		return r.pauseGate(ctx, g)
	case GateAnalysis:
		return r.analysisGate(ctx, g)
	case GateWebhook:
		return r.webhookGate(ctx, g)
	}
	return fmt.Errorf("unknown gate %q", g.Kind)
}

func (r *Release) setGate(g Gate, waitingFor string, remaining time.Duration) {
	now := r.deps.Clock.Now()
	step := r.step
	r.update(func(s *Snapshot) {
		since := now
		if s.Gate != nil && s.Gate.Step == step {
			since = s.Gate.Since
		}
		s.Gate = &GateView{Gate: g, Step: step, WaitingFor: waitingFor, Since: since, Remaining: remaining}
	})
}

func (r *Release) approvalGate(ctx context.Context, g Gate) error {
	if r.opts.AutoApprove {
		return r.emit(ctx, Event{Kind: EventGatePassed, Gate: &g, Message: "approval gate passed automatically (auto-approve)"})
	}
	if a := r.opts.Approve; a != nil {
		r.opts.Approve = nil
		if a.Gate == g.Key {
			return r.emit(ctx, Event{Kind: EventGatePassed, Gate: &g, Actor: &a.By,
				Message: fmt.Sprintf("step %d (%s) approved by %s", r.step+1, g.Key, a.By)})
		}
		_ = r.emit(ctx, Event{Kind: EventCommand, Command: CmdApprove, Actor: &a.By,
			Message: fmt.Sprintf("approve by %s refused: %s", a.By, staleApproval(a.Gate, &GateView{Gate: g, Step: r.step}))})
	}
	r.approved = false
	r.setGate(g, "an operator's approve (or promote)", 0)
	if !r.paused {
		r.setState(ReleaseWaiting)
	}
	if err := r.emit(ctx, Event{Kind: EventGateWaiting, Gate: &g, Message: "waiting for approval"}); err != nil {
		return &failure{err: err}
	}
	if r.opts.Detach {
		return errDetach
	}
	for !r.approved || r.paused {
		if err := r.tick(ctx, 0); err != nil {
			return err
		}
		if r.want == CmdPromote {
			return errPromote
		}
	}
	r.update(func(s *Snapshot) {
		s.Gate = nil
		s.State = ReleaseRunning
	})
	by := r.approvedBy
	return r.emit(ctx, Event{Kind: EventGatePassed, Gate: &g, Actor: &by, Message: fmt.Sprintf("step %d (%s) approved by %s", r.step+1, g.Key, by)})
}

func (r *Release) pauseGate(ctx context.Context, g Gate) error {
	remaining := g.Pause
	r.setGate(g, fmtDuration(remaining)+" to pass", remaining)
	if err := r.emit(ctx, Event{Kind: EventGateWaiting, Gate: &g, Message: "pausing " + fmtDuration(g.Pause)}); err != nil {
		return &failure{err: err}
	}
	last := r.deps.Clock.Now()
	for remaining > 0 {
		if err := r.tick(ctx, remaining); err != nil {
			return err
		}
		if r.want == CmdPromote {
			return errPromote
		}
		now := r.deps.Clock.Now()
		if !r.paused {
			remaining -= now.Sub(last)
		}
		last = now
		r.setGate(g, fmtDuration(max(remaining, 0).Round(time.Second))+" to pass", max(remaining, 0))
	}
	return r.emit(ctx, Event{Kind: EventGatePassed, Gate: &g, Message: "pause of " + fmtDuration(g.Pause) + " over"})
}

func (r *Release) analysisGate(ctx context.Context, g Gate) error {
	a := g.Analysis
	if err := r.emit(ctx, Event{Kind: EventGateWaiting, Gate: &g, Message: g.String()}); err != nil {
		return &failure{err: err}
	}
	var w *analysisWindow // nil until the window (re)starts
	var elapsed time.Duration
	var last, shown time.Time
	settled := false
	for w == nil || elapsed < a.Window && !settled {
		if w == nil && !r.paused {
			_, s, err := r.deps.Router.State(ctx)
			if err != nil {
				return failf("analysis: read router figures: %w", err)
			}
			// The live figures are measured against the snapshot's stats
			// from here on: it must not hold older ones than the start.
			r.update(func(sn *Snapshot) { sn.Stats = s })
			elapsed, last = 0, r.deps.Clock.Now()
			w, shown = newAnalysisWindow(a, r.spec.Name, r.target.Version, r.stable.Version, s), last
		}
		r.setGate(g, fmt.Sprintf("analysis window: %s of %s", fmtDuration(elapsed.Round(time.Second)), fmtDuration(a.Window)), a.Window-elapsed)
		if w != nil {
			r.showAnalysis(ctx, g, w, elapsed, &shown)
		}
		if err := r.tick(ctx, a.Window-elapsed); err != nil {
			return err
		}
		if r.want == CmdPromote {
			return errPromote
		}
		if r.paused {
			w = nil
			continue
		}
		now := r.deps.Clock.Now()
		elapsed += now.Sub(last)
		last = now
		if elapsed < a.Window {
			settled = w.measure(ctx, r.deps.Metrics, elapsed, now, false)
		}
	}
	end := w.start
	for deadline := r.deps.Clock.Now().Add(analysisMargin); a.judgesRouter(); {
		_, s, err := r.deps.Router.State(ctx)
		if err == nil {
			end = s
			break
		}
		if !r.deps.Clock.Now().Before(deadline) {
			return failf("analysis: the router's figures are unavailable %s after the window: %w", fmtDuration(analysisMargin), err)
		}
		if err := r.tick(ctx, 0); err != nil {
			return err
		}
	}
	now := r.deps.Clock.Now()
	if !settled {
		w.measure(ctx, r.deps.Metrics, elapsed, now, true)
	}
	res := w.result(end, elapsed, now, true)
	r.update(func(s *Snapshot) {
		if s.Gate != nil {
			s.Gate.Analysis = &res
		}
	})
	ev := Event{Gate: &g, Analysis: &res, Message: res.Message}
	switch res.Verdict {
	case VerdictPassed:
		ev.Kind = EventGatePassed
		return r.emit(ctx, ev)
	case VerdictFailed:
		ev.Kind = EventGateFailed
		_ = r.emit(ctx, ev)
		return failf("%s", res.Message)
	default:
		ev.Kind = EventInconclusive
		_ = r.emit(ctx, ev)
		return &failure{err: fmt.Errorf("%s", res.Message), inconclusive: true}
	}
}

// showAnalysis puts the window's figures so far into the gate's view, on
// every tick, and publishes them as an event every analysisProgressEvery.
func (r *Release) showAnalysis(ctx context.Context, g Gate, w *analysisWindow, elapsed time.Duration, shown *time.Time) {
	now := r.deps.Clock.Now()
	r.mu.Lock()
	stats := r.snap.Stats
	r.mu.Unlock()
	res := w.result(stats, elapsed, now, false)
	r.update(func(s *Snapshot) {
		if s.Gate != nil {
			s.Gate.Analysis = &res
		}
	})
	if now.Sub(*shown) >= analysisProgressEvery {
		*shown = now
		_ = r.emit(ctx, Event{Kind: EventAnalysisProgress, Gate: &g, Analysis: &res, Message: res.Message})
	}
}

// webhookGate asks another system whether the release may go on: a 2xx
// answer within the hook's timeout passes, anything else fails the gate.
func (r *Release) webhookGate(ctx context.Context, g Gate) error {
	r.setGate(g, "an answer from "+g.Webhook.URL, 0)
	ev := Event{Kind: EventGateWaiting, Gate: &g, Message: "asking " + g.Webhook.URL + " whether to go on"}
	if err := r.emit(ctx, ev); err != nil {
		return &failure{err: err}
	}
	ev.Release, ev.Service, ev.Step, ev.At = r.id, r.spec.Name, r.step, r.deps.Clock.Now()
	if err := r.deps.Webhooks.Ask(ctx, g.Webhook, ev); err != nil {
		msg := fmt.Sprintf("webhook gate failed: %s: %v", g.Webhook.URL, err)
		_ = r.emit(ctx, Event{Kind: EventGateFailed, Gate: &g, Message: msg})
		return failf("%s", msg)
	}
	return r.emit(ctx, Event{Kind: EventGatePassed, Gate: &g, Message: "webhook " + g.Webhook.URL + " answered 2xx"})
}

// promote replaces the rest of the plan with the finalize steps, computed
// from the actual state: launch the rest of the new version (each one
// health-checked), give it all traffic, retire the old versions.
func (r *Release) promote(ctx context.Context) error {
	obs, err := Observe(ctx, r.deps, r.spec, r.target.Version)
	if err != nil {
		return &failure{err: fmt.Errorf("promote: %w", err)}
	}
	tail := Plan{Service: r.plan.Service, Stable: r.plan.Stable, Others: r.plan.Others, Target: r.target}
	b := planner{spec: r.spec, obs: obs, plan: &tail, have: obs.usable(r.target.Version), share: obs.share(r.target.Version)}
	b.finalize()
	steps := append([]Step(nil), r.plan.Steps[:r.step]...)
	for _, s := range r.plan.Steps[r.step:] {
		if !s.Done {
			s.Done, s.Note = true, "skipped by promote"
		}
		steps = append(steps, s)
	}
	steps = append(steps, tail.Steps...)
	r.plan.Steps = steps
	views := stepViews(steps)
	plan := r.plan
	r.update(func(s *Snapshot) {
		copy(views, s.Steps[:min(r.step, len(s.Steps))])
		s.Steps, s.Plan, s.Gate = views, plan, nil
		if s.State == ReleaseWaiting {
			s.State = ReleaseRunning
		}
	})
	var lines []string
	for _, s := range tail.Steps {
		lines = append(lines, s.String())
	}
	return r.emit(ctx, Event{Kind: EventPromoted, Plan: lines, Message: "promoted: the remaining steps are skipped; then " + joinComma(lines)})
}
