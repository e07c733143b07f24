// Package haproxytest runs a real HAProxy for tests: its own config,
// socket, map and state directory in a temp dir, a free loopback port,
// killed when the test ends. Tests skip where HAProxy is not installed
// and fail instead when CUTOVER_REQUIRE_INTEGRATION=1.
package haproxytest

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutover/cutover/engine/demo/demotest"
	"github.com/cutover/cutover/engine/haproxy"
)

// HAProxy is one HAProxy process a test started.
type HAProxy struct {
	Setup    haproxy.Setup
	Dir      string // config, socket, map and log live here
	StateDir string // the ledger of routers made by Router

	t       testing.TB
	config  string
	logPath string
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has exited
}

// Start runs HAProxy on a free loopback port with a backend "be" for
// cutover, and stops it when the test ends.
func Start(t testing.TB) *HAProxy {
	t.Helper()
	Require(t)
	// Unix socket paths are limited to about 100 bytes: keep the dir short.
	dir, err := os.MkdirTemp("", "cutover-haproxy-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	h := &HAProxy{Dir: dir, StateDir: filepath.Join(dir, "state"), t: t}
	h.Setup = haproxy.Setup{
		Listen:  FreeAddr(t),
		Socket:  filepath.Join(dir, "admin.sock"),
		Backend: "be",
		Map:     filepath.Join(dir, "cutover.map"),
	}
	if err := os.WriteFile(h.Setup.Map, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h.config = filepath.Join(dir, "haproxy.cfg")
	h.logPath = filepath.Join(dir, "haproxy.log")
	if err := os.WriteFile(h.config, []byte(h.Setup.Config()), 0o644); err != nil {
		t.Fatal(err)
	}
	h.start()
	t.Cleanup(func() {
		h.stop()
		if t.Failed() {
			t.Logf("haproxy log:\n%s", h.Log())
		}
	})
	return h
}

// Require skips the test where HAProxy is not installed (fails it when
// CUTOVER_REQUIRE_INTEGRATION=1).
func Require(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("haproxy"); err != nil {
		if os.Getenv(demotest.EnvRequire) == "1" {
			t.Fatalf("HAProxy is required (%s=1): %v", demotest.EnvRequire, err)
		}
		t.Skipf("skipping: needs HAProxy 2.6+ (apt-get install haproxy): %v (set %s=1 to fail instead)", err, demotest.EnvRequire)
	}
}

func (h *HAProxy) start() {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	log, err := os.OpenFile(h.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		h.t.Fatal(err)
	}
	defer log.Close()
	h.cmd = exec.Command("haproxy", "-db", "-f", h.config)
	h.cmd.Stdout, h.cmd.Stderr = log, log
	if err := h.cmd.Start(); err != nil {
		h.t.Fatalf("start haproxy: %v", err)
	}
	done := make(chan struct{})
	h.done = done
	go func(c *exec.Cmd) { _ = c.Wait(); close(done) }(h.cmd)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := h.command("show info"); err == nil {
			return
		}
		select {
		case <-done:
			h.t.Fatalf("haproxy exited at start:\n%s", h.readLog())
		default:
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("haproxy did not answer on %s within 10s:\n%s", h.Setup.Socket, h.readLog())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *HAProxy) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd == nil {
		return
	}
	_ = h.cmd.Process.Kill()
	<-h.done
	h.cmd = nil
}

// Restart kills HAProxy and starts it again from the same config: every
// runtime change (servers, weights, map entries) is gone, as after a
// restart or reload in production.
func (h *HAProxy) Restart() {
	h.t.Helper()
	h.stop()
	h.start()
}

// RouterName is the name of the routers Router makes: "main", as a
// cutover.yaml with one router calls it, so a cutover process given
// state_dir StateDir shares their ledger.
const RouterName = "main"

// Router makes a cutover router for this HAProxy, with the ledger in
// StateDir (routers made twice share it, as two cutover processes of one
// host do).
func (h *HAProxy) Router(t testing.TB) *haproxy.Router {
	t.Helper()
	r, err := haproxy.New(haproxy.Options{Name: RouterName, Socket: h.Setup.Socket, Backend: h.Setup.Backend, Map: h.Setup.Map, StateDir: h.StateDir})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// URL is the frontend's address, for requests through HAProxy.
func (h *HAProxy) URL() string { return "http://" + h.Setup.Listen + "/" }

// Command sends one runtime API command and returns HAProxy's answer:
// what the test checks the adapter against, not through it.
func (h *HAProxy) Command(line string) string {
	h.t.Helper()
	out, err := h.command(line)
	if err != nil {
		h.t.Fatalf("haproxy %q: %v", line, err)
	}
	return out
}

func (h *HAProxy) command(line string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", h.Setup.Socket)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// Servers lists the backend's servers as `show servers state` prints
// them: name → "addr:port weight admin-state".
func (h *HAProxy) Servers() map[string]string {
	h.t.Helper()
	out := map[string]string{}
	for _, line := range strings.Split(h.Command("show servers state "+h.Setup.Backend), "\n") {
		f := strings.Fields(line)
		if len(f) < 19 || strings.HasPrefix(line, "#") {
			continue
		}
		out[f[3]] = f[4] + ":" + f[18] + " w" + f[7] + " a" + f[6]
	}
	return out
}

// Log is what HAProxy wrote so far.
func (h *HAProxy) Log() string { return h.readLog() }

func (h *HAProxy) readLog() string {
	b, _ := os.ReadFile(h.logPath)
	return string(b)
}

// FreeAddr finds a free port on 127.0.0.1.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
