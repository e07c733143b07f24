package engine_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
)

func TestRollbackFirstSaysWhatComesBeforeTheTrafficMoves(t *testing.T) {
	b := func(id, v string, w int) engine.Backend {
		return engine.Backend{ID: id, Addr: "10.0.0.1:80", Version: v, Weight: w}
	}
	spec := baseSpec(engine.StrategySpec{Type: engine.Rolling})
	cases := []struct {
		name  string
		table engine.RouteTable
		want  []string
	}{
		{"canary", engine.RouteTable{Backends: []engine.Backend{b("a", "1.0.0", 7500), b("b", "1.0.0", 0), b("c", "1.1.0", 2500)}}, []string{"one table swap to the 1 serving × 1.0.0", "milliseconds"}},
		{"blue kept warm", engine.RouteTable{Backends: []engine.Backend{b("a", "1.0.0", 0), b("b", "1.0.0", 0), b("c", "1.1.0", 10000)}}, []string{"2 × 1.0.0 kept warm", "probe"}},
		{"late rolling", engine.RouteTable{Backends: []engine.Backend{b("c", "1.1.0", 10000)}}, []string{"no instance of 1.0.0 serves", "4 × 1.0.0 are launched", "start_timeout 30s", "staying where it is"}},
	}
	for _, c := range cases {
		got := engine.RollbackFirst(spec, c.table, "1.0.0")
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q lacks %q", c.name, got, w)
			}
		}
	}
	if got := engine.RollbackFirst(spec, engine.RouteTable{}, ""); !strings.Contains(got, "first deploy") {
		t.Errorf("first deploy: %q", got)
	}
}

// status says what the next approve does: the gate it passes and the
// steps up to the next gate, or, when a canary died meanwhile, the
// failure policy it applies instead.
func TestStatusSaysWhatTheNextApproveWillDo(t *testing.T) {
	env := seeded(4)
	spec := canarySpec(engine.CanaryStep{Weight: 25, Gate: approval()}, engine.CanaryStep{Weight: 50, Gate: pause(time.Minute)})
	spec.OnFailure.AfterTraffic = engine.FailRollback
	run := startOn(t, env, spec, engine.Options{Detach: true})
	mustWait(t, run, engine.WaitingForApproval)
	opts := engine.StatusOptions{Now: env.Clock.Now(), Host: "test-host", Probe: true, Spec: spec}
	st, err := engine.ReadStatus(context.Background(), env.Deps(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if st.Gate == nil || st.Gate.Gate.Key != "canary step 1" {
		t.Fatalf("gate %+v, want canary step 1", st.Gate)
	}
	for _, want := range []string{"cutover approve web", "step 3 (canary step 1)", "shift traffic: 1.0.0 50% → 1.1.0 50%", "pause 1m (and waits there)"} {
		if !strings.Contains(st.Next, want) {
			t.Errorf("next %q lacks %q", st.Next, want)
		}
	}
	if st.RollbackTo.Version != "1.0.0" || !strings.Contains(st.RollbackFirst, "one table swap") {
		t.Errorf("rollback to %+v: %q", st.RollbackTo, st.RollbackFirst)
	}
	if st.Router.Shares["1.1.0"] != 0.25 || len(st.Instances) != 5 {
		t.Errorf("shares %v, %d instances", st.Router.Shares, len(st.Instances))
	}

	env.Platform.Crash(env.Platform.Running("1.1.0")[0].ID)
	st, err = engine.ReadStatus(context.Background(), env.Deps(), opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"only after judging the new instances", "crashed (exited with code 137)", "rolls back to 1.0.0"} {
		if !strings.Contains(st.Next, want) {
			t.Errorf("next after a crash %q lacks %q", st.Next, want)
		}
	}
}

// status reads a running analysis from the journal, so another process
// sees the figures the release journals every few seconds.
func TestStatusShowsTheRunningAnalysisFromTheJournal(t *testing.T) {
	env := seeded(4)
	env.Router.ServeOnState("1.1.0", 10, 1, 20)
	spec := canarySpec(engine.CanaryStep{Weight: 10, Gate: analysis(engine.AnalysisSpec{Window: time.Minute, MaxErrorRate: 0.01, MinRequests: 50})})
	run := startOn(t, env, spec, engine.Options{Detach: true})
	progress := mustUntil(t, run, kind(engine.EventAnalysisProgress))
	run.Idle()
	opts := engine.StatusOptions{Now: env.Clock.Now(), Host: "test-host", Spec: spec}
	st, err := engine.ReadStatus(context.Background(), engine.Deps{Journal: env.Journal}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if st.Analysis == nil || st.Analysis.Verdict != engine.VerdictPending || st.Analysis.Elapsed < progress.Analysis.Elapsed {
		t.Fatalf("status analysis %+v, want the journaled figures so far", st.Analysis)
	}
	mustUntil(t, run, kind(engine.EventGateFailed))
	mustWait(t, run, engine.Failed)
	st, _ = engine.ReadStatus(context.Background(), engine.Deps{Journal: env.Journal}, opts)
	if st.Analysis == nil || st.Analysis.Verdict != engine.VerdictFailed {
		t.Errorf("status of the release paused on its verdict: analysis %+v, want the verdict", st.Analysis)
	}
}
