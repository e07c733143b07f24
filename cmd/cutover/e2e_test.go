package main

// End-to-end tests of the headless commands: the real binary, the real
// router process and the real Docker engine, with load running the whole
// time. Every request the release itself fails (a connection error, 502,
// 503 or 504) fails the test; the 500s the erroring demo version returns
// on purpose are counted apart.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/demo/demotest"
	"github.com/cutover/cutover/engine/docker"
	"github.com/cutover/cutover/engine/ecr/ecrtest"
	"github.com/cutover/cutover/engine/router"
)

func TestMain(m *testing.M) {
	code := demotest.Main(m)
	ecrtest.Stop()
	os.Exit(code)
}

// e2e is one service on a router of its own, driven through the binary.
type e2e struct {
	t        testing.TB
	bin      string
	dir      string
	svc      string
	listen   string
	refs     map[string]string
	platform *docker.Platform
	router   *router.Client
}

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

// newE2E starts a router and writes a config for a fresh service with the
// given strategy; it removes everything when the test ends.
func newE2E(t testing.TB, strategy string) *e2e {
	t.Helper()
	e := &e2e{t: t, refs: demotest.Images(t), bin: demotest.Binary(t), platform: demotest.Docker(t)}
	e.dir = t.TempDir()
	e.svc = fmt.Sprintf("e2e-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	t.Cleanup(e.removeContainers)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.listen = l.Addr().String()
	l.Close()
	state := filepath.Join(e.dir, ".cutover")
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(state, "router-main.sock")
	cmd := exec.Command(e.bin, "router", "--listen", e.listen, "--admin", "unix:"+sock,
		"--state", filepath.Join(state, "router-main.json"))
	logf, err := os.Create(filepath.Join(e.dir, "router.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("router log:\n%s", tail(string(b), 30))
		}
	})
	e.router, err = waitRouter(context.Background(), "unix:"+sock, 10*time.Second)
	if err != nil {
		t.Fatalf("router did not come up: %v", err)
	}
	t.Cleanup(func() { e.router.Close() })

	cfg := fmt.Sprintf(`state_dir: .cutover
routers:
  main:
    listen: %s
    admin: unix:.cutover/router-main.sock
services:
  %s:
    image: %s
    replicas: 3
    port: 8080
    health: {path: /healthz, interval: 200ms, timeout: 1s, successes: 2, failures: 2}
    start_timeout: 15s
    drain_timeout: 10s
    stop_grace: 2s
    on_failure: {before_traffic: rollback, after_traffic: rollback}
    strategy:
      %s
`, e.listen, e.svc, demotest.Repo(), strategy)
	if err := os.WriteFile(filepath.Join(e.dir, "cutover.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *e2e) removeContainers() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	insts, err := e.platform.Instances(ctx, e.svc)
	if err != nil {
		e.t.Errorf("cleanup: %v", err)
		return
	}
	for _, in := range insts {
		if err := e.platform.Stop(ctx, in.ID, 0); err != nil {
			e.t.Errorf("cleanup: %v", err)
		}
	}
}

// command prepares the binary with the test's config and labels.
func (e *e2e) command(args ...string) *exec.Cmd {
	cmd := exec.Command(e.bin, append([]string{"-c", filepath.Join(e.dir, "cutover.yaml")}, args...)...)
	cmd.Env = append(os.Environ(), "CUTOVER_LABELS="+engine.LabelTest+"=1")
	cmd.Dir = e.dir
	return cmd
}

// run runs the binary to the end and returns its output and exit code.
func (e *e2e) run(args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	return runCmd(e.t, e.command(args...))
}

// runCmd runs cmd to the end and returns its output and exit code.
func runCmd(t testing.TB, cmd *exec.Cmd) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %v: %v", cmd.Args, err)
	}
	return out.String(), errb.String(), code
}

