package main

// The emergency path, proven end to end: a deploying process SIGKILLed at
// each kind of step of each strategy and recovered, once by `cutover
// rollback` and once by the same `cutover deploy` (resume); a rollback
// taking over from a live deploy inside a Docker call; approvals that pass
// one gate only; a crash at the gate of a detached release.
//
// The kill lands at a precise moment, never after a guessed delay: when the
// deploy prints the event that marks it (one JSON event per line), or while
// the deploy is inside a Docker call that the test's Docker proxy holds.
// Load runs through the router from before the deploy until after the
// recovery, and every request it loses fails the case.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/demo/demotest"
)

// envKillMatrix set to "full" runs every case of the kill matrix; without
// it a subset runs that still covers every kind of step, every strategy
// and both recoveries.
const envKillMatrix = "CUTOVER_KILL_MATRIX"

// The strategies of the matrix, set so that each kind of step they have
// happens: canary with an analysis and an approval step, blue/green with
// an approval and a short rollback window, rolling one at a time.
const (
	killRollingYAML = `type: rolling
      rolling: {batch_size: 1}`
	killBlueGreenYAML = `type: bluegreen
      bluegreen: {approval: true, rollback_window: 1s}`
	killCanaryYAML = `type: canary
      canary:
        instances: 1
        steps:
          - weight: 50
            analysis: {window: 2s, max_error_rate: 0.05, min_requests: 10}
          - approval: true
          - weight: 100`
)

// killPoint is a moment of a release at which the deploy is killed: when
// it prints an event match accepts, or while a Docker call is held.
type killPoint struct {
	name string
	// hold, if set, is the Docker call the deploy is killed inside: its
	// first "start" held before Docker sees it (the container is created,
	// never started), or its first "stop" carried out by Docker with the
	// answer held (stopped, not removed, still in the table).
	hold    string
	forward bool
	leaves  engine.InstanceState // the state the held call leaves its container in
	// match sees each event with the description of the step it is in.
	match func(ev engine.Event, step string) bool
	// approval: the deploy runs on a terminal, without --auto, and waits
	// at the approval gate for an operator; resuming answers y there.
	approval bool
}

var (
	killLaunchCreated = killPoint{name: "launch-created", hold: "start", leaves: engine.StateCreated}
	killLaunchStarted = killPoint{name: "launch-started", match: func(ev engine.Event, _ string) bool {
		return ev.Kind == engine.EventLaunched
	}}
	killShift = killPoint{name: "shift", match: func(ev engine.Event, step string) bool {
		return ev.Kind == engine.EventApplied && strings.HasPrefix(step, "shift traffic")
	}}
	killAnalysis = killPoint{name: "analysis", match: gateWaiting(engine.GateAnalysis)}
	killApproval = killPoint{name: "approval", match: gateWaiting(engine.GateApproval), approval: true}
	killWindow   = killPoint{name: "window", match: gateWaiting(engine.GatePause)}
	killDrain    = killPoint{name: "drain", match: func(ev engine.Event, _ string) bool {
		return ev.Kind == engine.EventDraining
	}}
	killStop   = killPoint{name: "stop", hold: "stop", forward: true, leaves: engine.StateExited}
	killRetire = killPoint{name: "retire", match: func(ev engine.Event, _ string) bool {
		return ev.Kind == engine.EventStepStarted && strings.HasPrefix(ev.Message, "drain and retire")
	}}
)

func gateWaiting(kind engine.GateKind) func(engine.Event, string) bool {
	return func(ev engine.Event, _ string) bool {
		return ev.Kind == engine.EventGateWaiting && ev.Gate != nil && ev.Gate.Kind == kind
	}
}

// killStrategies lists, per strategy, the kinds of step it has. Rolling
// has no gate of either kind and blue/green no analysis; only blue/green
// has a rollback window (a timed pause).
var killStrategies = []struct {
	name, yaml string
	points     []killPoint
}{
	{"rolling", killRollingYAML, []killPoint{killLaunchCreated, killLaunchStarted, killShift, killDrain, killStop, killRetire}},
	{"bluegreen", killBlueGreenYAML, []killPoint{killLaunchCreated, killLaunchStarted, killApproval, killShift, killWindow, killDrain, killStop, killRetire}},
	{"canary", killCanaryYAML, []killPoint{killLaunchCreated, killLaunchStarted, killShift, killAnalysis, killApproval, killDrain, killStop, killRetire}},
}

