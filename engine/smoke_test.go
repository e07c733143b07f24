package engine_test

import (
	"testing"

	"github.com/cutover/cutover/engine"
)

func TestCanaryRunsToCompletion(t *testing.T) {
	spec := canarySpec(
		engine.CanaryStep{Weight: 10, Gate: approval()},
		engine.CanaryStep{Weight: 50, Gate: pause(30e9)},
	)
	env, run := start(t, spec, engine.Options{})
	if _, ok := run.Until(gateWaiting(engine.GateApproval)); !ok {
		t.Fatal("no approval gate")
	}
	if err := run.Release.Send(engine.CmdApprove); err != nil {
		t.Fatal(err)
	}
	mustWait(t, run, engine.Succeeded)
	t.Log(messages(run.Events()))
	assertSafe(t, env)
	if got := len(env.Platform.Running("1.1.0")); got != 4 {
		t.Errorf("running 1.1.0: %d", got)
	}
	if got := len(env.Platform.Running("1.0.0")); got != 0 {
		t.Errorf("running 1.0.0: %d", got)
	}
}
