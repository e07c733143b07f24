package engine_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/enginetest"
)

func strategies() map[string]engine.ServiceSpec {
	return map[string]engine.ServiceSpec{
		"rolling":   baseSpec(engine.StrategySpec{Type: engine.Rolling, Rolling: engine.RollingSpec{BatchSize: 2, Pause: 5 * time.Second}}),
		"bluegreen": baseSpec(engine.StrategySpec{Type: engine.BlueGreen, BlueGreen: engine.BlueGreenSpec{SmokePath: "/smoke", RollbackWindow: time.Minute}}),
		"canary": canarySpec(engine.CanaryStep{Weight: 10, Gate: pause(time.Minute)},
			engine.CanaryStep{Weight: 60, Gate: pause(time.Minute)}),
	}
}

// Rule 1: new instances start slowly and old ones have requests in flight;
// the router's Check rejects any table giving weight to an instance whose
// last probe was not healthy.
func TestRule1TrafficOnlyGoesToInstancesThatPassedHealth(t *testing.T) {
	for name, spec := range strategies() {
		t.Run(name, func(t *testing.T) {
			env := seeded(4)
			env.Platform.Behave("1.1.0", enginetest.Behavior{Starting: 2})
			run := startOn(t, env, spec, engine.Options{})
			mustWait(t, run, engine.Succeeded)
			if v := env.Router.Violations(); len(v) > 0 {
				t.Fatalf("tables gave traffic to unhealthy instances: %v", v)
			}
			expectFleet(t, env, "1.1.0")
		})
	}
}

// Rule 2: at every Stop, the platform double checks the router: weight 0
// and nothing in flight, unless the drain timed out (which is reported).
func TestRule2NoInstanceStoppedWhileServingOrInFlight(t *testing.T) {
	for name, spec := range strategies() {
		t.Run(name, func(t *testing.T) {
			env := seeded(4)
			for _, id := range []string{"c001", "c002", "c003", "c004"} {
				env.Router.SetInFlight(id, 1)
			}
			run := startOn(t, env, spec, engine.Options{})
			// Requests finish on two instances when they start draining; two never do.
			for {
				ev, ok := run.Until(kind(engine.EventDraining))
				if !ok {
					break
				}
				for _, id := range ev.IDs {
					if id == "c001" || id == "c003" {
						env.Router.SetInFlight(id, 0)
					}
				}
			}
			mustWait(t, run, engine.Succeeded)
			if v := env.Platform.Violations(); len(v) > 0 {
				t.Fatalf("stopped while serving: %v", v)
			}
			timeouts := 0
			for _, ev := range run.Events() {
				if ev.Kind == engine.EventDrainTimeout {
					timeouts++
				}
			}
			if timeouts == 0 {
				t.Errorf("no drain timeout reported for instances that never drained")
			}
		})
	}
}

// Rule 3: in canary and blue/green, no stable instance is stopped before
// the table that gives the new version all the traffic.
func TestRule3StableInstancesStayUntilFinalize(t *testing.T) {
	for _, name := range []string{"canary", "bluegreen"} {
		t.Run(name, func(t *testing.T) {
			env := seeded(4)
			run := startOn(t, env, strategies()[name], engine.Options{})
			mustWait(t, run, engine.Succeeded)
			full := false
			for _, ev := range run.Events() {
				if ev.Kind == engine.EventApplied && share(*ev.Table, "1.1.0") == 100 {
					full = true
				}
				if ev.Kind == engine.EventStopping && ev.Instance.Version == "1.0.0" && !full {
					t.Fatalf("stable %s stopped before 100%% to 1.1.0:\n%s", ev.Instance.Name, messages(run.Events()))
				}
			}
		})
	}
}

