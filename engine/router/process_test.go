package router

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
)

// routerProcess is the real cutover binary running `cutover router`.
type routerProcess struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	url    string // public address, read from the start-up log
	done   chan struct{}
	err    error // Wait's result once done is closed
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var listenLog = regexp.MustCompile(`msg="router started" listen=(\S+)`)

// buildCutover builds ./cmd/cutover as a static binary into dir.
func buildCutover(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "cutover")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/cutover/cutover/cmd/cutover")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build cutover: %v\n%s", err, out)
	}
	return bin
}

func startProcess(t *testing.T, bin string, args ...string) *routerProcess {
	t.Helper()
	p := &routerProcess{cmd: exec.Command(bin, append([]string{"router", "--listen", "127.0.0.1:0"}, args...)...),
		stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	deadline := time.After(10 * time.Second)
	for {
		if m := listenLog.FindStringSubmatch(p.stderr.String()); m != nil {
			p.url = "http://" + m[1]
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("router exited at start: %v\n%s", p.err, p.stderr.String())
		case <-deadline:
			t.Fatalf("router did not start:\n%s", p.stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// exitCode waits for the process to end.
func (p *routerProcess) exitCode(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("router did not exit:\n%s", p.stderr.String())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

func TestRouterProcess(t *testing.T) {
	dir := t.TempDir()
	bin := buildCutover(t, dir)
	sockDir, err := os.MkdirTemp("", "rt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })

	t.Run("KilledRouterRestartsWithTheSameTableAndEpoch", func(t *testing.T) {
		b := startBackend(t, "web-1", "1.0")
		state := filepath.Join(t.TempDir(), "router.json")
		admin := "unix:" + filepath.Join(sockDir, "kill.sock")
		p := startProcess(t, bin, "--admin", admin, "--state", state)
		c, _ := Dial(admin, "")
		want := engine.RouteTable{Epoch: 7, Backends: []engine.Backend{b.backend(1),
			{ID: "web-2", Addr: "127.0.0.1:1", Version: "1.1", Weight: 0}}}
		if err := c.Apply(context.Background(), want); err != nil {
			t.Fatal(err)
		}
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.exitCode(t)

		p2 := startProcess(t, bin, "--admin", admin, "--state", state)
		got, err := c.Table(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("after SIGKILL and restart the table is %+v, want %+v", got, want)
		}
		if st, id, _ := get(t, newTestClient(1), p2.url+"/"); st != 200 || id != "web-1" {
			t.Fatalf("restarted router answered %d from %q", st, id)
		}
		if err := c.Apply(context.Background(), engine.RouteTable{Epoch: 6}); !errors.Is(err, engine.ErrStaleEpoch) {
			t.Fatalf("the epoch was not restored: epoch 6 gave %v", err)
		}
		fi, err := os.Stat(strings.TrimPrefix(admin, "unix:"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("admin socket: %v mode %v, want 0600", err, fi.Mode().Perm())
		}
	})

	t.Run("SIGTERMLetsASlowRequestFinishAndExitsZero", func(t *testing.T) {
		b := startBackend(t, "web-1", "1.0")
		admin := "unix:" + filepath.Join(sockDir, "term.sock")
		p := startProcess(t, bin, "--admin", admin, "--state", filepath.Join(t.TempDir(), "router.json"))
		c, _ := Dial(admin, "")
		if err := c.Apply(context.Background(), engine.RouteTable{Epoch: 1, Backends: []engine.Backend{b.backend(1)}}); err != nil {
			t.Fatal(err)
		}
		done := make(chan string, 1)
		go func() {
			res, err := http.Post(p.url+"/hold", "text/plain", strings.NewReader("x"))
			if err != nil {
				done <- err.Error()
				return
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			done <- res.Status + " " + string(body)
		}()
		<-b.arrived
		p.cmd.Process.Signal(syscall.SIGTERM)
		eventually(t, "the router to stop accepting", func() bool {
			_, err := http.Get(p.url + "/")
			return err != nil
		})
		b.unblock()
		if got := <-done; got != "200 OK web-1" {
			t.Fatalf("request in flight at SIGTERM ended %q", got)
		}
		if code := p.exitCode(t); code != 0 {
			t.Fatalf("exit code %d after SIGTERM, want 0\n%s", code, p.stderr.String())
		}
	})

	t.Run("TCPAdminRequiresTheTokenFromTheTokenFile", func(t *testing.T) {
		tokenFile := filepath.Join(t.TempDir(), "token")
		os.WriteFile(tokenFile, []byte("tok-123\n"), 0o600)
		// A free loopback port for the admin API.
		l, err := ListenAdmin("127.0.0.1:0", true)
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		startProcess(t, bin, "--admin", addr, "--token-file", tokenFile, "--state", filepath.Join(t.TempDir(), "s.json"))
		res, err := http.Get("http://" + addr + "/v1/table")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("no token: status %d, want 401", res.StatusCode)
		}
		c, _ := Dial(addr, "tok-123")
		if _, err := c.Table(context.Background()); err != nil {
			t.Fatalf("with the token: %v", err)
		}
	})

	t.Run("UnsafeAdminAddressesAreRefusedAtStart", func(t *testing.T) {
		state := filepath.Join(t.TempDir(), "s.json")
		tokenFile := filepath.Join(t.TempDir(), "token")
		os.WriteFile(tokenFile, []byte("tok"), 0o600)
		openTokenFile := filepath.Join(t.TempDir(), "token-644")
		os.WriteFile(openTokenFile, []byte("tok"), 0o600)
		os.Chmod(openTokenFile, 0o644)
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--admin", "127.0.0.1:0"}, "token file is required"},
			{[]string{"--admin", "0.0.0.0:0", "--token-file", tokenFile}, "is not loopback"},
			{[]string{"--state", state}, "--admin and --state are required"},
			{[]string{"--admin", "127.0.0.1:0", "--token-file", openTokenFile}, "chmod 600 " + openTokenFile},
		} {
			args := append([]string{"router", "--listen", "127.0.0.1:0"}, tc.args...)
			if !contains(tc.args, "--state") {
				args = append(args, "--state", state)
			}
			out, err := exec.Command(bin, args...).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 64 || !strings.Contains(string(out), tc.want) {
				t.Errorf("cutover %v: %v\n%s\nwant exit 64 and %q", args, err, out, tc.want)
			}
		}
	})
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
