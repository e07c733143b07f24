package engine_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/enginetest"
)

// pump moves the fake clock whenever the engine waits on it, for releases
// run by something other than enginetest.Run.
func pump(t *testing.T, env *enginetest.Env) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for env.Clock.BlockUntil(ctx, 1) {
			env.Clock.Advance(env.Clock.Next())
		}
	}()
}

// waitState waits, in real time, until rel's snapshot is in state s.
func waitState(t *testing.T, rel *engine.Release, s engine.ReleaseState) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for rel.Snapshot().State != s {
		if time.Now().After(deadline) {
			t.Fatalf("release is %s after 10s, want %s", rel.Snapshot().State, s)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRunnerKeepsOneReleasePerServiceRunningWhoeverStartedIt(t *testing.T) {
	env := enginetest.NewEnv()
	env.SeedServing(svc, "1.0.0", 4)
	pump(t, env)
	g := engine.NewRunner()
	spec := canarySpec(engine.CanaryStep{Weight: 25, Gate: approval()})
	rel, err := engine.New(env.Deps(), spec, target, engine.Options{Actor: engine.Actor{User: "alice"}})
	if err != nil {
		t.Fatal(err)
	}
	run, err := g.Start(rel)
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, rel, engine.ReleaseWaiting)

	// Whoever asks finds the same release; starting it again follows it.
	if live, ok := g.Live(svc); !ok || live != run {
		t.Fatalf("Live(%s) = %v, %v; want the running release", svc, live, ok)
	}
	if again, err := g.Start(rel); err != nil || again != run {
		t.Fatalf("starting the running release again: %v, %v; want the same run", again, err)
	}
	other, _ := engine.New(env.Deps(), spec, target, engine.Options{})
	if _, err := g.Start(other); !errors.Is(err, engine.ErrLeaseHeld) {
		t.Fatalf("a second release of %s started: %v", svc, err)
	}

	// A watcher that gives up changes nothing.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := run.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v, want the watcher's deadline", err)
	}
	if s := rel.Snapshot().State; s != engine.ReleaseWaiting {
		t.Fatalf("release is %s after its watcher left, want still waiting", s)
	}

	// Stop aborts it where it is, resumable, and says who stopped it.
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer stopCancel()
	if err := g.Stop(stopCtx, engine.Actor{User: "cutover serve"}); err != nil {
		t.Fatal(err)
	}
	if o, _ := run.Result(); o != engine.Aborted {
		t.Fatalf("outcome after Stop = %s, want aborted", o)
	}
	if _, ok := g.Live(svc); ok {
		t.Fatal("an ended release is still live")
	}
	if got := env.Router.Table().Share("1.1.0"); got != 0.25 {
		t.Fatalf("abort changed the traffic: canary share %v, want it left at 0.25", got)
	}
	evs, _ := env.Journal.Events(context.Background(), rel.ID())
	stoppedBy := false
	for _, ev := range evs {
		stoppedBy = stoppedBy || ev.Command == engine.CmdAbort && ev.Actor != nil && ev.Actor.User == "cutover serve"
	}
	if !stoppedBy {
		t.Error("the journal does not say who aborted the release")
	}

	// The service is free again for the next release.
	next, _ := engine.New(env.Deps(), spec, target, engine.Options{ID: rel.ID()})
	if _, err := g.Start(next); err != nil {
		t.Fatalf("the next release could not start: %v", err)
	}
	waitState(t, next, engine.ReleaseWaiting)
	if err := g.Stop(stopCtx, engine.Actor{User: "test"}); err != nil {
		t.Fatal(err)
	}
}
