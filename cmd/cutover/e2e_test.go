package main

// End-to-end tests of the headless commands: the real binary, the real
// router process and the real Docker engine, with load running the whole
// time (helpers_test.go). Every request that fails (a connection error, any
// non-2xx answer) fails the test; only the test of the erroring demo
// version counts that version's deliberate 500s apart.

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/demo/demotest"
)

// strategies used by the tests, as the YAML under `strategy:`.
const (
	rollingYAML = `type: rolling
      rolling: {batch_size: 1}`
	blueGreenYAML = `type: bluegreen
      bluegreen: {approval: false, rollback_window: 2s}`
	canaryYAML = `type: canary
      canary:
        instances: 1
        steps:
          - weight: 25
            pause: 2s
          - weight: 50
            analysis: {window: 3s, max_error_rate: 0.05, min_requests: 10}
          - weight: 100`
	// canaryHoldYAML stops at a long pause so a test can act mid-canary.
	canaryHoldYAML = `type: canary
      canary:
        instances: 1
        steps:
          - weight: 25
            pause: 10m
          - weight: 100`
)

func TestRollingReleaseUnderLoadLosesNoRequest(t *testing.T) {
	parallelE2E(t)
	e := newE2E(t, rollingYAML)
	e.deployV1()
	l := e.startLoad()
	e.mustRun(exitOK, "deploy", e.svc, "1.1.0")
	l.AssertNoFailures(t)
	e.assertFleet("1.1.0", 3)
	if l.Served("1.1.0") == 0 {
		t.Error("no request reached 1.1.0")
	}
}

func TestBlueGreenReleaseUnderLoadLosesNoRequest(t *testing.T) {
	parallelE2E(t)
	e := newE2E(t, blueGreenYAML)
	e.deployV1()
	l := e.startLoad()
	out := e.mustRun(exitOK, "deploy", e.svc, "1.1.0", "--output", "json")
	l.AssertNoFailures(t)
	e.assertFleet("1.1.0", 3)
	// The switch is one table: no applied table ever splits the traffic.
	for _, ev := range decodeEvents(t, out) {
		if ev.Kind == engine.EventApplied && ev.Table != nil {
			w := ev.Table.Weights()
			if w["1.0.0"] > 0 && w["1.1.0"] > 0 {
				t.Errorf("blue/green applied a split table: %v", w)
			}
		}
	}
}

func TestCanaryReleaseUnderLoadGoesThroughItsSteps(t *testing.T) {
	parallelE2E(t)
	e := newE2E(t, canaryYAML)
	e.deployV1()
	l := e.startLoad()
	out := e.mustRun(exitOK, "deploy", e.svc, "1.1.0", "--output", "json")
	l.AssertNoFailures(t)
	e.assertFleet("1.1.0", 3)
	var shares []float64
	analysisPassed := false
	for _, ev := range decodeEvents(t, out) {
		if ev.Kind == engine.EventApplied && ev.Table != nil {
			shares = append(shares, ev.Table.Share("1.1.0"))
		}
		if ev.Kind == engine.EventGatePassed && ev.Analysis != nil {
			analysisPassed = true
		}
	}
	if !containsAll(shares, 0.25, 0.5, 1) {
		t.Errorf("canary shares applied %v, want 25%%, 50%% and 100%% among them", shares)
	}
	if !analysisPassed {
		t.Error("no analysis gate passed")
	}
}

func TestCanaryToUnhealthyVersionNeverGetsTrafficAndRollsBack(t *testing.T) {
	parallelE2E(t)
	e := newE2E(t, canaryYAML)
	e.deployV1()
	l := e.startLoad()
	out := e.mustRun(exitRolledBack, "deploy", e.svc, "1.3.0-unhealthy", "--output", "json")
	l.AssertNoFailures(t)
	e.assertFleet("1.0.0", 3)
	if n := l.Served("1.3.0-unhealthy"); n != 0 {
		t.Errorf("%d requests reached the unhealthy version", n)
	}
	for _, ev := range decodeEvents(t, out) {
		if ev.Table != nil && ev.Table.Weights()["1.3.0-unhealthy"] > 0 {
			t.Errorf("a table gave the unhealthy version weight: %+v", ev.Table)
		}
	}
}

