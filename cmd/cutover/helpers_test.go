package main

// The end-to-end harness: a service of its own per test, on a router
// process of its own, driven through the real binary against the real
// Docker engine, with the shared load (demotest.Load) running through the
// router. See e2e_test.go and killmatrix_test.go for the tests.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/demo/demotest"
	"github.com/cutover/cutover/engine/docker"
	"github.com/cutover/cutover/engine/ecr/ecrtest"
	"github.com/cutover/cutover/engine/router"
	"github.com/cutover/cutover/engine/swarm/swarmtest"
)

func TestMain(m *testing.M) {
	code := swarmtest.Main(m) // the demo images; a swarm for the tests that ask
	ecrtest.Stop()
	os.Exit(code)
}

// e2e is one service on a router of its own, driven through the binary.
type e2e struct {
	t        testing.TB
	bin      string
	dir      string
	svc      string
	replicas int
	listen   string
	refs     map[string]string
	platform *docker.Platform
	router   *router.Client
	// For processes started viaProxy: proxies between the binary and
	// Docker and between it and the router's admin API (its own config).
	docker, admin *holdProxy
	// adminAddr and tokenFile are the router's TCP admin address and its
	// token file (e2eService.adminTCP), else empty.
	adminAddr, tokenFile string
}

// e2eService holds the cutover.yaml settings tests vary; zero fields take
// the defaults of newE2E.
type e2eService struct {
	strategy  string // the YAML under `strategy:`
	replicas  int
	successes int    // health checks to pass
	stopGrace string // a duration
	drain     string // drain_timeout
	onFailure string // rollback or pause, before and after traffic
	proxy     bool   // put holdProxies between the binary and Docker and the router
	// adminTCP gives the router a loopback TCP admin address with a token
	// (e.adminAddr, e.tokenFile), which Prometheus can scrape.
	adminTCP bool
	// top, when set, returns top-level YAML for the config (prometheus:,
	// notifications:), called once the router is up.
	top func(e *e2e) string
}

// routerListening finds the address in the router's start line.
var routerListening = regexp.MustCompile(`msg="router started" listen=(\S+)`)

// services counts the services this test process made, so that names made
// in the same microsecond by parallel tests still differ.
var services atomic.Int64

// e2eSlots limits how many end-to-end cases run at once: each has its own
// service, router and load, but they share two cores with everything else.
var e2eSlots = make(chan struct{}, 3)

func parallelE2E(t *testing.T) {
	t.Parallel()
	e2eSlots <- struct{}{}
	t.Cleanup(func() { <-e2eSlots })
}

// newE2E starts a router and writes a config for a fresh service of three
// replicas with the given strategy; it removes everything when the test
// ends.
func newE2E(t testing.TB, strategy string) *e2e {
	t.Helper()
	return newE2EWith(t, e2eService{strategy: strategy})
}

