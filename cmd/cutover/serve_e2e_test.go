package main

// cutover serve end to end: the built binary serving the console over
// SSH to real OpenSSH clients in tmux, against the real Docker engine and
// router, with load running. One scenario, as an operator team lives it.

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/demo/demotest"
)

// needTools skips (or fails, where integration is required) without the
// Debian tools a test drives.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv(demotest.EnvRequire) == "1" {
				t.Fatalf("%s is required (%s=1): %v", tool, demotest.EnvRequire, err)
			}
			t.Skipf("skipping: needs %s", tool)
		}
	}
}

// person is someone with an OpenSSH key made by ssh-keygen.
type person struct {
	name, role  string
	key         string // private key file
	pub         string // the .pub line
	fingerprint string
}

func newPerson(t *testing.T, dir, name, role string) person {
	t.Helper()
	key := filepath.Join(dir, name)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name+"@e2e", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	k, _, _, _, err := gossh.ParseAuthorizedKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return person{name: name, role: role, key: key, pub: strings.TrimSpace(string(pub)), fingerprint: gossh.FingerprintSHA256(k)}
}

// sshConsole opens p's console: OpenSSH in a tmux server of its own.
func sshConsole(t *testing.T, p person, port string) *tmuxConsole {
	t.Helper()
	c := &tmuxConsole{t: t, socket: fmt.Sprintf("cutover-serve-%s-%d", p.name, time.Now().UnixNano())}
	ssh := strings.Join([]string{"ssh", "-tt", "-F", "/dev/null", "-p", port, "-i", p.key,
		"-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "cutover@127.0.0.1"}, " ")
	c.tmux("new-session", "-d", "-x", "120", "-y", "40", "-e", "COLORTERM=truecolor", ssh+"; echo ssh-exit=$?; sleep 600")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s's last screen:\n%s", p.name, c.screen())
		}
		_ = exec.Command("tmux", "-L", c.socket, "kill-server").Run()
	})
	return c
}

