package engine_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/enginetest"
)

// rollbackFrom runs a standalone rollback of spec to 1.0.0 as another
// process would (`cutover rollback`), undoing the release id.
func rollbackFrom(t *testing.T, env *enginetest.Env, spec engine.ServiceSpec, id string) {
	t.Helper()
	deps := env.Deps()
	deps.Owner.PID = 2000
	o, err := engine.Rollback(context.Background(), deps, spec, engine.Target{Version: "1.0.0", Image: "img:1.0.0"}, id,
		engine.Options{Actor: engine.Actor{User: "oncall"}})
	if o != engine.RolledBack || err != nil {
		t.Errorf("standalone rollback: %s %v", o, err)
	}
}

// A takeover in the middle of a batch of launches: the fenced-out process
// launches nothing after it, and removes the instance whose launch was in
// flight when it happened. The rollback leaves only stable.
func TestTakeoverMidLaunchBatchLeavesNoInstanceOfTheFencedRelease(t *testing.T) {
	env := seeded(4)
	spec := canarySpec(engine.CanaryStep{Weight: 75, Gate: approval()})
	spec.Strategy.Canary.Instances = 3
	var mu sync.Mutex
	launches := 0
	var id string
	env.Platform.BeforeLaunch = func(s engine.InstanceSpec) {
		mu.Lock()
		launches++
		n := launches
		mu.Unlock()
		if s.Version == "1.1.0" && n == 2 {
			rollbackFrom(t, env, spec, id) // while the second launch is in flight
		}
	}
	rel, err := engine.New(env.Deps(), spec, target, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id = rel.ID()
	run := env.Start(t, rel)
	mustWait(t, run, engine.TakenOver)
	expectFleet(t, env, "1.0.0")
	n := 0
	for _, c := range env.Platform.Calls() {
		if c == "launch 1.1.0" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d launches of 1.1.0, want 2: none after the takeover; calls %v", n, env.Platform.Calls())
	}
	assertSafe(t, env)
}

// A takeover while a batch of stops retires blue after a blue/green
// switch: the rollback swaps back to the blue instances that are not being
// stopped, and the fenced process stops none of them.
func TestTakeoverMidStopBatchStopsNoInstanceTheRollbackServesFrom(t *testing.T) {
	env := seeded(4)
	spec := baseSpec(engine.StrategySpec{Type: engine.BlueGreen, BlueGreen: engine.BlueGreenSpec{RollbackWindow: time.Second}})
	var id string
	var once sync.Once
	var stoppedFirst string
	env.Platform.BeforeStop = func(sid string) {
		if in, ok := env.Platform.Get(sid); ok && in.Version == "1.0.0" {
			once.Do(func() {
				stoppedFirst = sid
				rollbackFrom(t, env, spec, id) // while the first stop of blue is in flight
			})
		}
	}
	rel, err := engine.New(env.Deps(), spec, target, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id = rel.ID()
	run := env.Start(t, rel)
	mustWait(t, run, engine.TakenOver)
	if stoppedFirst == "" {
		t.Fatal("the release never stopped a blue instance")
	}
	stops := 0
	for _, c := range env.Platform.Calls() {
		if strings.HasPrefix(c, "stop ") {
			if in, ok := env.Platform.Get(strings.TrimPrefix(c, "stop ")); ok && in.Version == "1.0.0" {
				t.Errorf("%s was stopped but still listed", in.Name)
			}
			stops++
		}
	}
	// Blue: the one stop in flight; green: stopped by the rollback.
	running := env.Platform.Running("1.0.0")
	if len(running) != 4 {
		// The rollback brings stable back to 4 after the stop it could not prevent.
		t.Errorf("%d × 1.0.0 running after the rollback, want 4", len(running))
	}
	if len(env.Platform.Running("1.1.0")) != 0 {
		t.Error("green still runs after the rollback")
	}
	if v := env.Router.Violations(); len(v) > 0 {
		t.Errorf("rule 1: %v", v)
	}
	if v := env.Platform.Violations(); len(v) > 0 {
		t.Errorf("an instance was stopped while it had traffic: %v", v)
	}
}

// A slow stop never makes a live owner look dead: the heartbeat runs
// beside it, so a plain second deploy is still refused.
func TestASlowStopKeepsTheLeaseAlive(t *testing.T) {
	env := seeded(4)
	spec := baseSpec(engine.StrategySpec{Type: engine.Rolling, Rolling: engine.RollingSpec{BatchSize: 1}})
	hold := make(chan struct{})
	held := make(chan struct{})
	var once sync.Once
	env.Platform.BeforeStop = func(string) {
		once.Do(func() {
			close(held)
			<-hold
		})
	}
	run := startOn(t, env, spec, engine.Options{})
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(hold) }) })
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatalf("no stop; events:\n%s", messages(run.Events()))
	}
	for range 5 { // 25s of a stop that does not return
		env.Clock.Advance(engine.HeartbeatEvery)
		waitHeartbeat(t, env, env.Clock.Now())
	}
	second, err := engine.New(env.Deps(), spec, engine.Target{Image: "img:1.2.0", Version: "1.2.0"}, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := second.Run(context.Background()); !errors.Is(err, engine.ErrLeaseHeld) {
		t.Errorf("a second deploy during a 25s stop: %v, want ErrLeaseHeld", err)
	}
	release.Do(func() { close(hold) })
	mustWait(t, run, engine.Succeeded)
}

