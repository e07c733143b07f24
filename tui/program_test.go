package tui

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/cutover/cutover/engine"
)

// steppingNow is a wall clock that moves a little on every reading, so a
// program test passes the prompt guard without sleeping.
func steppingNow(start time.Time) func() time.Time {
	var mu sync.Mutex
	t := start
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Second) // more than the prompt guard
		return t
	}
}

// pumpClock moves the engine's fake clock whenever it waits, for tests
// where the console itself runs the release.
func pumpClock(t *testing.T, b *fakeBackend) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for b.env.Clock.BlockUntil(ctx, 1) {
			b.env.Clock.Advance(b.env.Clock.Next())
		}
	}()
}

func waitText(t *testing.T, tm *teatest.TestModel, s string) {
	t.Helper()
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte(s)) },
		teatest.WithDuration(10*time.Second), teatest.WithCheckInterval(10*time.Millisecond))
}

func TestProgramEmergencyRollbackFromHome(t *testing.T) {
	b := newFakeBackend(t)
	// Leave a canary at 25%, as a console killed mid-release would.
	rel, _ := b.Start(context.Background(), svc, "img:1.1.0", b.spec)
	rn := b.env.Start(t, rel)
	rn.Until(gateIs(engine.GateApproval))
	rel.Send(engine.CmdAbort)
	rn.Wait()
	pumpClock(t, b)

	m := New(b, Options{Now: steppingNow(b.env.Clock.Now()), NoColor: true})
	tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(80, 24),
		teatest.WithProgramOptions(tea.WithColorProfile(colorprofile.Ascii)))
	waitText(t, tm, "interrupted")
	tm.Send(keyPress("r"))
	waitText(t, tm, "Roll back demo to 1.0.0?")
	tm.Send(keyPress("y"))
	waitText(t, tm, "finished:")
	tm.Send(keyPress("q"))
	fm := tm.FinalModel(t, teatest.WithFinalTimeout(10*time.Second)).(Model)
	if fm.focus != screenLive || !fm.live.done || fm.live.snap.Kind != engine.KindRollback {
		t.Fatalf("final screen %v, done %v, kind %s", fm.focus, fm.live.done, fm.live.snap.Kind)
	}
	if s := b.env.Router.Table().Share("1.0.0"); s != 1 {
		t.Fatalf("stable share after the rollback = %v", s)
	}
}

func TestProgramReleasesThroughPickerStrategyAndPlan(t *testing.T) {
	b := newFakeBackend(t)
	b.spec.Strategy.Canary.Steps = []engine.CanaryStep{{Weight: 50, Gate: engine.Gate{Kind: engine.GateApproval}}}
	// One page, so j moves from the newest: with pages still coming the
	// cursor would stay on whichever image j reached.
	b.pageSize = len(b.images)
	pumpClock(t, b)
	m := New(b, Options{Now: steppingNow(b.env.Clock.Now()), NoColor: true})
	tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(120, 40),
		teatest.WithProgramOptions(tea.WithColorProfile(colorprofile.Ascii)))
	waitText(t, tm, "no releases yet")
	tm.Send(keyPress("enter"))
	waitText(t, tm, "ran before")
	tm.Send(keyPress("j"))
	tm.Send(keyPress("enter"))
	waitText(t, tm, "canary instances")
	tm.Send(keyPress("enter"))
	waitText(t, tm, "start the release")
	tm.Send(keyPress("enter"))
	waitText(t, tm, "press a")
	tm.Send(keyPress("a"))
	waitText(t, tm, "succeeded")
	tm.Send(keyPress("q"))
	fm := tm.FinalModel(t, teatest.WithFinalTimeout(10*time.Second)).(Model)
	if fm.live.outcome != engine.Succeeded {
		t.Fatalf("outcome %q", fm.live.outcome)
	}
	if s := b.env.Router.Table().Share("1.1.0"); s != 1 {
		t.Fatalf("new share = %v", s)
	}
}