func TestCanaryToErroringVersionRollsBackOnItsFailureRule(t *testing.T) {
	parallelE2E(t)
	e := newE2E(t, canaryYAML)
	e.deployV1()
	l := e.startLoad("1.4.0-errors")
	out := e.mustRun(exitRolledBack, "deploy", e.svc, "1.4.0-errors", "--output", "json")
	l.AssertNoFailures(t)
	e.assertFleet("1.0.0", 3)
	var failed *engine.AnalysisResult
	for _, ev := range decodeEvents(t, out) {
		if ev.Kind == engine.EventGateFailed && ev.Analysis != nil {
			failed = ev.Analysis
		}
	}
	if failed == nil {
		t.Fatal("no analysis gate failed")
	}
	if l.Excused("1.4.0-errors") == 0 {
		t.Error("the erroring version served no 500s: the analysis had nothing to catch")
	}
}

// Not parallel: it measures how fast the swap is, on a machine no other
// release of this package loads.
func TestRollbackFromSecondProcessTakesOverMidCanary(t *testing.T) {
	e := newE2E(t, canaryHoldYAML)
	e.deployV1()
	l := e.startLoad()
	deploy := e.startDeploy("1.1.0")
	waitEvent(t, deploy.events, func(ev engine.Event) bool { return ev.Kind == engine.EventGateWaiting }, 60*time.Second)
	if got := e.share("1.1.0"); got != 0.25 {
		t.Fatalf("canary share before rollback %.2f, want 0.25", got)
	}
	l.WaitServed(t, "1.1.0", 20)

	// Poll the router as fast as it answers: how soon is v1 back at 100%?
	e.timedRollback(t, "1.0.0", e.share)

	// The deploy process notices it was fenced out and stops.
	code := deploy.wait(30 * time.Second)
	if code != exitTakenOver {
		t.Errorf("deploy exited %d, want %d (taken over)", code, exitTakenOver)
	}
	l.AssertNoFailures(t)
	e.assertFleet("1.0.0", 3)
}

func TestKilledDeployCanBeSeenAndRolledBack(t *testing.T) {
	parallelE2E(t)
	e := newE2E(t, canaryHoldYAML)
	e.deployV1()
	l := e.startLoad()
	deploy := e.startDeploy("1.1.0")
	waitEvent(t, deploy.events, func(ev engine.Event) bool { return ev.Kind == engine.EventGateWaiting }, 60*time.Second)
	l.WaitServed(t, "1.1.0", 20)
	deploy.kill()

	// status shows the truth: a 1.1.0 canary with 25% of the traffic,
	// the release interrupted, its owner gone.
	out := e.mustRun(exitOK, "status", e.svc, "--output", "json")
	var st serviceStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status json: %v\n%s", err, out)
	}
	if st.Router.Shares["1.1.0"] != 0.25 {
		t.Errorf("status shares %v, want 1.1.0 at 25%%", st.Router.Shares)
	}
	canaries := 0
	for _, in := range st.Instances {
		if in.Version == "1.1.0" {
			canaries++
		}
	}
	if canaries != 1 || len(st.Instances) != 4 {
		t.Errorf("status shows %d instances with %d canaries, want 4 with 1", len(st.Instances), canaries)
	}
	if st.Release == nil || st.Release.State.Finished() || st.Release.To.Version != "1.1.0" {
		t.Errorf("status release %+v, want the unfinished release to 1.1.0", st.Release)
	}
	if st.Lease != nil && st.Lease.Live {
		t.Errorf("status says the killed process's lease is live: %+v", st.Lease)
	}
	text := e.mustRun(exitOK, "status", e.svc)
	for _, want := range []string{"1.1.0 25.0%", "1.0.0 75.0%", e.listen} {
		if !strings.Contains(text, want) {
			t.Errorf("status text lacks %q:\n%s", want, text)
		}
	}

	e.mustRun(exitOK, "rollback", e.svc)
	l.AssertNoFailures(t)
	e.assertFleet("1.0.0", 3)
	hist := e.mustRun(exitOK, "history", e.svc)
	if !strings.Contains(hist, "rollback") {
		t.Errorf("history does not show the rollback:\n%s", hist)
	}
}

