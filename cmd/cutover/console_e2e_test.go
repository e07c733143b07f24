package main

// The console end to end: the built binary in tmux, against the real Docker
// engine and router of `cutover demo`. Each key is followed by an assertion
// on the captured screen and on the real state (router table, containers).
//
// With CUTOVER_SCREENSHOTS=DIR the frames are also written to DIR as .ansi
// and rendered to PNG with freeze: screenshots/make runs it that way.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/demo/demotest"
	"github.com/cutover/cutover/engine/router"
	"github.com/cutover/cutover/engine/swarm/swarmtest"
)

// tmuxConsole is the console running in a private tmux server.
type tmuxConsole struct {
	t      *testing.T
	socket string
	shots  string // where to write frames, "" for nowhere
}

func (c *tmuxConsole) tmux(args ...string) string {
	c.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", c.socket}, args...)...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// key sends one key and gives the console a moment to take it: several
// printable keys in one send-keys call can arrive as one key message.
func (c *tmuxConsole) key(k string) {
	c.t.Helper()
	c.tmux("send-keys", "-t", "0", k)
	time.Sleep(150 * time.Millisecond)
}

func (c *tmuxConsole) screen() string { return c.tmux("capture-pane", "-p", "-t", "0") }

// waitFor waits until the screen shows every one of texts.
func (c *tmuxConsole) waitFor(within time.Duration, texts ...string) string {
	c.t.Helper()
	return waitFor(c.t, within, c.screen, texts...)
}

// waitGone waits until the screen no longer shows text.
func (c *tmuxConsole) waitGone(within time.Duration, text string) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for strings.Contains(c.screen(), text) {
		if time.Now().After(deadline) {
			c.t.Fatalf("screen still shows %q after %v:\n%s", text, within, c.screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// settle waits d before a screenshot, so figures and sparklines have
// filled in; without screenshots it waits only a little.
func (c *tmuxConsole) settle(d time.Duration) {
	if c.shots == "" {
		d = min(d, time.Second)
	}
	time.Sleep(d)
}

// shot keeps the current frame, with its colours, as name.ansi and name.png.
func (c *tmuxConsole) shot(name string) {
	c.t.Helper()
	if c.shots == "" {
		return
	}
	frame := c.tmux("capture-pane", "-e", "-p", "-t", "0")
	ansi := filepath.Join(c.shots, name+".ansi")
	if err := os.WriteFile(ansi, []byte(frame), 0o644); err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command("go", "run", "github.com/charmbracelet/freeze@v0.2.2",
		"--language", "ansi", "--line-height", "1.0", "--window", "--padding", "20",
		"-o", filepath.Join(c.shots, name+".png"))
	in, err := os.Open(ansi)
	if err != nil {
		c.t.Fatal(err)
	}
	defer in.Close()
	cmd.Stdin = in
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("freeze %s: %v\n%s", name, err, out)
	}
}

func TestConsoleCanaryApproveAndRollbackInTmux(t *testing.T) {
	consoleCanaryApproveAndRollback(t, false)
}

// The same, against `cutover demo --swarm`: each instance a Swarm service,
// on the swarm the tests share; the demo leaves that swarm as it found it.
func TestConsoleCanaryApproveAndRollbackInTmuxOnSwarm(t *testing.T) {
	consoleCanaryApproveAndRollback(t, true)
}

// runningDemo names a running instance of a demo service on the engine,
// on plain Docker or a Swarm task, or "" when there is none: a test that
// runs the demo would replace it.
func runningDemo(t *testing.T, cli *client.Client) string {
	t.Helper()
	list, err := cli.ContainerList(context.Background(), container.ListOptions{
		Filters: filters.NewArgs(filters.Arg("label", engine.LabelService+"="+demoService))})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) == 0 {
		return ""
	}
	return strings.TrimPrefix(list[0].Names[0], "/")
}

// consoleCanaryApproveAndRollback drives the console over the demo, on
// plain Docker or on Swarm: a canary to 1.1.0 approved once, then rolled
// back from the prompt while a request is in flight on the canary. The
// instances pane, status and history show where each instance runs.
func consoleCanaryApproveAndRollback(t *testing.T, onSwarm bool) {
	if _, err := exec.LookPath("tmux"); err != nil {
		demotest.Missing(t, "tmux (apt-get install tmux): %v", err)
	}
	bin := demotest.Binary(t)
	p := demotest.Docker(t)
	var fleet engine.Platform = p
	dir := t.TempDir()
	demoArgs := []string{"demo", "--dir", dir, "--traffic", "30"}
	if onSwarm {
		fleet = swarmtest.Platform(t)
		demoArgs = append(demoArgs, "--swarm")
	}
	ctx := context.Background()
	if name := runningDemo(t, p.Client()); name != "" {
		demotest.Missing(t, "a Docker host where no demo service runs: %s runs, and this test would replace it", name)
	}
	info, err := p.Client().Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := info.Name // the one node, on Docker and on the test swarm
	shown := node     // as the instances pane shows it, in at most 20 cells
	if len(shown) > 20 {
		shown = shown[:19]
	}

	env := append(os.Environ(), "CUTOVER_LABELS="+engine.LabelTest+"=1")
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env, cmd.Dir = env, dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("cutover %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	downed := false
	t.Cleanup(func() {
		if downed {
			return
		}
		cmd := exec.Command(bin, "demo", "--down", "--dir", dir)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("cutover demo --down: %v\n%s", err, out)
		}
	})
	out := run(demoArgs...)
	if onSwarm && !strings.Contains(out, "swarm:     the engine's own swarm (node "+node) {
		t.Errorf("cutover demo --swarm does not say it runs on the engine's own swarm:\n%s", out)
	}
	cfg, err := config.Load(filepath.Join(dir, "cutover.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Routers[config.DefaultRouterName]
	_, sock := cfg.AdminAddr(r)
	rc, err := router.Dial("unix:"+sock, "")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	table := func() engine.RouteTable {
		tb, err := rc.Table(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return tb
	}
	containers := func() map[string]int {
		insts, err := fleet.Instances(ctx, demoService)
		if err != nil {
			t.Fatal(err)
		}
		n := map[string]int{}
		for _, in := range insts {
			n[in.Version]++
		}
		return n
	}

	c := &tmuxConsole{t: t, socket: fmt.Sprintf("cutover-e2e-%d", os.Getpid())}
	if !onSwarm {
		c.shots = os.Getenv("CUTOVER_SCREENSHOTS") // the pictures are of the Docker demo
	}
	if c.shots != "" {
		if err := os.MkdirAll(c.shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c.tmux("new-session", "-d", "-x", "120", "-y", "40", "-c", dir,
		"-e", "COLORTERM=truecolor", "-e", "CUTOVER_LABELS="+engine.LabelTest+"=1", bin)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last screen:\n%s", c.screen())
		}
		_ = exec.Command("tmux", "-L", c.socket, "kill-server").Run()
	})

	// Home: the demo fleet, all on 1.0.0, and the node each runs on.
	c.waitFor(15*time.Second, "demo", "1.0.0", "4/4 healthy", "100%", "NODE")
	if s := c.screen(); strings.Count(s, " "+shown) < 4 {
		t.Errorf("the instances pane does not show node %s for each of the 4 instances:\n%s", node, s)
	}
	c.settle(10 * time.Second) // traffic figures and sparklines for the picture
	c.shot("home")

	// Picker: newest first; the running version is marked.
	c.key("Enter")
	s := c.waitFor(10*time.Second, "choose an image", "1.1.0", "● running")
	if i, j := strings.Index(s, "1.4.0-errors"), strings.Index(s, "1.0.0 "); i < 0 || j < 0 || i > j {
		t.Errorf("picker is not newest first:\n%s", s)
	}
	for range 3 {
		c.key("Down")
	}
	c.waitFor(5*time.Second, "▸ 1.1.0")
	c.shot("picker")

	// Strategy: canary preset from the config; make step 1 an approval.
	c.key("Enter")
	c.waitFor(10*time.Second, "[3 canary]", "step 1 gate")
	c.key("Down")
	c.key("Down")
	c.key("g")
	c.key("g")
	c.waitFor(5*time.Second, "step 1 gate                        wait for approval")
	c.shot("strategy")

	// Plan: the steps, nothing changed yet.
	c.key("Enter")
	c.waitFor(10*time.Second, "1.0.0 → 1.1.0", "shift traffic: 1.0.0 80% → 1.1.0 20%", "enter start")
	if got := containers(); got["1.1.0"] != 0 {
		t.Fatalf("the plan screen launched something: %v", got)
	}
	c.shot("plan")

	// Start: the canary reaches its first approval gate at 20%.
	c.key("Enter")
	c.waitFor(60*time.Second, "waiting for approval — press a")
	if got := table().Share("1.1.0"); got != 0.2 {
		t.Errorf("router share of 1.1.0 at the first gate %.2f, want 0.20", got)
	}
	if got := containers(); got["1.1.0"] != 1 || got["1.0.0"] != 4 {
		t.Errorf("containers at the first gate %v, want 1 × 1.1.0 and 4 × 1.0.0", got)
	}
	c.settle(15 * time.Second) // sparkline points for the picture
	c.shot("live-approval")

	// Approve: on to 50% and the second gate.
	c.key("a")
	c.waitFor(60*time.Second, "Steps 6/", "waiting for approval — press a")
	if got := table().Share("1.1.0"); got != 0.5 {
		t.Errorf("router share of 1.1.0 after approve %.2f, want 0.50", got)
	}

	// Roll back: the prompt names the effect and changes nothing by itself.
	c.key("r")
	c.waitFor(5*time.Second, "Roll back demo to 1.0.0?")
	// Enter does not confirm. It is sent after the guard within which the
	// prompt ignores every key, so the prompt does take it: it closes.
	time.Sleep(400 * time.Millisecond)
	c.key("Enter")
	c.waitGone(5*time.Second, "Roll back demo to 1.0.0?")
	time.Sleep(500 * time.Millisecond) // a rollback it set off would have swapped the table by now
	if got := table().Share("1.1.0"); got != 0.5 || strings.Contains(c.screen(), "rolling back") {
		t.Fatalf("Enter on the rollback prompt rolled back: 1.1.0 at %.2f\n%s", got, c.screen())
	}
	c.key("r")
	c.waitFor(5*time.Second, "Roll back demo to 1.0.0?")
	c.shot("rollback-prompt")
	time.Sleep(400 * time.Millisecond) // past the prompt's guard against stray keys

	// A slow request held on the canary keeps the drain going, so the
	// rollback can be seen in progress.
	slow := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+r.Listen+"/?sleep=4s", nil)
		req.Header.Set("X-Cutover-Version", "1.1.0")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 200 {
				err = &statusError{resp.StatusCode}
			}
		}
		slow <- err
	}()
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	c.tmux("send-keys", "-t", "0", "y")
	for table().Share("1.0.0") != 1 {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("traffic not back on 1.0.0 within 5s of y: %+v", table())
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("traffic 100%% on 1.0.0 %v after y", time.Since(start).Round(time.Millisecond))
	c.waitFor(5*time.Second, "↓ rolling back", "1.0.0 100%")
	c.shot("rollback")
	c.waitFor(60*time.Second, "rolled back")
	if err := <-slow; err != nil {
		t.Errorf("the request in flight on the canary during the rollback failed: %v", err)
	}
	if got := containers(); got["1.1.0"] != 0 || got["1.0.0"] != 4 {
		t.Errorf("containers after the rollback %v, want 4 × 1.0.0 only", got)
	}

	// History: the rolled-back release and who ran it.
	c.key("Escape")
	c.waitFor(10*time.Second, "cutover · services")
	c.key("h")
	c.waitFor(10*time.Second, "rolled back", "1.0.0 → 1.1.0")
	c.shot("history")
	c.key("q")

	// Headless: status and the release's history say where instances run.
	if st := run("status", "demo"); !strings.Contains(st, "NODE") || strings.Count(st, "  "+node+"  ") < 4 {
		t.Errorf("cutover status demo does not show node %s for each instance:\n%s", node, st)
	}
	var recs []engine.ReleaseRecord
	if err := json.Unmarshal([]byte(run("history", "demo", "-o", "json")), &recs); err != nil || len(recs) == 0 {
		t.Fatalf("cutover history demo -o json: %v, %d releases", err, len(recs))
	}
	i := slices.IndexFunc(recs, func(r engine.ReleaseRecord) bool { return r.To.Version == "1.1.0" })
	if i < 0 {
		t.Fatalf("no release to 1.1.0 in the history: %+v", recs)
	}
	if h := run("history", "--release", recs[i].ID); !strings.Contains(h, "(1.1.0) is healthy on "+node) {
		t.Errorf("the canary's history does not say where its instance ran (%q):\n%s", "is healthy on "+node, h)
	}

	if onSwarm {
		// The headless commands drive the same swarm: a blue/green deploy
		// left at its approval gate, then the emergency rollback.
		cmd := exec.Command(bin, "deploy", "demo", "1.1.0", "--strategy", "bluegreen", "--detach")
		cmd.Env, cmd.Dir = env, dir
		if out, errs, code := runCmd(t, cmd); code != exitWaiting || !strings.Contains(out, "(1.1.0) is healthy on "+node) {
			t.Fatalf("blue/green deploy on swarm: exit %d, want %d at its approval gate, the node named\n%s%s", code, exitWaiting, tail(out, 20), errs)
		}
		if got := containers(); got["1.1.0"] != 4 || got["1.0.0"] != 4 {
			t.Errorf("instances at the blue/green gate %v, want 4 × 1.0.0 and 4 × 1.1.0", got)
		}
		run("rollback", "demo")
		if got := containers(); got["1.1.0"] != 0 || got["1.0.0"] != 4 || table().Share("1.0.0") != 1 {
			t.Errorf("after cutover rollback: instances %v, table %+v; want 4 × 1.0.0 with all the traffic", got, table())
		}
	}

	out = run("demo", "--down")
	downed = true
	if insts, err := fleet.Instances(ctx, demoService); err != nil || len(insts) != 0 {
		t.Errorf("after --down: %d demo instances (%v)", len(insts), err)
	}
	if onSwarm {
		// The swarm was there before the demo: --down keeps it.
		if info, err := p.Client().Info(ctx); err != nil || info.Swarm.LocalNodeState != swarm.LocalNodeStateActive {
			t.Errorf("cutover demo --down took the engine out of a swarm the demo did not make: %v %v\n%s", info.Swarm.LocalNodeState, err, out)
		}
	}
}

type statusError struct{ code int }

func (e *statusError) Error() string { return http.StatusText(e.code) }

func TestDeployAsksAtApprovalGatesOnATerminal(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		demotest.Missing(t, "tmux (apt-get install tmux): %v", err)
	}
	e := newE2E(t, `type: canary
      canary:
        steps:
          - weight: 50
            approval: true
          - weight: 75
            approval: true
          - weight: 100`)
	e.deployV1()

	// With no terminal the plan's approval gate is refused up front.
	_, errs, code := e.run("deploy", e.svc, "1.1.0")
	if code != exitUsage || !strings.Contains(errs, "--auto") {
		t.Fatalf("deploy without a terminal: exit %d, stderr %q; want %d and a hint at --auto", code, errs, exitUsage)
	}
	if got := e.share("1.1.0"); got != 0 {
		t.Fatalf("the refused deploy moved traffic: 1.1.0 at %.2f", got)
	}

	c := &tmuxConsole{t: t, socket: fmt.Sprintf("cutover-ask-%d", os.Getpid())}
	c.tmux("new-session", "-d", "-x", "160", "-y", "50", "-c", e.dir, "-e", "CUTOVER_LABELS="+engine.LabelTest+"=1",
		e.bin+" -c "+filepath.Join(e.dir, "cutover.yaml")+" deploy "+e.svc+" 1.1.0; echo exit=$?; sleep 60")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last screen:\n%s", c.screen())
		}
		_ = exec.Command("tmux", "-L", c.socket, "kill-server").Run()
	})
	c.waitFor(60*time.Second, "approve step 4 (canary step 1)?")
	if got := e.share("1.1.0"); got != 0.5 {
		t.Fatalf("at the gate 1.1.0 has %.2f of the traffic, want 0.50", got)
	}
	// One reader answers every prompt: a stray line, a pause, a resume,
	// then the approval. An answer comes after the operator could read
	// the question: lines typed within answerGuard of it are ignored.
	answer := func(k string) {
		time.Sleep(answerGuard + 100*time.Millisecond)
		c.key(k)
		c.key("Enter")
	}
	answer("x")
	c.waitFor(10*time.Second, "still waiting")
	answer("p")
	c.waitFor(10*time.Second, "paused: [c]ontinue")
	answer("c")
	c.waitFor(10*time.Second, "resumed")
	// An approval typed twice passes one gate: the second y reaches the
	// next gate's prompt too early, or no prompt at all, and is refused.
	time.Sleep(answerGuard + 100*time.Millisecond)
	c.tmux("send-keys", "-t", "0", "y", "Enter", "y", "Enter")
	c.waitFor(60*time.Second, "approve step 7 (canary step 2)?")
	time.Sleep(time.Second) // nothing approves the second gate meanwhile
	if got := e.share("1.1.0"); got != 0.75 {
		t.Fatalf("after a y typed twice 1.1.0 has %.2f of the traffic, want 0.75 (waiting at the second gate)", got)
	}
	answer("y")
	c.waitFor(60*time.Second, "succeeded", "exit=0")
	e.assertFleet("1.1.0", 3)
}
