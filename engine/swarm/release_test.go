package swarm_test

// Releases on a real single-node swarm: engine.New(...).Run with the Swarm
// platform, the real router (in this process, on loopback, reaching tasks
// at their host-mode ports) and the real journal, under the load of
// demotest.StartLoad the whole time. Every request the release loses (a
// connection error, a 502, 503 or 504) fails the test.

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/demo"
	"github.com/cutover/cutover/engine/demo/demotest"
	"github.com/cutover/cutover/engine/journal"
	"github.com/cutover/cutover/engine/router"
	"github.com/cutover/cutover/engine/swarm/swarmtest"
)

// rig is one service behind a router of its own, released on a platform.
type rig struct {
	t        testing.TB
	platform engine.Platform
	images   map[string]string
	router   *router.Client
	url      string
	journal  *journal.Journal
	svc      string
}

// newRig starts a router in this process and opens a journal for a fresh
// service on p; it stops the service's instances when the test ends.
func newRig(t testing.TB, p engine.Platform) *rig {
	t.Helper()
	r := &rig{t: t, platform: p, images: demotest.Images(t)}
	r.svc = fmt.Sprintf("r%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	// A short directory: a unix socket path has room for about 100 bytes.
	dir, err := os.MkdirTemp("", "cutover-swarm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	srv, err := router.New(router.Options{StatePath: filepath.Join(dir, "router.json")})
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "admin.sock")
	admin, err := router.ListenAdmin("unix:"+sock, false)
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeProxy(proxy)
	go srv.ServeAdmin(admin)
	r.url = "http://" + proxy.Addr().String() + "/"
	if r.router, err = router.Dial("unix:"+sock, ""); err != nil {
		t.Fatal(err)
	}
	if r.journal, err = journal.Open(filepath.Join(dir, "journal.db")); err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-in first-out: instances go before the router.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r.router.Close()
		_ = srv.Shutdown(ctx)
	})
	t.Cleanup(r.removeInstances)
	return r
}

func (r *rig) removeInstances() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	insts, err := r.platform.Instances(ctx, r.svc)
	if err != nil {
		r.t.Errorf("cleanup: %v", err)
		return
	}
	for _, in := range insts {
		if err := r.platform.Stop(ctx, in.ID, 0); err != nil {
			r.t.Errorf("cleanup: %v", err)
		}
	}
}

// Strategies the tests use, as the e2e tests of the Docker platform do.
var (
	rolling   = engine.StrategySpec{Type: engine.Rolling, Rolling: engine.RollingSpec{BatchSize: 1}}
	blueGreen = engine.StrategySpec{Type: engine.BlueGreen, BlueGreen: engine.BlueGreenSpec{RollbackWindow: 2 * time.Second}}
	canary    = engine.StrategySpec{Type: engine.Canary, Canary: engine.CanarySpec{Instances: 1, Steps: []engine.CanaryStep{
		{Weight: 25, Gate: engine.Gate{Kind: engine.GatePause, Pause: 2 * time.Second}},
		{Weight: 50, Gate: engine.Gate{Kind: engine.GateAnalysis, Analysis: engine.AnalysisSpec{Window: 3 * time.Second, MaxErrorRate: 0.05, MinRequests: 10}}},
		{Weight: 100},
	}}}
	// canaryHold waits at 25% for an operator, so a test can act mid-canary.
	canaryHold = engine.StrategySpec{Type: engine.Canary, Canary: engine.CanarySpec{Instances: 1, Steps: []engine.CanaryStep{
		{Weight: 25, Gate: engine.Gate{Kind: engine.GateApproval}},
		{Weight: 100},
	}}}
)