// killSubset is the default run: every kind of step, every strategy and
// both recoveries.
var killSubset = map[string]bool{
	"rolling/launch-created/rollback": true,
	"rolling/shift/rollback":          true,
	"rolling/drain/resume":            true,
	"rolling/stop/rollback":           true,
	"bluegreen/launch-started/resume": true,
	"bluegreen/approval/rollback":     true,
	"bluegreen/window/resume":         true,
	"bluegreen/retire/rollback":       true,
	"canary/shift/resume":             true,
	"canary/analysis/rollback":        true,
	"canary/approval/resume":          true,
	"canary/stop/resume":              true,
}

func TestKilledDeployRecoversAtEveryStep(t *testing.T) {
	full := os.Getenv(envKillMatrix) == "full"
	for _, st := range killStrategies {
		for _, kp := range st.points {
			for _, recovery := range []string{"rollback", "resume"} {
				name := st.name + "/" + kp.name + "/" + recovery
				t.Run(name, func(t *testing.T) {
					if !full && !killSubset[name] {
						t.Skipf("not in the default subset; %s=full runs every case", envKillMatrix)
					}
					parallelE2E(t)
					killAndRecover(t, st.yaml, kp, recovery)
				})
			}
		}
	}
}

// killAndRecover runs one case: 1.0.0 on two replicas, load, a deploy of
// 1.1.0 killed at kp, then the recovery; and checks that everything ends
// as it must with no request lost.
func killAndRecover(t *testing.T, strategy string, kp killPoint, recovery string) {
	begun := time.Now()
	e := newE2EWith(t, quickService(strategy, 2, true))
	e.deployV1()
	up := time.Since(begun)
	l := e.flowingLoad()

	args := []string{"deploy", e.svc, "1.1.0", "-o", "json"}
	if !kp.approval {
		args = append(args, "--auto")
	}
	var hold *heldCall
	if kp.hold != "" {
		hold = e.docker.hold(dockerCall(kp.hold), 1, kp.forward)
	}
	deploy := e.start(procOptions{viaProxy: true, tty: kp.approval}, args...)
	if hold != nil {
		waitHeld(t, hold, deploy, 90*time.Second)
	} else {
		step := ""
		waitEvent(t, deploy.events, func(ev engine.Event) bool {
			if ev.Kind == engine.EventStepStarted {
				step = ev.Message
			}
			return kp.match(ev, step)
		}, 90*time.Second)
	}
	deploy.kill()
	if hold != nil {
		hold.let() // its caller is dead: the answer goes nowhere
		e.assertState(hold.container(), kp.leaves)
	}
	killed := e.releaseOf(deploy)
	at := time.Since(begun)

	want := "1.0.0"
	switch recovery {
	case "rollback":
		e.mustRun(exitOK, "rollback", e.svc, "-o", "json")
	case "resume":
		want = "1.1.0"
		again := e.start(procOptions{tty: kp.approval}, args...)
		if kp.approval {
			waitEvent(t, again.events, func(ev engine.Event) bool { return kp.match(ev, "") }, 90*time.Second)
			again.answer("y")
		}
		if code := again.wait(2 * time.Minute); code != exitOK {
			t.Fatalf("resumed deploy: exit %d, want 0\n%s", code, tail(again.stderr.String(), 20))
		}
	}
	e.assertFleet(want, e.replicas)
	l.WaitMore(t, 200) // and goes on flowing to what the recovery left
	l.AssertNoFailures(t)
	if rate := l.Rate(); rate < 200 {
		t.Errorf("the load ran at %.0f requests/s, want at least 200", rate)
	}

	insts, err := e.platform.Instances(context.Background(), e.svc)
	if err != nil {
		t.Fatal(err)
	}
	recs := e.history()
	switch recovery {
	case "rollback":
		for _, in := range insts {
			if in.ReleaseID == killed.ID || in.Version == killed.To.Version {
				t.Errorf("container %s (%s) of the killed release %s is left", in.Name, in.Version, killed.ID)
			}
		}
		if recs[0].Kind != engine.KindRollback || recs[0].State != engine.ReleaseRolledBack {
			t.Errorf("latest release %s %s is %s, want a rolled-back rollback", recs[0].ID, recs[0].Kind, recs[0].State)
		}
		if rec := e.releaseOf(deploy); rec.State != engine.ReleaseRolledBack {
			t.Errorf("the killed release %s is %s after the rollback, want %s", rec.ID, rec.State, engine.ReleaseRolledBack)
		}
	case "resume":
		if recs[0].ID != killed.ID || recs[0].State != engine.ReleaseSucceeded {
			t.Errorf("latest release %s is %s, want the killed release %s resumed and succeeded", recs[0].ID, recs[0].State, killed.ID)
		}
	}
	t.Logf("1.0.0 up after %v, killed after %v, recovered by %s after %v", up.Round(time.Millisecond), at.Round(time.Millisecond),
		recovery, time.Since(begun).Round(time.Millisecond))
}

