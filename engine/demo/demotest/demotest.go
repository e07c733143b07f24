// Package demotest gives tests a Docker platform and the demo images.
// The images are built once per test process around a freshly built static
// cutover binary, under a repository of their own (cutover-test-<pid>), and
// removed when the process's tests are done.
//
// Use it with a TestMain so the images live for the whole package:
//
//	func TestMain(m *testing.M) { os.Exit(demotest.Main(m)) }
//
// Without Main the images are removed when the last test using them ends
// and rebuilt if a later test asks again, which is correct but slower.
package demotest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/demo"
	"github.com/cutover/cutover/engine/docker"
	"github.com/cutover/cutover/engine/journal"
)

// EnvRequire makes tests fail instead of skip where Docker is missing (CI).
const EnvRequire = "CUTOVER_REQUIRE_INTEGRATION"

// Labels naming the test process that built an image, so a later run can
// remove what a killed run left behind without touching a live run's.
const (
	labelPID  = "cutover.test.pid"
	labelHost = "cutover.test.host"
)

// state is shared by every test of the process: the binary and images are
// built once and counted out. Package-level because tests of a package
// have nothing else in common; only this test helper does it.
var state struct {
	mu       sync.Mutex
	mainOwns bool // Main removes everything at the end
	users    int  // live tests holding the images
	dir      string
	bin      string
	refs     map[string]string
}

// Repo is the repository this test process tags its demo images in.
func Repo() string { return "cutover-test-" + strconv.Itoa(os.Getpid()) }

// Labels are put on every image and container the helpers create.
func Labels() map[string]string {
	host, _ := os.Hostname()
	return map[string]string{engine.LabelTest: "1", labelPID: strconv.Itoa(os.Getpid()), labelHost: host}
}

// Missing ends a test that cannot run here because what it needs (a tool,
// a file, a quiet Docker host) is missing or busy: it skips, saying what,
// or fails when CUTOVER_REQUIRE_INTEGRATION=1, so that in CI a test that
// did not run never passes for one that did.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	what := fmt.Sprintf(format, args...)
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("needs %s (%s=1: required)", what, EnvRequire)
	}
	t.Skipf("skipping: needs %s (set %s=1 to fail instead)", what, EnvRequire)
}

