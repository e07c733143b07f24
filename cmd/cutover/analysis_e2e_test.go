package main

// End-to-end proof of analysis on a real Prometheus and of webhooks: the
// binary, the real router (scraped by Prometheus over its TCP admin
// address), the real Docker engine, load running the whole time, and
// receivers run by the test.

import (
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/notify"
	"github.com/cutover/cutover/engine/prometheus/promtest"
)

// errorRateQuery is the canary's share of failed requests over the
// window, from the router's metrics as Prometheus scraped them.
const errorRateQuery = `sum(rate(cutover_router_version_requests_total{job="{{.Service}}",version="{{.Canary}}",class=~"5xx|proxy_error"}[{{.Window}}]))
              / sum(rate(cutover_router_version_requests_total{job="{{.Service}}",version="{{.Canary}}"}[{{.Window}}]))`

// promCanary is a canary judged by one query alone: half the traffic for
// 3s (so the canary's series exist before the window), then a 10s window
// measured every 2s, then all of it.
func promCanary(query string) string {
	return fmt.Sprintf(`type: canary
      canary:
        instances: 1
        steps:
          - weight: 50
            pause: 3s
          - analysis:
              window: 10s
              max_error_rate: 0
              min_requests: 0
              queries:
                - name: error-rate
                  query: |
                    %s
                  max: 0.05
                  interval: 2s
          - weight: 100`, strings.ReplaceAll(query, "\n", "\n                    "))
}

// newPromE2E is a service whose router Prometheus scrapes every second.
func newPromE2E(t *testing.T, strategy string, top string) *e2e {
	t.Helper()
	return newE2EWith(t, e2eService{strategy: strategy, adminTCP: true, top: func(e *e2e) string {
		prom := promtest.Start(t, promtest.Target{Job: e.svc, Addr: e.adminAddr, TokenFile: e.tokenFile})
		return fmt.Sprintf("prometheus: {url: %q}\n%s", prom.URL, top)
	}})
}

func TestPromQLErrorRateFailsTheErroringCanaryAndPassesAGoodOne(t *testing.T) {
	e := newPromE2E(t, promCanary(errorRateQuery), "")
	e.deployV1()
	l := e.startLoad("1.4.0-errors")

	// The good canary: status shows the window's figures while it runs.
	deploy := e.startDeploy("1.1.0")
	events := deploy.events
	progress := waitEvent(t, events, func(ev engine.Event) bool { return ev.Kind == engine.EventAnalysisProgress }, 90*time.Second)
	if q := progress.Analysis.Queries; len(q) != 1 || q[0].Last != engine.MeasuredPassed {
		t.Errorf("progress %+v: want the query measured and passing", progress.Analysis)
	}
	status := e.mustRun(exitOK, "status", e.svc)
	for _, want := range []string{"analysis running", "left", "✓ error-rate 0 ≤ 0.05"} {
		if !strings.Contains(status, want) {
			t.Errorf("status during the window lacks %q:\n%s", want, status)
		}
	}
	passed := waitEvent(t, events, func(ev engine.Event) bool { return ev.Kind == engine.EventGatePassed && ev.Analysis != nil }, 60*time.Second)
	if q := passed.Analysis.Queries[0]; q.Verdict != engine.VerdictPassed || q.Measurements < 5 || q.Measured != "0" {
		t.Errorf("good canary's query %+v: want every measurement at 0", q)
	}
	if code := deploy.wait(60 * time.Second); code != exitOK {
		t.Fatalf("deploy 1.1.0: exit %d", code)
	}
	e.assertFleet("1.1.0", 3)

	// The erroring canary fails on the query, at its first measurement
	// past the demo's 20 good requests, and rolls back.
	out := e.mustRun(exitRolledBack, "deploy", e.svc, "1.4.0-errors", "--auto", "--output", "json")
	l.AssertNoFailures(t)
	e.assertFleet("1.1.0", 3)
	var failed *engine.AnalysisResult
	for _, ev := range decodeEvents(t, out) {
		if ev.Kind == engine.EventGateFailed && ev.Analysis != nil {
			failed = ev.Analysis
		}
	}
	if failed == nil || len(failed.Queries) != 1 {
		t.Fatalf("no analysis gate failed on the query:\n%s", tail(out, 20))
	}
	q := failed.Queries[0]
	t.Logf("erroring canary: %s after %s", q.Summary(), failed.Elapsed)
	if q.Verdict != engine.VerdictFailed || q.Last != engine.MeasuredFailed || !strings.Contains(q.Query, `version="1.4.0-errors"`) {
		t.Errorf("query check %+v", q)
	}
	if failed.Elapsed >= failed.Window {
		t.Errorf("the failing query let the window run to its end (%s): it should fail at once", failed.Elapsed)
	}
}

