package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/enginetest"
)

// figures builds router stats before and after a window of traffic.
func figures(t *testing.T, traffic func(r *enginetest.Router)) (engine.Stats, engine.Stats) {
	t.Helper()
	r := enginetest.NewRouter(nil)
	r.Serve("1.1.0", 1000, 0, 20) // history before the window must not count
	r.Serve("1.0.0", 9000, 0, 20)
	_, start, _ := r.State(t.Context())
	traffic(r)
	_, end, _ := r.State(t.Context())
	return start, end
}

func TestAnalysis(t *testing.T) {
	spec := engine.AnalysisSpec{Window: time.Minute, MaxErrorRate: 0.01, MaxP99: 500 * time.Millisecond,
		MaxErrorRateVsStable: 2, MinRequests: 50}
	cases := []struct {
		name    string
		spec    engine.AnalysisSpec
		traffic func(r *enginetest.Router)
		verdict engine.Verdict
		message string
	}{
		{"passes within limits", spec, func(r *enginetest.Router) {
			r.Serve("1.1.0", 1232, 2, 90)
			r.Serve("1.1.0", 2, 0, 120)
			r.Serve("1.0.0", 5000, 10, 90)
		}, engine.VerdictPassed, "analysis passed: error rate 0.16% ≤ 1%, p99 100ms ≤ 500ms, error rate vs stable 0.16% ≤ 0.4% (2× stable 0.2%), 1,234 requests"},
		{"fails on absolute error rate", spec, func(r *enginetest.Router) {
			r.Serve("1.1.0", 200, 6, 20)
			r.Serve("1.0.0", 2000, 60, 20)
		}, engine.VerdictFailed, "error rate 3% > 1%"},
		{"fails relative to stable", spec, func(r *enginetest.Router) {
			r.Serve("1.1.0", 1000, 8, 20)
			r.Serve("1.0.0", 10000, 10, 20)
		}, engine.VerdictFailed, "error rate vs stable 0.8% > 0.2% (2× stable 0.1%)"},
		{"fails on p99", spec, func(r *enginetest.Router) {
			r.Serve("1.1.0", 100, 0, 20)
			r.Serve("1.1.0", 5, 0, 900)
		}, engine.VerdictFailed, "p99 1s > 500ms"},
		{"fails p99 relative to stable", engine.AnalysisSpec{Window: time.Minute, MaxP99VsStable: 1.5, MinRequests: 10}, func(r *enginetest.Router) {
			r.Serve("1.1.0", 100, 0, 240)
			r.Serve("1.0.0", 100, 0, 90)
		}, engine.VerdictFailed, "p99 vs stable 250ms > 150ms (1.5× stable 100ms)"},
		{"skips relative checks when stable is idle", spec, func(r *enginetest.Router) {
			r.Serve("1.1.0", 100, 0, 20)
			r.Serve("1.0.0", 3, 3, 20)
		}, engine.VerdictPassed, "analysis passed: error rate 0% ≤ 1%, p99 25ms ≤ 500ms, 100 requests"},
		{"is inconclusive when idle", spec, func(r *enginetest.Router) {
			r.Serve("1.1.0", 12, 0, 20)
		}, engine.VerdictInconclusive, "analysis inconclusive: 12 requests to 1.1.0 in 1m, 50 needed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start, end := figures(t, c.traffic)
			res := engine.Analyze(c.spec, start, end, "1.1.0", "1.0.0")
			if res.Verdict != c.verdict || !strings.Contains(res.Message, c.message) {
				t.Errorf("verdict %s %q\nwant %s containing %q", res.Verdict, res.Message, c.verdict, c.message)
			}
		})
	}
}