// serveFor adds a serve section for users (YAML lines under serve.users)
// on a free loopback port to e's config, and returns the port.
func (e *e2e) serveFor(users ...string) string {
	e.t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	cfg := fmt.Sprintf("serve:\n  listen: 127.0.0.1:%s\n  users:\n", port)
	for _, u := range users {
		cfg += "    " + u + "\n"
	}
	f, err := os.OpenFile(filepath.Join(e.dir, "cutover.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(cfg); err != nil {
		e.t.Fatal(err)
	}
	return port
}

// startServe runs `cutover serve` of e until the test ends; its log is
// its stderr.
func (e *e2e) startServe() *proc {
	e.t.Helper()
	p := e.start(procOptions{}, "serve")
	waitFor(e.t, 10*time.Second, p.stderr.String, "cutover serve: listening")
	return p
}

// releaseState is the journal's state of the service's latest release.
func (e *e2e) releaseState() (engine.ReleaseRecord, bool) {
	e.t.Helper()
	var recs []engine.ReleaseRecord
	if err := json.Unmarshal([]byte(e.mustRun(exitOK, "history", e.svc, "-o", "json")), &recs); err != nil {
		e.t.Fatal(err)
	}
	if len(recs) == 0 {
		return engine.ReleaseRecord{}, false
	}
	return recs[0], true
}

func TestServeSharesOneReleaseAcrossSSHSessionsRolesAndTheCLI(t *testing.T) {
	needTools(t, "tmux", "ssh", "ssh-keygen")
	e := newE2E(t, `type: canary
      canary:
        steps:
          - {weight: 20, approval: true}
          - {weight: 40, approval: true}
          - {weight: 60, approval: true}
          - {weight: 80, approval: true}
          - weight: 100`)
	e.deployV1()
	keys := filepath.Join(e.dir, "keys")
	if err := os.Mkdir(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	alice, bob, carol := newPerson(t, keys, "alice", "deployer"), newPerson(t, keys, "bob", "viewer"), newPerson(t, keys, "carol", "operator")
	port := e.serveFor(
		fmt.Sprintf("%s: {role: %s, keys: [%q]}", alice.name, alice.role, alice.pub),
		fmt.Sprintf("%s: {role: %s, keys: [%q]}", bob.name, bob.role, bob.pub),
		fmt.Sprintf("%s: {role: %s, keys: [%q]}", carol.name, carol.role, carol.pub))
	serve := e.startServe()
	load := e.startLoad()

	// alice, a deployer, starts a canary from her console.
	a := sshConsole(t, alice, port)
	a.waitFor(15*time.Second, "alice (deployer)", e.svc, "3/3 healthy")
	releaseFrom(a)
	if got := e.share("1.1.0"); got != 0.2 {
		t.Fatalf("canary share at the first gate %.2f, want 0.20", got)
	}

	// bob, a viewer, sees the same release live and cannot move it: no
	// key offered, and a pressed a changes nothing.
	b := sshConsole(t, bob, port)
	b.waitFor(15*time.Second, "bob (viewer)", "● in progress", "v view")
	b.key("v")
	// The events from before bob came show too (from the journal).
	s := b.waitFor(10*time.Second, "waiting for approval", "Steps", "gate-waiting: waiting for approval")
	for _, hidden := range []string{"press a", "a approve", "r roll back", "P promote", "p pause"} {
		if strings.Contains(s, hidden) {
			t.Errorf("the viewer is offered %q:\n%s", hidden, s)
		}
	}
	b.key("a")
	b.key("P")
	b.key("r")
	time.Sleep(500 * time.Millisecond)
	if got := e.share("1.1.0"); got != 0.2 {
		t.Fatalf("after the viewer's keys the canary share is %.2f, want still 0.20", got)
	}
	if strings.Contains(b.screen(), "Roll back") {
		t.Fatalf("the viewer got a rollback prompt:\n%s", b.screen())
	}

	// carol, an operator, approves from a third session; bob sees who,
	// by which key, within a second.
	c := sshConsole(t, carol, port)
	c.waitFor(15*time.Second, "carol (operator)", "v view")
	c.key("v")
	c.waitFor(10*time.Second, "waiting for approval — press a")
	start := time.Now()
	c.key("a")
	b.waitFor(5*time.Second, "carol (operator, key carol@e2e "+carol.fingerprint[:20])
	t.Logf("bob saw carol's approval %v after she pressed a", time.Since(start).Round(time.Millisecond))
	if time.Since(start) > 1500*time.Millisecond { // 1s, plus tmux's key delivery and our polling
		t.Errorf("the approval showed in the other session after %v, want within a second", time.Since(start))
	}
	waitShare(t, e, "1.1.0", 0.4, 30*time.Second)
	a.waitFor(10*time.Second, "waiting for approval — press a")

	// alice's connection dies mid-canary: the release keeps its gate.
	_ = exec.Command("tmux", "-L", a.socket, "kill-server").Run()
	waitFor(t, 10*time.Second, serve.stderr.String, `msg="session closed" who="alice (deployer`)
	time.Sleep(time.Second)
	if rec, _ := e.releaseState(); rec.State != engine.ReleaseWaiting || e.share("1.1.0") != 0.4 {
		t.Fatalf("after alice's connection died the release is %s at %.2f; want waiting at 0.40", rec.State, e.share("1.1.0"))
	}
	b.waitFor(5*time.Second, "waiting for approval")

	// Approved from another session: a new one of carol's.
	c2 := sshConsole(t, carol, port)
	c2.waitFor(15*time.Second, "carol (operator)", "v view")
	c2.key("v")
	c2.waitFor(10*time.Second, "Steps", "waiting for approval — press a")
	c2.key("a")
	waitShare(t, e, "1.1.0", 0.6, 30*time.Second)

	// The shell reaches the release serve owns: status says so, approve
	// passes the next gate through serve, and no second runner starts.
	st := e.mustRun(exitOK, "status", e.svc)
	if !strings.Contains(st, "run by cutover serve") {
		t.Errorf("status does not say serve runs the release:\n%s", st)
	}
	waitFor(t, 30*time.Second, func() string { rec, _ := e.releaseState(); return string(rec.State) }, string(engine.ReleaseWaiting))
	out, errs, code := e.run("approve", e.svc)
	if code != exitOK || !strings.Contains(errs, "through cutover serve") {
		t.Fatalf("approve while serve owns the release: exit %d\n%s\n%s", code, errs, out)
	}
	waitShare(t, e, "1.1.0", 0.8, 30*time.Second)
	b.waitFor(5*time.Second, "approved step") // the CLI's approval shows in the sessions

	// An emergency rollback from the CLI while serve owns the release: the
	// swap happens in serve at once, and the sessions show it.
	waitFor(t, 30*time.Second, func() string { rec, _ := e.releaseState(); return string(rec.State) }, string(engine.ReleaseWaiting))
	start = time.Now()
	rb := e.start(procOptions{}, "rollback", e.svc)
	for e.share("1.0.0") != 1 {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("traffic not back on 1.0.0 within 10s of the CLI rollback:\n%s", rb.stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	swapped := time.Now()
	t.Logf("traffic 100%% on 1.0.0 %v after `cutover rollback` started", swapped.Sub(start).Round(time.Millisecond))
	b.waitFor(5*time.Second, "rolling back")
	if d := time.Since(swapped); d > 1500*time.Millisecond {
		t.Errorf("the rollback showed in a session %v after the swap, want within a second", d)
	}
	if code := rb.wait(60 * time.Second); code != exitOK || !strings.Contains(rb.stderr.String(), "ordering it to roll back") {
		t.Fatalf("rollback through serve: exit %d\n%s", code, rb.stderr.String())
	}
	b.waitFor(30*time.Second, "rolled back")
	e.assertFleet("1.0.0", 3)

	// The journal says who did what, by key.
	rec, _ := e.releaseState()
	var evs []engine.Event
	if err := json.Unmarshal([]byte(e.mustRun(exitOK, "history", e.svc, "--release", rec.ID, "-o", "json")), &evs); err != nil {
		t.Fatal(err)
	}
	who := map[string]bool{}
	for _, ev := range evs {
		if ev.Actor != nil && ev.Kind == engine.EventCommand {
			who[ev.Actor.User+"/"+ev.Actor.Fingerprint+"/"+string(ev.Command)] = true
		}
	}
	if !who["carol/"+carol.fingerprint+"/approve"] {
		t.Errorf("the journal lacks carol's approvals by her key: %v", who)
	}
	if rec.Actor.User != "alice" || rec.Actor.Fingerprint != alice.fingerprint || rec.Actor.Login != "cutover" {
		t.Errorf("the release is recorded as started by %+v, want alice's key", rec.Actor)
	}

	// A graceful stop (SIGTERM, as systemd stops it) tells the sessions
	// and leaves the release where it is, resumable.
	a2 := sshConsole(t, alice, port)
	a2.waitFor(15*time.Second, "alice (deployer)")
	releaseFrom(a2)
	first, _ := e.releaseState()
	if err := serve.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := serve.wait(40 * time.Second); code != 0 {
		t.Fatalf("serve exited %d on SIGTERM, want 0", code)
	}
	a2.waitFor(5*time.Second, "cutover serve is stopping")
	if rec, _ := e.releaseState(); rec.ID != first.ID || rec.State != engine.ReleaseAborted || e.share("1.1.0") != 0.2 {
		t.Fatalf("after a graceful stop the release is %s %s at %.2f; want %s aborted, the canary left at 0.20", rec.ID, rec.State, e.share("1.1.0"), first.ID)
	}
	serve = e.startServe()
	a3 := sshConsole(t, alice, port)
	a3.waitFor(15*time.Second, "⚠ interrupted", "u resume")
	a3.key("u")
	a3.waitFor(60*time.Second, "waiting for approval — press a")
	if rec, _ := e.releaseState(); rec.ID != first.ID || rec.State != engine.ReleaseWaiting {
		t.Fatalf("u resumed %s (%s), want %s waiting at its gate", rec.ID, rec.State, first.ID)
	}

	// serve killed mid-release: status shows the release, rollback undoes it.
	serve.kill()
	var status serviceStatus
	if err := json.Unmarshal([]byte(e.mustRun(exitOK, "status", e.svc, "-o", "json")), &status); err != nil {
		t.Fatal(err)
	}
	if status.Release == nil || status.Release.State.Finished() || status.Router.Shares["1.1.0"] != 0.2 {
		t.Errorf("status after serve was killed: release %+v, shares %v; want the unfinished canary at 20%%", status.Release, status.Router.Shares)
	}
	if status.Lease != nil && status.Lease.Live {
		t.Errorf("status says the killed serve's lease is live: %+v", status.Lease)
	}
	out, errs, code = e.run("rollback", e.svc)
	if code != exitOK || strings.Contains(errs, "ordering it to roll back") {
		t.Errorf("rollback after serve died: exit %d; want a standalone rollback\n%s\n%s", code, errs, out)
	}
	e.assertFleet("1.0.0", 3)
	if !strings.Contains(out, "rolled-back") {
		t.Errorf("the rollback after serve died printed no outcome:\n%s", out)
	}
	load.AssertNoFailures(t)
}

// releaseFrom starts a canary of 1.1.0 from the console's home screen
// with the configured strategy, and waits for its first gate.
func releaseFrom(c *tmuxConsole) {
	c.t.Helper()
	c.key("Enter")
	c.waitFor(10*time.Second, "choose an image", "1.1.0")
	for i := 0; i < 6 && !strings.Contains(c.screen(), "▸ 1.1.0"); i++ {
		c.key("Down")
	}
	c.waitFor(5*time.Second, "▸ 1.1.0")
	c.key("Enter")
	c.waitFor(10*time.Second, "[3 canary]")
	c.key("Enter")
	c.waitFor(10*time.Second, "1.0.0 → 1.1.0", "enter start")
	c.key("Enter")
	c.waitFor(60*time.Second, "waiting for approval — press a")
}

// waitShare waits until version has share of the router's traffic.
func waitShare(t *testing.T, e *e2e, version string, share float64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for e.share(version) != share {
		if time.Now().After(deadline) {
			t.Fatalf("%s has %.2f of the traffic after %v, want %.2f", version, e.share(version), within, share)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