// Rule 4 is covered at every step by TestCommandsAtEveryKindOfStep/*/pause;
// this one checks that a paused timed gate does not count down.
func TestRule4PauseChangesNothingAndFreezesTheGateCountdown(t *testing.T) {
	env := seeded(4)
	run := startOn(t, env, canarySpec(engine.CanaryStep{Weight: 10, Gate: pause(time.Minute)}), engine.Options{})
	mustUntil(t, run, gateWaiting(engine.GatePause))
	for range 20 {
		env.Clock.Advance(time.Second)
		run.Idle()
	}
	if err := run.Release.Send(engine.CmdPause); err != nil {
		t.Fatal(err)
	}
	mustUntil(t, run, kind(engine.EventPaused))
	run.Idle()
	before, remaining := len(env.Trace.Mutations()), run.Release.Snapshot().Gate.Remaining
	for range 600 {
		env.Clock.Advance(time.Second)
		run.Idle()
	}
	s := run.Release.Snapshot()
	if s.Gate == nil || s.Gate.Remaining != remaining || remaining < 30*time.Second {
		t.Fatalf("gate %+v, want remaining frozen at %s", s.Gate, remaining)
	}
	if m := env.Trace.Mutations(); len(m) != before {
		t.Fatalf("paused release mutated: %v", m[before:])
	}
	if err := run.Release.Send(engine.CmdResume); err != nil {
		t.Fatal(err)
	}
	mustUntil(t, run, kind(engine.EventResumed))
	mustWait(t, run, engine.Succeeded)
}

// Rule 5: a failure before traffic rolls back by default, after traffic
// it pauses; each is configurable.
func TestRule5FailurePolicyBeforeAndAfterTraffic(t *testing.T) {
	cases := []struct {
		name       string
		before     engine.FailureAction
		after      engine.FailureAction
		afterTraff bool
		want       engine.Outcome
	}{
		{"crash before traffic rolls back by default", "", "", false, engine.RolledBack},
		{"crash before traffic pauses when configured", engine.FailPause, "", false, engine.Failed},
		{"crash after traffic pauses by default", "", "", true, engine.Failed},
		{"crash after traffic rolls back when configured", "", engine.FailRollback, true, engine.RolledBack},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := seeded(4)
			spec := canarySpec(engine.CanaryStep{Weight: 10, Gate: pause(time.Minute)})
			spec.OnFailure = engine.FailurePolicy{BeforeTraffic: c.before, AfterTraffic: c.after}
			if !c.afterTraff {
				env.Platform.Behave("1.1.0", enginetest.Behavior{Crash: true})
			}
			run := startOn(t, env, spec, engine.Options{Detach: true})
			if c.afterTraff {
				mustUntil(t, run, gateWaiting(engine.GatePause))
				env.Platform.Crash(env.Platform.Running("1.1.0")[0].ID)
			}
			err := mustWait(t, run, c.want)
			if err == nil || !strings.Contains(err.Error(), "exited") && !strings.Contains(err.Error(), "crashed") {
				t.Errorf("error %v does not say what failed", err)
			}
			var sawFailure bool
			for _, ev := range run.Events() {
				sawFailure = sawFailure || ev.Kind == engine.EventFailure && ev.Error != ""
			}
			if !sawFailure {
				t.Error("no failure event")
			}
			if c.want == engine.RolledBack {
				tab := env.Router.Table()
				if share(tab, "1.0.0") != 100 || len(env.Platform.Running("1.1.0")) != 0 {
					t.Errorf("not rolled back: %+v", tab)
				}
			}
			assertSafe(t, env)
		})
	}
}

// Paused on failure, resume retries the failed step.
func TestResumeAfterFailureRetriesTheStep(t *testing.T) {
	env := seeded(4)
	env.Platform.Behave("1.1.0", enginetest.Behavior{Crash: true})
	spec := canarySpec(engine.CanaryStep{Weight: 10})
	spec.OnFailure.BeforeTraffic = engine.FailPause
	run := startOn(t, env, spec, engine.Options{})
	mustUntil(t, run, kind(engine.EventPaused))
	if s := run.Release.Snapshot(); s.State != engine.ReleasePaused || s.PausedBy != "failure" || s.LastError == "" {
		t.Fatalf("snapshot %s by %q err %q", s.State, s.PausedBy, s.LastError)
	}
	env.Platform.Behave("1.1.0", enginetest.Behavior{})
	if err := run.Release.Send(engine.CmdResume); err != nil {
		t.Fatal(err)
	}
	mustWait(t, run, engine.Succeeded)
	expectFleet(t, env, "1.1.0")
}

