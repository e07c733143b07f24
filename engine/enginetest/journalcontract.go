package enginetest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
)

// ContractHost is the host name a journal under the contract believes it
// runs on: leases of owners on it live exactly as long as alive says.
const ContractHost = "contract-host"

// NewJournalFunc makes an empty journal for one contract test: Host is
// ContractHost, and alive decides whether an owner on it still runs.
type NewJournalFunc func(t *testing.T, alive func(engine.Owner) bool) engine.Journal

// JournalContract runs the rules every engine.Journal keeps against the
// journal made by open: the bbolt journal and the in-memory one both pass
// it, so engine tests on the fake prove what holds for the real one.
func JournalContract(t *testing.T, open NewJournalFunc) {
	t0 := time.Date(2025, 1, 2, 15, 0, 0, 0, time.UTC)
	ctx := context.Background()
	owner := func(pid int) engine.Owner {
		return engine.Owner{PID: pid, Host: ContractHost, User: "alice", Start: uint64(pid) * 10}
	}
	rec := func(id, service string, o engine.Owner, at time.Time) engine.ReleaseRecord {
		return engine.ReleaseRecord{ID: id, Service: service, Kind: engine.KindDeploy, Owner: o, Started: at, State: engine.ReleaseRunning,
			From: []engine.VersionRef{{Version: "1.0.0", Image: "img:1.0.0"}}, To: engine.Target{Version: "1.1.0", Image: "img:1.1.0"}}
	}
	ev := func(id string, k engine.EventKind, step int) engine.Event {
		return engine.Event{Release: id, Service: "web", Kind: k, Step: step, State: engine.ReleaseRunning}
	}
	alive := func(engine.Owner) bool { return true }
	must := func(t *testing.T, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	kinds := func(evs []engine.Event) string {
		var ks []string
		for _, e := range evs {
			ks = append(ks, string(e.Kind))
		}
		return strings.Join(ks, ",")
	}

	t.Run("BeginAppendsItsEventsAndRecordsFoldStateAndStep", func(t *testing.T) {
		j := open(t, alive)
		must(t, j.Begin(ctx, rec("r1", "web", owner(1), t0), t0, false, ev("r1", engine.EventStarted, -1), ev("r1", engine.EventPlanned, -1)))
		must(t, j.Append(ctx, ev("r1", engine.EventApplying, 0), ev("r1", engine.EventApplied, 1)))
		paused := ev("r1", engine.EventPaused, 2)
		paused.State = engine.ReleasePaused
		must(t, j.Append(ctx, paused))
		evs, err := j.Events(ctx, "r1")
		must(t, err)
		if got := kinds(evs); got != "started,planned,applying,applied,paused" {
			t.Errorf("events %s", got)
		}
		r, err := j.Release(ctx, "r1")
		must(t, err)
		if r.State != engine.ReleasePaused || r.Step != 2 || r.Stable().Version != "1.0.0" {
			t.Errorf("record %+v", r)
		}
		if _, err := j.Release(ctx, "nope"); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("unknown release: %v", err)
		}
	})

	t.Run("AFailedNotificationIsCountedAndChangesNeitherStateNorStep", func(t *testing.T) {
		j := open(t, alive)
		must(t, j.Begin(ctx, rec("r1", "web", owner(1), t0), t0, false, ev("r1", engine.EventStarted, -1)))
		must(t, j.Append(ctx, ev("r1", engine.EventApplied, 3)))
		must(t, j.End(ctx, "r1", owner(1), engine.ReleaseSucceeded, t0.Add(time.Minute), ""))
		// The notifier journals beside the release, even after it ended,
		// with a state and step of its own that must not count.
		late := engine.Event{Release: "r1", Service: "web", Kind: engine.EventNotifyFailed, Step: -1, State: engine.ReleaseRunning,
			Message: "webhook http://hooks.test: finished not delivered"}
		must(t, j.Append(ctx, late, late))
		r, err := j.Release(ctx, "r1")
		must(t, err)
		if r.State != engine.ReleaseSucceeded || r.Step != 3 || r.NotifyFailed != 2 {
			t.Errorf("record %+v: want succeeded at step 3 with 2 failed notifications", r)
		}
		evs, err := j.Events(ctx, "r1")
		must(t, err)
		if got := kinds(evs); got != "started,applied,notify-failed,notify-failed" {
			t.Errorf("events %s", got)
		}
	})

	t.Run("ReleasesAreListedNewestFirstPerService", func(t *testing.T) {
		j := open(t, alive)
		must(t, j.Begin(ctx, rec("r1", "web", owner(1), t0), t0, false))
		must(t, j.End(ctx, "r1", owner(1), engine.ReleaseSucceeded, t0.Add(time.Minute), ""))
		must(t, j.Begin(ctx, rec("r2", "web", owner(1), t0.Add(time.Hour)), t0.Add(time.Hour), false))
		must(t, j.Begin(ctx, rec("a1", "api", owner(1), t0.Add(2*time.Hour)), t0.Add(2*time.Hour), false))
		rels, err := j.Releases(ctx, "web", 10)
		must(t, err)
		if len(rels) != 2 || rels[0].ID != "r2" || rels[1].ID != "r1" {
			t.Errorf("web releases %+v", rels)
		}
		all, err := j.Releases(ctx, "", 2)
		must(t, err)
		if len(all) != 2 || all[0].ID != "a1" || all[1].ID != "r2" {
			t.Errorf("all releases, limit 2: %+v", all)
		}
	})

	t.Run("ALiveOwnerOnThisHostKeepsItsLeaseWhateverItsHeartbeatsAge", func(t *testing.T) {
		j := open(t, alive)
		must(t, j.Begin(ctx, rec("r1", "web", owner(1), t0), t0, false))
		err := j.Begin(ctx, rec("r2", "web", owner(2), t0), t0.Add(time.Hour), false)
		var held *engine.LeaseHeldError
		if !errors.As(err, &held) || !errors.Is(err, engine.ErrLeaseHeld) {
			t.Fatalf("second deploy an hour after the last heartbeat of a live owner: %v", err)
		}
		if msg := err.Error(); !strings.Contains(msg, "pid 1") || !strings.Contains(msg, "r1") || !strings.Contains(msg, "alice") {
			t.Errorf("error does not name the holder: %s", msg)
		}
	})

	t.Run("ADeadOwnerOnThisHostLosesItsLeaseAtOnce", func(t *testing.T) {
		dead := map[int]bool{}
		j := open(t, func(o engine.Owner) bool { return !dead[o.PID] })
		must(t, j.Begin(ctx, rec("r1", "web", owner(1), t0), t0, false))
		dead[1] = true
		must(t, j.Begin(ctx, rec("r2", "web", owner(2), t0), t0.Add(time.Second), false))
		if err := j.Heartbeat(ctx, "r1", owner(1), t0.Add(2*time.Second)); !errors.Is(err, engine.ErrLeaseLost) {
			t.Errorf("old holder's heartbeat: %v", err)
		}
	})

	t.Run("AnOwnerOnAnotherHostLivesByItsHeartbeat", func(t *testing.T) {
		j := open(t, alive)
		far := engine.Owner{PID: 7, Host: "elsewhere"}
		must(t, j.Begin(ctx, rec("r1", "web", far, t0), t0, false))
		must(t, j.Heartbeat(ctx, "r1", far, t0.Add(10*time.Second)))
		if err := j.Begin(ctx, rec("r2", "web", owner(2), t0), t0.Add(10*time.Second+engine.LeaseStaleAfter), false); !errors.Is(err, engine.ErrLeaseHeld) {
			t.Fatalf("a fresh heartbeat from another host was broken: %v", err)
		}
		must(t, j.Begin(ctx, rec("r2", "web", owner(2), t0), t0.Add(11*time.Second+engine.LeaseStaleAfter), false))
	})

	t.Run("ATakeoverFencesTheOldHolder", func(t *testing.T) {
		j := open(t, alive)
		must(t, j.Begin(ctx, rec("r1", "web", owner(1), t0), t0, false))
		must(t, j.AppendFenced(ctx, owner(1), ev("r1", engine.EventLaunching, 0)))
		must(t, j.Begin(ctx, rec("rb", "web", owner(2), t0), t0.Add(time.Second), true, ev("rb", engine.EventStarted, -1)))
		if err := j.AppendFenced(ctx, owner(1), ev("r1", engine.EventStopping, 1)); !errors.Is(err, engine.ErrLeaseLost) {
			t.Errorf("fenced append after the takeover: %v, want ErrLeaseLost", err)
		}
		if err := j.Heartbeat(ctx, "r1", owner(1), t0.Add(2*time.Second)); !errors.Is(err, engine.ErrLeaseLost) {
			t.Errorf("heartbeat after the takeover: %v", err)
		}
		evs, err := j.Events(ctx, "r1")
		must(t, err)
		if got := kinds(evs); got != "launching" {
			t.Errorf("r1 events %s: a refused append must store nothing", got)
		}
		must(t, j.Append(ctx, ev("r1", engine.EventTakenOver, 1))) // history is still written
		l, ok, err := j.Active(ctx, "web")
		if err != nil || !ok || l.Release != "rb" {
			t.Errorf("active %+v %v %v", l, ok, err)
		}
	})

	t.Run("AnotherProcessRunningTheSameReleaseFencesTheFirst", func(t *testing.T) {
		dead := map[int]bool{}
		j := open(t, func(o engine.Owner) bool { return !dead[o.PID] })
		must(t, j.Begin(ctx, rec("r1", "web", owner(1), t0), t0, false))
		if err := j.Begin(ctx, rec("r1", "web", owner(2), t0), t0.Add(time.Second), false); !errors.Is(err, engine.ErrLeaseHeld) {
			t.Fatalf("another process resuming r1 while its owner lives: %v", err)
		}
		must(t, j.Begin(ctx, rec("r1", "web", owner(1), t0), t0.Add(2*time.Second), false)) // its own owner may
		dead[1] = true
		must(t, j.Begin(ctx, rec("r1", "web", owner(2), t0), t0.Add(3*time.Second), false))
		if err := j.AppendFenced(ctx, owner(1), ev("r1", engine.EventLaunching, 0)); !errors.Is(err, engine.ErrLeaseLost) {
			t.Errorf("the first process's fenced append: %v", err)
		}
		if err := j.Heartbeat(ctx, "r1", owner(1), t0.Add(4*time.Second)); !errors.Is(err, engine.ErrLeaseLost) {
			t.Errorf("the first process's heartbeat: %v", err)
		}
		must(t, j.End(ctx, "r1", owner(1), engine.ReleaseTakenOver, t0.Add(5*time.Second), "old run"))
		r, err := j.Release(ctx, "r1")
		must(t, err)
		if r.State != engine.ReleaseRunning || !r.Ended.IsZero() {
			t.Errorf("the old run's End changed the new run's record: %+v", r)
		}
		if l, ok, _ := j.Active(ctx, "web"); !ok || !l.Owner.Same(owner(2)) {
			t.Errorf("the old run's End released the new run's lease: %+v %v", l, ok)
		}
	})

	t.Run("EndReleasesTheLeaseAndKeepsARollbacksOutcome", func(t *testing.T) {
		j := open(t, alive)
		must(t, j.Begin(ctx, rec("r1", "web", owner(1), t0), t0, false))
		must(t, j.Begin(ctx, rec("rb", "web", owner(2), t0), t0.Add(time.Second), true))
		must(t, j.End(ctx, "r1", owner(2), engine.ReleaseRolledBack, t0.Add(2*time.Second), "rolled back by rb"))
		must(t, j.End(ctx, "r1", owner(1), engine.ReleaseTakenOver, t0.Add(3*time.Second), "taken over"))
		r, err := j.Release(ctx, "r1")
		must(t, err)
		if r.State != engine.ReleaseRolledBack {
			t.Errorf("r1 is %s, want rolled-back: the fenced writer's End must not overwrite it", r.State)
		}
		if l, ok, _ := j.Active(ctx, "web"); !ok || l.Release != "rb" {
			t.Errorf("r1's End released rb's lease: %+v %v", l, ok)
		}
		must(t, j.End(ctx, "rb", owner(2), engine.ReleaseRolledBack, t0.Add(4*time.Second), ""))
		if _, ok, _ := j.Active(ctx, "web"); ok {
			t.Error("End did not release the lease")
		}
		must(t, j.Begin(ctx, rec("r3", "web", owner(3), t0.Add(time.Hour)), t0.Add(time.Hour), false))
	})
}
