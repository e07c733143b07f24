package engine

import (
	"context"
	"strings"
	"time"
)

// analysisProgressEvery is how often a running analysis window journals
// and publishes its figures so far (EventAnalysisProgress): often enough
// for `cutover status` and the event stream to show them, rarely enough
// that a long window adds a few dozen events, not thousands.
const analysisProgressEvery = 5 * time.Second

// analysisWindow is one uninterrupted run of an analysis gate's window:
// the router's figures from its start, and each query's measurements.
// A pause starts a new one.
type analysisWindow struct {
	spec    AnalysisSpec
	version string
	stable  string
	start   Stats // the router's figures when the window began
	queries []*queryRun
}

func newAnalysisWindow(spec AnalysisSpec, service, version, stable string, start Stats) *analysisWindow {
	w := &analysisWindow{spec: spec, version: version, stable: stable, start: start}
	vars := QueryVars{Service: service, Canary: version, Stable: stable, Window: promDuration(spec.Window)}
	for _, q := range spec.Queries {
		w.queries = append(w.queries, newQueryRun(q, vars))
	}
	return w
}

// measure takes the queries' measurements due at elapsed (all of them at
// the window's end) and reports whether one of them settled the window
// early: a query failed, or passed its inconclusive limit.
func (w *analysisWindow) measure(ctx context.Context, src MetricsSource, elapsed time.Duration, now time.Time, end bool) bool {
	settled := false
	for _, q := range w.queries {
		if q.due(elapsed, end) {
			q.measure(ctx, src, elapsed, now)
		}
		if end {
			q.settle(true)
		}
		settled = settled || q.check.Verdict == VerdictFailed || q.check.Verdict == VerdictInconclusive
	}
	return settled
}

// result is the window's figures at elapsed, against the router's
// figures in stats. While the window runs (not final) and no query has
// settled it, the verdict is pending.
func (w *analysisWindow) result(stats Stats, elapsed time.Duration, now time.Time, final bool) AnalysisResult {
	res := AnalysisResult{Verdict: VerdictPassed, Window: w.spec.Window, Elapsed: min(elapsed, w.spec.Window), At: now,
		Version: w.version, Stable: w.stable}
	var parts []string
	if w.spec.judgesRouter() {
		v, text := res.judgeRouter(w.spec, w.start, stats, final)
		res.Verdict, parts = v, append(parts, text)
	}
	for _, q := range w.queries {
		res.Queries = append(res.Queries, q.check)
		parts = append(parts, q.check.Summary())
		v := q.check.Verdict
		if v == VerdictPending && final {
			v = VerdictInconclusive // not measured: never a pass
		}
		if v.worse(res.Verdict) {
			res.Verdict = v
		}
	}
	if !final && res.Verdict == VerdictPassed {
		res.Verdict = VerdictPending
	}
	head := "analysis " + string(res.Verdict)
	if res.Verdict == VerdictPending {
		head = "analysis " + fmtDuration(res.Elapsed.Round(time.Second)) + " of " + fmtDuration(res.Window)
	}
	res.Message = head + ": " + strings.Join(parts, "; ")
	return res
}