// mustRun runs the binary and fails the test unless it exits with want.
func (e *e2e) mustRun(want int, args ...string) string {
	e.t.Helper()
	out, errs, code := e.run(args...)
	if code != want {
		e.t.Fatalf("cutover %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, tail(out, 40), errs)
	}
	return out
}

// deployV1 puts the service on 1.0.0 from nothing.
func (e *e2e) deployV1() {
	e.t.Helper()
	e.mustRun(exitOK, "deploy", e.svc, "1.0.0", "--auto", "--strategy", "rolling")
	e.assertFleet("1.0.0", 3)
}

// assertFleet checks the real state: every container and every weighted
// backend is of version, and there are n of them.
func (e *e2e) assertFleet(version string, n int) {
	e.t.Helper()
	ctx := context.Background()
	insts, err := e.platform.Instances(ctx, e.svc)
	if err != nil {
		e.t.Fatal(err)
	}
	var versions []string
	for _, in := range insts {
		versions = append(versions, in.Version+"/"+string(in.State))
	}
	if len(insts) != n {
		e.t.Fatalf("containers: %v, want %d × %s", versions, n, version)
	}
	for _, in := range insts {
		if in.Version != version || in.State != engine.StateRunning {
			e.t.Fatalf("containers: %v, want %d × %s running", versions, n, version)
		}
	}
	table, err := e.router.Table(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(table.Backends) != n || table.Share(version) != 1 {
		e.t.Fatalf("router table %+v, want %d backends, all traffic on %s", table, n, version)
	}
}

// load is a load loop against the router mixing GETs, POSTs with bodies
// and slow (300 ms) requests. POSTs matter: Go's client silently retries
// idempotent requests on a reset connection, which would hide drops.
type load struct {
	mu        sync.Mutex
	total     int
	byVersion map[string]int
	on500     map[string]int // deliberate 500s, by version
	failures  []string
	stop      chan struct{}
	wg        sync.WaitGroup
}

func startLoad(t *testing.T, url string, workers int) *load {
	l := &load{byVersion: map[string]int{}, on500: map[string]int{}, stop: make(chan struct{})}
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	body := strings.Repeat("x", 4096)
	for w := 0; w < workers; w++ {
		l.wg.Add(1)
		go func(w int) {
			defer l.wg.Done()
			for i := w; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				var req *http.Request
				switch i % 4 {
				case 0:
					req, _ = http.NewRequest("GET", url, nil)
				case 1:
					req, _ = http.NewRequest("POST", url, strings.NewReader(body))
				case 2:
					req, _ = http.NewRequest("GET", url+"?sleep=300ms", nil)
				case 3:
					req, _ = http.NewRequest("POST", url+"?sleep=300ms", strings.NewReader(body))
				}
				l.record(req, client)
			}
		}(w)
	}
	t.Cleanup(func() { l.finish() })
	return l
}

func (l *load) record(req *http.Request, client *http.Client) {
	resp, err := client.Do(req)
	var status int
	var version string
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		status, version = resp.StatusCode, resp.Header.Get("X-Demo-Version")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total++
	switch {
	case err != nil:
		l.failures = append(l.failures, fmt.Sprintf("%s %s: %v", req.Method, req.URL.RequestURI(), err))
	case status == http.StatusInternalServerError && version != "":
		l.on500[version]++
		l.byVersion[version]++
	case status/100 != 2:
		l.failures = append(l.failures, fmt.Sprintf("%s %s: %d", req.Method, req.URL.RequestURI(), status))
	default:
		l.byVersion[version]++
	}
}

// finish stops the loop and waits for requests in flight.
func (l *load) finish() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// assertNoFailures stops the load and fails the test on any request the
// release failed.
func (l *load) assertNoFailures(t *testing.T) {
	t.Helper()
	l.finish()
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("load: %d requests, by version %v, deliberate 500s %v", l.total, l.byVersion, l.on500)
	if l.total < 50 {
		t.Errorf("load sent only %d requests; the test proves nothing", l.total)
	}
	if len(l.failures) > 0 {
		n := min(len(l.failures), 10)
		t.Errorf("%d of %d requests failed, first %d:\n%s", len(l.failures), l.total, n, strings.Join(l.failures[:n], "\n"))
	}
}

func (l *load) served(version string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byVersion[version]
}

// waitServed waits until version has answered n requests of the load.
func (l *load) waitServed(t *testing.T, version string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for l.served(version) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s answered %d requests in 30s, want %d", version, l.served(version), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *e2e) url() string { return "http://" + e.listen + "/" }

func TestRollingReleaseUnderLoadLosesNoRequest(t *testing.T) {
	e := newE2E(t, rollingYAML)
	e.deployV1()
	l := startLoad(t, e.url(), 8)
	e.mustRun(exitOK, "deploy", e.svc, "1.1.0")
	l.assertNoFailures(t)
	e.assertFleet("1.1.0", 3)
	if l.served("1.1.0") == 0 {
		t.Error("no request reached 1.1.0")
	}
}

func TestBlueGreenReleaseUnderLoadLosesNoRequest(t *testing.T) {
	e := newE2E(t, blueGreenYAML)
	e.deployV1()
	l := startLoad(t, e.url(), 8)
	out := e.mustRun(exitOK, "deploy", e.svc, "1.1.0", "--output", "json")
	l.assertNoFailures(t)
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
	e := newE2E(t, canaryYAML)
	e.deployV1()
	l := startLoad(t, e.url(), 8)
	out := e.mustRun(exitOK, "deploy", e.svc, "1.1.0", "--output", "json")
	l.assertNoFailures(t)
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
	e := newE2E(t, canaryYAML)
	e.deployV1()
	l := startLoad(t, e.url(), 8)
	out := e.mustRun(exitRolledBack, "deploy", e.svc, "1.3.0-unhealthy", "--output", "json")
	l.assertNoFailures(t)
	e.assertFleet("1.0.0", 3)
	if n := l.served("1.3.0-unhealthy"); n != 0 {
		t.Errorf("%d requests reached the unhealthy version", n)
	}
	for _, ev := range decodeEvents(t, out) {
		if ev.Table != nil && ev.Table.Weights()["1.3.0-unhealthy"] > 0 {
			t.Errorf("a table gave the unhealthy version weight: %+v", ev.Table)
		}
	}
}

func TestCanaryToErroringVersionRollsBackOnItsFailureRule(t *testing.T) {
	e := newE2E(t, canaryYAML)
	e.deployV1()
	l := startLoad(t, e.url(), 8)
	out := e.mustRun(exitRolledBack, "deploy", e.svc, "1.4.0-errors", "--output", "json")
	l.assertNoFailures(t)
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
	if l.on500["1.4.0-errors"] == 0 {
		t.Error("the erroring version served no 500s: the analysis had nothing to catch")
	}
}

func TestRollbackFromSecondProcessTakesOverMidCanary(t *testing.T) {
	e := newE2E(t, canaryHoldYAML)
	e.deployV1()
	l := startLoad(t, e.url(), 8)
	deploy, events := e.startDeploy("1.1.0")
	waitEvent(t, events, func(ev engine.Event) bool { return ev.Kind == engine.EventGateWaiting }, 60*time.Second)
	if got := e.share("1.1.0"); got != 0.25 {
		t.Fatalf("canary share before rollback %.2f, want 0.25", got)
	}
	l.waitServed(t, "1.1.0", 20)

	start := time.Now()
	rb := e.command("rollback", e.svc, "--output", "json")
	var rbOut bytes.Buffer
	rb.Stdout, rb.Stderr = &rbOut, &rbOut
	if err := rb.Start(); err != nil {
		t.Fatal(err)
	}
	// Poll the router as fast as it answers: how soon is v1 back at 100%?
	for e.share("1.0.0") != 1 {
		if time.Since(start) > 10*time.Second {
			t.Fatal("traffic not back on 1.0.0 within 10s of the rollback command")
		}
	}
	backAfter := time.Since(start)
	if err := rb.Wait(); err != nil {
		t.Fatalf("rollback: %v\n%s", err, rbOut.String())
	}
	swap := applyLatency(t, rbOut.String())
	t.Logf("traffic 100%% on 1.0.0 %v after the rollback process started; the table swap took %v after the rollback began", backAfter, swap)
	if swap > 500*time.Millisecond {
		t.Errorf("rollback's table swap took %v, want milliseconds", swap)
	}

	// The deploy process notices it was fenced out and stops.
	code := waitExit(t, deploy, 30*time.Second)
	if code != exitTakenOver {
		t.Errorf("deploy exited %d, want %d (taken over)", code, exitTakenOver)
	}
	l.assertNoFailures(t)
	e.assertFleet("1.0.0", 3)
}

func TestKilledDeployCanBeSeenAndRolledBack(t *testing.T) {
	e := newE2E(t, canaryHoldYAML)
	e.deployV1()
	l := startLoad(t, e.url(), 8)
	deploy, events := e.startDeploy("1.1.0")
	waitEvent(t, events, func(ev engine.Event) bool { return ev.Kind == engine.EventGateWaiting }, 60*time.Second)
	l.waitServed(t, "1.1.0", 20)
	if err := deploy.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = deploy.Wait()

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
	l.assertNoFailures(t)
	e.assertFleet("1.0.0", 3)
	hist := e.mustRun(exitOK, "history", e.svc)
	if !strings.Contains(hist, "rollback") {
		t.Errorf("history does not show the rollback:\n%s", hist)
	}
}

// startDeploy runs `cutover deploy` in the background, with its NDJSON
// events on a channel.
func (e *e2e) startDeploy(version string) (*exec.Cmd, <-chan engine.Event) {
	e.t.Helper()
	cmd := e.command("deploy", e.svc, version, "--auto", "--output", "json")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if e.t.Failed() {
			e.t.Logf("deploy stderr:\n%s", stderr.String())
		}
	})
	ch := make(chan engine.Event, 1024)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var ev engine.Event
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				ch <- ev
			}
		}
	}()
	return cmd, ch
}

