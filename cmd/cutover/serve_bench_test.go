package main

// The cutover serve benchmark. THE command is
//
//	go test -run '^$' -bench Serve -benchtime 1x ./cmd/cutover/
//
// It runs the real binary's `cutover serve` against the real Docker engine
// and router (the end-to-end tests' setup) and drives it with Go's SSH
// client, as an operator's terminal would:
//
//   - keypress → router: from a key written to the SSH session to the
//     router's table showing what it did (the router polled every 0.5 ms).
//     A rollback's `y` (the swap to stable) ends every canary; an approval's
//     `a` (the engine passes the gate and shifts the next weight: several
//     journal writes, then one router write) is measured at its gates.
//   - CPU: the serve process's user+system time (/proc/PID/stat) over 10 s
//     with a canary waiting at a gate under light traffic: with no
//     session, with one watching it, and with 20 more.
//
// The canaries run first with one session, then with the 20 watching
// each. Each call does this once whatever b.N is. About three minutes.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/demo/demotest"
)

const (
	benchServeCycles   = 8 // canaries per phase, each ended by a timed rollback
	benchServeGates    = 5 // approval gates per canary, at 5, 10, … 25%: one canary instance
	benchServeWatchers = 20
	benchServeCPUFor   = 10 * time.Second
)

func BenchmarkServe(b *testing.B) {
	for range b.N {
		benchServeOnce(b)
	}
}

// serveBench is serve under measurement and alice's session driving it.
type serveBench struct {
	b       *testing.B
	e       *e2e
	control *controlClient
	keys    io.Writer   // alice's keyboard
	screen  *syncBuffer // what alice's session drew, for failures
	// split is, per rollback, y → the engine's rolling-back stamp, and
	// from there to the swap seen at the router.
	split [][2]time.Duration
}