// An approval is bound to the gate it was given for: a second approve sent
// at the same gate (a y typed twice) passes nothing more.
func TestADoubleApprovePassesOneGate(t *testing.T) {
	env := seeded(4)
	spec := canarySpec(engine.CanaryStep{Weight: 10, Gate: approval()}, engine.CanaryStep{Weight: 50, Gate: approval()})
	run := startOn(t, env, spec, engine.Options{})
	mustUntil(t, run, gateWaiting(engine.GateApproval))
	for range 2 {
		if err := run.Release.Send(engine.CmdApprove); err != nil {
			t.Fatal(err)
		}
	}
	mustUntil(t, run, gateWaiting(engine.GateApproval))
	refused := mustUntil(t, run, func(ev engine.Event) bool {
		return ev.Kind == engine.EventCommand && ev.Command == engine.CmdApprove && strings.Contains(ev.Message, "refused")
	})
	if !strings.Contains(refused.Message, "canary step 1") || !strings.Contains(refused.Message, "canary step 2") {
		t.Errorf("the refusal does not say which gate it was for and which waits: %s", refused.Message)
	}
	run.Idle()
	sn := run.Release.Snapshot()
	if sn.State != engine.ReleaseWaiting || sn.Gate == nil || sn.Gate.Gate.Key != "canary step 2" {
		t.Fatalf("state %s gate %+v: the second approve passed the second gate", sn.State, sn.Gate)
	}
	if got := share(env.Router.Table(), "1.1.0"); got != 50 {
		t.Errorf("1.1.0 has %d%%, want 50%% (waiting at the second gate)", got)
	}
	if err := run.Release.Approve("canary step 1", engine.Actor{User: "bob"}); !errors.Is(err, engine.ErrNotApplicable) {
		t.Errorf("an approval for the passed gate: %v, want ErrNotApplicable", err)
	}
	if err := run.Release.Approve("canary step 2", engine.Actor{User: "bob"}); err != nil {
		t.Fatal(err)
	}
	mustWait(t, run, engine.Succeeded)
}

// A canary instance that crashed while a detached release waited at its
// gate is judged when `cutover approve` resumes it: the failure policy
// applies and the gate is not passed.
func TestACrashAtTheGateOfADetachedReleaseIsJudgedOnApprove(t *testing.T) {
	for _, policy := range []engine.FailureAction{engine.FailRollback, engine.FailPause} {
		t.Run(string(policy), func(t *testing.T) {
			env := seeded(4)
			spec := canarySpec(engine.CanaryStep{Weight: 25, Gate: approval()}, engine.CanaryStep{Weight: 50, Gate: approval()})
			spec.OnFailure.AfterTraffic = policy
			run := startOn(t, env, spec, engine.Options{Detach: true})
			mustWait(t, run, engine.WaitingForApproval)
			canary := env.Platform.Running("1.1.0")
			if len(canary) != 1 {
				t.Fatalf("canary instances %v", canary)
			}
			env.Platform.Crash(canary[0].ID)

			run = startOn(t, env, spec, engine.Options{ID: run.Release.ID(), Detach: true,
				Approve: &engine.Order{Command: engine.CmdApprove, Gate: "canary step 1", By: engine.Actor{User: "alice"}}})
			want := engine.RolledBack
			if policy == engine.FailPause {
				want = engine.Failed
			}
			err := mustWait(t, run, want)
			if err == nil || !strings.Contains(err.Error(), "exited with code 137") {
				t.Errorf("error %v does not say the canary crashed", err)
			}
			for _, ev := range run.Events() {
				if ev.Kind == engine.EventGatePassed {
					t.Errorf("a gate passed: %s", ev.Message)
				}
			}
			if policy == engine.FailRollback {
				expectFleet(t, env, "1.0.0")
			}
			assertSafe(t, env)
		})
	}
}

