package engine_test

import (
	"errors"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/enginetest"
)

// where sets up a release and runs it to one kind of step, then returns.
type where struct {
	name  string
	setup func(t *testing.T) (*enginetest.Env, *enginetest.Run)
	// applicable says which commands mean something there.
	applicable  map[engine.Command]bool
	rollingBack bool
}

var allCommands = []engine.Command{engine.CmdApprove, engine.CmdPause, engine.CmdResume, engine.CmdPromote, engine.CmdRollback, engine.CmdAbort}

func normal(extra ...engine.Command) map[engine.Command]bool {
	m := map[engine.Command]bool{engine.CmdPause: true, engine.CmdPromote: true, engine.CmdRollback: true, engine.CmdAbort: true}
	for _, c := range extra {
		m[c] = true
	}
	return m
}

func wheres() []where {
	return []where{
		{name: "launch", applicable: normal(), setup: func(t *testing.T) (*enginetest.Env, *enginetest.Run) {
			env := seeded(4)
			env.Platform.Behave("1.1.0", enginetest.Behavior{Starting: 3})
			run := startOn(t, env, canarySpec(engine.CanaryStep{Weight: 10, Gate: pause(10 * time.Second)}), engine.Options{})
			mustUntil(t, run, kind(engine.EventLaunched))
			return env, run
		}},
		{name: "approval gate", applicable: normal(engine.CmdApprove), setup: func(t *testing.T) (*enginetest.Env, *enginetest.Run) {
			env := seeded(4)
			run := startOn(t, env, canarySpec(engine.CanaryStep{Weight: 10, Gate: approval()}), engine.Options{})
			mustUntil(t, run, gateWaiting(engine.GateApproval))
			return env, run
		}},
		{name: "pause gate", applicable: normal(), setup: func(t *testing.T) (*enginetest.Env, *enginetest.Run) {
			env := seeded(4)
			run := startOn(t, env, canarySpec(engine.CanaryStep{Weight: 10, Gate: pause(time.Minute)}), engine.Options{})
			mustUntil(t, run, gateWaiting(engine.GatePause))
			return env, run
		}},
		{name: "analysis gate", applicable: normal(), setup: func(t *testing.T) (*enginetest.Env, *enginetest.Run) {
			env := seeded(4)
			env.Router.ServeOnState("1.1.0", 20, 0, 20)
			env.Router.ServeOnState("1.0.0", 180, 0, 20)
			a := engine.AnalysisSpec{Window: time.Minute, MaxErrorRate: 0.01, MinRequests: 10}
			run := startOn(t, env, canarySpec(engine.CanaryStep{Weight: 10, Gate: analysis(a)}), engine.Options{})
			mustUntil(t, run, gateWaiting(engine.GateAnalysis))
			return env, run
		}},
		{name: "drain", applicable: normal(), setup: func(t *testing.T) (*enginetest.Env, *enginetest.Run) {
			env := seeded(4)
			env.Router.SetInFlight("c001", 3)
			run := startOn(t, env, canarySpec(engine.CanaryStep{Weight: 10}), engine.Options{})
			mustUntil(t, run, kind(engine.EventDraining))
			return env, run
		}},
		{name: "finalize launch", applicable: normal(), setup: func(t *testing.T) (*enginetest.Env, *enginetest.Run) {
			env := seeded(4)
			run := startOn(t, env, canarySpec(engine.CanaryStep{Weight: 10, Gate: pause(time.Second)}), engine.Options{})
			mustUntil(t, run, gateWaiting(engine.GatePause))
			env.Platform.Behave("1.1.0", enginetest.Behavior{Starting: 3})
			mustUntil(t, run, kind(engine.EventLaunched))
			return env, run
		}},
		{name: "rollback in progress", applicable: map[engine.Command]bool{engine.CmdAbort: true}, rollingBack: true,
			setup: func(t *testing.T) (*enginetest.Env, *enginetest.Run) {
				env := seeded(4)
				run := startOn(t, env, canarySpec(engine.CanaryStep{Weight: 10, Gate: approval()}), engine.Options{})
				ev := mustUntil(t, run, kind(engine.EventHealthy))
				env.Router.SetInFlight(ev.Instance.ID, 2)
				mustUntil(t, run, gateWaiting(engine.GateApproval))
				if err := run.Release.Send(engine.CmdRollback); err != nil {
					t.Fatal(err)
				}
				mustUntil(t, run, kind(engine.EventDraining))
				return env, run
			}},
	}
}

func startOn(t *testing.T, env *enginetest.Env, spec engine.ServiceSpec, opts engine.Options) *enginetest.Run {
	t.Helper()
	rel, err := engine.New(env.Deps(), spec, target, opts)
	if err != nil {
		t.Fatal(err)
	}
	return env.Start(t, rel)
}

func mustUntil(t *testing.T, run *enginetest.Run, pred func(engine.Event) bool) engine.Event {
	t.Helper()
	ev, ok := run.Until(pred)
	if !ok {
		t.Fatalf("run ended before the awaited event; events:\n%s", messages(run.Events()))
	}
	return ev
}