func TestPromQLQueryWithNoDataPausesTheReleaseAsInconclusive(t *testing.T) {
	nothing := `sum(rate(cutover_router_version_requests_total{job="{{.Service}}",version="{{.Canary}}",class="no-such-class"}[{{.Window}}]))`
	e := newPromE2E(t, promCanary(nothing), "")
	e.deployV1()
	l := e.startLoad()
	_, errs, code := e.run("deploy", e.svc, "1.1.0", "--auto")
	l.AssertNoFailures(t)
	if code != exitFailed || !strings.Contains(errs, "inconclusive") || !strings.Contains(errs, "no data") {
		t.Fatalf("deploy: exit %d, stderr %q; want %d (paused) saying the query had no data", code, errs, exitFailed)
	}
	if got := e.share("1.1.0"); got != 0.5 {
		t.Errorf("the inconclusive canary has %.2f of the traffic, want it left at 0.50", got)
	}
	st := e.mustRun(exitOK, "status", e.svc)
	if !strings.Contains(st, "analysis inconclusive") || !strings.Contains(st, "× error-rate no data") {
		t.Errorf("status of the paused release lacks the verdict:\n%s", st)
	}
	e.mustRun(exitOK, "rollback", e.svc)
	e.assertFleet("1.0.0", 3)
}

// hookReceiver is a webhook endpoint run by the test: it checks each
// body's signature and keeps the events in the order they arrived.
type hookReceiver struct {
	t      testing.TB
	secret []byte
	srv    *httptest.Server
	// delay, when set, is how long it takes to answer (a slow receiver).
	delay time.Duration

	mu      sync.Mutex
	events  []engine.Event
	badSigs int
	asked   int // webhook gate calls
}

func newHookReceiver(t testing.TB, secret string, delay time.Duration) *hookReceiver {
	r := &hookReceiver{t: t, secret: []byte(secret), delay: delay}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if r.delay > 0 {
			select {
			case <-time.After(r.delay): // the slow receiver under test
			case <-req.Context().Done():
				return
			}
		}
		var n engine.Notice
		err := json.Unmarshal(body, &n)
		r.mu.Lock()
		defer r.mu.Unlock()
		if !hmac.Equal([]byte(req.Header.Get(notify.HeaderSignature)), []byte(notify.Sign(r.secret, body))) {
			r.badSigs++
		}
		if err != nil || n.SchemaVersion != engine.NoticeSchemaVersion || n.DeliveryID == "" || req.Header.Get(notify.HeaderDelivery) != n.DeliveryID {
			r.t.Errorf("notice %s: %v", body, err)
		}
		if req.URL.Path == "/confirm" {
			r.asked++
		} else {
			r.events = append(r.events, n.Event)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *hookReceiver) received() []engine.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]engine.Event(nil), r.events...)
}

// hookTop is the notifications block for a receiver at url.
func hookTop(t testing.TB, url, secret string) func(e *e2e) string {
	return func(e *e2e) string {
		if err := os.WriteFile(filepath.Join(e.dir, "hook.secret"), []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("notifications:\n  - url: %s/events\n    secret_file: hook.secret\n    timeout: 2s", url)
	}
}

// hookCanary waits at a webhook gate, then finishes.
func hookCanary(confirm string) string {
	return fmt.Sprintf(`type: canary
      canary:
        instances: 1
        steps:
          - weight: 50
            webhook: {url: %q, timeout: 5s, secret_file: hook.secret}
          - weight: 100`, confirm)
}

func TestWebhookReceiverSeesEveryEventOfAReleaseInOrderSigned(t *testing.T) {
	r := newHookReceiver(t, "hook-secret", 0)
	e := newE2EWith(t, e2eService{strategy: hookCanary(r.srv.URL + "/confirm"), top: hookTop(t, r.srv.URL, "hook-secret")})
	e.deployV1()
	before := len(r.received()) // the first deploy's events
	l := e.startLoad()
	out := e.mustRun(exitOK, "deploy", e.svc, "1.1.0", "--output", "json")
	l.AssertNoFailures(t)
	e.assertFleet("1.1.0", 3)

	var want []string
	for _, ev := range decodeEvents(t, out) {
		if notify.Notable(ev.Kind) {
			want = append(want, fmt.Sprintf("%d %s", ev.Seq, ev.Kind))
		}
	}
	var got []string
	for _, ev := range r.received()[before:] {
		got = append(got, fmt.Sprintf("%d %s", ev.Seq, ev.Kind))
	}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("the receiver saw\n  %s\nthe release's notable events were\n  %s", strings.Join(got, ", "), strings.Join(want, ", "))
	}
	for _, k := range []string{"started", "gate-waiting", "gate-passed", "finished"} {
		if !strings.Contains(strings.Join(got, ","), k) {
			t.Errorf("the receiver never saw %s", k)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.badSigs > 0 || r.asked != 1 {
		t.Errorf("%d bad signatures, %d gate calls (want 0 and 1)", r.badSigs, r.asked)
	}
}

// A webhook gate answered non-2xx fails the gate; the policy rolls back.
func TestWebhookGateThatSaysNoRollsTheCanaryBack(t *testing.T) {
	no := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not today", http.StatusConflict)
	}))
	defer no.Close()
	r := newHookReceiver(t, "hook-secret", 0)
	e := newE2EWith(t, e2eService{strategy: hookCanary(no.URL + "/confirm"), top: hookTop(t, r.srv.URL, "hook-secret")})
	e.deployV1()
	out := e.mustRun(exitRolledBack, "deploy", e.svc, "1.1.0", "--output", "json")
	e.assertFleet("1.0.0", 3)
	if !strings.Contains(out, "webhook gate failed") || !strings.Contains(out, "409 Conflict") {
		t.Errorf("deploy output lacks the gate's failure:\n%s", tail(out, 10))
	}
	var back *engine.Event
	for _, ev := range r.received() {
		if ev.Kind == engine.EventGateFailed || ev.Kind == engine.EventRollingBack {
			back = &ev
		}
	}
	if back == nil {
		t.Error("the receiver was not told of the failed gate and the rollback")
	}
}

