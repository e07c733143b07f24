package engine

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Verdict is the result of an analysis window.
type Verdict string

// Verdicts. Inconclusive (too few requests, a query with no data) pauses
// the release whatever the failure policy says: there is nothing to roll
// back for, and nothing to promote on. Pending is a window still running:
// its figures are the ones so far.
const (
	VerdictPending      Verdict = "pending"
	VerdictPassed       Verdict = "passed"
	VerdictFailed       Verdict = "failed"
	VerdictInconclusive Verdict = "inconclusive"
)

// worse says whether v weighs more than w in a combined verdict.
func (v Verdict) worse(w Verdict) bool {
	rank := map[Verdict]int{VerdictPassed: 0, VerdictPending: 1, VerdictInconclusive: 2, VerdictFailed: 3}
	return rank[v] > rank[w]
}

// minRelativeErrorRate is the least error-rate limit a relative check sets,
// so one error against a spotless stable version does not fail a canary.
const minRelativeErrorRate = 0.001

// Check is one limit of an analysis and what was measured against it.
type Check struct {
	Name     string `json:"name"`     // "requests", "error rate", "p99", "error rate vs stable", "p99 vs stable"
	Measured string `json:"measured"` // "0.2%"
	Limit    string `json:"limit"`    // "1%", "≥ 50"
	OK       bool   `json:"ok"`
}

// AnalysisResult is what an analysis window measured and decided: while
// the window runs (Verdict pending), the figures so far, refreshed on the
// engine's tick; at its end, every value the verdict judged.
type AnalysisResult struct {
	Verdict Verdict       `json:"verdict"`
	Window  time.Duration `json:"window"`
	Elapsed time.Duration `json:"elapsed"` // of the window, when these figures were taken
	At      time.Time     `json:"at,omitzero"`
	Version string        `json:"version"`
	Stable  string        `json:"stable,omitempty"`

	Requests  int64   `json:"requests"`
	Errors    int64   `json:"errors"` // 5xx + proxy errors
	ErrorRate float64 `json:"error_rate"`
	P99Ms     float64 `json:"p99_ms"` // upper bound of the bucket holding the 99th percentile; +Inf beyond the last

	StableRequests  int64   `json:"stable_requests"`
	StableErrorRate float64 `json:"stable_error_rate"`
	StableP99Ms     float64 `json:"stable_p99_ms"`

	// Checks are the router's limits; Queries, the metrics server's.
	Checks  []Check      `json:"checks"`
	Queries []QueryCheck `json:"queries,omitempty"`
	Message string       `json:"message"` // "analysis passed: error rate 0.2% ≤ 1%, p99 120ms ≤ 500ms, 1,234 requests"
}

// Left is how much of the window is still to run.
func (a AnalysisResult) Left() time.Duration { return max(0, a.Window-a.Elapsed) }

// Analyze judges the new version over the interval between two router
// snapshots, using the cumulative totals of version and, for the relative
// limits, of stable.
func Analyze(spec AnalysisSpec, start, end Stats, version, stable string) AnalysisResult {
	res := AnalysisResult{Window: spec.Window, Elapsed: spec.Window, Version: version, Stable: stable}
	v, text := res.judgeRouter(spec, start, end, true)
	res.Verdict, res.Message = v, "analysis "+string(v)+": "+text
	return res
}

// judgeRouter fills in the router's figures and checks of version over
// the interval between two snapshots (Elapsed of the window, all of it
// when final) and returns the router's verdict and what it saw, in words.
func (res *AnalysisResult) judgeRouter(spec AnalysisSpec, start, end Stats, final bool) (Verdict, string) {
	version, stable := res.Version, res.Stable
	n, ok := intervalOf(start, end, version)
	if !start.Started.Equal(end.Started) {
		ok = false // the router restarted within the window
	}
	if !ok {
		return VerdictInconclusive, "the router restarted during the window, so its figures do not cover it"
	}
	res.Requests = n.Requests
	res.Errors = n.Class5xx + n.ProxyErrors
	res.ErrorRate = rate(res.Errors, n.Requests)
	res.P99Ms = quantileMs(n.Latency, 0.99)
	if stable != "" {
		if s, ok := intervalOf(start, end, stable); ok {
			res.StableRequests = s.Requests
			res.StableErrorRate = rate(s.Class5xx+s.ProxyErrors, s.Requests)
			res.StableP99Ms = quantileMs(s.Latency, 0.99)
		}
	}
	need := max(spec.MinRequests, 1)
	enough := n.Requests >= need
	res.Checks = append(res.Checks, Check{Name: "requests", Measured: fmtCount(n.Requests), Limit: "≥ " + fmtCount(need), OK: enough})
	if n.Requests > 0 {
		res.addRouterChecks(spec)
	}
	if !enough && final {
		return VerdictInconclusive, fmt.Sprintf("%s requests to %s in %s, %s needed",
			fmtCount(n.Requests), version, fmtDuration(res.Elapsed), fmtCount(need))
	}
	verdict := VerdictPassed
	if !final {
		verdict = VerdictPending
	}
	var parts []string
	for _, c := range res.Checks[1:] {
		op := "≤"
		if !c.OK {
			op = ">"
			if final {
				verdict = VerdictFailed
			}
		}
		parts = append(parts, fmt.Sprintf("%s %s %s %s", c.Name, c.Measured, op, c.Limit))
	}
	count := fmtCount(res.Requests) + " requests"
	if !enough {
		count += " (" + fmtCount(need) + " needed)"
	}
	return verdict, strings.Join(append(parts, count), ", ")
}