// assertState checks that container id is in state: a held Docker call
// left the service where the case means to kill it.
func (e *e2e) assertState(id string, state engine.InstanceState) {
	e.t.Helper()
	in, err := e.platform.Instance(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	if in.State != state {
		e.t.Fatalf("after the kill, %s (%s) is %s, want %s", in.Name, in.Version, in.State, state)
	}
}

// releaseOf is the journal's record of the release p ran, named by its
// events.
func (e *e2e) releaseOf(p *proc) engine.ReleaseRecord {
	e.t.Helper()
	id := ""
	for _, ev := range p.printed() {
		if ev.Release != "" {
			id = ev.Release
			break
		}
	}
	if id == "" {
		e.t.Fatalf("%v printed no event naming its release", p.args)
	}
	for _, rec := range e.history() {
		if rec.ID == id {
			return rec
		}
	}
	e.t.Fatalf("release %s is not in the journal", id)
	return engine.ReleaseRecord{}
}

// history is the service's releases, newest first, as `cutover history`
// tells them.
func (e *e2e) history() []engine.ReleaseRecord {
	e.t.Helper()
	var recs []engine.ReleaseRecord
	out := e.mustRun(exitOK, "history", e.svc, "-o", "json")
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		e.t.Fatalf("history: %v\n%s", err, out)
	}
	if len(recs) == 0 {
		e.t.Fatal("history is empty")
	}
	return recs
}

// quickService is the service of the emergency-path tests: timings short
// enough that a case takes seconds.
func quickService(strategy string, replicas int, proxy bool) e2eService {
	return e2eService{strategy: strategy, replicas: replicas, successes: 1, stopGrace: "1s", drain: "2s", proxy: proxy}
}

// flowingLoad starts the load and waits until it flows, so it runs from
// before the release begins.
func (e *e2e) flowingLoad() *demotest.Load {
	e.t.Helper()
	l := e.startLoad()
	l.WaitMore(e.t, 200)
	return l
}

// deployHeld starts `cutover deploy --auto` of 1.1.0 through the test's
// proxies and waits until h holds its call.
func (e *e2e) deployHeld(h *heldCall) *proc {
	e.t.Helper()
	p := e.start(procOptions{viaProxy: true}, "deploy", e.svc, "1.1.0", "--auto", "-o", "json")
	waitHeld(e.t, h, p, 90*time.Second)
	return p
}

// exits waits for p to end and fails the test unless it exits with want.
func (p *proc) exits(want int) {
	p.t.Helper()
	if code := p.wait(2 * time.Minute); code != want {
		p.t.Errorf("%s: exit %d, want %d\n%s", strings.Join(p.args, " "), code, want, tail(p.stderr.String(), 20))
	}
}

