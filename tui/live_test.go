package tui

import (
	"context"
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"

	"github.com/cutover/cutover/engine"
)

// liveAtApproval is a console showing a canary waiting at its approval gate.
func liveAtApproval(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t, 80, 24)
	h.startCanary(gateIs(engine.GateApproval))
	h.pushFigures(30)
	return h
}

func mustContain(t *testing.T, v string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(v, w) {
			t.Fatalf("view lacks %q:\n%s", w, v)
		}
	}
}

func TestLiveViewKeys(t *testing.T) {
	t.Run("a_approves_the_gate", func(t *testing.T) {
		h := liveAtApproval(t)
		mustContain(t, h.view(), "waiting for approval — press a", "⚠ waiting for approval")
		h.run(h.press("a"))
		h.rn.Until(gateIs(engine.GatePause))
		h.rn.Idle()
		h.syncLive()
		// No golden: which instances the snapshot lists here depends on
		// when the engine last polled.
		mustContain(t, h.view(), "approve sent", "→ ● 6. pause 1m", "▒ 1.1.0 50%", "● running")
	})
	t.Run("p_pauses_and_p_resumes", func(t *testing.T) {
		h := liveAtApproval(t)
		h.run(h.press("p"))
		h.rn.UntilKind(engine.EventPaused)
		h.rn.Idle()
		h.syncLive()
		mustContain(t, h.view(), "○ paused", "press p to resume", "p resume")
		h.run(h.press("p"))
		h.rn.UntilKind(engine.EventResumed)
		h.rn.Idle()
		h.syncLive()
		mustContain(t, h.view(), "waiting for approval — press a")
	})
	t.Run("r_asks_before_rolling_back", func(t *testing.T) {
		h := liveAtApproval(t)
		h.press("r")
		mustContain(t, h.view(), "Roll back demo to 1.0.0?", "demo: canary 1.1.0 25% → 0%, stable 1.0.0 75% → 100%", "default: No")
		h.golden()
	})
	t.Run("r_then_y_rolls_back", func(t *testing.T) {
		h := liveAtApproval(t)
		h.press("r")
		h.settle()
		h.run(h.press("y"))
		o, err := h.rn.Wait()
		if o != engine.RolledBack {
			t.Fatalf("outcome %s (%v)", o, err)
		}
		h.syncLive()
		h.send(releaseDoneMsg{h.m.live.id, o, err})
		if s := h.b.env.Router.Table().Share("1.0.0"); s != 1 {
			t.Fatalf("stable share after rollback = %v", s)
		}
		mustContain(t, h.view(), "▼ rolled back", "release rolled-back", "▓ 1.0.0 100%")
	})
	t.Run("P_asks_before_promoting", func(t *testing.T) {
		h := liveAtApproval(t)
		h.press("P")
		mustContain(t, h.view(), "Promote demo 1.1.0 to 100%?", "canary 1.1.0 25% → 100%, stable 1.0.0 75% → 0% and retired")
		h.golden()
	})
	t.Run("P_then_y_promotes", func(t *testing.T) {
		h := liveAtApproval(t)
		h.press("P")
		h.settle()
		h.run(h.press("y"))
		if o, err := h.rn.Wait(); o != engine.Succeeded {
			t.Fatalf("outcome %s (%v)", o, err)
		}
		if s := h.b.env.Router.Table().Share("1.1.0"); s != 1 {
			t.Fatalf("new share after promote = %v", s)
		}
	})
	t.Run("q_asks_and_names_the_split", func(t *testing.T) {
		h := liveAtApproval(t)
		h.press("q")
		mustContain(t, h.view(), "Leave the console?", "traffic stays as it is (1.0.0 75% · 1.1.0 25%)", "cutover rollback demo")
		h.golden()
	})
	t.Run("q_then_y_aborts_then_quits", func(t *testing.T) {
		h := liveAtApproval(t)
		h.press("q")
		h.settle()
		cmd := h.press("y")
		if !h.m.quitting {
			t.Fatal("not quitting after y")
		}
		for _, c := range cmd().(tea.BatchMsg) {
			if msg, ok := runQuick(c); ok {
				h.send(msg)
			}
		}
		o, _ := h.rn.Wait()
		if o != engine.Aborted {
			t.Fatalf("outcome %s, want aborted", o)
		}
		if s := h.b.env.Router.Table().Share("1.1.0"); s != 0.25 {
			t.Fatalf("abort changed the split: new share %v", s)
		}
		if cmd := h.send(releaseDoneMsg{h.m.live.id, o, nil}); cmd == nil || !isQuit(cmd()) {
			t.Fatal("console did not quit once the release stopped")
		}
	})
	t.Run("esc_goes_home_and_the_release_keeps_running", func(t *testing.T) {
		h := liveAtApproval(t)
		h.press("esc")
		mustContain(t, h.view(), "● releasing here: 1.0.0 → 1.1.0", "v view release")
		h.golden()
		h.press("v")
		mustContain(t, h.view(), "waiting for approval — press a")
	})
	t.Run("k_scrolls_the_log_and_j_back", func(t *testing.T) {
		h := liveAtApproval(t)
		h.press("k")
		h.press("k")
		mustContain(t, h.view(), "scrolled up 2")
		h.golden()
		h.press("j")
		h.press("j")
		mustContain(t, h.view(), "k/↑ to scroll")
	})
	t.Run("question_mark_shows_full_help", func(t *testing.T) {
		h := liveAtApproval(t)
		h.press("?")
		mustContain(t, h.view(), "approve", "promote 100%", "roll back")
		h.golden()
	})
	t.Run("a_when_no_gate_waits_says_so", func(t *testing.T) {
		h := liveAtApproval(t)
		h.run(h.press("P"))
		h.settle()
		h.run(h.press("y"))
		h.rn.Wait()
		h.syncLive()
		if h.m.Keys().Approve.Enabled() {
			t.Fatal("approve enabled after the release finished")
		}
		h.run(sendCommand(h.m.env, h.m.live.rel, engine.CmdApprove))
		mustContain(t, h.view(), "× approve")
	})
}