func benchServeOnce(b *testing.B) {
	var steps strings.Builder
	for g := 1; g <= benchServeGates; g++ {
		fmt.Fprintf(&steps, "\n          - {weight: %d, approval: true}", 5*g)
	}
	// semver orders the picker: 1.4.0-errors, 1.3.0-unhealthy,
	// 1.2.0-crash, 1.1.0, 1.0.0.
	e := newE2E(b, "type: canary\n      canary:\n        steps:"+steps.String()+"\n          - weight: 100\n"+
		"    source: {type: docker, semver: true}")
	e.deployV1()
	alice, viewer := newSSHKey(b, "alice@bench"), newSSHKey(b, "watcher@bench")
	port := e.serveFor(fmt.Sprintf("alice: {role: deployer, keys: [%q]}", alice.line), fmt.Sprintf("watcher: {role: viewer, keys: [%q]}", viewer.line))
	serve := e.startServe()
	s := &inProcessServe{addr: "127.0.0.1:" + port} // to dial the process
	// A light load, so the figures the consoles draw move.
	demotest.StartLoad(b, demotest.LoadSpec{Rate: 20, Get: e.url(), Post: e.url(), Slow: e.url() + "?sleep=300ms", CountBy: "X-Demo-Version"})
	session := func(k sshKey, name string) (*gossh.Client, io.Writer, *syncBuffer) {
		c, err := s.dial("cutover", nil, gossh.PublicKeys(k.signer))
		if err != nil {
			b.Fatal(err)
		}
		_, keys, out := console(b, c, 120, 40, nil)
		waitFor(b, 15*time.Second, out.String, name)
		time.Sleep(500 * time.Millisecond) // the services are read
		return c, keys, out
	}
	sb := &serveBench{b: b, e: e, control: dialControl(e.dir + "/.cutover/serve/control.sock")}
	var quietA, busyA, quietY, busyY []time.Duration
	cycle := func(watchers []io.Writer, approvals, rollbacks *[]time.Duration) {
		sb.startCanary()
		watchLatest(watchers)
		*approvals = append(*approvals, sb.gates()...)
		*rollbacks = append(*rollbacks, sb.rollback())
		press(sb.keys, "\x1b", 300*time.Millisecond) // esc: back to services
	}

	// Canaries with alice's session only.
	c, keys, screen := session(alice, "alice")
	sb.keys, sb.screen = keys, screen
	for range benchServeCycles {
		cycle(nil, &quietA, &quietY)
	}

	// The next one waits at its first gate while the CPU is measured with
	// no session, with alice's watching it, then with 20 more.
	sb.startCanary()
	c.Close()
	cpu0 := cpuPercent(b, serve.cmd.Process.Pid)
	c, sb.keys, sb.screen = session(alice, "alice")
	defer c.Close()
	press(sb.keys, "v", time.Second)
	cpu1 := cpuPercent(b, serve.cmd.Process.Pid)
	var watchers []io.Writer
	var screens []*syncBuffer
	for range benchServeWatchers {
		wc, wk, wout := session(viewer, "watcher")
		defer wc.Close()
		watchers, screens = append(watchers, wk), append(screens, wout)
	}
	watchLatest(watchers)
	time.Sleep(2 * time.Second)
	drawn := func() (n int) {
		for _, w := range screens {
			n += len(w.String())
		}
		return n
	}
	before := drawn()
	cpu21 := cpuPercent(b, serve.cmd.Process.Pid)
	perSession := float64(drawn()-before) / benchServeCPUFor.Seconds() / benchServeWatchers

	// The same with the 20 watching every canary.
	busyA = append(busyA, sb.gates()...)
	busyY = append(busyY, sb.rollback())
	press(sb.keys, "\x1b", 300*time.Millisecond)
	for range benchServeCycles - 1 {
		cycle(watchers, &busyA, &busyY)
	}

	approvals := append(append([]time.Duration{}, quietA...), busyA...)
	rollbacks := append(append([]time.Duration{}, quietY...), busyY...)
	b.ReportMetric(ms(pct(rollbacks, 50)), "swap_p50_ms")
	b.ReportMetric(ms(pct(rollbacks, 99)), "swap_p99_ms")
	b.ReportMetric(ms(pct(approvals, 50)), "approve_p50_ms")
	b.ReportMetric(ms(pct(approvals, 99)), "approve_p99_ms")
	b.ReportMetric(cpu0, "cpu_0_sessions_%")
	b.ReportMetric(cpu1, "cpu_1_session_%")
	b.ReportMetric(cpu21, "cpu_21_sessions_%")
	fmt.Printf("\nkeypress → router table, through cutover serve over SSH\n")
	fmt.Printf("%-44s %5s %8s %8s %8s %8s\n", "", "n", "p50", "p90", "p99", "max")
	for _, row := range []struct {
		name string
		d    []time.Duration
	}{
		{"y → rollback swap, 1 session", quietY}, {"y → rollback swap, 20 more watching", busyY}, {"y → rollback swap, all", rollbacks},
		{"a → approve, next shift, 1 session", quietA}, {"a → approve, next shift, 20 more watching", busyA}, {"a → approve, next shift, all", approvals},
	} {
		fmt.Printf("%-44s %5d %8.1f %8.1f %8.1f %8.1f  ms\n", row.name, len(row.d), ms(pct(row.d, 50)), ms(pct(row.d, 90)), ms(pct(row.d, 99)), ms(pct(row.d, 100)))
	}
	var toEngine, toRouter []time.Duration
	for _, sp := range sb.split {
		toEngine, toRouter = append(toEngine, sp[0]), append(toRouter, sp[1])
	}
	fmt.Printf("of the rollback swap: y → the engine has the order (SSH, console, backend) p50 %.1f / max %.1f ms; then journal + router write p50 %.1f / max %.1f ms\n",
		ms(pct(toEngine, 50)), ms(pct(toEngine, 100)), ms(pct(toRouter, 50)), ms(pct(toRouter, 100)))
	fmt.Printf("serve CPU over %s with a canary at a gate, light traffic: %.1f%% with no session, %.1f%% with 1 watching, %.1f%% with %d watching (of one core); %.0f bytes/s to each watcher\n",
		benchServeCPUFor, cpu0, cpu1, cpu21, benchServeWatchers+1, perSession)
}

// watchLatest has each watcher leave the view it has and open the release
// that runs now.
func watchLatest(watchers []io.Writer) {
	if len(watchers) == 0 {
		return
	}
	for _, w := range watchers {
		press(w, "\x1b", 0)
	}
	time.Sleep(500 * time.Millisecond)
	for _, w := range watchers {
		press(w, "v", 0)
	}
	time.Sleep(500 * time.Millisecond)
}

// startCanary releases 1.1.0 from alice's home screen (enter on the
// service, the fourth image, the configured strategy, start) and waits
// for the first gate. Keys are paced, not checked against the screen, so
// a busy machine may swallow one: the console is then taken back home
// and the keys go again.
func (sb *serveBench) startCanary() {
	sb.b.Helper()
	sb.waitState("none")
	for try := 0; ; try++ {
		for _, k := range []string{"\r", "\x1b[B", "\x1b[B", "\x1b[B", "\r", "\r", "\r"} {
			press(sb.keys, k, 600*time.Millisecond)
		}
		deadline := time.Now().Add(10 * time.Second)
		for sb.state() == "none" && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if sb.state() != "none" {
			break
		}
		if try == 2 {
			sb.b.Fatalf("no release started after three tries:\n%s", sb.lastScreen())
		}
		for range 4 {
			press(sb.keys, "\x1b", 300*time.Millisecond)
		}
	}
	sb.waitState(string(engine.ReleaseWaiting))
}

