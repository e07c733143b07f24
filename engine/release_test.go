package engine_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/enginetest"
)

// An aborted release resumes under the same id from the actual state:
// steps below the current share are skipped, the gate at it re-runs, and
// no instance is launched twice.
func TestAbortedReleaseResumesFromTheActualState(t *testing.T) {
	env := seeded(4)
	spec := canarySpec(engine.CanaryStep{Weight: 25, Gate: approval()}, engine.CanaryStep{Weight: 50, Gate: approval()})
	run := startOn(t, env, spec, engine.Options{})
	mustUntil(t, run, gateWaiting(engine.GateApproval))
	if err := run.Release.Send(engine.CmdAbort); err != nil {
		t.Fatal(err)
	}
	mustWait(t, run, engine.Aborted)
	launches := len(env.Platform.Calls())

	rel, err := engine.New(env.Deps(), spec, target, engine.Options{ID: run.Release.ID()})
	if err != nil {
		t.Fatal(err)
	}
	run2 := env.Start(t, rel)
	mustUntil(t, run2, gateWaiting(engine.GateApproval))
	s := run2.Release.Snapshot()
	// The canary instance exists and serves 25%: no launch, the shift is done, the gate re-runs.
	if s.Steps[0].Step.Kind != engine.StepShift || s.Steps[0].Status != engine.StepSkipped ||
		s.Steps[1].Step.Kind != engine.StepGate || s.Steps[1].Status != engine.StepRunning {
		t.Fatalf("steps %+v", s.Steps)
	}
	if len(env.Platform.Calls()) != launches {
		t.Errorf("resume launched again: %v", env.Platform.Calls()[launches:])
	}
	if err := run2.Release.Send(engine.CmdApprove); err != nil {
		t.Fatal(err)
	}
	mustUntil(t, run2, gateWaiting(engine.GateApproval))
	if err := run2.Release.Send(engine.CmdApprove); err != nil {
		t.Fatal(err)
	}
	mustWait(t, run2, engine.Succeeded)
	expectFleet(t, env, "1.1.0")
	rels, _ := env.Journal.Releases(t.Context(), svc, 0)
	if len(rels) != 1 || rels[0].State != engine.ReleaseSucceeded {
		t.Errorf("journal %+v", rels)
	}
}

func TestDetachAtApprovalGate(t *testing.T) {
	env := seeded(4)
	run := startOn(t, env, canarySpec(engine.CanaryStep{Weight: 10, Gate: approval()}), engine.Options{Detach: true})
	mustWait(t, run, engine.WaitingForApproval)
	rec, _ := env.Journal.Release(t.Context(), run.Release.ID())
	if rec.State != engine.ReleaseWaiting {
		t.Errorf("journal state %s", rec.State)
	}
	if _, held, _ := env.Journal.Active(t.Context(), svc); held {
		t.Error("detached release still holds the lease")
	}
	if share(env.Router.Table(), "1.1.0") != 10 {
		t.Error("detaching changed the traffic")
	}
}

// `cutover approve`: a release detached at its first gate is resumed with
// that gate approved, and detaches again at the next one.
func TestResumingWithOneApprovalPassesOneGateAndDetachesAtTheNext(t *testing.T) {
	env := seeded(4)
	spec := canarySpec(engine.CanaryStep{Weight: 10, Gate: approval()}, engine.CanaryStep{Weight: 50, Gate: approval()})
	run := startOn(t, env, spec, engine.Options{Detach: true})
	mustWait(t, run, engine.WaitingForApproval)
	id := run.Release.ID()

	run = startOn(t, env, spec, engine.Options{ID: id, Detach: true, Approve: &engine.Order{Gate: "canary step 1", By: engine.Actor{User: "alice"}}})
	mustWait(t, run, engine.WaitingForApproval)
	if got := share(env.Router.Table(), "1.1.0"); got != 50 {
		t.Errorf("after one approval 1.1.0 has %d%%, want 50%% and waiting at the second gate", got)
	}
	passed := 0
	for _, ev := range run.Events() {
		if ev.Kind == engine.EventGatePassed && strings.Contains(ev.Message, "alice") {
			passed++
		}
	}
	if passed != 1 {
		t.Errorf("%d gates passed as approved by alice, want 1; events:\n%s", passed, messages(run.Events()))
	}

	run = startOn(t, env, spec, engine.Options{ID: id, Detach: true, Approve: &engine.Order{Gate: "canary step 2"}})
	mustWait(t, run, engine.Succeeded)
	assertSafe(t, env)
}

func TestAutoApprovePassesApprovalGates(t *testing.T) {
	env := seeded(4)
	run := startOn(t, env, canarySpec(engine.CanaryStep{Weight: 10, Gate: approval()}), engine.Options{AutoApprove: true})
	mustWait(t, run, engine.Succeeded)
}