// Continuous delivery: a pipeline deploys to the first gate and leaves;
// each `cutover approve` passes one gate and stops at the next.
func TestDetachedReleaseGoesOneGateFurtherPerApprove(t *testing.T) {
	parallelE2E(t)
	e := newE2E(t, `type: canary
      canary:
        steps:
          - weight: 25
            approval: true
          - weight: 50
            approval: true
          - weight: 100`)
	e.deployV1()
	l := e.startLoad()
	if _, errs, code := e.run("approve", e.svc); code != exitError || !strings.Contains(errs, "nothing waits for approval") {
		t.Errorf("approve with nothing waiting: exit %d, %q", code, errs)
	}
	out := e.mustRun(exitWaiting, "deploy", e.svc, "1.1.0", "--detach")
	if !strings.Contains(out, "waiting for approval") {
		t.Errorf("deploy --detach output lacks the gate:\n%s", tail(out, 10))
	}
	if got := e.share("1.1.0"); got != 0.25 {
		t.Fatalf("after deploy --detach 1.1.0 has %.2f, want 0.25", got)
	}
	l.WaitServed(t, "1.1.0", 5)
	e.mustRun(exitWaiting, "approve", e.svc)
	if got := e.share("1.1.0"); got != 0.5 {
		t.Fatalf("after one approve 1.1.0 has %.2f, want 0.50", got)
	}
	e.mustRun(exitOK, "approve", e.svc)
	l.AssertNoFailures(t)
	e.assertFleet("1.1.0", 3)
	hist := e.mustRun(exitOK, "history", e.svc, "-o", "json")
	var recs []engine.ReleaseRecord
	if err := json.Unmarshal([]byte(hist), &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].State != engine.ReleaseSucceeded || recs[0].To.Version != "1.1.0" {
		t.Errorf("history: %+v, want the 1.1.0 release succeeded as one record after the first deploy", recs)
	}
}

// The other way out of a killed deploy: running it again resumes the same
// release from the actual state and finishes it, without launching twice.
func TestKilledDeployIsResumedAndFinished(t *testing.T) {
	parallelE2E(t)
	e := newE2E(t, `type: canary
      canary:
        steps:
          - weight: 25
            approval: true
          - weight: 100`)
	e.deployV1()
	l := e.startLoad()
	deploy := e.startDeploy("1.1.0")
	// Killed mid-canary, just after 25% of the traffic moved.
	canary := waitEvent(t, deploy.events, func(ev engine.Event) bool {
		return ev.Kind == engine.EventApplied && ev.Table != nil && ev.Table.Share("1.1.0") == 0.25
	}, 60*time.Second)
	deploy.kill()
	out, errs, code := e.run("deploy", e.svc, "1.1.0", "--auto", "--output", "json")
	if code != exitOK {
		t.Fatalf("resumed deploy: exit %d\n%s\n%s", code, errs, tail(out, 20))
	}
	l.AssertNoFailures(t)
	e.assertFleet("1.1.0", 3)
	var recs []engine.ReleaseRecord
	if err := json.Unmarshal([]byte(e.mustRun(exitOK, "history", e.svc, "-o", "json")), &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].ID != canary.Release || recs[0].State != engine.ReleaseSucceeded {
		t.Errorf("history %+v: want the killed release %s resumed and succeeded, not a new one", recs, canary.Release)
	}
	launched := 0
	for _, ev := range decodeEvents(t, out) {
		if ev.Kind == engine.EventLaunched {
			launched++
		}
	}
	if launched > 2 {
		t.Errorf("the resumed release launched %d instances; the canary that ran already should have been kept", launched)
	}
}