// A receiver that is down changes nothing about the release, and what it
// missed is in history.
func TestADownReceiverLeavesTheReleaseAloneAndItsFailuresInHistory(t *testing.T) {
	down := "http://" + freeAddr(t)
	e := newE2EWith(t, e2eService{strategy: canaryYAML, top: hookTop(t, down, "hook-secret")})
	e.deployV1()
	l := e.startLoad()
	out := e.mustRun(exitOK, "deploy", e.svc, "1.1.0", "--output", "json")
	l.AssertNoFailures(t)
	e.assertFleet("1.1.0", 3)
	id := decodeEvents(t, out)[0].Release
	hist := e.mustRun(exitOK, "history", e.svc)
	if !strings.Contains(hist, "succeeded (notifications failed:") {
		t.Errorf("history does not show the failed notifications:\n%s", hist)
	}
	evs := e.mustRun(exitOK, "history", "--release", id)
	if !strings.Contains(evs, "notify-failed") || !strings.Contains(evs, "connection refused") || !strings.Contains(evs, "finished") {
		t.Errorf("the release's events lack its failed notifications:\n%s", tail(evs, 30))
	}
	var recs []engine.ReleaseRecord
	if err := json.Unmarshal([]byte(e.mustRun(exitOK, "history", e.svc, "-o", "json")), &recs); err != nil {
		t.Fatal(err)
	}
	if recs[0].ID != id || recs[0].State != engine.ReleaseSucceeded || recs[0].NotifyFailed == 0 {
		t.Errorf("record %+v: want succeeded, with its failed notifications counted", recs[0])
	}
}

// BenchmarkReleaseTimingWithHealthyDownAndSlowReceivers runs the same
// canary release (25% for 2s, 50% for 2s, 100%) with notifications to a
// healthy receiver, to one that is down and to one that answers after
// 10s, in turn, and reports the median duration of the release (its first
// event to its finished event) and of the deploy process, with their
// ratios to the healthy receiver's. Each b.N is one release per receiver:
//
//	go test ./cmd/cutover -run '^$' -bench ReleaseTiming -benchtime 3x
func BenchmarkReleaseTimingWithHealthyDownAndSlowReceivers(b *testing.B) {
	const strategy = `type: canary
      canary:
        instances: 1
        steps:
          - weight: 25
            pause: 2s
          - weight: 50
            pause: 2s
          - weight: 100`
	kinds := []string{"healthy", "down", "slow"}
	urls := map[string]string{
		"healthy": newHookReceiver(b, "s", 0).srv.URL,
		"down":    "http://" + freeAddr(b),
		"slow":    newHookReceiver(b, "s", 10*time.Second).srv.URL,
	}
	envs := map[string]*e2e{}
	for _, k := range kinds {
		envs[k] = newE2EWith(b, e2eService{strategy: strategy, top: hookTop(b, urls[k], "s")})
		envs[k].deployV1()
	}
	release, process := map[string][]time.Duration{}, map[string][]time.Duration{}
	b.ResetTimer()
	for i := range b.N {
		version := []string{"1.1.0", "1.0.0"}[i%2]
		for _, k := range kinds {
			e := envs[k]
			start := time.Now()
			out := e.mustRun(exitOK, "deploy", e.svc, version, "--auto", "--output", "json")
			process[k] = append(process[k], time.Since(start))
			evs := decodeEvents(b, out)
			release[k] = append(release[k], evs[len(evs)-1].At.Sub(evs[0].At))
		}
	}
	b.StopTimer()
	for _, k := range kinds {
		r, p := median(release[k]), median(process[k])
		b.ReportMetric(r.Seconds(), k+"-release-s")
		b.ReportMetric(p.Seconds(), k+"-process-s")
		if k != "healthy" {
			b.ReportMetric(r.Seconds()/median(release["healthy"]).Seconds(), k+"/healthy-release")
			b.ReportMetric(p.Seconds()/median(process["healthy"]).Seconds(), k+"/healthy-process")
		}
		b.Logf("%s receiver: releases %v, processes %v", k, release[k], process[k])
	}
	for _, k := range []string{"down", "slow"} {
		if hist := envs[k].mustRun(exitOK, "history", envs[k].svc); !strings.Contains(hist, "notifications failed") {
			b.Errorf("%s receiver: history shows no failed notifications:\n%s", k, hist)
		}
	}
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
