package engine_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/enginetest"
)

func ptr(f float64) *float64 { return &f }

// errorRate is a query in the shape a config holds, its template filled
// in when the window starts.
func errorRate(max float64) engine.QuerySpec {
	return engine.QuerySpec{Name: "error-rate", Interval: 10 * time.Second, Max: ptr(max), ConsecutiveErrorLimit: 2,
		Query: `sum(rate(reqs{version="{{.Canary}}",class="5xx"}[{{.Window}}])) / sum(rate(reqs{version="{{.Canary}}"}[{{.Window}}]))`}
}

func TestAnalysisShowsRunningFiguresAgainstEachLimitBeforeTheVerdict(t *testing.T) {
	env := seeded(4)
	env.Router.ServeOnState("1.1.0", 10, 1, 20)
	env.Router.ServeOnState("1.0.0", 90, 0, 20)
	a := engine.AnalysisSpec{Window: time.Minute, MaxErrorRate: 0.01, MaxP99: 500 * time.Millisecond, MinRequests: 50}
	run := startOn(t, env, canarySpec(engine.CanaryStep{Weight: 10, Gate: analysis(a)}), engine.Options{Detach: true})

	progress := mustUntil(t, run, kind(engine.EventAnalysisProgress))
	res := progress.Analysis
	if res == nil || res.Verdict != engine.VerdictPending || res.Elapsed <= 0 || res.Left() <= 0 {
		t.Fatalf("progress event %+v, want the figures so far with time left", progress)
	}
	byName := map[string]engine.Check{}
	for _, c := range res.Checks {
		byName[c.Name] = c
	}
	if c := byName["error rate"]; c.OK || c.Measured != "10%" || c.Limit != "1%" {
		t.Errorf("error rate check %+v: want 10%% against 1%%, failing", c)
	}
	if c := byName["requests"]; c.Limit != "≥ 50" || c.Measured == "" {
		t.Errorf("requests check %+v: want the requests so far against min_requests", c)
	}
	if !strings.Contains(progress.Message, "error rate 10% > 1%") || !strings.Contains(progress.Message, "of 1m") {
		t.Errorf("progress message %q", progress.Message)
	}
	// The snapshot shows the same figures, refreshed on the engine's tick.
	run.Idle()
	g := run.Release.Snapshot().Gate
	if g == nil || g.Analysis == nil || g.Analysis.Verdict != engine.VerdictPending || g.Analysis.Elapsed < res.Elapsed {
		t.Fatalf("snapshot gate %+v, want live analysis figures at least as fresh as the event", g)
	}

	verdict := mustUntil(t, run, kind(engine.EventGateFailed))
	if v := verdict.Analysis; v == nil || v.Verdict != engine.VerdictFailed || v.Elapsed != time.Minute || len(v.Checks) != 3 || v.Requests == 0 {
		t.Fatalf("verdict %+v, want every value it judged", verdict.Analysis)
	}
	mustWait(t, run, engine.Failed)
}

func TestQueryFailureFailsTheGateBeforeTheWindowEnds(t *testing.T) {
	env := seeded(4)
	env.Metrics.Answer(`version="1.1.0",class="5xx"`, 0.4)
	a := engine.AnalysisSpec{Window: 5 * time.Minute, Queries: []engine.QuerySpec{errorRate(0.05)}}
	run := startOn(t, env, canarySpec(engine.CanaryStep{Weight: 10, Gate: analysis(a)}), engine.Options{Detach: true})
	ev := mustUntil(t, run, kind(engine.EventGateFailed))
	res := ev.Analysis
	if res == nil || len(res.Queries) != 1 {
		t.Fatalf("verdict %+v", ev)
	}
	q := res.Queries[0]
	if q.Verdict != engine.VerdictFailed || q.Measured != "0.4" || q.Failed != 1 || q.Measurements != 1 {
		t.Errorf("query check %+v: want one failed measurement of 0.4", q)
	}
	if res.Elapsed >= a.Window || !strings.Contains(ev.Message, "error-rate 0.4, want ≤ 0.05") {
		t.Errorf("verdict after %s of %s: %q; want the failure at once, naming the value and the limit", res.Elapsed, a.Window, ev.Message)
	}
	// The template was filled in with the release's versions and window.
	if got := env.Metrics.Queries(); len(got) != 1 || !strings.Contains(got[0], `version="1.1.0",class="5xx"}[300s]`) {
		t.Errorf("queries sent %q", got)
	}
	mustWait(t, run, engine.Failed)
}