// Nobody can resume a headless deploy that a failure paused, so it ends
// with exit 2 and leaves the release as it is, resumable or undoable.
func TestHeadlessDeployEndsWhenAFailurePausesIt(t *testing.T) {
	parallelE2E(t)
	e := newE2E(t, canaryYAML)
	e.deployV1()
	// No load: the analysis window sees too few requests, which pauses.
	_, errs, code := e.run("deploy", e.svc, "1.1.0", "--auto")
	if code != exitFailed || !strings.Contains(errs, "inconclusive") || !strings.Contains(errs, "cutover rollback") {
		t.Fatalf("deploy: exit %d, stderr %q; want %d, the reason and what to do", code, errs, exitFailed)
	}
	if got := e.share("1.1.0"); got != 0.5 {
		t.Errorf("the paused canary has %.2f of the traffic, want it left at 0.50", got)
	}
	e.mustRun(exitOK, "rollback", e.svc)
	e.assertFleet("1.0.0", 3)
}

// A tag moved while a release was interrupted: resuming would run two
// images under one version, so deploy refuses and says what to do.
func TestResumeRefusesATagThatNowNamesAnotherImage(t *testing.T) {
	parallelE2E(t)
	e := newE2E(t, canaryHoldYAML)
	e.deployV1()
	ctx := context.Background()
	cli := e.platform.Client()
	moving := demotest.Repo() + ":9.9.9"
	if err := cli.ImageTag(ctx, e.refs["1.1.0"], moving); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = cli.ImageRemove(context.Background(), moving, image.RemoveOptions{}) })
	deploy := e.startDeploy("9.9.9")
	waitEvent(t, deploy.events, func(ev engine.Event) bool { return ev.Kind == engine.EventGateWaiting }, 60*time.Second)
	deploy.kill()

	if err := cli.ImageTag(ctx, e.refs["1.4.0-errors"], moving); err != nil {
		t.Fatal(err)
	}
	_, errs, code := e.run("deploy", e.svc, "9.9.9", "--auto")
	if code != exitError || !strings.Contains(errs, "now names") || !strings.Contains(errs, "cutover rollback") {
		t.Fatalf("deploy after the tag moved: exit %d, %q; want a refusal naming both images", code, errs)
	}
	if got := e.share("9.9.9"); got != 0.25 {
		t.Errorf("the refused resume changed the traffic: 9.9.9 at %.2f", got)
	}
	e.mustRun(exitOK, "rollback", e.svc)
	e.assertFleet("1.0.0", 3)
}

// A Docker-source service's tag_filter and semver apply to its candidate
// images as they do for ECR: only matching tags are offered, in version
// order.
func TestImagesOfADockerSourceHonourTheTagFilterAndSemver(t *testing.T) {
	e := newE2E(t, rollingYAML)
	path := filepath.Join(e.dir, "cutover.yaml")
	cfg, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	src := "    source: {type: docker, tag_filter: '^1\\.[0-4]\\.0$', semver: true}\n    port: 8080\n"
	if err := os.WriteFile(path, []byte(strings.Replace(string(cfg), "    port: 8080\n", src, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out := e.mustRun(exitOK, "images", e.svc, "-o", "json")
	var rows []struct {
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("images json: %v\n%s", err, out)
	}
	var tags []string
	for _, r := range rows {
		tags = append(tags, r.Tags...)
	}
	if got := strings.Join(tags, " "); got != "1.1.0 1.0.0" {
		t.Errorf("candidate tags %q, want only 1.1.0 and 1.0.0 (the filter drops 1.2.0-crash, 1.3.0-unhealthy, 1.4.0-errors), highest first", got)
	}
}