// spec is the service's settings with strategy: 3 replicas, quick health
// checks, rollback on any failure.
func (r *rig) spec(strategy engine.StrategySpec) engine.ServiceSpec {
	return engine.ServiceSpec{
		Name: r.svc, Replicas: 3, Port: demo.DefaultPort,
		Health:       engine.HealthCheck{Path: "/healthz", Interval: 200 * time.Millisecond, Timeout: time.Second, Successes: 2, Failures: 2},
		StartTimeout: 30 * time.Second, DrainTimeout: 10 * time.Second, StopGrace: 2 * time.Second,
		OnFailure: engine.FailurePolicy{BeforeTraffic: engine.FailRollback, AfterTraffic: engine.FailRollback},
		Labels:    demotest.Labels(),
		Strategy:  strategy,
	}
}

func (r *rig) deps() engine.Deps {
	return engine.Deps{Platform: r.platform, Router: r.router, Journal: r.journal}
}

// release prepares a release of the demo image with tag to version tag.
func (r *rig) release(strategy engine.StrategySpec, tag string, opts engine.Options) *engine.Release {
	r.t.Helper()
	opts.PollEvery = 200 * time.Millisecond
	rel, err := engine.New(r.deps(), r.spec(strategy), engine.Target{Image: r.images[tag], Version: tag}, opts)
	if err != nil {
		r.t.Fatal(err)
	}
	return rel
}

// run runs rel to its end and fails the test unless it ends with want.
func (r *rig) run(rel *engine.Release, want engine.Outcome) error {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	o, err := rel.Run(ctx)
	if o != want {
		r.t.Fatalf("%s ended %q (%v), want %q; events:\n%s", rel.ID(), o, err, want, r.events(rel.ID()))
	}
	return err
}

// events renders a release's journal, for failure messages.
func (r *rig) events(id string) string {
	evs, err := r.journal.Events(context.Background(), id)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "%s %s: %s %s\n", ev.At.Format("15:04:05.000"), ev.Kind, ev.Message, ev.Error)
	}
	return b.String()
}

// deployV1 puts the service on 1.0.0 from nothing.
func (r *rig) deployV1() {
	r.t.Helper()
	r.run(r.release(rolling, "1.0.0", engine.Options{AutoApprove: true}), engine.Succeeded)
	r.assertFleet("1.0.0", 3)
}

// assertFleet checks the real state: every instance and every weighted
// backend is of version, n of them, and the table routes to the tasks'
// current addresses.
func (r *rig) assertFleet(version string, n int) {
	r.t.Helper()
	ctx := context.Background()
	insts, err := r.platform.Instances(ctx, r.svc)
	if err != nil {
		r.t.Fatal(err)
	}
	var got []string
	addr := map[string]string{}
	for _, in := range insts {
		got = append(got, in.Version+"/"+string(in.State)+"@"+in.Node)
		addr[in.ID] = in.Addr
	}
	ok := len(insts) == n
	for _, in := range insts {
		ok = ok && in.Version == version && in.State == engine.StateRunning && in.Node != ""
	}
	if !ok {
		r.t.Fatalf("instances %v, want %d × %s running on a node", got, n, version)
	}
	table, err := r.router.Table(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	if len(table.Backends) != n || table.Share(version) != 1 {
		r.t.Fatalf("router table %+v, want %d backends, all traffic on %s", table, n, version)
	}
	for _, b := range table.Backends {
		if addr[b.ID] == "" || addr[b.ID] != b.Addr {
			r.t.Fatalf("backend %s at %s is not a running task's address (%v)", b.ID, b.Addr, addr)
		}
	}
}

// eventOf returns the first journaled event of the release matching pred.
func (r *rig) eventOf(id string, pred func(engine.Event) bool) (engine.Event, bool) {
	evs, err := r.journal.Events(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, ev := range evs {
		if pred(ev) {
			return ev, true
		}
	}
	return engine.Event{}, false
}

// background runs rel in the background; the result arrives on the channel.
type result struct {
	outcome engine.Outcome
	err     error
}

func background(rel *engine.Release) <-chan result {
	ch := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		o, err := rel.Run(ctx)
		ch <- result{o, err}
	}()
	return ch
}

// waitFor waits for an event of rel matching pred, subscribed before Run.
func waitFor(t testing.TB, events <-chan engine.Event, what string, pred func(engine.Event) bool) engine.Event {
	t.Helper()
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("the release ended before %s", what)
			}
			if pred(ev) {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s within 2 minutes", what)
		}
	}
}