func TestStartTimeoutIsAFailure(t *testing.T) {
	env := seeded(4)
	env.Platform.Behave("1.1.0", enginetest.Behavior{Unhealthy: true})
	run := startOn(t, env, canarySpec(engine.CanaryStep{Weight: 10}), engine.Options{})
	err := mustWait(t, run, engine.RolledBack)
	if err == nil || !strings.Contains(err.Error(), "start timeout of 30s") {
		t.Errorf("error %v", err)
	}
	if env.Clock.Now().Sub(run.Release.Snapshot().Started) < 30*time.Second {
		t.Errorf("gave up before the start timeout")
	}
}

func TestRollbackFirstMutationIsOneTableWithAllTrafficToStable(t *testing.T) {
	env := seeded(4)
	run := startOn(t, env, canarySpec(engine.CanaryStep{Weight: 50, Gate: approval()}), engine.Options{})
	mustUntil(t, run, gateWaiting(engine.GateApproval))
	mark := env.Trace.Len()
	if err := run.Release.Send(engine.CmdRollback); err != nil {
		t.Fatal(err)
	}
	mustWait(t, run, engine.RolledBack)
	muts := env.Trace.Lines()[mark:]
	var first string
	for _, l := range muts {
		if enginetest.IsMutation(l) {
			first = l
			break
		}
	}
	if first != "router:apply" {
		t.Fatalf("first mutation of the rollback is %q", first)
	}
	var tab *engine.RouteTable
	for _, ev := range run.Events() {
		if ev.Kind == engine.EventApplying && ev.Seq > 0 && tab == nil && ev.State == engine.ReleaseRollingBack {
			tab = ev.Table
		}
	}
	if tab == nil {
		t.Fatal("no table applied while rolling back")
	}
	stable := 0
	for _, b := range tab.Backends {
		if b.Version == "1.0.0" && b.Weight > 0 {
			stable++
		}
		if b.Version == "1.1.0" && b.Weight != 0 {
			t.Errorf("new backend %s kept weight %d", b.ID, b.Weight)
		}
	}
	if stable != 4 || share(*tab, "1.0.0") != 100 {
		t.Errorf("rollback table %+v", tab)
	}
	expectFleet(t, env, "1.0.0")
}

// Rollback restores stable capacity if some of it was already retired.
func TestRollbackMidRollingRestoresStableCapacity(t *testing.T) {
	env := seeded(4)
	spec := baseSpec(engine.StrategySpec{Type: engine.Rolling, Rolling: engine.RollingSpec{BatchSize: 1, Pause: time.Minute}})
	run := startOn(t, env, spec, engine.Options{})
	mustUntil(t, run, gateWaiting(engine.GatePause))
	if err := run.Release.Send(engine.CmdRollback); err != nil {
		t.Fatal(err)
	}
	mustWait(t, run, engine.RolledBack)
	expectFleet(t, env, "1.0.0")
	assertSafe(t, env)
}

// Rule 6: each mutation is preceded by its journal entry and followed by
// one before anything else changes.
func TestRule6JournalWrittenBeforeAndAfterEveryMutation(t *testing.T) {
	for name, spec := range strategies() {
		t.Run(name, func(t *testing.T) {
			env := seeded(4)
			run := startOn(t, env, spec, engine.Options{})
			mustWait(t, run, engine.Succeeded)
			lines := env.Trace.Lines()
			before := map[string]string{"router:apply": "journal:applying", "platform:launch": "journal:launching", "platform:stop": "journal:stopping"}
			after := map[string]string{"router:apply": "journal:applied", "platform:launch": "journal:launched", "platform:stop": "journal:stopped"}
			for i, l := range lines {
				if !enginetest.IsMutation(l) {
					continue
				}
				k := strings.Fields(l)[0]
				if i == 0 || lines[i-1] != before[k] {
					t.Fatalf("%s at %d not preceded by %s: %v", l, i, before[k], lines[max(0, i-3):i+1])
				}
				for _, m := range lines[i+1:] {
					if m == after[k] {
						break
					}
					if enginetest.IsMutation(m) {
						t.Fatalf("%s at %d: %s came before %s", l, i, m, after[k])
					}
				}
			}
		})
	}
}