// Promote at 10% still launches and health-checks the remaining instances
// before the one shift to 100%.
func TestPromoteLaunchesTheRestBeforeShiftingEverything(t *testing.T) {
	env := seeded(4)
	run := startOn(t, env, canarySpec(engine.CanaryStep{Weight: 10, Gate: approval()}, engine.CanaryStep{Weight: 50, Gate: approval()}), engine.Options{})
	mustUntil(t, run, gateWaiting(engine.GateApproval))
	if err := run.Release.Send(engine.CmdPromote); err != nil {
		t.Fatal(err)
	}
	mustWait(t, run, engine.Succeeded)
	healthy := 0
	for _, ev := range run.Events() {
		if ev.Kind == engine.EventHealthy {
			healthy++
		}
		if ev.Kind == engine.EventApplied && share(*ev.Table, "1.1.0") == 100 && healthy != 4 {
			t.Fatalf("100%% applied with %d healthy new instances", healthy)
		}
		if ev.Kind == engine.EventApplied && share(*ev.Table, "1.1.0") == 50 {
			t.Fatal("promote ran the 50% step")
		}
	}
	assertSafe(t, env)
}

func TestBlueGreenSmokeFailureRollsBackBeforeTraffic(t *testing.T) {
	env := seeded(4)
	deps := env.Deps()
	var urls []string
	deps.HTTPGet = func(ctx context.Context, url string) (int, error) {
		urls = append(urls, url)
		return 500, nil
	}
	spec := baseSpec(engine.StrategySpec{Type: engine.BlueGreen, BlueGreen: engine.BlueGreenSpec{SmokePath: "/smoke"}})
	rel, _ := engine.New(deps, spec, target, engine.Options{})
	run := env.Start(t, rel)
	err := mustWait(t, run, engine.RolledBack)
	if err == nil || !strings.Contains(err.Error(), "GET http://10.0.0.5:8080/smoke: status 500") {
		t.Errorf("err %v (urls %v)", err, urls)
	}
	for _, tab := range env.Router.Applied() {
		if share(tab, "1.1.0") > 0 {
			t.Fatalf("green got traffic: %+v", tab)
		}
	}
	expectFleet(t, env, "1.0.0")
}

func TestSnapshotShowsTheGateInstancesAndTable(t *testing.T) {
	env := seeded(4)
	run := startOn(t, env, canarySpec(engine.CanaryStep{Weight: 10, Gate: approval()}), engine.Options{Actor: engine.Actor{User: "alice", Host: "ops", Remote: "10.1.2.3"}})
	mustUntil(t, run, gateWaiting(engine.GateApproval))
	// The snapshot's instances come from the engine's poll of the
	// platform: give it polls until it has seen the canary.
	for range 5 {
		env.Clock.Advance(time.Second)
		run.Idle()
		if len(run.Release.Snapshot().Instances) == 5 {
			break
		}
	}
	s := run.Release.Snapshot()
	if s.State != engine.ReleaseWaiting || s.Gate == nil || s.Gate.Gate.Kind != engine.GateApproval || s.Step != 2 {
		t.Fatalf("state %s gate %+v step %d", s.State, s.Gate, s.Step)
	}
	if s.To.Version != "1.1.0" || len(s.From) != 1 || s.From[0].Version != "1.0.0" || s.Strategy != engine.Canary {
		t.Errorf("from/to %+v → %+v", s.From, s.To)
	}
	if len(s.Instances) != 5 || share(s.Table, "1.1.0") != 10 || s.Elapsed <= 0 || s.Actor.Remote != "10.1.2.3" {
		t.Errorf("instances %d table %+v elapsed %s", len(s.Instances), s.Table, s.Elapsed)
	}
	for _, in := range s.Instances {
		if in.Role == "new" && (!in.Healthy || in.Health.Status != engine.HealthHealthy || in.Weight != 1000) {
			t.Errorf("new instance view %+v", in)
		}
	}
}

// A subscriber that never reads does not hold the release up.
func TestSlowSubscriberDoesNotBlockTheEngine(t *testing.T) {
	env := seeded(4)
	rel, _ := engine.New(env.Deps(), baseSpec(engine.StrategySpec{Type: engine.Rolling}), target, engine.Options{})
	stuck, cancel := rel.Subscribe()
	defer cancel()
	run := env.Start(t, rel)
	mustWait(t, run, engine.Succeeded)
	n := 0
	missed := 0
	for ev := range stuck {
		n++
		missed += ev.Missed
	}
	evs, _ := env.Journal.Events(t.Context(), rel.ID())
	if n+missed < len(evs) && n < 256 {
		t.Errorf("stuck subscriber got %d (+%d missed) of %d", n, missed, len(evs))
	}
	if len(evs) != len(run.Events()) {
		t.Errorf("journal has %d events, subscriber %d", len(evs), len(run.Events()))
	}
}