// Docker connects to the Docker host of the environment, or skips the test
// (fails it when CUTOVER_REQUIRE_INTEGRATION=1) if none answers.
func Docker(t testing.TB) *docker.Platform {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	p, err := docker.New(ctx)
	if err != nil {
		Missing(t, "a Docker engine: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// Images returns the standard demo images by variant tag ("1.0.0",
// "1.2.0-crash", ...) as references to run ("cutover-test-123:1.0.0"),
// building them on first use. It skips like Docker when no engine answers.
func Images(t testing.TB) map[string]string {
	t.Helper()
	p := Docker(t)
	state.mu.Lock()
	defer state.mu.Unlock()
	if state.refs == nil {
		refs, err := build(p)
		if err != nil {
			t.Fatalf("build demo images: %v", err)
		}
		state.refs = refs
	}
	state.users++
	t.Cleanup(release)
	out := make(map[string]string, len(state.refs))
	for k, v := range state.refs {
		out[k] = v
	}
	return out
}

// Binary returns the path of a static cutover binary built from this
// module for the test process (the one inside the demo images).
func Binary(t testing.TB) string {
	t.Helper()
	state.mu.Lock()
	defer state.mu.Unlock()
	if state.bin == "" {
		if err := buildBinary(); err != nil {
			t.Fatalf("build cutover: %v", err)
		}
	}
	state.users++
	t.Cleanup(release)
	return state.bin
}

// Service names a service for t alone, so that tests and test processes
// never see each other's instances.
func Service(t testing.TB) string {
	name := strings.ToLower(strings.TrimPrefix(t.Name(), "Test"))
	name = strings.NewReplacer("/", "-", "_", "-").Replace(name)
	if len(name) > 24 {
		// Keep names of long tests (and their subtests) apart.
		h := fnv.New32a()
		h.Write([]byte(name))
		name = fmt.Sprintf("%s-%06x", name[:17], h.Sum32()&0xffffff)
	}
	return fmt.Sprintf("t%d-%s", os.Getpid(), name)
}

// Get GETs url and returns the status and body; no answer fails the test.
func Get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Launch launches spec with the test label and a default port of 8080,
// and stops the instance when the test ends, even if it failed.
func Launch(t testing.TB, p engine.Platform, spec engine.InstanceSpec) engine.Instance {
	t.Helper()
	labels := map[string]string{}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	for k, v := range Labels() {
		labels[k] = v
	}
	spec.Labels = labels
	if spec.Port == 0 {
		spec.Port = demo.DefaultPort
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	in, err := p.Launch(ctx, spec)
	if in.ID != "" {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := p.Stop(ctx, in.ID, time.Second); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatalf("launch %s %s: %v", spec.Service, spec.Image, err)
	}
	return in
}

// WaitHealth probes the instance every 50ms until it reports want, and
// fails the test with the last verdict if that takes longer than timeout.
func WaitHealth(t testing.TB, p engine.Platform, id string, check engine.HealthCheck, want engine.HealthStatus, timeout time.Duration) engine.Health {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last engine.Health
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		h, err := p.Health(ctx, id, check)
		if err == nil {
			last = h
			if h.Status == want {
				return h
			}
		} else if ctx.Err() == nil {
			t.Fatalf("health of %s: %v", id, err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("instance %s not %s within %s; last verdict %s %q", id, want, timeout, last.Status, last.Detail)
		case <-tick.C:
		}
	}
}

// Main runs the package's tests and then removes the binary, the images
// and any container left of them. It first removes images that killed
// test processes on this host left behind.
func Main(m *testing.M) int {
	state.mu.Lock()
	state.mainOwns = true
	state.mu.Unlock()
	sweepStale()
	code := m.Run()
	state.mu.Lock()
	defer state.mu.Unlock()
	if err := teardown(); err != nil {
		fmt.Fprintln(os.Stderr, "demotest:", err)
	}
	return code
}

func release() {
	state.mu.Lock()
	defer state.mu.Unlock()
	state.users--
	if state.users > 0 || state.mainOwns {
		return
	}
	if err := teardown(); err != nil {
		fmt.Fprintln(os.Stderr, "demotest:", err)
	}
}

// build makes the binary and the images; state.mu is held.
func build(p *docker.Platform) (map[string]string, error) {
	if state.bin == "" {
		if err := buildBinary(); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	refs, err := demo.BuildImages(ctx, p.Client(), state.bin, Repo(), Labels(), demo.Variants())
	if err != nil {
		_, _ = demo.RemoveImages(ctx, p.Client(), map[string]string{labelPID: strconv.Itoa(os.Getpid())})
		return nil, err
	}
	return refs, nil
}

func buildBinary() error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "cutover-demotest-")
	if err != nil {
		return err
	}
	bin := filepath.Join(dir, "cutover")
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	cmd := exec.Command(goBin, "build", "-o", bin, "./cmd/cutover")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("CGO_ENABLED=0 go build ./cmd/cutover in %s: %v\n%s", root, err, out.Bytes())
	}
	state.dir, state.bin = dir, bin
	return nil
}

// moduleRoot walks up from the working directory (the package under test)
// to the directory holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// teardown removes what this process built; state.mu is held.
func teardown() error {
	var errs []error
	if state.refs != nil {
		errs = append(errs, removeImagesOf(map[string]string{labelPID: strconv.Itoa(os.Getpid())}))
		state.refs = nil
	}
	if state.dir != "" {
		errs = append(errs, os.RemoveAll(state.dir))
		state.dir, state.bin = "", ""
	}
	return errors.Join(errs...)
}

// removeImagesOf removes the demo images carrying labels, after any
// test container still running them (a test that failed to clean up).
func removeImagesOf(labels map[string]string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := docker.New(ctx)
	if err != nil {
		return err
	}
	defer p.Close()
	cli := p.Client()
	f := filters.NewArgs(filters.Arg("label", demo.LabelDemo+"=1"))
	for k, v := range labels {
		f.Add("label", k+"="+v)
	}
	imgs, err := cli.ImageList(ctx, image.ListOptions{Filters: f})
	if err != nil {
		return fmt.Errorf("list test images: %w", err)
	}
	var errs []error
	for _, img := range imgs {
		cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("ancestor", img.ID))})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, c := range cs {
			if c.Labels[engine.LabelTest] != "1" {
				continue // never touch what a test did not make
			}
			if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
				errs = append(errs, fmt.Errorf("remove leftover test container %s: %w", c.ID[:12], err))
			}
		}
	}
	if _, err := demo.RemoveImages(ctx, cli, labels); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// sweepStale removes demo test images made on this host by test processes
// that no longer exist (killed before their cleanup ran).
func sweepStale() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := docker.New(ctx)
	if err != nil {
		return // no Docker: the tests will skip or fail on their own
	}
	defer p.Close()
	host, _ := os.Hostname()
	f := filters.NewArgs(filters.Arg("label", demo.LabelDemo+"=1"), filters.Arg("label", engine.LabelTest+"=1"),
		filters.Arg("label", labelHost+"="+host))
	imgs, err := p.Client().ImageList(ctx, image.ListOptions{Filters: f})
	if err != nil {
		return
	}
	dead := map[string]bool{}
	for _, img := range imgs {
		pid, err := strconv.Atoi(img.Labels[labelPID])
		if err != nil || pid == os.Getpid() || journal.ProcessAlive(pid) {
			continue
		}
		dead[img.Labels[labelPID]] = true
	}
	for pid := range dead {
		if err := removeImagesOf(map[string]string{labelPID: pid, labelHost: host}); err != nil {
			fmt.Fprintln(os.Stderr, "demotest: sweep images of dead test process", pid+":", err)
		}
	}
}