func TestAnalysisGateFailureAfterTrafficPausesWithTheFiguresInTheEvent(t *testing.T) {
	env := seeded(4)
	env.Router.ServeOnState("1.1.0", 100, 10, 20)
	env.Router.ServeOnState("1.0.0", 900, 0, 20)
	a := engine.AnalysisSpec{Window: time.Minute, MaxErrorRate: 0.01, MinRequests: 50}
	run := startOn(t, env, canarySpec(engine.CanaryStep{Weight: 10, Gate: analysis(a)}), engine.Options{Detach: true})
	ev := mustUntil(t, run, kind(engine.EventGateFailed))
	if ev.Analysis == nil || ev.Analysis.ErrorRate != 0.1 || !strings.Contains(ev.Message, "error rate 10% > 1%") {
		t.Fatalf("event %+v", ev)
	}
	mustWait(t, run, engine.Failed)
	if share(env.Router.Table(), "1.1.0") != 10 {
		t.Errorf("a pause must leave the traffic as it was")
	}
}

func TestAnalysisInconclusivePausesEvenWhenPolicySaysRollback(t *testing.T) {
	env := seeded(4)
	spec := canarySpec(engine.CanaryStep{Weight: 10, Gate: analysis(engine.AnalysisSpec{Window: time.Minute, MaxErrorRate: 0.01, MinRequests: 50})})
	spec.OnFailure.AfterTraffic = engine.FailRollback
	run := startOn(t, env, spec, engine.Options{})
	mustUntil(t, run, kind(engine.EventInconclusive))
	ev := mustUntil(t, run, kind(engine.EventPaused))
	if !strings.Contains(ev.Message, "inconclusive") {
		t.Errorf("pause message %q", ev.Message)
	}
	// With traffic now, resume re-runs the window and passes.
	env.Router.ServeOnState("1.1.0", 100, 0, 20)
	if err := run.Release.Send(engine.CmdResume); err != nil {
		t.Fatal(err)
	}
	mustUntil(t, run, kind(engine.EventGatePassed))
	mustWait(t, run, engine.Succeeded)
}

// A headless run cannot be resumed by anyone: with DetachOnFailure a pause
// on failure ends Run (Failed, resumable), while approval gates still wait.
func TestDetachOnFailureEndsRunAtAFailurePauseButNotAtAGate(t *testing.T) {
	env := seeded(4)
	spec := canarySpec(
		engine.CanaryStep{Weight: 10, Gate: approval()},
		engine.CanaryStep{Weight: 20, Gate: analysis(engine.AnalysisSpec{Window: time.Minute, MaxErrorRate: 0.01, MinRequests: 50})},
	)
	run := startOn(t, env, spec, engine.Options{DetachOnFailure: true})
	mustUntil(t, run, gateWaiting(engine.GateApproval))
	if err := run.Release.Send(engine.CmdApprove); err != nil {
		t.Fatal(err)
	}
	mustUntil(t, run, kind(engine.EventInconclusive))
	mustWait(t, run, engine.Failed)
	if share(env.Router.Table(), "1.1.0") != 20 {
		t.Errorf("detaching on a failure changed the traffic")
	}
	rec, _ := env.Journal.Release(t.Context(), run.Release.ID())
	if rec.State.Finished() {
		t.Errorf("journal state %s: the release must stay resumable", rec.State)
	}
}

// A router that restarted inside the window starts its counters again; even
// when they have grown past the window's start, the difference means nothing.
func TestAnalysisAcrossARouterRestartIsInconclusive(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	stats := func(started time.Time, requests int64) engine.Stats {
		return engine.Stats{Started: started, Versions: []engine.VersionStats{
			{Version: "1.1.0", Totals: engine.Totals{Requests: requests, Class2xx: requests}},
		}}
	}
	spec := engine.AnalysisSpec{Window: time.Minute, MaxErrorRate: 0.01, MinRequests: 10}
	res := engine.Analyze(spec, stats(t0, 100), stats(t0.Add(30*time.Second), 500), "1.1.0", "1.0.0")
	if res.Verdict != engine.VerdictInconclusive || !strings.Contains(res.Message, "restarted") {
		t.Errorf("verdict %s %q, want inconclusive naming the restart", res.Verdict, res.Message)
	}
	if res := engine.Analyze(spec, stats(t0, 100), stats(t0, 500), "1.1.0", "1.0.0"); res.Verdict != engine.VerdictPassed {
		t.Errorf("same router: verdict %s %q, want pass", res.Verdict, res.Message)
	}
}