// onSwarmUnderLoad puts a fresh service on 1.0.0 on the swarm, and starts
// the load once 1.0.0 serves it.
func onSwarmUnderLoad(t *testing.T, excuse500 ...string) (*rig, *demotest.Load) {
	t.Helper()
	r := newRig(t, swarmtest.Platform(t))
	r.deployV1()
	load := demotest.StartAppLoad(t, r.url, excuse500...)
	load.WaitServed(t, "1.0.0", 50)
	return r, load
}

// held is a canary to 1.1.0 running in the background, waiting at 25%
// for an operator's approval.
type held struct {
	rel    *engine.Release
	events <-chan engine.Event
	done   <-chan result
}

func (r *rig) holdCanary(t *testing.T) held {
	t.Helper()
	rel := r.release(canaryHold, "1.1.0", engine.Options{})
	events, unsub := rel.Subscribe()
	t.Cleanup(unsub)
	h := held{rel: rel, events: events, done: background(rel)}
	waitFor(t, events, "the approval gate at 25%", func(ev engine.Event) bool { return ev.Kind == engine.EventGateWaiting })
	return h
}

func TestRollingReleaseOnSwarmUnderLoadLosesNoRequest(t *testing.T) {
	r, load := onSwarmUnderLoad(t)
	r.run(r.release(rolling, "1.1.0", engine.Options{AutoApprove: true}), engine.Succeeded)
	load.WaitServed(t, "1.1.0", 50)
	load.AssertNoFailures(t)
	r.assertFleet("1.1.0", 3)
}

func TestBlueGreenReleaseOnSwarmUnderLoadLosesNoRequest(t *testing.T) {
	r, load := onSwarmUnderLoad(t)
	rel := r.release(blueGreen, "1.1.0", engine.Options{AutoApprove: true})
	r.run(rel, engine.Succeeded)
	load.WaitServed(t, "1.1.0", 50)
	load.AssertNoFailures(t)
	r.assertFleet("1.1.0", 3)
	if _, ok := r.eventOf(rel.ID(), func(ev engine.Event) bool { return ev.Kind == engine.EventVerified }); !ok {
		t.Errorf("no green instance was verified before the switch:\n%s", r.events(rel.ID()))
	}
}

func TestCanaryOnSwarmPassesItsAnalysisUnderLoad(t *testing.T) {
	r, load := onSwarmUnderLoad(t)
	rel := r.release(canary, "1.1.0", engine.Options{AutoApprove: true})
	r.run(rel, engine.Succeeded)
	load.AssertNoFailures(t)
	r.assertFleet("1.1.0", 3)
	// The journal says where each new instance ran, for history.
	evs, err := r.journal.Events(context.Background(), rel.ID())
	if err != nil {
		t.Fatal(err)
	}
	healthy := 0
	for _, ev := range evs {
		if ev.Kind == engine.EventHealthy {
			healthy++
			if ev.Instance == nil || ev.Instance.Node == "" || ev.Instance.Addr == "" {
				t.Errorf("healthy event %q does not say where the instance runs: %+v", ev.Message, ev.Instance)
			}
		}
	}
	if healthy != 3 {
		t.Errorf("%d healthy events, want one per new instance (3)", healthy)
	}
	if ev, ok := r.eventOf(rel.ID(), func(ev engine.Event) bool { return ev.Kind == engine.EventGatePassed && ev.Analysis != nil }); !ok {
		t.Errorf("no analysis passed:\n%s", r.events(rel.ID()))
	} else {
		t.Logf("analysis: %s", ev.Message)
	}
}