// runQuick runs c and returns its message if it answers within a
// moment; ticks and waits for events are dropped.
func runQuick(c tea.Cmd) (tea.Msg, bool) {
	ch := make(chan tea.Msg, 1)
	go func() { ch <- c() }()
	select {
	case m := <-ch:
		return m, true
	case <-afterMoment():
		return nil, false
	}
}

func isQuit(msg tea.Msg) bool {
	_, ok := msg.(tea.QuitMsg)
	return ok
}

func TestPromptsAreSafe(t *testing.T) {
	t.Run("enter_does_not_confirm", func(t *testing.T) {
		h := liveAtApproval(t)
		h.press("r")
		h.settle()
		if cmd := h.press("enter"); cmd != nil {
			t.Fatal("enter produced a command")
		}
		if h.m.dialog != nil {
			t.Fatal("enter left the prompt open; it should answer No")
		}
		mustContain(t, h.view(), "cancelled — nothing changed")
		h.rn.Idle()
		if h.m.live.rel.Snapshot().State == engine.ReleaseRollingBack {
			t.Fatal("enter rolled back")
		}
	})
	t.Run("keys_in_the_first_moments_are_ignored", func(t *testing.T) {
		h := liveAtApproval(t)
		h.press("r")
		if cmd := h.press("y"); cmd != nil || h.m.dialog == nil {
			t.Fatal("y right after the prompt opened was taken")
		}
		h.settle()
		if cmd := h.press("y"); cmd == nil {
			t.Fatal("y after the guard did nothing")
		}
	})
	t.Run("default_is_no", func(t *testing.T) {
		h := newHarness(t, 80, 24)
		h.press("r")
		h.settle()
		h.press("x")
		if h.m.dialog == nil {
			t.Fatal("an unrelated key closed the prompt")
		}
		h.press("esc")
		if h.m.dialog != nil || h.m.busy != "" {
			t.Fatal("esc did not cancel")
		}
	})
	t.Run("target_is_captured_when_the_prompt_opens", func(t *testing.T) {
		h := newHarness(t, 80, 24)
		h.b.extra = []ServiceState{{Name: "api", Versions: []VersionState{{Version: "2.0.0", Share: 1, Instances: 1, Healthy: 1}}}}
		h.loadServices()
		h.press("r") // demo is selected
		// The list changes under the prompt: api is first now.
		h.send(servicesMsg{services: append([]ServiceState{h.b.extra[0]}, h.m.home.services[0])})
		h.settle()
		cmd := h.press("y")
		if h.m.home.services[0].Name != "demo" {
			t.Fatal("rows reordered while the prompt was open")
		}
		var got startedMsg
		for _, c := range cmd().(tea.BatchMsg) {
			if msg, ok := runQuick(c); ok {
				if s, ok := msg.(startedMsg); ok {
					got = s
				}
			}
		}
		if got.service != "demo" || got.what != "rollback" {
			t.Fatalf("rolled back %q (%s), want demo", got.service, got.what)
		}
	})
}