// A launch killed between creating and starting its container leaves a
// created container: resuming replaces it at once rather than waiting a
// start timeout for it.
func TestResumeReplacesAnInstanceCreatedButNeverStarted(t *testing.T) {
	env := seeded(4)
	spec := canarySpec(engine.CanaryStep{Weight: 25, Gate: pause(time.Second)})
	var rel *engine.Release
	var once sync.Once
	env.Platform.BeforeLaunch = func(engine.InstanceSpec) { once.Do(func() { _ = rel.Send(engine.CmdAbort) }) }
	rel, err := engine.New(env.Deps(), spec, target, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	run := env.Start(t, rel)
	mustWait(t, run, engine.Aborted)
	env.Platform.BeforeLaunch = nil
	for _, in := range env.Platform.Running("1.1.0") {
		_ = env.Platform.Stop(context.Background(), in.ID, 0) // as if the kill came before the start
	}
	created := env.Platform.SeedCreated(svc, "1.1.0", "img:1.1.0", run.Release.ID())

	start := env.Clock.Now()
	run = startOn(t, env, spec, engine.Options{ID: run.Release.ID()})
	mustWait(t, run, engine.Succeeded)
	if _, ok := env.Platform.Get(created.ID); ok {
		t.Error("the created container is still there")
	}
	if took := env.Clock.Now().Sub(start); took >= spec.StartTimeout {
		t.Errorf("the resume took %s: it waited for the created container", took)
	}
	expectFleet(t, env, "1.1.0")
	assertSafe(t, env)
}

// The console's rollback swaps the traffic back at once, even while the
// release waits for a slow Docker launch; the launch's instance is removed
// once it returns.
func TestRollbackSwapsWhileALaunchIsInFlight(t *testing.T) {
	env := seeded(4)
	spec := canarySpec(engine.CanaryStep{Weight: 25, Gate: approval()}, engine.CanaryStep{Weight: 75, Gate: approval()})
	hold := make(chan struct{})
	held := make(chan struct{})
	var once sync.Once
	env.Platform.BeforeLaunch = func(s engine.InstanceSpec) {
		if len(env.Platform.Running("1.1.0")) >= 1 { // a launch beyond the first canary
			once.Do(func() {
				close(held)
				<-hold
			})
		}
	}
	run := startOn(t, env, spec, engine.Options{})
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(hold) }) })
	mustUntil(t, run, gateWaiting(engine.GateApproval))
	if err := run.Release.Send(engine.CmdApprove); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatalf("no second launch; events:\n%s", messages(run.Events()))
	}
	if got := share(env.Router.Table(), "1.1.0"); got != 25 {
		t.Fatalf("1.1.0 has %d%% before the rollback, want 25%%", got)
	}
	if err := run.Release.Send(engine.CmdRollback); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for share(env.Router.Table(), "1.0.0") != 100 {
		if time.Now().After(deadline) {
			t.Fatalf("the traffic did not go back to stable while the launch was in flight: %+v", env.Router.Table())
		}
		time.Sleep(time.Millisecond)
	}
	release.Do(func() { close(hold) })
	mustWait(t, run, engine.RolledBack)
	expectFleet(t, env, "1.0.0")
	assertSafe(t, env)
}