func TestCanaryOnSwarmFailingItsAnalysisRollsBackUnderLoad(t *testing.T) {
	r, load := onSwarmUnderLoad(t, "1.4.0-errors")
	rel := r.release(canary, "1.4.0-errors", engine.Options{AutoApprove: true})
	if err := r.run(rel, engine.RolledBack); err == nil || !strings.Contains(err.Error(), "error rate") {
		t.Errorf("rollback error %v, want the analysis breach (error rate)", err)
	}
	load.AssertNoFailures(t)
	r.assertFleet("1.0.0", 3)
	if load.Served("1.4.0-errors")+load.Excused("1.4.0-errors") == 0 {
		t.Error("the canary never had traffic: the analysis proved nothing")
	}
}

func TestCrashingVersionOnSwarmRollsBackBeforeTraffic(t *testing.T) {
	r, load := onSwarmUnderLoad(t)
	start := time.Now()
	err := r.run(r.release(canary, "1.2.0-crash", engine.Options{AutoApprove: true}), engine.RolledBack)
	if err == nil || !strings.Contains(err.Error(), "crashed while starting") || !strings.Contains(err.Error(), "exited with code 3") {
		t.Errorf("rollback error %v, want the crash with its exit code", err)
	}
	t.Logf("crash found and rolled back in %s: %v", time.Since(start).Round(time.Millisecond), err)
	load.AssertNoFailures(t)
	r.assertFleet("1.0.0", 3)
}

