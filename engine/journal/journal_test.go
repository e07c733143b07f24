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
	"github.com/cutover/cutover/engine/enginetest"
	"github.com/cutover/cutover/engine/journal"
)

var t0 = time.Date(2025, 1, 2, 15, 0, 0, 0, time.UTC)

func record(id, service string, pid int, started time.Time) engine.ReleaseRecord {
	host, _ := os.Hostname()
	return engine.ReleaseRecord{ID: id, Service: service, Kind: engine.KindDeploy,
		From: []engine.VersionRef{{Version: "1.0.0", Image: "img:1.0.0"}}, To: engine.Target{Version: "1.1.0", Image: "img:1.1.0"},
		Strategy: engine.Canary, Owner: engine.Owner{PID: pid, Host: host, User: "alice"}, Started: started, State: engine.ReleaseRunning}
}

// The bbolt journal keeps every rule the engine relies on; the in-memory
// journal of engine/enginetest passes the same contract.
func TestJournalContract(t *testing.T) {
	enginetest.JournalContract(t, func(t *testing.T, alive func(engine.Owner) bool) engine.Journal {
		j, err := journal.Open(filepath.Join(t.TempDir(), "sub", "journal.db"))
		if err != nil {
			t.Fatal(err)
		}
		j.Host, j.Alive = enginetest.ContractHost, alive
		return j
	})
}

func TestOpeningAnExistingJournalWritesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	if _, err := journal.Open(path); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // mtime resolution: a write would move it
	if _, err := journal.Open(path); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("opening an existing journal wrote to it (mtime %s → %s): every cutover command would pay an fsync", before.ModTime(), after.ModTime())
	}
}

func TestLeaseOfDeadProcessOnThisHostIsBroken(t *testing.T) {
	ctx := context.Background()
	j, err := journal.Open(filepath.Join(t.TempDir(), "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal("cannot run the test binary:", err)
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
			err = j.Heartbeat(ctx, "child-release", self(), time.Now())
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
		if err := j.End(ctx, fmt.Sprintf("api-%d", i), self(), engine.ReleaseSucceeded, now, ""); err != nil {
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

// self is this process as a lease owner.
func self() engine.Owner {
	host, _ := os.Hostname()
	return engine.Owner{PID: os.Getpid(), Host: host, User: "alice", Start: engine.ProcessStart(os.Getpid())}
}

// A pid reused by another process does not keep a dead owner's lease.
func TestLeaseOfAReusedPidIsBroken(t *testing.T) {
	ctx := context.Background()
	j, err := journal.Open(filepath.Join(t.TempDir(), "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	r := record("r1", "web", os.Getpid(), t0)
	r.Owner = self()
	r.Owner.Start++ // this pid, but a process that started at another time
	if err := j.Begin(ctx, r, t0, false); err != nil {
		t.Fatal(err)
	}
	if err := j.Begin(ctx, record("r2", "web", os.Getpid(), t0), t0.Add(time.Second), false); err != nil {
		t.Fatalf("the lease of a process that no longer runs (its pid reused) was not broken: %v", err)
	}
}
