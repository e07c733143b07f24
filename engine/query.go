package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// MetricsSource answers an analysis's queries: a metrics server such as
// Prometheus (engine/prometheus). The engine sends the query as written in
// the config with its template filled in.
type MetricsSource interface {
	// Query evaluates query at the server's present and returns its one
	// value. A result with no series is an error wrapping ErrNoData; a NaN
	// value is returned as it is. Both are "no data", never a pass.
	Query(ctx context.Context, query string) (float64, error)
}

// ErrNoData says a query answered with nothing to judge (an empty result).
var ErrNoData = errors.New("no data")

// Default limits of a query, as Argo Rollouts': any failed or inconclusive
// measurement settles the query; errors are tolerated four times in a row.
const (
	DefaultQueryInterval         = 10 * time.Second
	DefaultConsecutiveErrorLimit = 4
)

// QuerySpec is one check of an analysis on a metrics server: Query is
// measured every Interval during the window (and at its end), and each
// value must lie within Min and Max. A measurement is passed, failed,
// inconclusive (no data or NaN) or an error (the query could not be
// answered); more failures than FailureLimit fail the gate, more
// inconclusive ones than InconclusiveLimit pause it, and more errors in a
// row than ConsecutiveErrorLimit fail it.
type QuerySpec struct {
	Name string `json:"name"`
	// Query is a text/template of the query: {{.Service}}, {{.Canary}},
	// {{.Stable}} and {{.Window}} (QueryVars) are filled in.
	Query                 string        `json:"query"`
	Min                   *float64      `json:"min,omitempty"`
	Max                   *float64      `json:"max,omitempty"`
	Interval              time.Duration `json:"interval,omitempty"` // 0: once, at the window's end
	FailureLimit          int           `json:"failure_limit,omitempty"`
	InconclusiveLimit     int           `json:"inconclusive_limit,omitempty"`
	ConsecutiveErrorLimit int           `json:"consecutive_error_limit,omitempty"`
}

// String describes the check as plans print it: "error-rate ≤ 0.05".
func (q QuerySpec) String() string { return q.Name + " " + q.limit() }

// limit is the range a value must lie in: "≤ 0.05", "≥ 0.9", "0.9..1".
func (q QuerySpec) limit() string {
	switch {
	case q.Min != nil && q.Max != nil:
		return fmtValue(*q.Min) + ".." + fmtValue(*q.Max)
	case q.Min != nil:
		return "≥ " + fmtValue(*q.Min)
	case q.Max != nil:
		return "≤ " + fmtValue(*q.Max)
	}
	return "any value"
}

func (q QuerySpec) validate() error {
	if q.Name == "" {
		return errors.New("needs a name")
	}
	if q.Min == nil && q.Max == nil {
		return errors.New("needs a min or a max")
	}
	if q.Min != nil && q.Max != nil && *q.Min > *q.Max {
		return fmt.Errorf("min %s is above max %s", fmtValue(*q.Min), fmtValue(*q.Max))
	}
	_, err := RenderQuery(q.Query, ExampleQueryVars)
	return err
}

// QueryVars are what a query's template may use.
type QueryVars struct {
	Service string // the service released
	Canary  string // the version released
	Stable  string // the version it replaces ("" on a first deploy)
	Window  string // the analysis window in Prometheus' syntax: "60s", "1500ms"
}

// ExampleQueryVars fill a query's template when it is checked before any
// release (cutover config check).
var ExampleQueryVars = QueryVars{Service: "web", Canary: "1.1.0", Stable: "1.0.0", Window: "60s"}

// RenderQuery fills in a query's template. A field the template names
// that QueryVars lacks is an error, so a typo fails the config check.
func RenderQuery(text string, vars QueryVars) (string, error) {
	if strings.TrimSpace(text) == "" {
		return "", errors.New("the query is empty")
	}
	t, err := template.New("query").Option("missingkey=error").Parse(text)
	if err != nil {
		return "", fmt.Errorf("query template: %w", err)
	}
	var b strings.Builder
	if err := t.Execute(&b, vars); err != nil {
		return "", fmt.Errorf("query template: %w", err)
	}
	return b.String(), nil
}

// promDuration writes d in Prometheus' duration syntax, which older
// servers accept only with one unit.
func promDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// Measurement is how one evaluation of a query came out.
type Measurement string

// Measurements.
const (
	MeasuredPassed       Measurement = "passed"
	MeasuredFailed       Measurement = "failed"
	MeasuredInconclusive Measurement = "inconclusive" // no data or NaN
	MeasuredError        Measurement = "error"        // the server could not answer
)

// QueryCheck is what a query measured so far in one window, and the
// verdict once it is settled.
type QueryCheck struct {
	Name  string `json:"name"`
	Query string `json:"query"` // as sent, template filled in
	Limit string `json:"limit"` // "≤ 0.05"
	// Measured is the last value ("0.031"), or why there is none ("no
	// data", the error); Last is how that measurement came out ("" before
	// the first).
	Measured string      `json:"measured"`
	Last     Measurement `json:"last,omitempty"`
	At       time.Time   `json:"at,omitzero"`

	Measurements      int `json:"measurements"`
	Failed            int `json:"failed"`
	Inconclusive      int `json:"inconclusive"`
	Errors            int `json:"errors"`
	ConsecutiveErrors int `json:"consecutive_errors"`
	// Verdict is pending until the query is settled (a limit passed) or
	// the window ends; Reason says why it is what it is.
	Verdict Verdict `json:"verdict"`
	Reason  string  `json:"reason,omitempty"`
}