// Failures of Docker calls in the middle of a batch pause or roll back as
// on_failure says, and the journal records what happened.
func TestPlatformFailuresMidBatchFollowThePolicy(t *testing.T) {
	boom := errors.New("Docker host does not answer")
	cases := []struct {
		name string
		arm  func(p *enginetest.Platform) // makes one call in the middle of a batch fail
	}{
		{"launch before traffic", func(p *enginetest.Platform) { p.FailNext("launch", nil, boom) }},
		{"stop after traffic", func(p *enginetest.Platform) { p.FailNext("stop", nil, boom) }},
		{"instances after traffic", func(p *enginetest.Platform) {
			var once sync.Once
			p.BeforeStop = func(string) { once.Do(func() { p.FailNext("instances", boom) }) }
		}},
	}
	for _, c := range cases {
		for _, policy := range []engine.FailureAction{engine.FailRollback, engine.FailPause} {
			t.Run(c.name+"/"+string(policy), func(t *testing.T) {
				env := seeded(4)
				spec := baseSpec(engine.StrategySpec{Type: engine.Rolling, Rolling: engine.RollingSpec{BatchSize: 2}})
				spec.OnFailure = engine.FailurePolicy{BeforeTraffic: policy, AfterTraffic: policy}
				c.arm(env.Platform)
				run := startOn(t, env, spec, engine.Options{DetachOnFailure: true})
				want := engine.RolledBack
				if policy == engine.FailPause {
					want = engine.Failed
				}
				err := mustWait(t, run, want)
				if err == nil || !strings.Contains(err.Error(), boom.Error()) {
					t.Errorf("error %v does not carry the Docker failure", err)
				}
				rec, jerr := env.Journal.Release(context.Background(), run.Release.ID())
				if jerr != nil {
					t.Fatal(jerr)
				}
				wantState := engine.ReleaseRolledBack
				if policy == engine.FailPause {
					wantState = engine.ReleaseFailed
				}
				if rec.State != wantState || !strings.Contains(rec.Error, boom.Error()) {
					t.Errorf("journal record %s %q, want %s with the failure", rec.State, rec.Error, wantState)
				}
				evs, _ := env.Journal.Events(context.Background(), run.Release.ID())
				failure := false
				for _, ev := range evs {
					failure = failure || ev.Kind == engine.EventFailure && strings.Contains(ev.Error, boom.Error())
				}
				if !failure {
					t.Errorf("no failure event with the Docker error in the journal:\n%s", messages(evs))
				}
				if policy == engine.FailRollback {
					expectFleet(t, env, "1.0.0")
				}
				assertSafe(t, env)
			})
		}
	}
}

// A standalone rollback swaps from the router's table alone: nothing asks
// the platform before the swap is applied.
func TestStandaloneRollbackSwapsBeforeAskingThePlatform(t *testing.T) {
	env := seeded(4)
	spec := canarySpec(engine.CanaryStep{Weight: 50, Gate: approval()})
	run := startOn(t, env, spec, engine.Options{Detach: true})
	mustWait(t, run, engine.WaitingForApproval)
	mark := env.Trace.Len()
	rollbackFrom(t, env, spec, run.Release.ID())
	var before []string
	for _, l := range env.Trace.Lines()[mark:] {
		if l == "router:apply" {
			break
		}
		if strings.HasPrefix(l, "platform:") {
			before = append(before, l)
		}
	}
	if len(before) > 0 {
		t.Errorf("the rollback asked the platform before its swap: %v\n%v", before, env.Trace.Lines()[mark:])
	}
	expectFleet(t, env, "1.0.0")
}