// finish drives the run to its end, approving any approval gate.
func finish(t *testing.T, run *enginetest.Run) (engine.Outcome, error) {
	t.Helper()
	run.Idle()
	if s := run.Release.Snapshot(); s.State == engine.ReleaseWaiting {
		// The gate may pass (an approve already sent) between the look
		// and the send: then there is nothing to approve, which is fine.
		if err := run.Release.Send(engine.CmdApprove); err != nil && !errors.Is(err, engine.ErrNotApplicable) {
			t.Fatal(err)
		}
	}
	for {
		ev, ok := run.Until(func(ev engine.Event) bool {
			return ev.Kind == engine.EventFinished || ev.Kind == engine.EventGateWaiting && ev.Gate.Kind == engine.GateApproval
		})
		if !ok || ev.Kind == engine.EventFinished {
			return run.Wait()
		}
		if err := run.Release.Send(engine.CmdApprove); err != nil && !errors.Is(err, engine.ErrNotApplicable) {
			t.Fatal(err)
		}
	}
}

func TestCommandsAtEveryKindOfStep(t *testing.T) {
	for _, w := range wheres() {
		for _, cmd := range allCommands {
			t.Run(w.name+"/"+string(cmd), func(t *testing.T) {
				env, run := w.setup(t)
				err := run.Release.Send(cmd)
				if !w.applicable[cmd] {
					if !errors.Is(err, engine.ErrNotApplicable) {
						t.Fatalf("Send(%s) = %v, want ErrNotApplicable", cmd, err)
					}
					want := engine.Succeeded
					if w.rollingBack {
						want = engine.RolledBack
					}
					if o, err := finish(t, run); o != want {
						t.Fatalf("outcome %s (%v), want %s:\n%s", o, err, want, messages(run.Events()))
					}
					assertSafe(t, env)
					return
				}
				if err != nil {
					t.Fatalf("Send(%s): %v", cmd, err)
				}
				switch cmd {
				case engine.CmdApprove:
					expectOutcome(t, run, engine.Succeeded)
					expectFleet(t, env, "1.1.0")
				case engine.CmdPause:
					mustUntil(t, run, kind(engine.EventPaused))
					run.Idle()
					before := len(env.Trace.Mutations())
					for range 120 { // two minutes paused: longer than any gate or timeout here
						env.Clock.Advance(time.Second)
						run.Idle()
					}
					if got := env.Trace.Mutations(); len(got) != before {
						t.Fatalf("mutations while paused: %v", got[before:])
					}
					if s := run.Release.Snapshot(); s.State != engine.ReleasePaused {
						t.Fatalf("state %s while paused", s.State)
					}
					if err := run.Release.Send(engine.CmdResume); err != nil {
						t.Fatal(err)
					}
					mustUntil(t, run, kind(engine.EventResumed))
					expectOutcome(t, run, engine.Succeeded)
					expectFleet(t, env, "1.1.0")
				case engine.CmdPromote:
					expectOutcome(t, run, engine.Succeeded)
					expectFleet(t, env, "1.1.0")
				case engine.CmdRollback:
					expectOutcome(t, run, engine.RolledBack)
					expectFleet(t, env, "1.0.0")
				case engine.CmdAbort:
					before := len(env.Trace.Mutations())
					if o, _ := run.Wait(); o != engine.Aborted {
						t.Fatalf("outcome %s:\n%s", o, messages(run.Events()))
					}
					if got := env.Trace.Mutations(); len(got) > before+1 {
						t.Errorf("abort went on mutating: %v", got[before:])
					}
					rec, err := env.Journal.Release(t.Context(), run.Release.ID())
					if err != nil || rec.State != engine.ReleaseAborted {
						t.Errorf("journal record %+v %v", rec.State, err)
					}
				}
				assertSafe(t, env)
			})
		}
	}
}

func expectOutcome(t *testing.T, run *enginetest.Run, want engine.Outcome) {
	t.Helper()
	if o, err := finish(t, run); o != want {
		t.Fatalf("outcome %s (%v), want %s:\n%s", o, err, want, messages(run.Events()))
	}
}

// expectFleet checks that only version runs, 4 of it, with all the traffic.
func expectFleet(t *testing.T, env *enginetest.Env, version string) {
	t.Helper()
	insts, _ := env.Platform.Instances(t.Context(), svc)
	n := 0
	for _, in := range insts {
		if in.Version != version {
			t.Errorf("%s (%s) still running", in.Name, in.Version)
			continue
		}
		n++
	}
	if n != 4 {
		t.Errorf("%d × %s running, want 4", n, version)
	}
	tab := env.Router.Table()
	if share(tab, version) != 100 || len(tab.Backends) != 4 {
		t.Errorf("table %+v, want 4 backends of %s with all traffic", tab, version)
	}
}