func TestQueryWithinItsLimitsPassesAfterEveryMeasurement(t *testing.T) {
	env := seeded(4)
	env.Metrics.Answer(`class="5xx"`, 0.01)
	a := engine.AnalysisSpec{Window: time.Minute, Queries: []engine.QuerySpec{errorRate(0.05)}}
	run := startOn(t, env, canarySpec(engine.CanaryStep{Weight: 10, Gate: analysis(a)}), engine.Options{})
	ev := mustUntil(t, run, kind(engine.EventGatePassed))
	q := ev.Analysis.Queries[0]
	// Every 10s within the minute, and once at its end.
	if q.Verdict != engine.VerdictPassed || q.Measurements != 6 || ev.Analysis.Checks != nil {
		t.Errorf("query %+v, checks %+v: want 6 passed measurements and no router checks (none set)", q, ev.Analysis.Checks)
	}
	mustWait(t, run, engine.Succeeded)
}

func TestQueryWithNoDataOrNaNPausesAsInconclusiveNeverPasses(t *testing.T) {
	for name, answer := range map[string]func(m *enginetest.Metrics){
		"empty result": func(m *enginetest.Metrics) {}, // no rule: no series
		"NaN":          func(m *enginetest.Metrics) { m.Answer("5xx", math.NaN()) },
	} {
		t.Run(name, func(t *testing.T) {
			env := seeded(4)
			answer(env.Metrics)
			spec := canarySpec(engine.CanaryStep{Weight: 10, Gate: analysis(engine.AnalysisSpec{Window: time.Minute, Queries: []engine.QuerySpec{errorRate(0.05)}})})
			spec.OnFailure.AfterTraffic = engine.FailRollback
			run := startOn(t, env, spec, engine.Options{})
			ev := mustUntil(t, run, kind(engine.EventInconclusive))
			if q := ev.Analysis.Queries[0]; q.Verdict != engine.VerdictInconclusive || q.Inconclusive != 1 {
				t.Errorf("query %+v", q)
			}
			mustUntil(t, run, kind(engine.EventPaused))
			if share(env.Router.Table(), "1.1.0") != 10 {
				t.Error("an inconclusive query must leave the traffic as it is, whatever the policy says")
			}
		})
	}
}

func TestQueryErrorsFailTheGateOnlyPastTheConsecutiveLimit(t *testing.T) {
	env := seeded(4)
	calls := 0
	env.Metrics.AnswerWith("5xx", func() (float64, error) {
		calls++
		if calls%3 != 0 { // two errors, then an answer: never three in a row
			return 0, errors.New("connection refused")
		}
		return 0.01, nil
	})
	a := engine.AnalysisSpec{Window: time.Minute, Queries: []engine.QuerySpec{errorRate(0.05)}}
	run := startOn(t, env, canarySpec(engine.CanaryStep{Weight: 10, Gate: analysis(a)}), engine.Options{Detach: true})
	ev := mustUntil(t, run, kind(engine.EventGatePassed))
	if q := ev.Analysis.Queries[0]; q.Errors != 4 || q.Verdict != engine.VerdictPassed {
		t.Errorf("query %+v: want errors tolerated below the limit", q)
	}
	run.Wait()

	env = seeded(4)
	env.Metrics.Fail("5xx", errors.New("connection refused"))
	run = startOn(t, env, canarySpec(engine.CanaryStep{Weight: 10, Gate: analysis(a)}), engine.Options{Detach: true})
	ev = mustUntil(t, run, kind(engine.EventGateFailed))
	if q := ev.Analysis.Queries[0]; q.ConsecutiveErrors != 3 || !strings.Contains(ev.Message, "3 errors in a row, consecutive_error_limit 2") ||
		!strings.Contains(ev.Message, "connection refused") {
		t.Errorf("query %+v, message %q", q, ev.Message)
	}
	mustWait(t, run, engine.Failed)
}

func TestQueriesAndRouterLimitsAreJudgedTogether(t *testing.T) {
	env := seeded(4)
	env.Router.ServeOnState("1.1.0", 10, 0, 20)
	env.Metrics.Answer("5xx", 0.01)
	a := engine.AnalysisSpec{Window: time.Minute, MinRequests: 100000, Queries: []engine.QuerySpec{errorRate(0.05)}}
	run := startOn(t, env, canarySpec(engine.CanaryStep{Weight: 10, Gate: analysis(a)}), engine.Options{Detach: true})
	ev := mustUntil(t, run, kind(engine.EventInconclusive))
	if !strings.Contains(ev.Message, "100,000 needed") || ev.Analysis.Queries[0].Verdict != engine.VerdictPassed {
		t.Errorf("a passing query must not hide too few requests: %q", ev.Message)
	}
	mustWait(t, run, engine.Failed)
}

