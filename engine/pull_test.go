package engine_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/enginetest"
)

// fakePuller records its pull in the environment's trace, reports lines,
// then returns err; with block set it waits for its context to end.
type fakePuller struct {
	trace  *enginetest.Trace
	lines  []string
	err    error
	block  bool
	got    engine.Target
	ctxErr chan error
}

func (p *fakePuller) Pull(ctx context.Context, target engine.Target, progress func(string)) error {
	p.trace.Add("puller:pull " + target.Image)
	p.got = target
	for _, l := range p.lines {
		progress(l)
	}
	if p.block {
		<-ctx.Done()
		p.ctxErr <- ctx.Err()
		return ctx.Err()
	}
	return p.err
}

func startPulling(t *testing.T, p *fakePuller) (*enginetest.Env, *enginetest.Run) {
	t.Helper()
	env := seeded(4)
	p.trace = env.Trace
	deps := env.Deps()
	deps.Puller = p
	spec := baseSpec(engine.StrategySpec{Type: engine.Rolling, Rolling: engine.RollingSpec{BatchSize: 2}})
	rel, err := engine.New(deps, spec, target, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return env, env.Start(t, rel)
}

func indexOf(evs []engine.Event, k engine.EventKind) int {
	return slices.IndexFunc(evs, func(ev engine.Event) bool { return ev.Kind == k })
}

func TestPullHappensBeforeAnyPlatformOrRouterMutation(t *testing.T) {
	p := &fakePuller{lines: []string{"Pulling from web", "a1b2: Downloading 1MB/4MB", "a1b2: Downloading 2MB/4MB", "a1b2: Pull complete"}}
	env, run := startPulling(t, p)
	mustWait(t, run, engine.Succeeded)

	trace := env.Trace.Lines()
	pulled := slices.Index(trace, "puller:pull "+target.Image)
	first := slices.IndexFunc(trace, enginetest.IsMutation)
	if pulled < 0 || first < 0 || pulled > first {
		t.Fatalf("pull at %d, first mutation at %d; want the pull first: %v", pulled, first, trace)
	}
	if p.got != target {
		t.Errorf("puller got %+v, want the release's target %+v", p.got, target)
	}
	evs := run.Events()
	iPulling, iPulled := indexOf(evs, engine.EventPulling), indexOf(evs, engine.EventPulled)
	for _, k := range []engine.EventKind{engine.EventApplying, engine.EventLaunching, engine.EventStepStarted} {
		if i := indexOf(evs, k); iPulling < 0 || iPulled < iPulling || i < iPulled {
			t.Errorf("%s at %d, pulling at %d, pulled at %d: want pulling < pulled < %s\n%s", k, i, iPulling, iPulled, k, messages(evs))
		}
	}
	var progress []string
	for _, ev := range evs[iPulling:iPulled] {
		if ev.Kind == engine.EventPullProgress {
			progress = append(progress, ev.Message)
		}
	}
	// The first line of each layer passes and the layer's last one when the
	// pull ends; lines in between are coalesced by time, which the fake
	// clock may or may not have moved through while the pull ran (the
	// coalescing itself is tested in pull_internal_test.go).
	if len(progress) < 3 || progress[0] != "Pulling from web" || progress[1] != "a1b2: Downloading 1MB/4MB" ||
		progress[len(progress)-1] != "a1b2: Pull complete" || len(progress) > len(p.lines) {
		t.Errorf("progress events %q: want the first line of each layer, the last one, and nothing twice", progress)
	}
	assertSafe(t, env)
}

func TestFailedPullEndsFailedWithNothingChangedAndNoLeaseHeld(t *testing.T) {
	p := &fakePuller{err: errors.New("unauthorized: authentication required")}
	env, run := startPulling(t, p)
	err := mustWait(t, run, engine.Failed)
	if err == nil || !strings.Contains(err.Error(), "pull "+target.Image) || !strings.Contains(err.Error(), "unauthorized") {
		t.Errorf("error %v: want it to name the pull and its cause", err)
	}
	if m := env.Trace.Mutations(); len(m) > 0 {
		t.Errorf("a failed pull changed things: %v", m)
	}
	if l, held, _ := env.Journal.Active(context.Background(), svc); held {
		t.Errorf("lease still held after a failed pull: %+v", l)
	}
	evs := run.Events()
	i := slices.IndexFunc(evs, func(ev engine.Event) bool {
		return ev.Kind == engine.EventFailure && strings.Contains(ev.Error, "unauthorized") && strings.Contains(ev.Message, "before anything changed")
	})
	if i < 0 || indexOf(evs, engine.EventPulled) >= 0 || indexOf(evs, engine.EventStepStarted) >= 0 {
		t.Errorf("want a failure event naming the pull and no step started:\n%s", messages(evs))
	}
	recs, _ := env.Journal.Releases(context.Background(), svc, 1)
	if len(recs) != 1 || recs[0].State != engine.ReleaseFailed {
		t.Errorf("journal records %+v, want the release failed", recs)
	}
}

func TestAbortDuringPullCancelsItAndChangesNothing(t *testing.T) {
	p := &fakePuller{block: true, ctxErr: make(chan error, 1)}
	env, run := startPulling(t, p)
	mustUntil(t, run, kind(engine.EventPulling))
	if err := run.Release.Send(engine.CmdAbort); err != nil {
		t.Fatal(err)
	}
	mustWait(t, run, engine.Aborted)
	select {
	case err := <-p.ctxErr:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("puller's context ended with %v, want cancelled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the pull was not cancelled")
	}
	if m := env.Trace.Mutations(); len(m) > 0 {
		t.Errorf("an aborted pull changed things: %v", m)
	}
	if _, held, _ := env.Journal.Active(context.Background(), svc); held {
		t.Error("lease still held after an aborted pull")
	}
}

func TestLongPullKeepsTheLeaseAlive(t *testing.T) {
	p := &fakePuller{block: true, ctxErr: make(chan error, 1)}
	env, run := startPulling(t, p)
	mustUntil(t, run, kind(engine.EventPulling))
	// The heartbeat runs beside the pull: each time the clock passes a
	// beat, the lease is renewed, however long the pull takes.
	for range 4 {
		env.Clock.Advance(engine.HeartbeatEvery)
		waitHeartbeat(t, env, env.Clock.Now())
	}
	_ = run.Release.Send(engine.CmdAbort)
	mustWait(t, run, engine.Aborted)
}

// waitHeartbeat waits (in real time, bounded) until the lease's heartbeat
// reaches at: the heartbeat goroutine renews it when the clock moves.
func waitHeartbeat(t *testing.T, env *enginetest.Env, at time.Time) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, held, _ := env.Journal.Active(context.Background(), svc)
		if held && !l.Heartbeat.Before(at) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease %+v (held %v): no heartbeat at %s", l, held, at)
		}
		time.Sleep(time.Millisecond)
	}
}
