package journal_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/journal"
)

var t0 = time.Date(2025, 1, 2, 15, 0, 0, 0, time.UTC)

func record(id, service string, pid int, started time.Time) engine.ReleaseRecord {
	host, _ := os.Hostname()
	return engine.ReleaseRecord{ID: id, Service: service, Kind: engine.KindDeploy,
		From: []engine.VersionRef{{Version: "1.0.0", Image: "img:1.0.0"}}, To: engine.Target{Version: "1.1.0", Image: "img:1.1.0"},
		Strategy: engine.Canary, Owner: engine.Owner{PID: pid, Host: host, User: "alice"}, Started: started, State: engine.ReleaseRunning}
}

func TestJournalKeepsReleasesAndEventsInOrder(t *testing.T) {
	ctx := context.Background()
	j, err := journal.Open(filepath.Join(t.TempDir(), "sub", "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Begin(ctx, record("r1", "web", os.Getpid(), t0), t0, false); err != nil {
		t.Fatal(err)
	}
	for i, k := range []engine.EventKind{engine.EventStarted, engine.EventApplying, engine.EventApplied} {
		ev := engine.Event{Seq: int64(i + 1), Release: "r1", Service: "web", Kind: k, Step: i, State: engine.ReleaseRunning,
			Table: &engine.RouteTable{Epoch: 3, Backends: []engine.Backend{{ID: "a", Weight: 10000}}}}
		if err := j.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Append(ctx, engine.Event{Release: "r1", Kind: engine.EventPaused, Step: 2, State: engine.ReleasePaused}); err != nil {
		t.Fatal(err)
	}
	if err := j.End(ctx, "r1", engine.ReleaseRolledBack, t0.Add(time.Minute), "analysis failed"); err != nil {
		t.Fatal(err)
	}
	if err := j.Begin(ctx, record("r2", "web", os.Getpid(), t0.Add(time.Hour)), t0.Add(time.Hour), false); err != nil {
		t.Fatalf("lease not released by End: %v", err)
	}
	evs, err := j.Events(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, ev := range evs {
		kinds = append(kinds, string(ev.Kind))
	}
	if got := strings.Join(kinds, ","); got != "started,applying,applied,paused" {
		t.Errorf("events %s", got)
	}
	if evs[1].Table == nil || evs[1].Table.Epoch != 3 {
		t.Errorf("table payload lost: %+v", evs[1])
	}
	rels, err := j.Releases(ctx, "web", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(rels) != 2 || rels[0].ID != "r2" || rels[1].ID != "r1" {
		t.Fatalf("releases newest first: %+v", rels)
	}
	if r1 := rels[1]; r1.State != engine.ReleaseRolledBack || r1.Error != "analysis failed" || r1.Step != 2 || r1.Stable().Version != "1.0.0" {
		t.Errorf("r1 record %+v", r1)
	}
	if _, err := j.Release(ctx, "nope"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("unknown release: %v", err)
	}
	if got, _ := j.Releases(ctx, "api", 10); len(got) != 0 {
		t.Errorf("other service sees %v", got)
	}
}

func TestLeaseRefusesSecondReleaseUntilStaleOrTakenOver(t *testing.T) {
	ctx := context.Background()
	j, err := journal.Open(filepath.Join(t.TempDir(), "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	j.Alive = func(int) bool { return true }
	if err := j.Begin(ctx, record("r1", "web", 4242, t0), t0, false); err != nil {
		t.Fatal(err)
	}
	err = j.Begin(ctx, record("r2", "web", 4343, t0), t0.Add(10*time.Second), false)
	var held *engine.LeaseHeldError
	if !errors.As(err, &held) || !errors.Is(err, engine.ErrLeaseHeld) {
		t.Fatalf("second deploy: %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "pid 4242") || !strings.Contains(msg, "r1") || !strings.Contains(msg, "alice") {
		t.Errorf("error does not name the holder: %s", msg)
	}
	if err := j.Heartbeat(ctx, "r1", t0.Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := j.Begin(ctx, record("r2", "web", 4343, t0), t0.Add(24*time.Second), false); err == nil {
		t.Fatal("lease with a fresh heartbeat was broken")
	}
	// Heartbeat at +10s is stale at +26s.
	if err := j.Begin(ctx, record("r2", "web", 4343, t0), t0.Add(26*time.Second), false); err != nil {
		t.Fatalf("stale lease not broken: %v", err)
	}
	if err := j.Heartbeat(ctx, "r1", t0.Add(27*time.Second)); !errors.Is(err, engine.ErrLeaseLost) {
		t.Errorf("old holder heartbeat: %v", err)
	}
	// A rollback takes over a live lease.
	if err := j.Begin(ctx, record("rb", "web", 4444, t0), t0.Add(28*time.Second), true); err != nil {
		t.Fatalf("takeover: %v", err)
	}
	l, ok, err := j.Active(ctx, "web")
	if err != nil || !ok || l.Release != "rb" {
		t.Errorf("active %+v %v %v", l, ok, err)
	}
}

// Two processes must not drive one release: resuming a release whose live
// owner is another process is refused; its own owner may begin it again.
func TestLeaseRefusesTheSameReleaseToAnotherLiveProcess(t *testing.T) {
	ctx := context.Background()
	j, err := journal.Open(filepath.Join(t.TempDir(), "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	j.Alive = func(int) bool { return true }
	if err := j.Begin(ctx, record("r1", "web", 4242, t0), t0, false); err != nil {
		t.Fatal(err)
	}
	if err := j.Begin(ctx, record("r1", "web", 4343, t0), t0.Add(time.Second), false); !errors.Is(err, engine.ErrLeaseHeld) {
		t.Fatalf("another process resuming r1 while its owner lives: %v, want ErrLeaseHeld", err)
	}
	if err := j.Begin(ctx, record("r1", "web", 4242, t0), t0.Add(2*time.Second), false); err != nil {
		t.Fatalf("the owner beginning r1 again: %v", err)
	}
}

func TestLeaseOfDeadProcessOnThisHostIsBroken(t *testing.T) {
	ctx := context.Background()
	j, err := journal.Open(filepath.Join(t.TempDir(), "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("cannot run true:", err)
	}
	dead := cmd.Process.Pid
	if err := j.Begin(ctx, record("r1", "web", dead, t0), t0, false); err != nil {
		t.Fatal(err)
	}
	if err := j.Begin(ctx, record("r2", "web", os.Getpid(), t0), t0.Add(time.Second), false); err != nil {
		t.Fatalf("lease of dead pid %d not broken: %v", dead, err)
	}
}

// The child process holds a release while the parent reads and writes the
// same file: the multi-process case of `cutover deploy` and `cutover rollback`.
const childEnv = "CUTOVER_JOURNAL_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		os.Exit(child(path))
	}
	os.Exit(m.Run())
}

func child(path string) int {
	ctx := context.Background()
	j, err := journal.Open(path)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	now := time.Now()
	if err := j.Begin(ctx, record("child-release", "web", os.Getpid(), now), now, false); err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	n := 0
	for in.Scan() {
		switch in.Text() {
		case "append":
			n++
			err = j.Append(ctx, engine.Event{Seq: int64(n), Release: "child-release", Kind: engine.EventStepDone, Step: n, State: engine.ReleaseRunning})
		case "heartbeat":
			err = j.Heartbeat(ctx, "child-release", time.Now())
		}
		if err != nil {
			fmt.Println("error", err)
		} else {
			fmt.Println("ok")
		}
	}
	return 0
}

func TestTwoProcessesShareTheJournal(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := journal.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+path)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	out := bufio.NewScanner(stdout)
	say := func(line string) string {
		t.Helper()
		if line != "" {
			fmt.Fprintln(stdin, line)
		}
		if !out.Scan() {
			t.Fatalf("child ended: %v", out.Err())
		}
		return out.Text()
	}
	if got := say(""); got != "ready" {
		t.Fatalf("child: %s", got)
	}

	// The parent cannot start a second release of web while the child holds it…
	now := time.Now()
	err = j.Begin(ctx, record("parent-release", "web", os.Getpid(), now), now, false)
	if !errors.Is(err, engine.ErrLeaseHeld) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", cmd.Process.Pid)) {
		t.Fatalf("second deploy while child holds the lease: %v", err)
	}
	// …but can read and write meanwhile, interleaved with the child's writes.
	for i := range 3 {
		if got := say("append"); got != "ok" {
			t.Fatalf("child append %d: %s", i, got)
		}
		if err := j.Begin(ctx, record(fmt.Sprintf("api-%d", i), "api", os.Getpid(), now), now, false); err != nil {
			t.Fatalf("parent write for another service: %v", err)
		}
		if err := j.End(ctx, fmt.Sprintf("api-%d", i), engine.ReleaseSucceeded, now, ""); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := j.Events(ctx, "child-release")
	if err != nil || len(evs) != 3 {
		t.Fatalf("parent reads child's events: %d %v", len(evs), err)
	}
	l, ok, err := j.Active(ctx, "web")
	if err != nil || !ok || l.Owner.PID != cmd.Process.Pid {
		t.Fatalf("active lease %+v %v %v", l, ok, err)
	}
	// A rollback from the parent takes over; the child learns at its next heartbeat.
	if err := j.Begin(ctx, record("parent-rollback", "web", os.Getpid(), now), now, true); err != nil {
		t.Fatalf("takeover: %v", err)
	}
	if got := say("heartbeat"); !strings.Contains(got, engine.ErrLeaseLost.Error()) {
		t.Errorf("child heartbeat after takeover: %s", got)
	}
}

// A release rolled back from another process keeps that outcome when its
// own, fenced-out process later records that it was taken over.
func TestRolledBackOutcomeSurvivesTheFencedWritersEnd(t *testing.T) {
	ctx := context.Background()
	j, err := journal.Open(filepath.Join(t.TempDir(), "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Begin(ctx, record("r1", "web", 4242, t0), t0, false); err != nil {
		t.Fatal(err)
	}
	if err := j.End(ctx, "r1", engine.ReleaseRolledBack, t0.Add(time.Second), ""); err != nil {
		t.Fatal(err)
	}
	if err := j.End(ctx, "r1", engine.ReleaseTakenOver, t0.Add(2*time.Second), "taken over"); err != nil {
		t.Fatal(err)
	}
	rec, err := j.Release(ctx, "r1")
	if err != nil || rec.State != engine.ReleaseRolledBack {
		t.Errorf("state %s (%v), want rolled-back", rec.State, err)
	}
}