// count counts the events of kind.
func count(evs []engine.Event, kind engine.EventKind) int {
	n := 0
	for _, ev := range evs {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}

// takeoverYAML is blue/green with nothing between the switch and retiring
// blue: one launch step of all replicas, one retire step of all of blue.
const takeoverYAML = `type: bluegreen
      bluegreen: {approval: false, rollback_window: 0s}`

// A rollback takes over while the deploy is inside its second launch of a
// batch of three: that launch returns after the takeover, and its
// container must not survive; no third is launched; stable is untouched.
func TestRollbackTakesOverMidLaunchBatch(t *testing.T) {
	parallelE2E(t)
	e := newE2EWith(t, quickService(takeoverYAML, 3, true))
	e.deployV1()
	stable := e.ids("1.0.0")
	l := e.flowingLoad()

	second := e.docker.hold(dockerCall("start"), 2, false)
	deploy := e.deployHeld(second)
	rb := e.start(procOptions{}, "rollback", e.svc, "-o", "json")
	// The rollback holds the lease once it says it is rolling back: the
	// launch under way then returns, after the takeover.
	waitEvent(t, rb.events, func(ev engine.Event) bool { return ev.Kind == engine.EventRollingBack }, 30*time.Second)
	second.let()

	rb.exits(exitOK)
	deploy.exits(exitTakenOver)
	e.assertFleet("1.0.0", 3)
	if got := e.ids("1.0.0"); !slices.Equal(got, stable) {
		t.Errorf("stable instances %v after the takeover, want the same %v: none stopped or replaced", got, stable)
	}
	if launching := count(deploy.printed(), engine.EventLaunching); launching != 2 {
		t.Errorf("the deploy began %d launches, want 2: none after the takeover", launching)
	}
	l.WaitMore(t, 200)
	l.AssertNoFailures(t)
}

// A rollback takes over while the deploy retires blue (three stable
// instances) and its first stop is slow: the stop decided before the
// takeover happens, no other stable instance is stopped, the rollback
// gives no traffic to the one being stopped, and stable is made whole.
func TestRollbackTakesOverMidSlowStopBatch(t *testing.T) {
	parallelE2E(t)
	e := newE2EWith(t, quickService(takeoverYAML, 3, true))
	e.deployV1()
	stable := e.ids("1.0.0")
	l := e.flowingLoad()

	slow := e.docker.hold(dockerCall("stop"), 1, false)
	deploy := e.deployHeld(slow)
	rb := e.start(procOptions{}, "rollback", e.svc, "-o", "json")
	waitEvent(t, rb.events, func(ev engine.Event) bool { return ev.Kind == engine.EventApplied }, 30*time.Second)
	l.WaitMore(t, 100) // traffic flows on stable while the stop is still held
	slow.let()

	rb.exits(exitOK)
	deploy.exits(exitTakenOver)
	e.assertFleet("1.0.0", 3)
	now := e.ids("1.0.0")
	for _, id := range stable {
		if id != slow.container() && !slices.Contains(now, id) {
			t.Errorf("stable instance %s was stopped; only %s, whose stop began before the takeover, may be", shortID(id), shortID(slow.container()))
		}
	}
	for _, ev := range rb.printed() {
		if ev.Kind == engine.EventApplied && ev.Table != nil {
			for _, b := range ev.Table.Backends {
				if b.ID == slow.container() && b.Weight > 0 {
					t.Errorf("the rollback gave weight to %s, whose stop the deploy had begun: %s", shortID(b.ID), describeBackends(*ev.Table))
				}
			}
		}
	}
	if stopping := count(deploy.printed(), engine.EventStopping); stopping != 1 {
		t.Errorf("the deploy began %d stops, want 1: none after the takeover", stopping)
	}
	l.WaitMore(t, 200)
	l.AssertNoFailures(t)
}

// twoGatesYAML is a canary with two approval gates, at 25% and 50%.
const twoGatesYAML = `type: canary
      canary:
        instances: 1
        steps:
          - weight: 25
            approval: true
          - weight: 50
            approval: true
          - weight: 100`

// Two approvals given for the same gate at once move the release one gate
// on; at the last gate, two plain approves at once finish it once. (Which
// of the two runs it depends on timing: the case where both do, one after
// the other, is TestApproveOfAGatePassedMeanwhileIsRefused.)
func TestDoubleApprovePassesOneGate(t *testing.T) {
	parallelE2E(t)
	e := newE2EWith(t, quickService(twoGatesYAML, 2, false))
	e.deployV1()
	l := e.flowingLoad()
	out := e.mustRun(exitWaiting, "deploy", e.svc, "1.1.0", "--detach", "-o", "json")
	gate := -1
	for _, ev := range decodeEvents(t, out) {
		if ev.Kind == engine.EventGateWaiting && ev.Gate != nil && ev.Gate.Kind == engine.GateApproval {
			gate = ev.Step + 1
		}
	}
	if gate < 0 || e.share("1.1.0") != 0.25 {
		t.Fatalf("deploy --detach: gate step %d, 1.1.0 at %.2f; want a gate at 25%%", gate, e.share("1.1.0"))
	}

	both := func(args ...string) (codes []int, passed int, errs string) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for range 2 {
			wg.Go(func() {
				out, stderr, code := e.run(append([]string{"approve", e.svc, "-o", "json"}, args...)...)
				mu.Lock()
				defer mu.Unlock()
				codes = append(codes, code)
				errs += stderr
				for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
					var ev engine.Event
					if json.Unmarshal([]byte(line), &ev) != nil {
						continue
					}
					if ev.Kind == engine.EventGatePassed && ev.Gate != nil && ev.Gate.Kind == engine.GateApproval {
						passed++
					}
					if ev.Kind != engine.EventPlanned {
						errs += fmt.Sprintf("  %s %s step %d: %s\n", ev.At.Format("15:04:05.000"), ev.Kind, ev.Step, ev.Message)
					}
				}
			})
		}
		wg.Wait()
		slices.Sort(codes)
		return codes, passed, errs
	}
	codes, passed, errs := both("--step", fmt.Sprint(gate))
	t.Logf("two approves of step %d at once: exits %v, gates passed %d\n%s", gate, codes, passed, errs)
	if passed == 0 || !slices.Contains(codes, exitWaiting) || slices.Contains(codes, exitOK) {
		t.Errorf("two approves of step %d at once passed %d gates, exits %v; want the gate passed and a stop at the next (exit %d)", gate, passed, codes, exitWaiting)
	}
	if got, waits := e.share("1.1.0"), e.waitingAt(); got != 0.5 || waits != "canary step 2" {
		t.Fatalf("after two approves of one gate 1.1.0 has %.2f of the traffic and the release waits at %q, want 0.50 at the second gate", got, waits)
	}
	// The same approval given late is refused: the release waits elsewhere.
	if _, errs, code := e.run("approve", e.svc, "--step", fmt.Sprint(gate)); code == exitOK || code == exitWaiting || !strings.Contains(errs, "nothing approved") {
		t.Errorf("a late approve of step %d: exit %d, %q; want a refusal", gate, code, errs)
	}

	codes, passed, errs = both()
	t.Logf("two plain approves at once at the last gate: exits %v, gates passed %d\n%s", codes, passed, errs)
	if passed == 0 || !slices.Contains(codes, exitOK) || slices.Contains(codes, exitWaiting) {
		t.Errorf("two approves at the last gate passed %d gates, exits %v; want the release finished", passed, codes)
	}
	e.assertFleet("1.1.0", 2)
	l.WaitMore(t, 200)
	l.AssertNoFailures(t)
	if recs := e.history(); recs[0].State != engine.ReleaseSucceeded || len(recs) != 2 {
		t.Errorf("history %+v: want the release succeeded once", recs)
	}
}