func TestEmergencyRollbackMidCanaryOnSwarmTakesOverUnderLoad(t *testing.T) {
	r, load := onSwarmUnderLoad(t)
	h := r.holdCanary(t)
	load.WaitServed(t, "1.1.0", 20)

	// Another operator's `cutover rollback`: its own release, fencing the deploy out.
	rb, err := engine.NewRollback(r.deps(), r.spec(canaryHold), engine.Target{Version: "1.0.0", Image: r.images["1.0.0"]}, h.rel.ID(),
		engine.Options{PollEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r.run(rb, engine.RolledBack)
	if res := <-h.done; res.outcome != engine.TakenOver {
		t.Errorf("the fenced deploy ended %q (%v), want taken-over", res.outcome, res.err)
	}
	load.AssertNoFailures(t)
	r.assertFleet("1.0.0", 3)
	applied, _ := r.eventOf(rb.ID(), func(ev engine.Event) bool { return ev.Kind == engine.EventApplied })
	applying, _ := r.eventOf(rb.ID(), func(ev engine.Event) bool { return ev.Kind == engine.EventApplying })
	t.Logf("rollback table applied %s after it was journaled", applied.At.Sub(applying.At))
}

// stopTask stops a task's container as an operator would, by hand on its
// node: SIGTERM, and SIGKILL after a second. Nothing drained it first: the
// router learns of it when connections fail. Through a node address the
// kernel refuses them and the router retries elsewhere; through 127.0.0.1
// Docker's userland proxy accepts them and hangs up, and a POST already
// sent cannot be replayed (see swarmtest's advertiseAddr), so the test
// needs a node address other than loopback.
func stopTask(t *testing.T, id string) {
	t.Helper()
	cli := demotest.Docker(t).Client()
	if addr := swarmtest.NodeAddr(t, cli); net.ParseIP(addr).IsLoopback() {
		t.Skipf("skipping: the swarm node advertises %s; a task killed by hand loses the POSTs Docker's userland proxy accepted for it", addr)
	}
	timeout := 1
	if err := cli.ContainerStop(context.Background(), containerOf(t, cli, id), container.StopOptions{Timeout: &timeout}); err != nil {
		t.Fatal(err)
	}
}

// serving returns a running instance of version with weight.
func (r *rig) serving(version string) engine.Instance {
	r.t.Helper()
	ctx := context.Background()
	table, err := r.router.Table(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	insts, err := r.platform.Instances(ctx, r.svc)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, in := range insts {
		for _, b := range table.Backends {
			if b.ID == in.ID && b.Weight > 0 && in.Version == version {
				return in
			}
		}
	}
	r.t.Fatalf("no instance of %s serving: %+v", version, table)
	return engine.Instance{}
}

func TestStableTaskKilledMidCanaryIsReplacedAndTheTableFollows(t *testing.T) {
	r, load := onSwarmUnderLoad(t)
	h := r.holdCanary(t)

	killed := r.serving("1.0.0")
	stopTask(t, killed.ID)
	replaced := waitFor(t, h.events, "the replacement task", func(ev engine.Event) bool { return ev.Kind == engine.EventReplaced })
	waitFor(t, h.events, "the table following it", func(ev engine.Event) bool {
		if ev.Kind != engine.EventApplied {
			return false
		}
		for _, b := range ev.Table.Backends {
			if b.ID == replaced.Instance.ID && b.Weight > 0 {
				return true
			}
		}
		return false
	})
	table, err := r.router.Table(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range table.Backends {
		if b.ID == killed.ID {
			t.Errorf("the killed task %s is still in the table: %+v", killed.ID, table)
		}
	}
	if share := table.Share("1.1.0"); share < 0.24 || share > 0.26 {
		t.Errorf("the canary's share is %.2f after the replacement, want 0.25", share)
	}
	if err := h.rel.Send(engine.CmdApprove); err != nil {
		t.Fatal(err)
	}
	if res := <-h.done; res.outcome != engine.Succeeded {
		t.Fatalf("release ended %q (%v), want succeeded:\n%s", res.outcome, res.err, r.events(h.rel.ID()))
	}
	load.AssertNoFailures(t)
	r.assertFleet("1.1.0", 3)
}

func TestCanaryTaskKilledMidCanaryRollsBackPerOnFailure(t *testing.T) {
	r, load := onSwarmUnderLoad(t)
	h := r.holdCanary(t)
	load.WaitServed(t, "1.1.0", 20)

	canary := r.serving("1.1.0")
	stopTask(t, canary.ID)
	// Whichever comes first says it: probes refused, or Swarm's report.
	res := <-h.done
	if res.outcome != engine.RolledBack || res.err == nil || !strings.Contains(res.err.Error(), canary.Name+" (1.1.0) is ") {
		t.Fatalf("release ended %q (%v), want rolled back after the canary %s died:\n%s", res.outcome, res.err, canary.Name, r.events(h.rel.ID()))
	}
	t.Logf("rolled back: %v", res.err)
	load.AssertNoFailures(t)
	r.assertFleet("1.0.0", 3)
}

// A version Swarm cannot place (here: a constraint no node satisfies)
// fails its launch at once with Swarm's reason, long before the start
// timeout, and rolls back before it had traffic.
func TestUnplaceableVersionFailsAtOnceWithSwarmsReason(t *testing.T) {
	r, load := onSwarmUnderLoad(t)
	spec := r.spec(canary)
	spec.Placement = []string{"node.labels.cutover-nowhere==1"}
	rel, err := engine.New(r.deps(), spec, engine.Target{Image: r.images["1.1.0"], Version: "1.1.0"},
		engine.Options{AutoApprove: true, PollEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = r.run(rel, engine.RolledBack)
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "Swarm cannot place it: no suitable node (scheduling constraints not satisfied") {
		t.Errorf("rollback error %v, want Swarm's reason", err)
	}
	if took >= spec.StartTimeout/2 {
		t.Errorf("the release took %s to fail: it waited on the start timeout (%s) instead of failing at once", took, spec.StartTimeout)
	}
	t.Logf("failed and rolled back in %s: %v", took.Round(time.Millisecond), err)
	load.AssertNoFailures(t)
	r.assertFleet("1.0.0", 3)
}