func TestEmergencyRollbackFromHomeIsTwoKeys(t *testing.T) {
	h := newHarness(t, 80, 24)
	// A canary at 25% left behind by an earlier, aborted console.
	rel, _ := h.b.Start(context.Background(), svc, "img:1.1.0", h.b.spec)
	rn := h.b.env.Start(t, rel)
	rn.Until(gateIs(engine.GateApproval))
	rel.Send(engine.CmdAbort)
	rn.Wait()
	h.loadServices()
	mustContain(t, h.view(), "⚠ interrupted", "u resume")

	h.press("r")
	mustContain(t, h.view(), "Roll back demo to 1.0.0?", "demo: canary 1.1.0 25% → 0%, stable 1.0.0 75% → 100%")
	h.golden()
	h.settle()
	cmd := h.press("y")
	var started startedMsg
	for _, c := range cmd().(tea.BatchMsg) {
		if msg, ok := runQuick(c); ok {
			if s, ok := msg.(startedMsg); ok {
				started = s
			}
		}
	}
	if started.rel == nil {
		t.Fatalf("no rollback started: %+v", started)
	}
	h.send(started)
	if h.m.focus != screenLive {
		t.Fatal("not on the live view of the rollback")
	}
	h.rn = h.b.env.Start(t, started.rel)
	o, err := h.rn.Wait()
	if o != engine.RolledBack && o != engine.Succeeded {
		t.Fatalf("rollback outcome %s (%v)", o, err)
	}
	h.syncLive()
	h.send(releaseDoneMsg{h.m.live.id, o, err})
	if s := h.b.env.Router.Table().Share("1.0.0"); s != 1 {
		t.Fatalf("stable share = %v after the rollback", s)
	}
	mustContain(t, h.view(), "rollback")
}

// slowPuller reports lines, then waits for release before it succeeds.
type slowPuller struct {
	lines   []string
	release chan struct{}
}