// A canary detached at its gate crashes while nobody watches: the approve
// judges it before passing the gate, never reports success, and ends as
// on_failure says (roll back: exit 3; pause: exit 2, left for an operator).
func TestApproveJudgesACanaryThatCrashedAtTheGate(t *testing.T) {
	for _, tc := range []struct {
		onFailure string
		exit      int
	}{{"rollback", exitRolledBack}, {"pause", exitFailed}} {
		t.Run(tc.onFailure, func(t *testing.T) {
			parallelE2E(t)
			e := newE2EWith(t, e2eService{strategy: `type: canary
      canary:
        instances: 1
        steps:
          - weight: 50
            approval: true
          - weight: 100`, replicas: 2, successes: 1, stopGrace: "1s", drain: "2s", onFailure: tc.onFailure})
			e.deployV1()
			e.mustRun(exitWaiting, "deploy", e.svc, "1.1.0", "--detach")
			canary := e.ids("1.1.0")
			if len(canary) != 1 || e.share("1.1.0") != 0.5 {
				t.Fatalf("at the gate: canaries %v, 1.1.0 at %.2f; want one canary at 50%%", canary, e.share("1.1.0"))
			}
			// The crash: the container's process is killed; Docker restarts it.
			if err := e.platform.Client().ContainerKill(context.Background(), canary[0], "KILL"); err != nil {
				t.Fatal(err)
			}
			out, errs, code := e.run("approve", e.svc, "-o", "json")
			t.Logf("approve: exit %d\n%s", code, tail(errs, 5))
			for _, ev := range decodeEvents(t, out) {
				if ev.Kind == engine.EventFinished && ev.Outcome == engine.Succeeded {
					t.Errorf("approve reported the release succeeded after its canary crashed")
				}
				if ev.Kind == engine.EventGatePassed {
					t.Errorf("approve passed the gate of a crashed canary: %s", ev.Message)
				}
			}
			if code != tc.exit {
				t.Fatalf("approve after the canary crashed: exit %d, want %d (on_failure %s)", code, tc.exit, tc.onFailure)
			}
			if tc.onFailure == "pause" {
				e.mustRun(exitOK, "rollback", e.svc)
			}
			e.assertFleet("1.0.0", 2)
		})
	}
}