// addRouterChecks checks the interval's figures against the limits set.
func (res *AnalysisResult) addRouterChecks(spec AnalysisSpec) {
	if spec.MaxErrorRate > 0 {
		res.Checks = append(res.Checks, Check{Name: "error rate", Measured: fmtPercent(res.ErrorRate),
			Limit: fmtPercent(spec.MaxErrorRate), OK: res.ErrorRate <= spec.MaxErrorRate})
	}
	if spec.MaxP99 > 0 {
		limit := float64(spec.MaxP99) / float64(time.Millisecond)
		res.Checks = append(res.Checks, Check{Name: "p99", Measured: fmtLatency(res.P99Ms),
			Limit: fmtMs(limit), OK: res.P99Ms <= limit})
	}
	stableEnough := res.Stable != "" && res.StableRequests >= max(spec.MinRequests, 1)
	if spec.MaxErrorRateVsStable > 0 && stableEnough {
		limit := math.Max(spec.MaxErrorRateVsStable*res.StableErrorRate, minRelativeErrorRate)
		res.Checks = append(res.Checks, Check{Name: "error rate vs stable", Measured: fmtPercent(res.ErrorRate),
			Limit: fmt.Sprintf("%s (%g× stable %s)", fmtPercent(limit), spec.MaxErrorRateVsStable, fmtPercent(res.StableErrorRate)),
			OK:    res.ErrorRate <= limit})
	}
	if spec.MaxP99VsStable > 0 && stableEnough {
		limit := spec.MaxP99VsStable * res.StableP99Ms
		res.Checks = append(res.Checks, Check{Name: "p99 vs stable", Measured: fmtLatency(res.P99Ms),
			Limit: fmt.Sprintf("%s (%g× stable %s)", fmtLatency(limit), spec.MaxP99VsStable, fmtLatency(res.StableP99Ms)),
			OK:    res.P99Ms <= limit})
	}
}

// intervalOf subtracts version's cumulative totals at start from those at
// end. A version the router has not seen yet counts as zero.
func intervalOf(start, end Stats, version string) (Totals, bool) {
	e, _ := end.Version(version)
	s, _ := start.Version(version)
	a, b := s.Totals, e.Totals
	d := Totals{
		Requests:    b.Requests - a.Requests,
		Class2xx:    b.Class2xx - a.Class2xx,
		Class3xx:    b.Class3xx - a.Class3xx,
		Class4xx:    b.Class4xx - a.Class4xx,
		Class5xx:    b.Class5xx - a.Class5xx,
		ProxyErrors: b.ProxyErrors - a.ProxyErrors,
		Retries:     b.Retries - a.Retries,
	}
	if d.Requests < 0 || d.Class5xx < 0 || d.ProxyErrors < 0 {
		return Totals{}, false
	}
	d.Latency = Histogram{BoundsMs: b.Latency.BoundsMs, Counts: make([]int64, len(b.Latency.Counts))}
	for i, c := range b.Latency.Counts {
		d.Latency.Counts[i] = c
		if len(a.Latency.Counts) == len(b.Latency.Counts) {
			d.Latency.Counts[i] -= a.Latency.Counts[i]
		}
	}
	return d, true
}

// quantileMs reads quantile q from a histogram whose Counts are cumulative
// per bucket (Counts[i] = responses ≤ BoundsMs[i], the last one +Inf). It
// returns the bucket's upper bound: a conservative figure.
func quantileMs(h Histogram, q float64) float64 {
	if len(h.Counts) == 0 {
		return 0
	}
	total := h.Counts[len(h.Counts)-1]
	if total <= 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(total)))
	for i, c := range h.Counts {
		if c >= rank {
			if i < len(h.BoundsMs) {
				return h.BoundsMs[i]
			}
			return math.Inf(1)
		}
	}
	return math.Inf(1)
}

func rate(n, of int64) float64 {
	if of <= 0 {
		return 0
	}
	return float64(n) / float64(of)
}

func fmtLatency(ms float64) string {
	if math.IsInf(ms, 1) {
		return "beyond the last bucket"
	}
	return fmtMs(ms)
}

// CheckLine is one limit of an analysis as a screen shows it: the router's
// checks and the queries alike.
type CheckLine struct {
	Text string // "error rate 10% > 1%", "error-rate 0.031 ≤ 0.05"
	OK   bool   // within the limit now (or not measured yet)
	// Waiting says there is no figure yet (a query before its first
	// measurement).
	Waiting bool
}

// Lines lists every limit with what was measured against it.
func (a AnalysisResult) Lines() []CheckLine {
	var out []CheckLine
	for _, c := range a.Checks {
		op, limit := "≤", c.Limit
		if c.Name == "requests" { // a floor, not a ceiling
			op, limit = "≥", strings.TrimPrefix(c.Limit, "≥ ")
		}
		if !c.OK {
			op = map[string]string{"≤": ">", "≥": "<"}[op]
		}
		out = append(out, CheckLine{Text: c.Name + " " + c.Measured + " " + op + " " + limit, OK: c.OK})
	}
	for _, q := range a.Queries {
		text := q.Summary()
		if q.Measurements > 1 {
			text += fmt.Sprintf(" [%d measurements]", q.Measurements)
		}
		out = append(out, CheckLine{Text: text, OK: q.OK(), Waiting: q.Last == ""})
	}
	return out
}