func (p *slowPuller) Pull(ctx context.Context, target engine.Target, progress func(string)) error {
	for _, l := range p.lines {
		progress(l)
	}
	select {
	case <-p.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestLiveViewShowsPullProgressInTheStatusLineAndOneLogLine(t *testing.T) {
	h := newHarness(t, 80, 24)
	p := &slowPuller{lines: []string{"a1b2: Downloading 1MB/4MB", "c3d4: Downloading 2MB/9MB", "e5f6: Pull complete"},
		release: make(chan struct{})}
	h.b.puller = p
	h.startCanary(func(ev engine.Event) bool {
		return ev.Kind == engine.EventPullProgress && strings.HasPrefix(ev.Message, "e5f6")
	})
	v := h.view()
	mustContain(t, v, "pulling img:1.1.0: e5f6: Pull complete", "pulling: pulling img:1.1.0 onto the host")
	if n := strings.Count(v, "pull-progress:"); n != 1 {
		t.Fatalf("%d progress lines in the log, want them folded into one:\n%s", n, v)
	}
	close(p.release)
	h.rn.Until(gateIs(engine.GateApproval))
	h.rn.Idle()
	h.syncLive()
	v = h.view()
	mustContain(t, v, "waiting for approval — press a")
	if strings.Contains(v, "pulling img:1.1.0:") {
		t.Fatalf("still says pulling after the pull:\n%s", v)
	}
	log := strings.Join(h.m.live.log, "\n")
	mustContain(t, log, "pulling: pulling img:1.1.0", "pull-progress: e5f6: Pull complete", "pulled: pulled img:1.1.0")
	if n := strings.Count(log, "pull-progress:"); n != 1 {
		t.Fatalf("%d progress lines in the log, want one:\n%s", n, log)
	}
}

func TestLiveHeaderAndTrafficMoveWithTheEventNotTheTick(t *testing.T) {
	h := liveAtApproval(t)
	h.press("r")
	h.settle()
	h.run(h.press("y"))
	h.rn.UntilKind(engine.EventApplied)
	// Only events, no tick: the snapshot must follow them.
	evs := h.rn.Events()
	h.send(releaseEventsMsg{h.m.live.id, evs[h.fed:]})
	h.fed = len(evs)
	// The run may have gone on to finish by now (the fake clock does not
	// wait), so the header says rolling back or rolled back; not waiting.
	v := h.view()
	mustContain(t, v, "▓ 1.0.0 100%")
	if head := strings.SplitN(v, "\n", 2)[0]; !strings.Contains(head, "rolling back") && !strings.Contains(head, "rolled back") {
		t.Fatalf("header did not move with the events: %s", head)
	}
}

func TestEventBatchTakesOneSnapshot(t *testing.T) {
	h := liveAtApproval(t)
	before := h.m.live.snap.Seq
	// Progress alone changes nothing on screen: no snapshot.
	h.send(releaseEventsMsg{h.m.live.id, []engine.Event{{Kind: engine.EventPullProgress, Message: "x: y"}}})
	if h.m.live.snap.Seq != before {
		t.Fatal("a progress event took a snapshot")
	}
	h.run(h.press("p"))
	h.rn.UntilKind(engine.EventPaused)
	h.rn.Idle()
	evs := h.rn.Events()
	h.send(releaseEventsMsg{h.m.live.id, evs[h.fed:]})
	if h.m.live.snap.State != engine.ReleasePaused {
		t.Fatalf("state %s after the paused event, want paused", h.m.live.snap.State)
	}
}

func TestWaitEventBatchesWhatHasArrived(t *testing.T) {
	ch := make(chan engine.Event, 8)
	for i := range 3 {
		ch <- engine.Event{Seq: int64(i + 1)}
	}
	msg := waitEvent("r", ch)().(releaseEventsMsg)
	if len(msg.evs) != 3 || msg.evs[2].Seq != 3 {
		t.Fatalf("batch %+v, want the 3 waiting events", msg.evs)
	}
	close(ch)
	if _, ok := waitEvent("r", ch)().(releaseEventsClosedMsg); !ok {
		t.Fatal("a closed subscription did not say so")
	}
}

// An emergency rollback works from every screen where a service is
// selected, not only from home: r opens the same prompt, y starts it.
func TestRollbackFromPickerStrategyPlanAndHistory(t *testing.T) {
	for _, screen := range []string{"picker", "strategy", "plan", "history"} {
		t.Run(screen, func(t *testing.T) {
			h := newHarness(t, 120, 40)
			h.loadServices()
			switch screen {
			case "history":
				h.press("h")
			default:
				h.openPicker()
				if screen != "picker" {
					h.press("enter") // strategy
				}
				if screen == "plan" {
					h.press("enter")
				}
			}
			if !h.m.Keys().Rollback.Enabled() {
				t.Fatalf("r is not enabled on the %s screen", screen)
			}
			h.press("r")
			mustContain(t, h.view(), "Roll back demo to 1.0.0?")
			h.settle()
			cmd := h.press("y")
			if cmd == nil {
				t.Fatal("y started nothing")
			}
			found := false
			msg := cmd()
			cmds, ok := msg.(tea.BatchMsg)
			if !ok {
				cmds = tea.BatchMsg{func() tea.Msg { return msg }}
			}
			for _, c := range cmds {
				if msg, ok := runQuick(c); ok {
					if _, ok := msg.(startedMsg); ok {
						found = true
					}
				}
			}
			if !found {
				t.Fatalf("y on the %s screen did not start a rollback", screen)
			}
		})
	}
}

// After a release succeeded, home's rollback prompt names the version the
// rollback really returns to (the release's stable one), not the version
// that has the traffic now.
func TestHomeRollbackPromptNamesWhereTheRollbackGoes(t *testing.T) {
	h := newHarness(t, 120, 40)
	rel, _ := h.b.Start(context.Background(), svc, "img:1.1.0", h.b.spec)
	rn := h.b.env.Start(t, rel)
	for {
		ev, ok := rn.Until(gateIs(engine.GateApproval))
		if !ok {
			break
		}
		_ = ev
		rel.Send(engine.CmdApprove)
	}
	if o, _ := rn.Wait(); o != engine.Succeeded {
		t.Fatalf("release outcome %s", o)
	}
	h.loadServices()
	h.press("r")
	mustContain(t, h.view(), "Roll back demo to 1.0.0?", "1.1.0")
}

// The console drives one release at a time: while one runs here, starting
// or rolling back another is refused with what to do instead, and the
// running one stays in view (nothing else could approve or roll it back).
func TestASecondReleaseCannotTakeTheRunningOneOutOfView(t *testing.T) {
	h := liveAtApproval(t)
	running := h.m.live.rel
	// Another release arrives anyway (a start issued before this one ran).
	other, _ := h.b.Rollback(context.Background(), svc)
	h.send(startedMsg{svc, "rollback", other, nil})
	if h.m.live.rel != running {
		t.Fatal("a second release replaced the running one in the live view")
	}
	mustContain(t, h.view(), "was not started")
	if h.m.starting {
		t.Error("still marked as starting")
	}
	// And the keys that would start one say so instead.
	if h.m.mayStart("api", false) {
		t.Error("mayStart allowed a second release while one runs")
	}
	mustContain(t, h.m.message, "runs in this console", "cutover rollback api")
}

// An emergency rollback of another service is never refused: it runs in
// the background while the release in view stays there.
func TestEmergencyRollbackOfAnotherServiceRunsBesideTheLiveRelease(t *testing.T) {
	h := liveAtApproval(t)
	running := h.m.live.rel
	if !h.m.mayStart("api", true) {
		t.Fatalf("emergency rollback of api refused: %s", h.m.message)
	}
	other, _ := h.b.Rollback(context.Background(), svc)
	m, cmd := h.m.Update(startedMsg{"api", "rollback", other, nil})
	h.m = m.(Model)
	if h.m.live.rel != running || h.m.background["api"] != other || cmd == nil {
		t.Fatalf("live %v, background %v, cmd %v: want the rollback in the background and the release still in view", h.m.live.rel == running, h.m.background, cmd != nil)
	}
	mustContain(t, h.m.message, "rolling back api in the background")
	// Leaving waits for it.
	m, _ = h.m.quit()
	if q := m.(Model); q.dialog != nil || !strings.Contains(q.message, "still running") {
		t.Errorf("quit with a background rollback: %q", q.message)
	}
}

// At 80×24 a canary's instances may not all fit: the pane says how many
// it left out and of which version instead of dropping them silently.
func TestLiveViewSaysWhichInstancesDoNotFit(t *testing.T) {
	h := newHarness(t, 80, 24)
	h.b.spec.Strategy.Canary.Instances = 3 // 3 stable and 3 canary instances
	h.startCanary(gateIs(engine.GateApproval))
	// The snapshot lists instances as of the engine's last poll; show all six.
	insts, _ := h.b.env.Platform.Instances(context.Background(), svc)
	h.m.live.snap.Instances = nil
	for _, in := range insts {
		h.m.live.snap.Instances = append(h.m.live.snap.Instances, engine.InstanceView{Instance: in, Healthy: true})
	}
	v := h.view()
	mustContain(t, v, "… +2 more: 1.1.0 ×2")
	if shown := strings.Count(v, "demo-1."); shown != 4 {
		t.Fatalf("%d instance rows shown, want 4 beside the 2 counted:\n%s", shown, v)
	}
}

// Instance names cut to a narrow column keep their version and the tail
// that tells them apart, never a piece of the version that reads as another.
func TestNarrowInstanceNamesKeepTheirVersionAndTail(t *testing.T) {
	for _, c := range []struct {
		name, version string
		w             int
		want          string
	}{
		{"cutover-demo-1.0.0-7ee38f", "1.0.0", 14, "…1.0.0-7ee38f "},
		{"cutover-demo-1.0.0-7ee38f", "1.0.0", 12, "1.0.0…7ee38f"},
		{"cutover-demo-1.2.0-rc1-7ee38f", "1.2.0-rc1", 12, "1.2.0-r…e38f"},
		{"demo-1.0.0-1", "1.0.0", 12, "demo-1.0.0-1"},
		{"web.1.x8f2kq0", "2.0.0", 8, "…x8f2kq0"}, // no version in the name: its tail
	} {
		if got := instanceName(c.name, c.version, c.w); got != c.want {
			t.Errorf("instanceName(%q, %q, %d) = %q, want %q", c.name, c.version, c.w, got, c.want)
		}
	}
}

// While the window runs, the live view shows every limit with the figure
// measured against it, and the status line says which one fails.
func TestLiveViewShowsTheAnalysisFiguresAgainstEachLimitWhileTheWindowRuns(t *testing.T) {
	h := h4analysis(t, 120, 40)
	mustContain(t, h.view(),
		"Analysis 0:05 of 1:00 · 0:55 left",
		"× error rate 10% > 1%",
		"✓ p99 50ms ≤ 500ms",
		"✓ error-rate 0.012 ≤ 0.05",
		"… saturation not measured yet, want ≤ 0.8",
		"failing: error rate 10% > 1%")
	// The next ticks refresh the figures, with no event in between.
	for range 3 {
		h.b.env.Clock.Advance(h.b.env.Clock.Next())
		h.rn.Idle()
	}
	h.syncLive()
	mustContain(t, h.view(), "Analysis 0:08 of 1:00 · 0:52 left")
	// The saturation query has no data at its first measurement (30s),
	// which settles the window early. Paused on the verdict, the view
	// keeps what the verdict judged.
	h.rn.UntilKind(engine.EventPaused)
	h.rn.Idle()
	h.syncLive()
	mustContain(t, h.view(), "paused by a failure", "Analysis failed after 0:30", "× error rate 10% > 1%",
		"✓ error-rate 0.012 ≤ 0.05 [15 measurements]", "× saturation no data, want ≤ 0.8 (1 measurement with no data, inconclusive_limit 0)")
}