// A rollback takes over while the deploy's switch to green is on its way
// to the router: the switch must be refused when it arrives (the
// rollback's epoch fences the old writer out), so the traffic stays on
// stable, where the rollback put it, and nothing is lost.
func TestRollbackFencesASwitchOnItsWayToTheRouter(t *testing.T) {
	parallelE2E(t)
	e := newE2EWith(t, quickService(takeoverYAML, 2, true))
	e.deployV1()
	l := e.flowingLoad()

	toGreen := e.admin.hold(func(r *http.Request, body []byte) bool {
		var table engine.RouteTable
		return r.Method == http.MethodPut && r.URL.Path == "/v1/table" &&
			json.Unmarshal(body, &table) == nil && table.Weights()["1.1.0"] > 0
	}, 1, false)
	deploy := e.deployHeld(toGreen)
	rb := e.start(procOptions{}, "rollback", e.svc, "-o", "json")
	stopped := 0
	waitEvent(t, rb.events, func(ev engine.Event) bool {
		if ev.Kind == engine.EventStopped && ev.Instance != nil && ev.Instance.Version == "1.1.0" {
			stopped++
		}
		return stopped == 2
	}, time.Minute)
	toGreen.let() // the switch reaches the router after the rollback removed green

	rb.exits(exitOK)
	deploy.exits(exitTakenOver)
	e.assertFleet("1.0.0", 2)
	l.WaitMore(t, 200)
	l.AssertNoFailures(t)
}

// waitingAt is the key of the approval gate the service's latest release
// waits at, as status tells it; "" when it waits at none.
func (e *e2e) waitingAt() string {
	e.t.Helper()
	var st serviceStatus
	out := e.mustRun(exitOK, "status", e.svc, "-o", "json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		e.t.Fatalf("status: %v\n%s", err, out)
	}
	if st.Release == nil || st.Release.State != engine.ReleaseWaiting {
		return ""
	}
	evs := e.events(st.Release.ID)
	g, ok := engine.WaitingGate(evs)
	if !ok {
		return ""
	}
	return g.Gate.Key
}

// An approve that read the release waiting at a gate, and takes it over
// only after another approve passed that gate, must find the gate passed
// and refuse; it must not act on what it saw before it held the release.
// The test's proxy holds its first read of the router's state until the
// other approve is done: any delay of that process (a busy machine) does
// the same.
func TestApproveOfAGatePassedMeanwhileIsRefused(t *testing.T) {
	parallelE2E(t)
	e := newE2EWith(t, quickService(twoGatesYAML, 2, true))
	e.deployV1()
	l := e.flowingLoad()
	e.mustRun(exitWaiting, "deploy", e.svc, "1.1.0", "--detach")
	if got := e.waitingAt(); got != "canary step 1" {
		t.Fatalf("deploy --detach waits at %q, want canary step 1", got)
	}

	read := e.admin.hold(func(r *http.Request, _ []byte) bool {
		return r.Method == http.MethodGet && r.URL.Path == "/v1/state"
	}, 1, true)
	late := e.start(procOptions{viaProxy: true}, "approve", e.svc, "-o", "json")
	waitHeld(t, read, late, time.Minute)
	out := e.mustRun(exitWaiting, "approve", e.svc, "-o", "json")
	if got := e.share("1.1.0"); got != 0.5 {
		t.Fatalf("the first approve left 1.1.0 at %.2f, want 0.50", got)
	}
	read.let()
	code := late.wait(time.Minute)

	passed := 0
	for _, ev := range append(decodeEvents(t, out), late.printed()...) {
		if ev.Kind == engine.EventGatePassed && ev.Gate != nil && ev.Gate.Kind == engine.GateApproval {
			passed++
		}
	}
	if passed != 1 || code == exitOK || code == exitWaiting {
		t.Errorf("two approves of gate 1 passed %d gates; the late one exited %d: want one pass and the late one refused", passed, code)
	}
	if got, waits := e.share("1.1.0"), e.waitingAt(); got != 0.5 || waits != "canary step 2" {
		t.Errorf("1.1.0 has %.2f of the traffic and the release waits at %q, want 0.50 at canary step 2", got, waits)
	}
	l.WaitMore(t, 200)
	l.AssertNoFailures(t)
}

// events is a release's journaled events, as `cutover history --release`
// prints them.
func (e *e2e) events(release string) []engine.Event {
	e.t.Helper()
	var evs []engine.Event
	out := e.mustRun(exitOK, "history", e.svc, "--release", release, "-o", "json")
	if err := json.Unmarshal([]byte(out), &evs); err != nil {
		e.t.Fatalf("history --release %s: %v\n%s", release, err, out)
	}
	return evs
}
