package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/demo"
	"github.com/cutover/cutover/engine/demo/demotest"
)

// TestDemoQuickStart is the README's quick start as a new user runs it:
// cutover demo, a canary to 1.1.0 with --auto, a canary to the erroring
// version that rolls back, then cutover demo --down leaving nothing behind.
func TestDemoQuickStart(t *testing.T) {
	bin := demotest.Binary(t)
	p := demotest.Docker(t)
	ctx := context.Background()
	if name := runningDemo(t, p.Client()); name != "" {
		demotest.Missing(t, "a Docker host where no demo service runs: %s runs, and this test would replace it", name)
	}
	dir := t.TempDir()
	run := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CUTOVER_LABELS="+engine.LabelTest+"=1")
		out, errs, code := runCmd(t, cmd)
		return out + errs, code
	}
	down := func() {
		if out, code := run("demo", "--down"); code != 0 {
			t.Errorf("cutover demo --down: exit %d\n%s", code, out)
		}
	}
	t.Cleanup(down)

	out, code := run("demo")
	if code != 0 {
		t.Fatalf("cutover demo: exit %d\n%s", code, out)
	}
	for _, want := range []string{"router listening on http://127.0.0.1:", "cutover deploy demo 1.1.0 --auto", "cutover demo --down"} {
		if !strings.Contains(out, want) {
			t.Errorf("cutover demo does not print %q:\n%s", want, out)
		}
	}
	if out, code := run("demo"); code == 0 || !strings.Contains(out, "already set up") {
		t.Errorf("a second cutover demo: exit %d, %q; want a refusal saying it is set up", code, out)
	}

	start := time.Now()
	if out, code := run("deploy", "demo", "1.1.0", "--auto"); code != 0 {
		t.Fatalf("canary to 1.1.0: exit %d\n%s", code, tail(out, 30))
	}
	t.Logf("the demo's default canary ran to completion in %v", time.Since(start).Round(100*time.Millisecond))
	if out, code := run("deploy", "demo", "1.4.0-errors", "--auto"); code != exitRolledBack || !strings.Contains(out, "analysis failed") {
		t.Fatalf("canary to 1.4.0-errors: exit %d, want %d after a failed analysis\n%s", code, exitRolledBack, tail(out, 30))
	}
	out, _ = run("status", "demo")
	if !strings.Contains(out, "1.1.0 100.0%") {
		t.Errorf("status after the rollback, want 1.1.0 at 100%%:\n%s", out)
	}

	down()
	if insts, err := p.Instances(ctx, demoService); err != nil || len(insts) != 0 {
		t.Errorf("after --down: %d demo containers (%v)", len(insts), err)
	}
	imgs, err := p.Client().ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("reference", demo.Repo))})
	if err != nil || len(imgs) != 0 {
		t.Errorf("after --down: %d images of %s left (%v)", len(imgs), demo.Repo, err)
	}
	if _, err := os.Stat(dir + "/cutover.yaml"); !os.IsNotExist(err) {
		t.Errorf("after --down the demo's cutover.yaml is still there (%v)", err)
	}
}
