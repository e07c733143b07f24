package main

// cutover serve with Go's SSH client (golang.org/x/crypto/ssh): who gets
// in, who they are, and what their role lets the server do for them. The
// end-to-end scenario with OpenSSH, Docker and tmux is serve_e2e_test.go.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/enginetest"
)

// sshKey is a person's key pair, with its authorized_keys line.
type sshKey struct {
	signer gossh.Signer
	line   string
}

func newSSHKey(t testing.TB, comment string) sshKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(s.PublicKey()))) + " " + comment
	return sshKey{signer: s, line: line}
}

// waitFor polls read until it contains every one of texts.
func waitFor(t testing.TB, within time.Duration, read func() string, texts ...string) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		s := read()
		missing := ""
		for _, w := range texts {
			if !strings.Contains(s, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q after %v in:\n%s", missing, within, tail(s, 60))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// inProcessServe is `cutover serve` run inside the test, on a free port.
type inProcessServe struct {
	addr  string
	dir   string
	log   *syncBuffer
	stop  func() error
	state string
}

var listenLine = regexp.MustCompile(`ssh=(127\.0\.0\.1:\d+)`)

// startServe writes cfg (a cutover.yaml) into a fresh directory and runs
// serve on it until the test ends.
func startServe(t testing.TB, cfg string) *inProcessServe {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "cutover.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &inProcessServe{dir: dir, log: &syncBuffer{}, state: filepath.Join(dir, ".cutover")}
	ctx, cancel := context.WithCancel(context.Background())
	root := newRootCmd()
	root.SetArgs([]string{"-c", path, "serve", "--listen", "127.0.0.1:0"})
	root.SetErr(s.log)
	root.SetOut(io.Discard)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	var once sync.Once
	var stopErr error
	s.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(40 * time.Second):
				stopErr = errors.New("serve did not stop within 40s")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { _ = s.stop() })
	deadline := time.Now().Add(10 * time.Second)
	for s.addr == "" {
		if m := listenLine.FindStringSubmatch(s.log.String()); m != nil {
			s.addr = m[1]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve ended at start: %v\n%s", err, s.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not listen within 10s:\n%s", s.log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return s
}

// dial logs in with the given auth methods; hostKey receives the server's key.
func (s *inProcessServe) dial(login string, hostKey *gossh.PublicKey, auth ...gossh.AuthMethod) (*gossh.Client, error) {
	return gossh.Dial("tcp", s.addr, &gossh.ClientConfig{User: login, Auth: auth, Timeout: 10 * time.Second,
		HostKeyCallback: func(_ string, _ net.Addr, key gossh.PublicKey) error {
			if hostKey != nil {
				*hostKey = key
			}
			return nil
		}})
}

// console opens a terminal session on c and collects what it draws.
func console(t testing.TB, c *gossh.Client, w, h int, env map[string]string) (*gossh.Session, io.Writer, *syncBuffer) {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range env {
		if err := sess.Setenv(k, v); err != nil {
			t.Fatalf("setenv %s: %v", k, err)
		}
	}
	if err := sess.RequestPty("xterm-256color", h, w, gossh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	sess.Stdout, sess.Stderr = out, out
	in, err := sess.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	return sess, in, out
}

// serveConfig is a config with one service behind a router nobody runs
// (the console says so) and serve's users.
func serveConfig(users string, extra ...string) string {
	return `state_dir: .cutover
services:
  web:
    image: cutover-serve-test-nothing
serve:
` + strings.Join(extra, "") + `  users:
` + users
}

func TestServeLetsInOnlyKnownKeysAndTheKeyDecidesWhoAndWhichRole(t *testing.T) {
	alice, bob, mallory := newSSHKey(t, "alice@laptop"), newSSHKey(t, "bob@desk"), newSSHKey(t, "mallory@away")
	cwd, _ := os.Getwd()
	s := startServe(t, serveConfig(fmt.Sprintf("    alice: {role: deployer, keys: [%q]}\n    bob: {role: viewer, keys: [%q]}\n", alice.line, bob.line)))

	// An unknown key, a password, or no credentials at all: refused.
	if c, err := s.dial("anything", nil, gossh.PublicKeys(mallory.signer)); err == nil {
		c.Close()
		t.Fatal("an unknown key got in")
	} else if !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("unknown key: %v", err)
	}
	if c, err := s.dial("alice", nil, gossh.Password("alice")); err == nil {
		c.Close()
		t.Fatal("a password got in")
	}
	waitFor(t, 5*time.Second, s.log.String, "unknown key", gossh.FingerprintSHA256(mallory.signer.PublicKey()))

	// alice's key opens alice's console as a deployer, whatever login name.
	var hostKey gossh.PublicKey
	c, err := s.dial("anything", &hostKey, gossh.PublicKeys(alice.signer))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _, out := console(t, c, 120, 40, map[string]string{"NO_COLOR": "1"})
	screen := waitFor(t, 10*time.Second, out.String, "alice", "(deployer)", "web")
	if strings.Contains(screen, "\x1b[38;") {
		t.Error("NO_COLOR from the session was not honoured: the console drew colours")
	}
	waitFor(t, 5*time.Second, s.log.String, "session opened", "alice (deployer, key alice@laptop "+gossh.FingerprintSHA256(alice.signer.PublicKey())+", ssh anything@")

	// Without a terminal there is no console: said, and exit 1.
	plain, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	msg, err := plain.CombinedOutput("")
	var exit *gossh.ExitError
	if !errors.As(err, &exit) || exit.ExitStatus() != 1 || !strings.Contains(string(msg), "PTY") {
		t.Errorf("a session without a terminal: %v, %q; want exit 1 and why", err, msg)
	}

	// The host key lives in the state directory, private, and is the one
	// the server presented; nothing was written to the working directory.
	keyPath := filepath.Join(s.state, "serve", "ssh_host_ed25519_key")
	fi, err := os.Stat(keyPath)
	if err != nil {
		t.Fatalf("host key not in the state directory: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("host key mode %v, want 0600", fi.Mode().Perm())
	}
	pub, _ := os.ReadFile(keyPath + ".pub")
	if k, _, _, _, err := gossh.ParseAuthorizedKey(pub); err != nil || string(k.Marshal()) != string(hostKey.Marshal()) {
		t.Errorf("the server presented another host key than %s.pub (%v)", keyPath, err)
	}
	for _, stray := range []string{"id_ed25519", "id_ed25519.pub"} {
		if _, err := os.Stat(filepath.Join(cwd, stray)); err == nil {
			t.Errorf("%s was written to the working directory", stray)
		}
	}
	if fi, err := os.Stat(filepath.Join(s.state, "serve")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("serve's directory: %v, mode %v; want 0700", err, fi.Mode().Perm())
	}

	// A client holding an unknown key, bob's and alice's, logging in as
	// "alice": bob's key is the one that authenticates, so it is bob's
	// console, a viewer's (in colour, as the terminal asks).
	cb, err := s.dial("alice", nil, gossh.PublicKeys(mallory.signer, bob.signer, alice.signer))
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	_, _, bout := console(t, cb, 100, 30, map[string]string{"COLORTERM": "truecolor"})
	screen = waitFor(t, 10*time.Second, bout.String, "bob", "(viewer)")
	if strings.Contains(screen, "alice") {
		t.Errorf("bob's session shows alice:\n%s", screen)
	}
	if !strings.Contains(screen, "\x1b[38;") {
		t.Error("a colour terminal got no colours")
	}

	// A graceful stop says why to the sessions still open and exits cleanly.
	if err := s.stop(); err != nil {
		t.Fatalf("serve stop: %v\n%s", err, s.log.String())
	}
	waitFor(t, 5*time.Second, bout.String, "cutover serve is stopping")
	waitFor(t, 5*time.Second, s.log.String, "cutover serve: stopped")
	if _, err := os.Stat(filepath.Join(s.state, "serve", "control.sock")); err == nil {
		t.Error("the control socket was left behind")
	}
}

func TestServeEndsASessionNobodyTypedIn(t *testing.T) {
	alice := newSSHKey(t, "alice@laptop")
	s := startServe(t, serveConfig(fmt.Sprintf("    alice: {role: operator, keys: [%q]}\n", alice.line), "  idle_timeout: 2s\n"))
	c, err := s.dial("x", nil, gossh.PublicKeys(alice.signer))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sess, in, out := console(t, c, 80, 24, nil)
	waitFor(t, 10*time.Second, out.String, "(operator)")
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	// Keys typed for longer than the timeout keep the session open...
	typing := time.Now()
	for time.Since(typing) < 3*time.Second {
		if _, err := in.Write([]byte("j")); err != nil {
			t.Fatalf("the session ended while keys were pressed: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case <-done:
		t.Fatalf("the session ended while keys were pressed:\n%s", tail(out.String(), 5))
	default:
	}
	// ...and silence ends it, saying why.
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("an idle session was not ended")
	}
	waitFor(t, time.Second, out.String, "no key pressed for 2s; disconnected")
}

func TestServerRefusesWhatTheSessionsRoleDoesNotAllow(t *testing.T) {
	// The consoles of three people over one core, driving a real executor
	// over the engine's doubles.
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "cutover.yaml"), []byte("services:\n  web:\n    image: x\n"))
	if err != nil {
		t.Fatal(err)
	}
	core, err := newBackendCore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var refusals []string
	core.audit = func(who engine.Actor, what string) { refusals = append(refusals, who.User+": "+what) }
	person := func(name string, role engine.Role) *consoleBackend {
		return core.as(engine.Actor{User: name, Fingerprint: "SHA256:" + name, Role: role}, role)
	}
	viewer, operator, deployer := person("bob", engine.RoleViewer), person("carol", engine.RoleOperator), person("alice", engine.RoleDeployer)

	env := enginetest.NewEnv()
	env.SeedServing("web", "1.0.0", 2)
	spec := engine.ServiceSpec{Name: "web", Replicas: 2, Port: 8080,
		Health:   engine.HealthCheck{Path: "/healthz", Interval: time.Second, Successes: 1, Failures: 2},
		Strategy: engine.StrategySpec{Type: engine.Canary, Canary: engine.CanarySpec{Instances: 1, Steps: []engine.CanaryStep{{Weight: 25, Gate: engine.Gate{Kind: engine.GateApproval}}}}}}
	rel, err := engine.New(env.Deps(), spec, engine.Target{Image: "img:1.1.0", Version: "1.1.0"}, engine.Options{Actor: deployer.who})
	if err != nil {
		t.Fatal(err)
	}
	rn := env.Start(t, rel)
	gate, _ := rn.Until(func(ev engine.Event) bool { return ev.Kind == engine.EventGateWaiting })
	ctx := context.Background()

	var re *engine.RoleError
	for _, c := range []engine.Command{engine.CmdApprove, engine.CmdPause, engine.CmdPromote, engine.CmdRollback, engine.CmdAbort} {
		if err := viewer.Do(ctx, rel, engine.Order{Command: c, Gate: gate.Gate.Key}); !errors.As(err, &re) {
			t.Errorf("a viewer's %s: %v, want refused for the role", c, err)
		}
	}
	if err := operator.Do(ctx, rel, engine.Order{Command: engine.CmdAbort}); !errors.As(err, &re) {
		t.Errorf("an operator's abort: %v, want refused for the role", err)
	}
	for what, err := range map[string]error{
		"viewer start":    errOf(viewer.Start(ctx, "web", "1.1.0", spec)),
		"operator start":  errOf(operator.Start(ctx, "web", "1.1.0", spec)),
		"viewer resume":   errOf(viewer.Resume(ctx, "web")),
		"viewer rollback": errOf(viewer.Rollback(ctx, "web")),
		"operator resume": errOf(operator.Resume(ctx, "web")),
	} {
		if !errors.As(err, &re) {
			t.Errorf("%s: %v, want refused for the role", what, err)
		}
	}
	if rel.Snapshot().State != engine.ReleaseWaiting {
		t.Fatalf("refused orders changed the release: %s", rel.Snapshot().State)
	}
	if len(refusals) < 9 {
		t.Errorf("the audit heard of %d refusals, want every one: %v", len(refusals), refusals)
	}

	// The operator's approval passes, recorded as theirs, by key.
	if err := operator.Do(ctx, rel, engine.Order{Command: engine.CmdApprove, Gate: gate.Gate.Key}); err != nil {
		t.Fatalf("an operator's approve: %v", err)
	}
	passed, ok := rn.Until(func(ev engine.Event) bool { return ev.Kind == engine.EventGatePassed })
	if !ok || passed.Actor == nil || passed.Actor.User != "carol" || passed.Actor.Fingerprint != "SHA256:carol" {
		t.Fatalf("gate passed by %+v, want carol by her key", passed.Actor)
	}
}

func errOf(_ *engine.Release, err error) error { return err }

func TestRollbackGoesAheadWithoutAServeThatDoesNotAnswer(t *testing.T) {
	// A hung serve: the kernel accepts the connection, nobody answers.
	sock := filepath.Join(t.TempDir(), "control.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	cmd := newRootCmd()
	var stderr syncBuffer
	cmd.SetErr(&stderr)
	out, err := newEventWriter(io.Discard, "text")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	handled, err := rollbackThroughServe(context.Background(), cmd, dialControl(sock), engine.Lease{Release: "web-1", Owner: engine.Owner{PID: 4242}}, "web", out)
	took := time.Since(start)
	if handled || err != nil {
		t.Fatalf("a hung serve handled the rollback (%v, %v); the rollback must go ahead without it", handled, err)
	}
	if took < controlAnswerWithin || took > controlAnswerWithin+3*time.Second {
		t.Errorf("gave up on serve after %v, want about %v", took, controlAnswerWithin)
	}
	if s := stderr.String(); !strings.Contains(s, "did not answer") || !strings.Contains(s, "rolling back from here") {
		t.Errorf("the operator is not told why: %q", s)
	}

	// A serve that is gone altogether: at once.
	l.Close()
	start = time.Now()
	if handled, _ := rollbackThroughServe(context.Background(), cmd, dialControl(sock), engine.Lease{}, "web", out); handled || time.Since(start) > time.Second {
		t.Errorf("a dead serve: handled %v after %v", handled, time.Since(start))
	}
}