// Releasing the version that already serves everything repairs a service
// that lost an instance: the replacement joins the table and the dead
// backend leaves it, instead of "already runs" or a replacement without
// traffic.
func TestReleasingTheRunningVersionReplacesALostInstance(t *testing.T) {
	env := seeded(4)
	dead := env.Platform.Running("1.0.0")[0].ID
	env.Platform.Crash(dead)
	spec := canarySpec(engine.CanaryStep{Weight: 50, Gate: approval()})
	again := engine.Target{Image: "img:1.0.0", Version: "1.0.0"}
	rel, err := engine.New(env.Deps(), spec, again, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	run := env.Start(t, rel)
	mustWait(t, run, engine.Succeeded)
	if p := rel.Plan(); !p.Repair || !strings.Contains(p.String(), "repair 1.0.0") {
		t.Errorf("plan is not marked a repair:\n%s", p)
	}
	table := env.Router.Table()
	if len(table.Backends) != 4 {
		t.Fatalf("table has %d backends after the repair, want 4: %+v", len(table.Backends), table)
	}
	for _, b := range table.Backends {
		if b.ID == dead {
			t.Errorf("the crashed instance %s is still in the table", dead)
		}
		if b.Weight == 0 {
			t.Errorf("backend %s has no traffic", b.ID)
		}
	}
	assertSafe(t, env)
}

// A rollback of a repair keeps the version that serves; a rollback of a
// first deploy empties the table instead of writing all-zero weights.
func TestRollbackOfARepairKeepsTheServingVersion(t *testing.T) {
	env := seeded(4)
	env.Platform.Crash(env.Platform.Running("1.0.0")[0].ID)
	env.Platform.Behave("1.0.0", enginetest.Behavior{Unhealthy: true})
	spec := canarySpec(engine.CanaryStep{Weight: 50, Gate: approval()})
	rel, err := engine.New(env.Deps(), spec, engine.Target{Image: "img:1.0.0", Version: "1.0.0"}, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	run := env.Start(t, rel)
	mustUntil(t, run, kind(engine.EventLaunched))
	if err := rel.Send(engine.CmdRollback); err != nil {
		t.Fatal(err)
	}
	run.Wait()
	if got := len(env.Platform.Running("1.0.0")); got < 3 {
		t.Fatalf("%d instances of 1.0.0 left running after rolling back a repair, want the 3 that served", got)
	}
	table := env.Router.Table()
	if table.Share("1.0.0") != 1 {
		t.Errorf("table after the rollback %+v: want all traffic on 1.0.0", table)
	}
	assertSafe(t, env)
}

// Two writers that read the same epoch both claim the next one: the first
// to write owns it and the second is fenced out, instead of both going on.
func TestSecondWriterClaimingTheSameEpochIsFencedOut(t *testing.T) {
	env := seeded(4)
	spec := canarySpec(engine.CanaryStep{Weight: 10, Gate: approval()})
	run := startOn(t, env, spec, engine.Options{})
	mustUntil(t, run, gateWaiting(engine.GateApproval))
	mine := env.Router.Table()
	// Another writer that read the epoch before this release claimed it.
	other := engine.RouteTable{Epoch: mine.Epoch, Writer: "someone-else", Backends: mine.Backends}
	if err := env.Router.Apply(t.Context(), other); !errors.Is(err, engine.ErrStaleEpoch) {
		t.Fatalf("a second writer at the same epoch: %v, want ErrStaleEpoch", err)
	}
}

// A standalone rollback is a takeover: if a deploy claimed the epoch it
// read, it claims the next one and writes anyway.
func TestStandaloneRollbackWinsAgainstAWriterThatClaimedItsEpoch(t *testing.T) {
	env := seeded(4)
	// Between the rollback's read of epoch E and its write, a deploy that
	// also read E claims E+1.
	var once sync.Once
	env.Router.BeforeApply = func() { once.Do(func() { env.Router.TakeOver(env.Router.Table().Epoch + 1) }) }
	rb, err := engine.NewRollback(env.Deps(), canarySpec(), engine.Target{Image: "img:1.0.0", Version: "1.0.0"}, "", engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	run := env.Start(t, rb)
	o, _ := run.Wait()
	if o != engine.RolledBack && o != engine.Succeeded {
		t.Fatalf("rollback outcome %s, want it to take over and finish", o)
	}
	if tb := env.Router.Table(); tb.Share("1.0.0") != 1 {
		t.Errorf("table after the rollback %+v", tb)
	}
}

// A canary that Docker restarted after a crash looks healthy again to a
// probe; the engine still counts the restart as a crash of an instance it
// watches, and the failure policy applies.
func TestACanaryRestartedByThePlatformIsACrash(t *testing.T) {
	env := seeded(4)
	spec := canarySpec(engine.CanaryStep{Weight: 10, Gate: approval()})
	spec.OnFailure.AfterTraffic = engine.FailRollback
	run := startOn(t, env, spec, engine.Options{})
	mustUntil(t, run, gateWaiting(engine.GateApproval))
	canary := env.Platform.Running("1.1.0")[0].ID
	env.Platform.SetHealth(canary, &engine.Health{Status: engine.HealthHealthy, Restarts: 1})
	ev := mustUntil(t, run, kind(engine.EventUnhealthy))
	if !strings.Contains(ev.Message+ev.Error+ev.Health.Detail, "restarted 1 times since launch") {
		t.Errorf("unhealthy event %+v does not say it restarted", ev)
	}
	mustWait(t, run, engine.RolledBack)
	assertSafe(t, env)
}