// OK says the check holds now: not settled against the canary, and its
// last measurement (if any) passed — an error or no data is not a pass.
func (c QueryCheck) OK() bool {
	return c.Verdict != VerdictFailed && c.Verdict != VerdictInconclusive && (c.Last == "" || c.Last == MeasuredPassed)
}

// Summary is one line: "error-rate 0.031 ≤ 0.05", "error-rate 0.6,
// want ≤ 0.05 (1 failed measurement, failure_limit 0)".
func (c QueryCheck) Summary() string {
	var s string
	switch c.Last {
	case "":
		s = c.Name + " not measured yet, want " + c.Limit
	case MeasuredPassed:
		in := c.Limit
		if strings.Contains(in, "..") {
			in = "in " + in
		}
		s = c.Name + " " + c.Measured + " " + in
	default:
		s = c.Name + " " + c.Measured + ", want " + c.Limit
	}
	if c.Reason != "" {
		s += " (" + c.Reason + ")"
	}
	return s
}

// queryRun measures one query through a window.
type queryRun struct {
	spec  QuerySpec
	check QueryCheck
	next  time.Duration // the window's elapsed time at which the next measurement is due
}

func newQueryRun(q QuerySpec, vars QueryVars) *queryRun {
	run := &queryRun{spec: q, next: q.Interval, check: QueryCheck{Name: q.Name, Limit: q.limit(), Verdict: VerdictPending}}
	query, err := RenderQuery(q.Query, vars)
	if err != nil {
		// Checked when the release was made; a failure here is a bug, and
		// fails the query rather than passing it.
		run.check.Verdict, run.check.Reason = VerdictFailed, err.Error()
	}
	run.check.Query = query
	if q.Interval <= 0 {
		run.next = -1 // only at the window's end
	}
	return run
}

// due says whether a measurement is due at elapsed (or at the window's end).
func (q *queryRun) due(elapsed time.Duration, end bool) bool {
	if q.check.Verdict != VerdictPending {
		return false
	}
	return end || (q.next > 0 && elapsed >= q.next)
}

// measure evaluates the query once and settles it when a limit is passed.
func (q *queryRun) measure(ctx context.Context, src MetricsSource, elapsed time.Duration, now time.Time) {
	c := &q.check
	if q.spec.Interval > 0 {
		for q.next <= elapsed {
			q.next += q.spec.Interval
		}
	}
	v, err := src.Query(ctx, c.Query)
	c.Measurements++
	c.At = now
	switch {
	case errors.Is(err, ErrNoData):
		c.Last, c.Measured = MeasuredInconclusive, "no data"
	case err != nil:
		c.Last, c.Measured = MeasuredError, "error: "+err.Error()
	case math.IsNaN(v):
		c.Last, c.Measured = MeasuredInconclusive, "NaN"
	case q.spec.Min != nil && v < *q.spec.Min, q.spec.Max != nil && v > *q.spec.Max:
		c.Last, c.Measured = MeasuredFailed, fmtValue(v)
	default:
		c.Last, c.Measured = MeasuredPassed, fmtValue(v)
	}
	if c.Last == MeasuredError {
		c.Errors++
		c.ConsecutiveErrors++
	} else {
		c.ConsecutiveErrors = 0
	}
	switch c.Last {
	case MeasuredFailed:
		c.Failed++
	case MeasuredInconclusive:
		c.Inconclusive++
	}
	q.settle(false)
}

// settle gives the query its verdict once a limit is passed, or at the
// window's end (final): passed only if some measurement passed.
func (q *queryRun) settle(final bool) {
	c, s := &q.check, q.spec
	if c.Verdict != VerdictPending {
		return
	}
	switch {
	case c.Failed > s.FailureLimit:
		c.Verdict, c.Reason = VerdictFailed, fmt.Sprintf("%d failed measurement%s, failure_limit %d", c.Failed, plural(c.Failed), s.FailureLimit)
	case c.ConsecutiveErrors > s.ConsecutiveErrorLimit:
		c.Verdict, c.Reason = VerdictFailed, fmt.Sprintf("%d errors in a row, consecutive_error_limit %d", c.ConsecutiveErrors, s.ConsecutiveErrorLimit)
	case c.Inconclusive > s.InconclusiveLimit:
		c.Verdict, c.Reason = VerdictInconclusive, fmt.Sprintf("%d measurement%s with no data, inconclusive_limit %d", c.Inconclusive, plural(c.Inconclusive), s.InconclusiveLimit)
	case !final:
	case c.Measurements-c.Failed-c.Inconclusive-c.Errors == 0:
		c.Verdict, c.Reason = VerdictInconclusive, "no measurement passed"
	default:
		c.Verdict = VerdictPassed
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// fmtValue prints a query's value: at most four significant digits.
func fmtValue(v float64) string {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}