func TestJournalFailureStopsBeforeMutating(t *testing.T) {
	env := seeded(4)
	run := startOn(t, env, canarySpec(engine.CanaryStep{Weight: 10, Gate: pause(time.Minute)}), engine.Options{Detach: true})
	mustUntil(t, run, gateWaiting(engine.GatePause))
	env.Journal.Fail(errors.New("disk full"))
	mark := len(env.Trace.Mutations())
	o, err := run.Wait()
	if o != engine.Failed || err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("outcome %s err %v", o, err)
	}
	if m := env.Trace.Mutations()[mark:]; len(m) != 0 {
		t.Errorf("mutated without a journal: %v", m)
	}
}

// Rule 7: a writer with a newer epoch fences the release out, even while
// it idles at a gate.
func TestRule7FencedOutByANewerEpochWhileWaitingAtAGate(t *testing.T) {
	env := seeded(4)
	run := startOn(t, env, canarySpec(engine.CanaryStep{Weight: 10, Gate: approval()}), engine.Options{})
	mustUntil(t, run, gateWaiting(engine.GateApproval))
	mark := len(env.Trace.Mutations())
	env.Router.TakeOver(9)
	err := mustWait(t, run, engine.TakenOver)
	var taken *engine.TakenOverError
	if !errors.As(err, &taken) || taken.Epoch != 9 || err.Error() != "taken over by another writer (epoch 9)" {
		t.Fatalf("err %v", err)
	}
	if m := env.Trace.Mutations()[mark:]; len(m) != 0 {
		t.Errorf("fenced-out release mutated: %v", m)
	}
	rec, _ := env.Journal.Release(t.Context(), run.Release.ID())
	if rec.State != engine.ReleaseTakenOver {
		t.Errorf("journal state %s", rec.State)
	}
}

func TestRule7StandaloneRollbackTakesOverARunningRelease(t *testing.T) {
	env := seeded(4)
	spec := canarySpec(engine.CanaryStep{Weight: 25, Gate: approval()})
	run := startOn(t, env, spec, engine.Options{})
	mustUntil(t, run, gateWaiting(engine.GateApproval))

	// A second process: its own deps over the same platform, router and journal.
	deps := env.Deps()
	deps.Owner.PID = 2000
	o, err := engine.Rollback(t.Context(), deps, spec, engine.Target{Version: "1.0.0", Image: "img:1.0.0"}, run.Release.ID(), engine.Options{Actor: engine.Actor{User: "oncall"}})
	if o != engine.RolledBack || err != nil {
		t.Fatalf("standalone rollback: %s %v", o, err)
	}
	expectFleet(t, env, "1.0.0")
	mustWait(t, run, engine.TakenOver)
	rels, _ := env.Journal.Releases(t.Context(), svc, 10)
	if len(rels) != 2 || rels[0].Kind != engine.KindRollback || rels[0].State != engine.ReleaseRolledBack || rels[0].RollsBack != run.Release.ID() {
		t.Fatalf("journal: %+v", rels)
	}
	if rels[1].State != engine.ReleaseTakenOver {
		t.Errorf("deploy record state %s", rels[1].State)
	}
	assertSafe(t, env)
}

func TestSecondReleaseRefusedWhileTheLeaseIsHeld(t *testing.T) {
	env := seeded(4)
	now := env.Clock.Now()
	env.Journal.SetLease(engine.Lease{Service: svc, Release: "web-other", Owner: engine.Owner{PID: 77, Host: "elsewhere", User: "bob"}, Since: now, Heartbeat: now})
	rel, _ := engine.New(env.Deps(), canarySpec(engine.CanaryStep{Weight: 10}), target, engine.Options{})
	o, err := rel.Run(t.Context())
	if o != "" || !errors.Is(err, engine.ErrLeaseHeld) || !strings.Contains(err.Error(), "pid 77 on elsewhere (bob)") {
		t.Fatalf("outcome %q err %v", o, err)
	}
	if m := env.Trace.Mutations(); len(m) != 0 {
		t.Errorf("refused release mutated: %v", m)
	}
}