// newE2EWith is newE2E with the settings of s.
func newE2EWith(t testing.TB, s e2eService) *e2e {
	t.Helper()
	if s.replicas == 0 {
		s.replicas = 3
	}
	if s.successes == 0 {
		s.successes = 2
	}
	if s.stopGrace == "" {
		s.stopGrace = "2s"
	}
	if s.drain == "" {
		s.drain = "10s"
	}
	if s.onFailure == "" {
		s.onFailure = "rollback"
	}
	e := &e2e{t: t, refs: demotest.Images(t), bin: demotest.Binary(t), platform: demotest.Docker(t), replicas: s.replicas}
	e.dir = t.TempDir()
	e.svc = fmt.Sprintf("e2e-%d-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6, services.Add(1))
	t.Cleanup(e.removeContainers)
	if s.proxy {
		e.docker = newDockerProxy(t, e.platform)
	}
	state := filepath.Join(e.dir, ".cutover")
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(state, "router-main.sock")
	// The router picks its port and logs it: a port picked here and freed
	// could be taken by any connection of the parallel tests before the
	// router binds it.
	admin, adminYAML, token := "unix:"+sock, "admin: unix:.cutover/router-main.sock", ""
	args := []string{"router", "--listen", "127.0.0.1:0", "--state", filepath.Join(state, "router-main.json")}
	if s.adminTCP {
		addr, err := freeLoopbackAddr()
		if err != nil {
			t.Fatal(err)
		}
		e.adminAddr, e.tokenFile, token = addr, filepath.Join(e.dir, "admin.token"), "e2e-admin-token"
		if err := os.WriteFile(e.tokenFile, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		admin, adminYAML = addr, "admin: "+addr+"\n    token_file: admin.token"
		args = append(args, "--token-file", e.tokenFile)
	}
	cmd := exec.Command(e.bin, append(args, "--admin", admin)...)
	logf := filepath.Join(e.dir, "router.log")
	demotest.StartLogged(t, cmd, "router", logf)
	var err error
	e.router, err = waitRouterWith(context.Background(), admin, token, 10*time.Second)
	if err != nil {
		t.Fatalf("router did not come up: %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); e.listen == ""; time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(logf)
		if m := routerListening.FindSubmatch(b); m != nil {
			e.listen = string(m[1])
		} else if time.Now().After(deadline) {
			t.Fatalf("the router logged no address it listens on:\n%s", b)
		}
	}
	t.Cleanup(func() { e.router.Close() })

	top := ""
	if s.top != nil {
		top = s.top(e)
	}
	cfg := `state_dir: .cutover
` + top + `
routers:
  main:
    listen: %s
    %s
services:
  %s:
    image: %s
    replicas: %d
    port: 8080
    health: {path: /healthz, interval: 200ms, timeout: 1s, successes: %d, failures: 2}
    start_timeout: 15s
    drain_timeout: %s
    stop_grace: %s
    on_failure: {before_traffic: %s, after_traffic: %s}
    strategy:
      %s
`
	write := func(name, admin string) {
		yaml := fmt.Sprintf(cfg, e.listen, admin, e.svc, demotest.Repo(), s.replicas, s.successes, s.drain, s.stopGrace, s.onFailure, s.onFailure, s.strategy)
		if err := os.WriteFile(filepath.Join(e.dir, name), []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("cutover.yaml", adminYAML)
	if s.proxy {
		e.admin = newHoldProxy(t, sock)
		write("cutover-proxied.yaml", "admin: unix:"+e.admin.sock)
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

// command prepares the binary with the test's config and labels. It talks
// to Docker and the router directly, not through the test's proxies.
func (e *e2e) command(args ...string) *exec.Cmd {
	return e.commandWith("cutover.yaml", args...)
}

// commandWith prepares the binary with the config file named config.
func (e *e2e) commandWith(config string, args ...string) *exec.Cmd {
	cmd := exec.Command(e.bin, append([]string{"-c", filepath.Join(e.dir, config)}, args...)...)
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
	e.assertFleet("1.0.0", e.replicas)
}

// assertFleet checks the real state: the service has exactly n containers,
// in any state, all of version and running, and the router's table holds
// exactly those instances, each with weight, all traffic on version.
func (e *e2e) assertFleet(version string, n int) {
	e.t.Helper()
	ctx := context.Background()
	insts, err := e.platform.Instances(ctx, e.svc)
	if err != nil {
		e.t.Fatal(err)
	}
	var versions []string
	ids := map[string]bool{}
	for _, in := range insts {
		versions = append(versions, fmt.Sprintf("%s/%s/%s", in.Version, in.State, shortID(in.ID)))
		ids[in.ID] = true
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
	good := len(table.Backends) == n && table.Share(version) == 1
	for _, b := range table.Backends {
		good = good && ids[b.ID] && b.Weight > 0
	}
	if !good {
		e.t.Fatalf("router table %s, want exactly the containers %v, each with weight, all traffic on %s", describeBackends(table), versions, version)
	}
}

// ids lists the IDs of the service's containers of version, any state.
func (e *e2e) ids(version string) []string {
	e.t.Helper()
	insts, err := e.platform.Instances(context.Background(), e.svc)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, in := range insts {
		if in.Version == version {
			out = append(out, in.ID)
		}
	}
	sort.Strings(out)
	return out
}

func shortID(id string) string { return id[:min(len(id), 12)] }

func describeBackends(t engine.RouteTable) string {
	var parts []string
	for _, b := range t.Backends {
		parts = append(parts, fmt.Sprintf("%s/%s=%d", b.Version, shortID(b.ID), b.Weight))
	}
	return fmt.Sprintf("epoch %d [%s]", t.Epoch, strings.Join(parts, " "))
}

func (e *e2e) url() string { return "http://" + e.listen + "/" }

// startLoad runs the shared load (250 requests/s, 30% POSTs with a body,
// slow requests) through the service's router until the test ends; only
// the 500s of the versions named in excuse500 are not failures.
func (e *e2e) startLoad(excuse500 ...string) *demotest.Load {
	return demotest.StartAppLoad(e.t, e.url(), excuse500...)
}

// proc is a cutover process running in the background; its NDJSON events
// arrive on events as they are printed and are kept in all.
type proc struct {
	t      testing.TB
	cmd    *exec.Cmd
	args   []string // the command's arguments after the config
	events <-chan engine.Event
	stderr *syncBuffer
	tty    *os.File // the terminal's master side, when it runs on one
	done   chan struct{}

	mu   sync.Mutex
	all  []engine.Event
	code int
}

// procOptions says how start runs the binary.
type procOptions struct {
	viaProxy bool // its Docker and router calls go through the test's holdProxies
	tty      bool // its stdin is a terminal, so it asks at approval gates
}

// start runs the binary with args in the background.
func (e *e2e) start(o procOptions, args ...string) *proc {
	e.t.Helper()
	cmd := e.command(args...)
	if o.viaProxy {
		cmd = e.commandWith("cutover-proxied.yaml", args...)
		cmd.Env = append(cmd.Env, "DOCKER_HOST=unix://"+e.docker.sock)
	}
	p := &proc{t: e.t, cmd: cmd, args: args, stderr: &syncBuffer{}, done: make(chan struct{}), code: -1}
	var slave *os.File
	if o.tty {
		var err error
		p.tty, slave, err = openPTY()
		if err != nil {
			e.t.Fatalf("open a terminal: %v", err)
		}
		cmd.Stdin = slave
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	if slave != nil {
		slave.Close()
		// Drain the echo of what the test types; it ends when the process does.
		go func() { _, _ = io.Copy(io.Discard, p.tty); p.tty.Close() }()
	}
	e.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if e.t.Failed() {
			var evs []string
			for _, ev := range p.printed() {
				msg, _, _ := strings.Cut(ev.Message, "\n")
				evs = append(evs, fmt.Sprintf("%s %s step %d: %s %s", ev.At.Format("15:04:05.000"), ev.Kind, ev.Step, msg, ev.Error))
			}
			e.t.Logf("%s: events:\n%s\nstderr:\n%s", strings.Join(args, " "), tail(strings.Join(evs, "\n"), 40), tail(p.stderr.String(), 30))
		}
	})
	ch := make(chan engine.Event, 4096)
	p.events = ch
	go func() {
		defer close(p.done)
		defer close(ch)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var ev engine.Event
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				p.mu.Lock()
				p.all = append(p.all, ev)
				p.mu.Unlock()
				ch <- ev
			}
		}
		err := cmd.Wait()
		var ee *exec.ExitError
		p.mu.Lock()
		switch {
		case errors.As(err, &ee):
			p.code = ee.ExitCode()
		case err == nil:
			p.code = 0
		}
		p.mu.Unlock()
	}()
	return p
}

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatalf("kill: %v", err)
	}
	<-p.done
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(within time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		p.t.Fatalf("%v still running after %v; stderr:\n%s", p.args, within, tail(p.stderr.String(), 20))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.code
}

// printed returns the events printed so far.
func (p *proc) printed() []engine.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]engine.Event(nil), p.all...)
}

// answer types line on the process's terminal, after the guard within
// which deploy ignores answers typed before its question appeared.
func (p *proc) answer(line string) {
	p.t.Helper()
	time.Sleep(answerGuard + 100*time.Millisecond)
	if _, err := io.WriteString(p.tty, line+"\n"); err != nil {
		p.t.Fatalf("type %q: %v", line, err)
	}
}

// syncBuffer is a bytes.Buffer safe for a process's writes and the test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// openPTY opens a pseudo-terminal pair: a process given the slave side as
// stdin sees a terminal; the master side types into it.
func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	var unlock int32
	var n uint32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); errno != 0 {
		master.Close()
		return nil, nil, fmt.Errorf("unlock pty: %w", errno)
	}
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); errno != 0 {
		master.Close()
		return nil, nil, fmt.Errorf("pty number: %w", errno)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

// startDeploy runs `cutover deploy --auto -o json` in the background.
func (e *e2e) startDeploy(version string) *proc {
	e.t.Helper()
	return e.start(procOptions{}, "deploy", e.svc, version, "--auto", "--output", "json")
}

func (e *e2e) share(version string) float64 {
	table, err := e.router.Table(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return table.Share(version)
}

func waitEvent(t testing.TB, events <-chan engine.Event, match func(engine.Event) bool, within time.Duration) engine.Event {
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

func decodeEvents(t testing.TB, ndjson string) []engine.Event {
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
func applyLatency(t testing.TB, ndjson string) time.Duration {
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

// freeAddr is a loopback address nothing listens on now.
func freeAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// timedRollback runs `cutover rollback` and polls share (the router's
// table, however it is read) as fast as it answers: it returns how soon
// after the process started stable had all the traffic, and how long the
// table swap took after the rollback began, by its own events.
func (e *e2e) timedRollback(t testing.TB, stable string, share func(string) float64) (backAfter, swap time.Duration) {
	t.Helper()
	start := time.Now()
	rb := e.command("rollback", e.svc, "--output", "json")
	var rbOut bytes.Buffer
	rb.Stdout, rb.Stderr = &rbOut, &rbOut
	if err := rb.Start(); err != nil {
		t.Fatal(err)
	}
	for share(stable) != 1 {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("traffic not back on %s within 10s of the rollback command", stable)
		}
	}
	backAfter = time.Since(start)
	if err := rb.Wait(); err != nil {
		t.Fatalf("rollback: %v\n%s", err, rbOut.String())
	}
	swap = applyLatency(t, rbOut.String())
	t.Logf("traffic 100%% on %s %v after the rollback process started; the table swap took %v after the rollback began", stable, backAfter, swap)
	if swap > 500*time.Millisecond {
		t.Errorf("rollback's table swap took %v, want milliseconds", swap)
	}
	return backAfter, swap
}
