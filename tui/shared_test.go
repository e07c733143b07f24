package tui

import (
	"context"
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"

	"github.com/cutover/cutover/engine"
)

// sharedAt is a server session of person with role, on home, while the
// server's runner (the fake's) runs a canary that waits for approval.
func sharedAt(t *testing.T, role engine.Role) (*harness, *engine.Release) {
	t.Helper()
	h := newHarnessWith(t, 100, 30, Options{Role: role, Who: "bob", Shared: true})
	h.b.role = role
	pumpClock(t, h.b)
	rel, err := h.b.Start(context.Background(), svc, "img:1.1.0", h.b.spec)
	if err != nil {
		t.Fatal(err)
	}
	ch, unsub := rel.Subscribe()
	defer unsub()
	go func() { _, _ = h.b.Run(context.Background(), rel) }() // another session started it
	for ev := range ch {
		if gateIs(engine.GateApproval)(ev) {
			break
		}
	}
	h.loadServices()
	return h, rel
}

// attachLive presses v on home and carries the view out.
func (h *harness) attachLive() {
	h.t.Helper()
	cmd := h.press("v")
	if cmd == nil {
		h.t.Fatalf("v did nothing:\n%s", h.view())
	}
	var msg startedMsg
	var ok bool
	switch m := cmd().(type) {
	case tea.BatchMsg:
		for _, c := range m {
			if got, quick := runQuick(c); quick {
				if s, isStarted := got.(startedMsg); isStarted {
					msg, ok = s, true
				}
			}
		}
	case startedMsg:
		msg, ok = m, true
	}
	if !ok || msg.err != nil || msg.what != "view" {
		h.t.Fatalf("v gave %+v, want the release to view", msg)
	}
	h.send(msg)
	h.run(loadPastEvents(context.Background(), h.b, h.m.live.id))
	h.send(liveTickMsg{h.m.live.id})
}

func TestViewerSeesTheLiveReleaseWithNoKeyToChangeIt(t *testing.T) {
	h, rel := sharedAt(t, engine.RoleViewer)
	home := h.view()
	mustContain(t, home, "bob (viewer)", "● in progress", "v view")
	for _, k := range []string{"enter release", "r roll back"} {
		if strings.Contains(home, k) {
			t.Errorf("a viewer's home offers %q:\n%s", k, home)
		}
	}
	h.attachLive()
	if h.m.focus != screenLive || h.m.live.rel != rel {
		t.Fatalf("v did not open the running release: focus %v", h.m.focus)
	}
	v := h.view()
	// What happened before this session came: from the journal, once.
	mustContain(t, v, "waiting for approval", "gate-waiting: waiting for approval")
	if log := strings.Join(h.m.live.log, "\n"); !strings.Contains(log, "started: started deploy") || strings.Count(log, "gate-waiting") != 1 {
		t.Errorf("the log of a release started before the session came:\n%s", log)
	}
	for _, hidden := range []string{"press a", "a approve", "p pause", "P promote", "r roll back", "r rolls back"} {
		if strings.Contains(v, hidden) {
			t.Errorf("a viewer is offered %q:\n%s", hidden, v)
		}
	}
	k := h.m.Keys()
	for name, b := range map[string]bool{"approve": k.Approve.Enabled(), "pause": k.Pause.Enabled(),
		"promote": k.Promote.Enabled(), "rollback": k.Rollback.Enabled()} {
		if b {
			t.Errorf("%s is enabled for a viewer", name)
		}
	}
	h.press("?")
	if help := h.view(); strings.Contains(help, "approve") || strings.Contains(help, "roll back") {
		t.Errorf("help offers a viewer keys they cannot use:\n%s", help)
	}
	h.press("esc")
	for _, key := range []string{"a", "p", "P", "r"} {
		if cmd := h.press(key); cmd != nil && h.m.dialog == nil {
			if msg, ok := runQuick(cmd); ok {
				t.Errorf("%s sent %T %+v for a viewer", key, msg, msg)
			}
		}
		if h.m.dialog != nil {
			t.Fatalf("%s opened a prompt for a viewer", key)
		}
	}
	if s := rel.Snapshot().State; s != engine.ReleaseWaiting {
		t.Errorf("the release is %s after a viewer's keys, want still waiting", s)
	}
}

func TestOperatorApprovesTheReleaseAnotherSessionStartedAndLeavesItRunning(t *testing.T) {
	h, rel := sharedAt(t, engine.RoleOperator)
	mustContain(t, h.view(), "bob (operator)", "v view")
	if h.m.Keys().Deploy.Enabled() {
		t.Error("an operator may start releases")
	}
	h.attachLive()
	v := h.view()
	mustContain(t, v, "waiting for approval — press a", "P promotes to 100%, r rolls back")
	ch, unsub := rel.Subscribe()
	defer unsub()
	msg, _ := runQuick(h.press("a"))
	if sent, ok := msg.(commandSentMsg); !ok || sent.err != nil {
		t.Fatalf("a gave %+v", msg)
	}
	for ev := range ch {
		if ev.Kind == engine.EventGatePassed {
			if ev.Actor == nil || ev.Actor.User != "alice" {
				t.Errorf("the approval is recorded as by %v, want the session's person", ev.Actor)
			}
			break
		}
	}
	// Leaving a session asks nothing and stops nothing.
	cmd := h.press("q")
	if h.m.dialog != nil {
		t.Fatalf("q asked before leaving a server session:\n%s", h.view())
	}
	if _, ok := cmd().(tea.QuitMsg); !ok {
		t.Fatal("q did not leave")
	}
	if s := rel.Snapshot().State; s.Finished() || s == engine.ReleaseAborted {
		t.Errorf("leaving a session ended the release: %s", s)
	}
}