func press(keys io.Writer, k string, then time.Duration) {
	_, _ = keys.Write([]byte(k))
	time.Sleep(then)
}

// state is the state of the release serve runs ("none" when none).
func (sb *serveBench) state() string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	snaps, err := sb.control.releases(ctx)
	if err != nil {
		return "error: " + err.Error()
	}
	for _, sn := range snaps {
		if sn.Service == sb.e.svc {
			return string(sn.State)
		}
	}
	return "none"
}

func (sb *serveBench) waitState(want string) {
	sb.b.Helper()
	waitFor(sb.b, 60*time.Second, sb.state, want)
}

// lastScreen is the end of what alice's session drew, without escapes.
func (sb *serveBench) lastScreen() string {
	return tail(regexp.MustCompile(`\x1b\[[0-9;?]*[a-zA-Z]`).ReplaceAllString(sb.screen.String(), ""), 40)
}

// gates approves the running canary's gates but the last (where it then
// waits, to be rolled back), each timed from the key to the router's next
// table.
func (sb *serveBench) gates() []time.Duration {
	sb.b.Helper()
	var out []time.Duration
	for range benchServeGates - 1 {
		sb.waitState(string(engine.ReleaseWaiting))
		time.Sleep(150 * time.Millisecond) // the gate is on the session's screen
		was := sb.e.share("1.1.0")
		t0 := time.Now()
		press(sb.keys, "a", 0)
		for sb.e.share("1.1.0") == was {
			if time.Since(t0) > 10*time.Second {
				sb.b.Fatalf("no new table 10s after a (share %.4f):\n%s", was, sb.lastScreen())
			}
			time.Sleep(500 * time.Microsecond)
		}
		out = append(out, time.Since(t0))
	}
	return out
}

// rollback rolls the canary back from alice's session (r, then y after
// the prompt's guard) and times y to the swap, noting how much of it went
// before the engine stamped its rolling-back event (SSH, the console, the
// order) and after it (the journal write and the router's).
func (sb *serveBench) rollback() time.Duration {
	sb.b.Helper()
	e := sb.e
	press(sb.keys, "r", 600*time.Millisecond)
	t0 := time.Now()
	press(sb.keys, "y", 0)
	for e.share("1.0.0") != 1 {
		if time.Since(t0) > 10*time.Second {
			sb.b.Fatalf("traffic not back on 1.0.0 10s after y:\n%s", sb.lastScreen())
		}
		time.Sleep(500 * time.Microsecond)
	}
	d := time.Since(t0)
	if rec, ok := e.releaseState(); ok {
		var evs []engine.Event
		if err := json.Unmarshal([]byte(e.mustRun(exitOK, "history", e.svc, "--release", rec.ID, "-o", "json")), &evs); err == nil {
			for _, ev := range evs {
				if ev.Kind == engine.EventRollingBack {
					sb.split = append(sb.split, [2]time.Duration{ev.At.Sub(t0), d - ev.At.Sub(t0)})
					break
				}
			}
		}
	}
	return d
}

// cpuPercent measures pid's CPU over benchServeCPUFor, as a percentage
// of one core.
func cpuPercent(b *testing.B, pid int) float64 {
	b.Helper()
	t0, c0 := time.Now(), cpuTicks(b, pid)
	time.Sleep(benchServeCPUFor)
	t1, c1 := time.Now(), cpuTicks(b, pid)
	const hz = 100 // USER_HZ on Linux
	return float64(c1-c0) / hz / t1.Sub(t0).Seconds() * 100
}

// cpuTicks is pid's user+system time in clock ticks (/proc/PID/stat).
func cpuTicks(b *testing.B, pid int) uint64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	u, _ := strconv.ParseUint(f[11], 10, 64) // utime, field 14
	k, _ := strconv.ParseUint(f[12], 10, 64) // stime, field 15
	return u + k
}

// pct is the p-th percentile of ds (nearest rank; 100 is the max).
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration{}, ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (p*len(s)+99)/100 - 1
	return s[max(0, min(i, len(s)-1))]
}