func TestNewRefusesQueriesWithoutAMetricsSource(t *testing.T) {
	env := seeded(4)
	deps := env.Deps()
	deps.Metrics = nil
	spec := canarySpec(engine.CanaryStep{Weight: 10, Gate: analysis(engine.AnalysisSpec{Window: time.Minute, Queries: []engine.QuerySpec{errorRate(0.05)}})})
	if _, err := engine.New(deps, spec, target, engine.Options{}); err == nil || !strings.Contains(err.Error(), "prometheus.url") {
		t.Fatalf("New: %v, want a refusal naming what is missing", err)
	}
	bad := errorRate(0.05)
	bad.Query = "{{.Canry}}"
	spec = canarySpec(engine.CanaryStep{Weight: 10, Gate: analysis(engine.AnalysisSpec{Window: time.Minute, Queries: []engine.QuerySpec{bad}})})
	if _, err := engine.New(env.Deps(), spec, target, engine.Options{}); err == nil || !strings.Contains(err.Error(), "Canry") {
		t.Fatalf("New with a bad template: %v", err)
	}
}

func TestWebhookGatePassesOn2xxAndFailsOtherwise(t *testing.T) {
	hook := engine.Gate{Kind: engine.GateWebhook, Webhook: engine.WebhookSpec{URL: "http://hooks.test/confirm"}}
	env := seeded(4)
	run := startOn(t, env, canarySpec(engine.CanaryStep{Weight: 10, Gate: hook}), engine.Options{})
	mustUntil(t, run, kind(engine.EventGatePassed))
	mustWait(t, run, engine.Succeeded)
	if asked := env.Webhooks.Asked(); len(asked) != 1 || asked[0].Release == "" || asked[0].Gate.Webhook.URL != hook.Webhook.URL {
		t.Errorf("asked %+v", asked)
	}

	env = seeded(4)
	env.Webhooks.AnswerWith(errors.New("answered 503 Service Unavailable"))
	run = startOn(t, env, canarySpec(engine.CanaryStep{Weight: 10, Gate: hook}), engine.Options{Detach: true})
	ev := mustUntil(t, run, kind(engine.EventGateFailed))
	if !strings.Contains(ev.Message, "503") {
		t.Errorf("gate-failed %q", ev.Message)
	}
	mustWait(t, run, engine.Failed)
	if share(env.Router.Table(), "1.1.0") != 10 {
		t.Error("a failed webhook after traffic pauses by default, leaving the traffic")
	}
}

func TestRollbackEventsNameTheOperator(t *testing.T) {
	env := seeded(4)
	run := startOn(t, env, canarySpec(engine.CanaryStep{Weight: 10, Gate: approval()}), engine.Options{Actor: engine.Actor{User: "alice", Host: "ops"}})
	mustUntil(t, run, gateWaiting(engine.GateApproval))
	if err := run.Release.Do(engine.Order{Command: engine.CmdRollback, By: engine.Actor{User: "bob", Host: "laptop"}}); err != nil {
		t.Fatal(err)
	}
	back := mustUntil(t, run, kind(engine.EventRollingBack))
	end := mustUntil(t, run, kind(engine.EventFinished))
	for _, ev := range []engine.Event{back, end} {
		if ev.Actor == nil || ev.Actor.User != "bob" {
			t.Errorf("%s event actor %+v, want bob", ev.Kind, ev.Actor)
		}
	}
}

func TestAnalysisLinesSayEachLimitAndWhetherItHolds(t *testing.T) {
	res := engine.AnalysisResult{
		Checks: []engine.Check{{Name: "requests", Measured: "12", Limit: "≥ 50"}, {Name: "error rate", Measured: "0.2%", Limit: "1%", OK: true}},
		Queries: []engine.QueryCheck{
			{Name: "error-rate", Limit: "≤ 0.05", Measured: "0.4", Last: engine.MeasuredFailed, Measurements: 2, Verdict: engine.VerdictPending},
			{Name: "p99", Limit: "≤ 0.5", Verdict: engine.VerdictPending},
		}}
	want := []engine.CheckLine{
		{Text: "requests 12 < 50"},
		{Text: "error rate 0.2% ≤ 1%", OK: true},
		{Text: "error-rate 0.4, want ≤ 0.05 [2 measurements]"},
		{Text: "p99 not measured yet, want ≤ 0.5", OK: true, Waiting: true},
	}
	got := res.Lines()
	if len(got) != len(want) {
		t.Fatalf("lines %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}