func (e *e2e) share(version string) float64 {
	table, err := e.router.Table(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return table.Share(version)
}

func waitEvent(t *testing.T, events <-chan engine.Event, match func(engine.Event) bool, within time.Duration) engine.Event {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("deploy ended before the awaited event")
			}
			if match(ev) {
				return ev
			}
		case <-timeout:
			t.Fatalf("no awaited event within %v", within)
		}
	}
}

func waitExit(t *testing.T, cmd *exec.Cmd, within time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(within):
		t.Fatalf("process still running after %v", within)
		return -1
	}
}

func decodeEvents(t *testing.T, ndjson string) []engine.Event {
	t.Helper()
	var evs []engine.Event
	for _, line := range strings.Split(strings.TrimSpace(ndjson), "\n") {
		var ev engine.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("event %q: %v", line, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// applyLatency is the time from a rollback's first event to its first
// applied table, from its NDJSON output.
func applyLatency(t *testing.T, ndjson string) time.Duration {
	t.Helper()
	var first, applied time.Time
	for _, ev := range decodeEvents(t, ndjson) {
		if first.IsZero() {
			first = ev.At
		}
		if ev.Kind == engine.EventApplied && applied.IsZero() {
			applied = ev.At
		}
	}
	if applied.IsZero() {
		t.Fatalf("rollback applied no table:\n%s", ndjson)
	}
	return applied.Sub(first)
}

func containsAll(got []float64, want ...float64) bool {
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || g == w
		}
		if !found {
			return false
		}
	}
	return true
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Continuous delivery: a pipeline deploys to the first gate and leaves;
// each `cutover approve` passes one gate and stops at the next.
func TestDetachedReleaseGoesOneGateFurtherPerApprove(t *testing.T) {
	e := newE2E(t, `type: canary
      canary:
        steps:
          - weight: 25
            approval: true
          - weight: 50
            approval: true
          - weight: 100`)
	e.deployV1()
	l := startLoad(t, e.url(), 8)
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
	l.waitServed(t, "1.1.0", 5)
	e.mustRun(exitWaiting, "approve", e.svc)
	if got := e.share("1.1.0"); got != 0.5 {
		t.Fatalf("after one approve 1.1.0 has %.2f, want 0.50", got)
	}
	e.mustRun(exitOK, "approve", e.svc)
	l.assertNoFailures(t)
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
	e := newE2E(t, `type: canary
      canary:
        steps:
          - weight: 25
            approval: true
          - weight: 100`)
	e.deployV1()
	l := startLoad(t, e.url(), 8)
	deploy, events := e.startDeploy("1.1.0")
	// Killed mid-canary, just after 25% of the traffic moved.
	canary := waitEvent(t, events, func(ev engine.Event) bool {
		return ev.Kind == engine.EventApplied && ev.Table != nil && ev.Table.Share("1.1.0") == 0.25
	}, 60*time.Second)
	_ = deploy.Process.Signal(syscall.SIGKILL)
	_ = deploy.Wait()
	out, errs, code := e.run("deploy", e.svc, "1.1.0", "--auto", "--output", "json")
	if code != exitOK {
		t.Fatalf("resumed deploy: exit %d\n%s\n%s", code, errs, tail(out, 20))
	}
	l.assertNoFailures(t)
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
	e := newE2E(t, canaryHoldYAML)
	e.deployV1()
	ctx := context.Background()
	cli := e.platform.Client()
	moving := demotest.Repo() + ":9.9.9"
	if err := cli.ImageTag(ctx, e.refs["1.1.0"], moving); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = cli.ImageRemove(context.Background(), moving, image.RemoveOptions{}) })
	deploy, events := e.startDeploy("9.9.9")
	waitEvent(t, events, func(ev engine.Event) bool { return ev.Kind == engine.EventGateWaiting }, 60*time.Second)
	_ = deploy.Process.Signal(syscall.SIGKILL)
	_ = deploy.Wait()

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
