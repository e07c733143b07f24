package engine_test

import (
	"strings"
	"testing"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/enginetest"
)

// Swarm replaces a task that died with a new one: a new instance, with a
// new id and address. The router's table must follow: the newcomer takes
// the lost instance's share once it passed health, and the release goes on.
func TestInstanceThePlatformReplacedTakesItsShareOnceHealthy(t *testing.T) {
	spec := canarySpec(engine.CanaryStep{Weight: 25, Gate: approval()}, engine.CanaryStep{Weight: 100})
	env, run := start(t, spec, engine.Options{})
	if _, ok := run.Until(gateWaiting(engine.GateApproval)); !ok {
		t.Fatalf("no approval gate; events:\n%s", messages(run.Events()))
	}
	before := env.Router.Table()
	lost := env.Platform.Running("1.0.0")[0]
	weight := env.Router.Weight(lost.ID)
	if weight == 0 {
		t.Fatalf("stable instance %s has no weight at 25%%: %+v", lost.ID, before)
	}
	env.Platform.Behave("1.0.0", enginetest.Behavior{Starting: 2})
	newcomer, _ := env.Platform.Replace(lost.ID)

	ev, ok := run.Until(func(ev engine.Event) bool { return ev.Kind == engine.EventReplaced })
	if !ok {
		t.Fatalf("no replaced event; events:\n%s", messages(run.Events()))
	}
	if ev.Instance == nil || ev.Instance.ID != newcomer.ID {
		t.Errorf("replaced event about %+v, want the newcomer %s", ev.Instance, newcomer.ID)
	}
	if _, ok := run.Until(kind(engine.EventApplied)); !ok {
		t.Fatalf("no table applied after the replacement; events:\n%s", messages(run.Events()))
	}
	after := env.Router.Table()
	for _, b := range after.Backends {
		if b.ID == lost.ID {
			t.Errorf("the lost instance %s is still in the table: %+v", lost.ID, after)
		}
	}
	if got := env.Router.Weight(newcomer.ID); got != weight {
		t.Errorf("newcomer %s has weight %d, want the lost instance's %d; table %+v", newcomer.ID, got, weight, after)
	}
	if share(after, "1.1.0") != share(before, "1.1.0") {
		t.Errorf("the canary's share moved from %d%% to %d%% on a replacement", share(before, "1.1.0"), share(after, "1.1.0"))
	}
	if err := run.Release.Send(engine.CmdApprove); err != nil {
		t.Fatal(err)
	}
	mustWait(t, run, engine.Succeeded)
	assertSafe(t, env)
	expectFleet(t, env, "1.1.0")
}

// A newcomer that never passes health gets no traffic; it is not the
// release's failure (its version is not the one being released).
func TestReplacementThatNeverPassesHealthGetsNoTraffic(t *testing.T) {
	spec := canarySpec(engine.CanaryStep{Weight: 25, Gate: approval()}, engine.CanaryStep{Weight: 100})
	env, run := start(t, spec, engine.Options{})
	if _, ok := run.Until(gateWaiting(engine.GateApproval)); !ok {
		t.Fatalf("no approval gate; events:\n%s", messages(run.Events()))
	}
	lost := env.Platform.Running("1.0.0")[0]
	env.Platform.Behave("1.0.0", enginetest.Behavior{Unhealthy: true})
	newcomer, _ := env.Platform.Replace(lost.ID)

	ev, ok := run.Until(kind(engine.EventUnhealthy))
	if !ok || ev.Instance == nil || ev.Instance.ID != newcomer.ID {
		t.Fatalf("no verdict on the newcomer %s (%+v); events:\n%s", newcomer.ID, ev, messages(run.Events()))
	}
	if w := env.Router.Weight(newcomer.ID); w != 0 {
		t.Errorf("unhealthy newcomer got weight %d", w)
	}
	if err := run.Release.Send(engine.CmdApprove); err != nil {
		t.Fatal(err)
	}
	mustWait(t, run, engine.Succeeded)
	assertSafe(t, env)
}

// On a platform with several nodes, the events an operator reads in the
// history say where each instance runs: launched, healthy and replaced.
func TestLaunchedHealthyAndReplacedEventsSayTheNode(t *testing.T) {
	spec := canarySpec(engine.CanaryStep{Weight: 25, Gate: approval()}, engine.CanaryStep{Weight: 100})
	env := enginetest.NewEnv()
	env.SeedServing(svc, "1.0.0", 4)
	env.Platform.PlaceOn("node-a", "node-b", "node-c")
	rel, err := engine.New(env.Deps(), spec, target, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	run := env.Start(t, rel)
	if _, ok := run.Until(gateWaiting(engine.GateApproval)); !ok {
		t.Fatalf("no approval gate; events:\n%s", messages(run.Events()))
	}
	newcomer, _ := env.Platform.Replace(env.Platform.Running("1.0.0")[0].ID)
	if _, ok := run.Until(kind(engine.EventApplied)); !ok {
		t.Fatalf("no table applied after the replacement; events:\n%s", messages(run.Events()))
	}
	said := map[engine.EventKind]int{}
	for _, ev := range run.Events() {
		switch ev.Kind {
		case engine.EventLaunched, engine.EventHealthy, engine.EventReplaced:
			if ev.Instance == nil || ev.Instance.Node == "" || !strings.Contains(ev.Message, " on "+ev.Instance.Node) {
				t.Errorf("%s event %q does not say the node of %+v", ev.Kind, ev.Message, ev.Instance)
			}
			said[ev.Kind]++
		}
	}
	if said[engine.EventLaunched] != 1 || said[engine.EventHealthy] != 2 || said[engine.EventReplaced] != 1 {
		t.Errorf("launched, healthy and replaced events: %v; want the canary launched, it and the newcomer %s healthy, one replacement", said, newcomer.ID)
	}
	if err := run.Release.Send(engine.CmdApprove); err != nil {
		t.Fatal(err)
	}
	mustWait(t, run, engine.Succeeded)
}
