package main

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/demo/demotest"
	"github.com/cutover/cutover/engine/haproxy/haproxytest"
)

// cutover demo --router haproxy runs the demo fleet behind a real HAProxy
// it starts, and --down stops that HAProxy with the rest.
func TestDemoBehindHAProxyStartsAndStopsIt(t *testing.T) {
	haproxytest.Require(t)
	bin := demotest.Binary(t)
	p := demotest.Docker(t)
	if name := runningDemo(t, p.Client()); name != "" {
		t.Skipf("skipping: a demo service already runs on this Docker host (%s); this test would replace it", name)
	}
	dir, err := os.MkdirTemp("", "cutover-demo-") // short: HAProxy's socket goes under it
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	run := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CUTOVER_LABELS="+engine.LabelTest+"=1")
		out, errs, code := runCmd(t, cmd)
		return out + errs, code
	}
	t.Cleanup(func() {
		if out, code := run("demo", "--down"); code != 0 {
			t.Errorf("cutover demo --down: exit %d\n%s", code, out)
		}
	})

	out, code := run("demo", "--router", "haproxy", "--traffic", "0")
	if code != 0 {
		t.Fatalf("cutover demo --router haproxy: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "HAProxy listening on http://127.0.0.1:") {
		t.Errorf("the demo does not say HAProxy listens:\n%s", out)
	}
	pid, ok := livePID(filepath.Join(dir, ".cutover", "router-main.pid"))
	if comm, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); !ok || strings.TrimSpace(string(comm)) != "haproxy" {
		t.Fatalf("the demo's router process is %q (pid %d, alive %v), want haproxy", comm, pid, ok)
	}
	status, _ := run("status", "demo")
	if !strings.Contains(status, "1.0.0 100.0%") || !strings.Contains(status, "HAProxy backend demo") {
		t.Errorf("status behind HAProxy:\n%s", status)
	}
	listen := strings.Fields(strings.SplitN(strings.SplitN(status, "router", 2)[1], "\n", 2)[0])[0]
	res, err := http.Get("http://" + listen + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("X-Demo-Version") != "1.0.0" {
		t.Errorf("through HAProxy: %d from %q", res.StatusCode, res.Header.Get("X-Demo-Version"))
	}

	if out, code := run("demo", "--down"); code != 0 {
		t.Fatalf("cutover demo --down: exit %d\n%s", code, out)
	}
	if res, err := http.Get("http://" + listen + "/"); err == nil {
		res.Body.Close()
		t.Errorf("HAProxy (pid %d) still answers on %s after --down", pid, listen)
	}
}
