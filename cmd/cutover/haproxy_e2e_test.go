package main

// End-to-end releases behind a real HAProxy: the binary drives HAProxy's
// runtime API (routers.main.type: haproxy) while the e2e harness's load
// runs through HAProxy's frontend. One HAProxy and one service go through
// every kind of release in turn, so the suite pays for one fleet.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/demo/demotest"
	"github.com/cutover/cutover/engine/haproxy"
	"github.com/cutover/cutover/engine/haproxy/haproxytest"
)

// haE2E is the e2e harness with HAProxy as the service's router, and
// the test's own adapter on the same HAProxy and ledger to check it.
type haE2E struct {
	*e2e
	h      *haproxytest.HAProxy
	router *haproxy.Router
}

func newHAProxyE2E(t *testing.T) *haE2E {
	t.Helper()
	h := haproxytest.Start(t)
	e := &e2e{t: t, refs: demotest.Images(t), bin: demotest.Binary(t), platform: demotest.Docker(t)}
	e.dir = t.TempDir()
	e.svc = fmt.Sprintf("e2e-ha-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	e.listen = h.Setup.Listen
	t.Cleanup(e.removeContainers)
	return &haE2E{e2e: e, h: h, router: h.Router(t)}
}

// canarySteps for the config: a canary that goes all the way, with an
// analysis gate, and one that holds so a test can act mid-canary.
const (
	haCanarySteps = `
          - weight: 25
            pause: 2s
          - weight: 50
            analysis: {window: 3s, max_error_rate: 0.05, min_requests: 10}
          - weight: 100`
	haCanaryHold = `
          - weight: 25
            pause: 10m
          - weight: 100`
	haCanaryBrief = `
          - weight: 25
            pause: 3s
          - weight: 100`
)

// configure writes the service's cutover.yaml: 2 replicas behind the
// HAProxy backend, the canary steps given, and the failure policy after
// traffic. The state directory is the one the test's adapter uses, so
// both share the ledger (its lock and last table).
func (e *haE2E) configure(steps, afterTraffic string) {
	e.t.Helper()
	cfg := fmt.Sprintf(`state_dir: %s
routers:
  main:
    type: haproxy
    listen: %s
    socket: %s
    backend: %s
    map: %s
services:
  %s:
    image: %s
    replicas: 2
    port: 8080
    health: {path: /healthz, interval: 200ms, timeout: 1s, successes: 2, failures: 2}
    start_timeout: 15s
    drain_timeout: 10s
    stop_grace: 2s
    on_failure: {before_traffic: rollback, after_traffic: %s}
    strategy:
      type: canary
      bluegreen: {approval: false, rollback_window: 2s}
      canary:
        instances: 1
        steps:%s
`, e.h.StateDir, e.h.Setup.Listen, e.h.Setup.Socket, e.h.Setup.Backend, e.h.Setup.Map, e.svc, demotest.Repo(), afterTraffic, steps)
	if err := os.WriteFile(filepath.Join(e.dir, "cutover.yaml"), []byte(cfg), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// assertFleet checks the real state: every container and every weighted
// server of HAProxy is of version, and there are n of them.
func (e *haE2E) assertFleet(version string, n int) {
	e.t.Helper()
	insts, err := e.platform.Instances(context.Background(), e.svc)
	if err != nil {
		e.t.Fatal(err)
	}
	var got []string
	ok := len(insts) == n
	for _, in := range insts {
		got = append(got, in.Version+"/"+string(in.State))
		ok = ok && in.Version == version && in.State == engine.StateRunning
	}
	if !ok {
		e.t.Fatalf("containers %v, want %d × %s running", got, n, version)
	}
	table := e.table()
	if len(table.Backends) != n || table.Share(version) != 1 {
		e.t.Fatalf("table read back from HAProxy %+v, want %d backends, all traffic on %s", table, n, version)
	}
	if servers := e.h.Servers(); len(servers) != n {
		e.t.Fatalf("HAProxy has servers %v, want %d", servers, n)
	}
}

// release deploys version with strategy under the e2e load, expecting
// exit, and checks that no request was lost and that 2 × fleet serve
// after it. It returns the release's events and the load's counts.
func (e *haE2E) release(t *testing.T, exit int, version, strategy, fleet string) ([]engine.Event, *demotest.Load) {
	t.Helper()
	e.in(t)
	var excuse []string
	if version == "1.4.0-errors" {
		excuse = append(excuse, version) // its 500s are the point
	}
	l := e.startLoad(excuse...)
	out := e.mustRun(exit, "deploy", e.svc, version, "--strategy", strategy, "--output", "json")
	l.AssertNoFailures(t)
	e.assertFleet(fleet, 2)
	return decodeEvents(t, out), l
}

// in makes the harness report to the subtest t until it ends.
func (e *haE2E) in(t *testing.T) {
	parent := e.t
	e.t = t
	t.Cleanup(func() { e.t = parent })
}

func (e *haE2E) table() engine.RouteTable {
	e.t.Helper()
	table, _, err := e.router.State(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return table
}

// Rolling, blue/green, a canary with analysis, a canary that fails its
// analysis and rolls back, and an emergency rollback from a second
// process: each under load through HAProxy, none losing a request.
func TestReleasesBehindHAProxyLoseNoRequest(t *testing.T) {
	e := newHAProxyE2E(t)
	e.configure(haCanarySteps, "rollback")
	e.mustRun(exitOK, "deploy", e.svc, "1.0.0", "--auto", "--strategy", "rolling")
	e.assertFleet("1.0.0", 2)

	t.Run("rolling", func(t *testing.T) {
		_, l := e.release(t, exitOK, "1.1.0", "rolling", "1.1.0")
		if l.Served("1.1.0") == 0 {
			t.Error("no request reached 1.1.0")
		}
	})
	t.Run("bluegreen", func(t *testing.T) {
		evs, _ := e.release(t, exitOK, "1.0.0", "bluegreen", "1.0.0")
		for _, ev := range evs {
			if w := tableWeights(ev); w["1.0.0"] > 0 && w["1.1.0"] > 0 {
				t.Errorf("blue/green applied a split table: %v", w)
			}
		}
	})
	t.Run("canary", func(t *testing.T) {
		evs, _ := e.release(t, exitOK, "1.1.0", "canary", "1.1.0")
		var shares []float64
		var passed *engine.AnalysisResult
		for _, ev := range evs {
			if ev.Kind == engine.EventApplied && ev.Table != nil {
				shares = append(shares, ev.Table.Share("1.1.0"))
			}
			if ev.Kind == engine.EventGatePassed && ev.Analysis != nil {
				passed = ev.Analysis
			}
		}
		if !containsAll(shares, 0.25, 0.5, 1) {
			t.Errorf("canary shares applied %v, want 25%%, 50%% and 100%% among them", shares)
		}
		if passed == nil || passed.Requests < 10 {
			t.Fatalf("no analysis passed on HAProxy's counters: %+v", passed)
		}
		t.Logf("analysis on HAProxy's counters: %s", passed.Message)
	})
	t.Run("analysis rollback", func(t *testing.T) {
		evs, l := e.release(t, exitRolledBack, "1.4.0-errors", "canary", "1.1.0")
		var failed *engine.AnalysisResult
		for _, ev := range evs {
			if ev.Kind == engine.EventGateFailed && ev.Analysis != nil {
				failed = ev.Analysis
			}
		}
		if failed == nil || failed.Errors == 0 {
			t.Fatalf("no analysis failed on HAProxy's counters: %+v", failed)
		}
		t.Logf("analysis on HAProxy's counters: %s", failed.Message)
		if l.Excused("1.4.0-errors") == 0 {
			t.Error("the erroring version served no 500s: the analysis had nothing to catch")
		}
	})
	t.Run("emergency rollback", func(t *testing.T) {
		e.in(t)
		e.configure(haCanaryHold, "rollback")
		l := e.startLoad()
		deploy := e.startDeploy("1.0.0")
		events := deploy.events
		waitEvent(t, events, func(ev engine.Event) bool { return ev.Kind == engine.EventGateWaiting }, 60*time.Second)
		if got := e.table().Share("1.0.0"); got != 0.25 {
			t.Fatalf("canary share before the rollback %.2f, want 0.25", got)
		}
		l.WaitServed(t, "1.0.0", 20)
		e.timedRollback(t, "1.1.0", func(v string) float64 { return e.table().Share(v) })
		if code := deploy.wait(30 * time.Second); code != exitTakenOver {
			t.Errorf("deploy exited %d, want %d (taken over)", code, exitTakenOver)
		}
		l.AssertNoFailures(t)
		e.assertFleet("1.1.0", 2)
	})
}

// HAProxy restarted in the middle of a release loses the table; the next
// read sees it and the release pauses rather than go on from HAProxy's
// config. `cutover router restore` brings the table back, and the
// release can then be rolled back, HAProxy serving again.
func TestHAProxyRestartedMidReleasePausesTheRelease(t *testing.T) {
	e := newHAProxyE2E(t)
	e.configure(haCanaryBrief, "pause")
	e.mustRun(exitOK, "deploy", e.svc, "1.0.0", "--auto", "--strategy", "rolling")
	e.assertFleet("1.0.0", 2)

	deploy := e.startDeploy("1.1.0")
	events := deploy.events
	waitEvent(t, events, func(ev engine.Event) bool { return ev.Kind == engine.EventGateWaiting }, 60*time.Second)
	e.h.Restart()
	failure := waitEvent(t, events, func(ev engine.Event) bool { return ev.Kind == engine.EventFailure }, 30*time.Second)
	if !strings.Contains(failure.Error, "HAProxy restarted") || !strings.Contains(failure.Message, "pausing") {
		t.Errorf("failure event %q (%q), want the restart, and a pause", failure.Error, failure.Message)
	}
	if code := deploy.wait(30 * time.Second); code != exitFailed {
		t.Errorf("deploy exited %d, want %d (paused by a failure)", code, exitFailed)
	}
	if s := e.h.Servers(); len(s) != 0 {
		t.Errorf("cutover wrote on top of the restarted HAProxy: servers %v", s)
	}
	if out, _, _ := e.run("status", e.svc); !strings.Contains(out, "HAProxy restarted") || strings.Contains(out, "does not answer") {
		t.Errorf("status does not tell of the restart:\n%s", out)
	}
	if _, errs, code := e.run("rollback", e.svc); code != exitError || !strings.Contains(errs, "cutover router restore main") {
		t.Errorf("rollback before the restore: exit %d, %q; want a refusal saying to restore", code, errs)
	}

	out := e.mustRun(exitOK, "router", "restore", "main")
	if !strings.Contains(out, "applied the last table again") {
		t.Errorf("restore says %q", out)
	}
	if got := e.table().Share("1.1.0"); got != 0.25 {
		t.Errorf("restored table gives 1.1.0 %.2f, want the canary's 0.25", got)
	}
	e.mustRun(exitOK, "rollback", e.svc)
	e.assertFleet("1.0.0", 2)
	res, err := http.Get(e.url())
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("X-Demo-Version") != "1.0.0" {
		t.Errorf("after restore and rollback HAProxy answers %d from %q", res.StatusCode, res.Header.Get("X-Demo-Version"))
	}
}

func tableWeights(ev engine.Event) map[string]int {
	if ev.Kind != engine.EventApplied || ev.Table == nil {
		return nil
	}
	return ev.Table.Weights()
}