// No writer claims an epoch it could not be fenced out of.
func TestARouterAtTheLastEpochIsRefusedWithNothingChanged(t *testing.T) {
	env := seeded(4)
	tab := env.Router.Table()
	tab.Epoch = engine.MaxEpoch
	env.Router.Seed(tab)
	rel, err := engine.New(env.Deps(), canarySpec(engine.CanaryStep{Weight: 10}), target, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	o, err := rel.Run(context.Background())
	if o != "" || err == nil || !strings.Contains(err.Error(), "epoch") {
		t.Errorf("outcome %q, error %v: want a refusal naming the epoch", o, err)
	}
	if len(env.Platform.Calls()) > 0 || len(env.Router.Applied()) > 0 {
		t.Errorf("something changed: %v %v", env.Platform.Calls(), env.Router.Applied())
	}
}

// A rollback while a rolling batch has taken a stable instance out of
// rotation (weight 0, to be retired) puts it back in rotation: the whole
// stable fleet serves again, not the part that was serving at the swap.
func TestRollbackMidRollingBatchPutsTheOutOfRotationInstanceBack(t *testing.T) {
	env := seeded(4)
	for _, in := range env.Platform.Running("1.0.0") {
		env.Router.SetInFlight(in.ID, 1) // the batch's drain waits: its instance stays, at weight 0
	}
	spec := baseSpec(engine.StrategySpec{Type: engine.Rolling, Rolling: engine.RollingSpec{BatchSize: 1}})
	run := startOn(t, env, spec, engine.Options{})
	mustUntil(t, run, kind(engine.EventDraining))
	rollbackFrom(t, env, spec, run.Release.ID())
	mustWait(t, run, engine.TakenOver)
	expectFleet(t, env, "1.0.0")
	for _, b := range env.Router.Table().Backends {
		if b.Weight == 0 {
			t.Errorf("stable backend %s left at weight 0 after the rollback: %+v", b.ID, env.Router.Table())
		}
	}
	assertSafe(t, env)
}

// A rollback whose swap finds the table already all on stable still
// writes it: that write claims the rollback's epoch at the router, so a
// table the old writer has on its way there is refused.
func TestRollbackClaimsTheEpochEvenWhenTheTableIsAlreadyOnStable(t *testing.T) {
	env := seeded(4)
	spec := baseSpec(engine.StrategySpec{Type: engine.BlueGreen, BlueGreen: engine.BlueGreenSpec{Approval: true}})
	run := startOn(t, env, spec, engine.Options{Detach: true})
	mustWait(t, run, engine.WaitingForApproval) // green launched, all traffic still on blue
	before := env.Router.Table()
	if share(before, "1.0.0") != 100 {
		t.Fatalf("table before the rollback %+v", before)
	}
	// The old writer's switch to green, computed before the takeover.
	stale := engine.RouteTable{Epoch: before.Epoch, Writer: before.Writer}
	for _, in := range env.Platform.Running("1.1.0") {
		stale.Backends = append(stale.Backends, engine.Backend{ID: in.ID, Addr: in.Addr, Version: in.Version, Weight: 2500})
	}
	rollbackFrom(t, env, spec, run.Release.ID())
	if err := env.Router.Apply(context.Background(), stale); !errors.Is(err, engine.ErrStaleEpoch) {
		t.Errorf("the old writer's switch (epoch %d, writer %s) after the rollback: %v, want it fenced out", stale.Epoch, stale.Writer, err)
	}
	expectFleet(t, env, "1.0.0")
}

// Two runs of one release (two approves): the one that takes the lease
// second plans and claims on what it reads once the lease is its own,
// never on what it read before, so it neither undoes the first run's
// progress nor passes a gate the first run already passed.
func TestASecondRunOfAReleaseActsOnlyOnWhatItReadsHoldingTheLease(t *testing.T) {
	env := seeded(4)
	spec := canarySpec(engine.CanaryStep{Weight: 25, Gate: approval()}, engine.CanaryStep{Weight: 50, Gate: approval()})
	first := startOn(t, env, spec, engine.Options{Detach: true})
	mustWait(t, first, engine.WaitingForApproval)
	id := first.Release.ID()
	approve := func(by string) engine.Options {
		return engine.Options{ID: id, Detach: true, Approve: &engine.Order{Command: engine.CmdApprove, Gate: "canary step 1", By: engine.Actor{User: by}}}
	}
	// The late run reads the router, then, before it takes the lease,
	// the other run passes gate 1 and stops at gate 2.
	var ran atomic.Bool
	env.Journal.BeforeWrite = func(kind string) {
		if kind != "begin" || !ran.CompareAndSwap(false, true) {
			return
		}
		rel, err := engine.New(env.Deps(), spec, target, approve("alice"))
		if err != nil {
			t.Error(err)
			return
		}
		if o, err := rel.Run(context.Background()); o != engine.WaitingForApproval {
			t.Errorf("the first approve: %s %v", o, err)
		}
	}
	late := startOn(t, env, spec, approve("bob"))
	mustWait(t, late, engine.WaitingForApproval)
	if got := share(env.Router.Table(), "1.1.0"); got != 50 {
		t.Errorf("1.1.0 has %d%% after both approves, want 50%% (waiting at gate 2)", got)
	}
	passed := 0
	for _, ev := range late.Events() {
		if ev.Kind == engine.EventGatePassed {
			passed++
		}
	}
	if passed != 0 {
		t.Errorf("the late approve passed %d gates, want none: its approval was for a gate already passed\n%s", passed, messages(late.Events()))
	}
	assertSafe(t, env)
}
