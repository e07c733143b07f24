package tui

import (
	"fmt"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/cutover/cutover/engine"
)

// An intent is what a key on a screen asks of the console beyond that
// screen: to open another screen, start or resume a release, or ask before
// something destructive. Screens say what they want; the root carries it
// out, because it crosses screens or needs the one-release-at-a-time rule.
type intent interface{}

// The intents.
type (
	openPicker   struct{ service ServiceState }
	openStrategy struct {
		service string
		image   ImageRow
	}
	openPlan struct {
		service string
		image   ImageRow
		spec    engine.ServiceSpec
	}
	openHistory struct{ service string }
	watchLive   struct{}
	// attach watches the release of service the backend runs, started
	// by another session of the server (or another screen).
	attach struct{ service string }
	// start releases image (an ImageRow.Ref) of service with spec.
	start struct {
		service, image string
		spec           engine.ServiceSpec
	}
	resume struct{ service string }
	// ask opens a prompt; the answer y carries out its kind.
	ask struct{ dialog confirmDialog }
)

// carry carries out an intent of the screen in view.
func (m Model) carry(in intent) (Model, tea.Cmd) {
	switch in := in.(type) {
	case openPicker:
		m.picker.close()
		m.loads++
		m.picker = newPicker(m.env, in.service.Name, in.service.SemverTags, m.loads)
		return m.open(screenPicker)
	case openStrategy:
		m.strat = newStrategy(m.env, in.service, in.image)
		return m.open(screenStrategy)
	case openPlan:
		m.loads++
		m.plan = newPlan(m.env, in.service, in.image, in.spec, m.loads)
		return m.open(screenPlan)
	case openHistory:
		m.history = newHistory(m.env, in.service, in.service)
		return m.open(screenHistory)
	case watchLive:
		m.show(screenLive)
	case attach:
		return m.prepare(in.service, true, "opening the release of "+in.service, attachRelease(m.env.b, in.service))
	case start:
		return m.prepare(in.service, false, "starting the release", startRelease(m.env.ctx, m.env.b, in.service, in.image, in.spec))
	case resume:
		return m.prepare(in.service, false, "resuming "+in.service, resumeRelease(m.env.ctx, m.env.b, in.service))
	case ask:
		return m.ask(in.dialog), nil
	}
	return m, nil
}

// started takes a prepared release (deploy, resume or rollback) into view,
// or into the background when it is an emergency rollback of another
// service than the release in view.
func (m Model) started(msg startedMsg) (Model, tea.Cmd) {
	m.busy, m.starting = "", false
	if msg.err != nil {
		m.fail("start "+msg.what+" of "+msg.service, msg.err)
		return m, nil
	}
	if m.live.running() && m.live.rel != msg.rel && !m.env.shared {
		if msg.what == "rollback" && msg.service != m.live.service {
			// An emergency rollback of another service runs beside the
			// release in view, which must not fall out of it.
			if m.background == nil {
				m.background = map[string]*engine.Release{}
			}
			m.background[msg.service] = msg.rel
			m.info(fmt.Sprintf("rolling back %s in the background; the release of %s stays in view", msg.service, m.live.service))
			return m, runBackground(m.env.ctx, m.env.b, msg.service, msg.rel)
		}
		// Never let a running release fall out of view: nothing could
		// approve, pause or roll it back from here any more.
		m.info(fmt.Sprintf("the %s of %s was not started: a release of %s runs in this console", msg.what, msg.service, m.live.service))
		return m, nil
	}
	m.live.close()
	m.live = newLive(m.env, msg.rel, msg.service)
	m.home.selectName(msg.service)
	m.show(screenLive)
	m.info("")
	m.shareLive()
	return m, m.live.start()
}

// open brings a new screen id into view and starts what it reads first.
func (m Model) open(id screenID) (Model, tea.Cmd) {
	m.show(id)
	var cmd tea.Cmd
	if l, ok := m.focused().(loader); ok {
		cmd = l.load()
	}
	return m, cmd
}

// prepare runs cmd, which prepares a release, resume or rollback
// (rollback) of service, if the console may start one now (mayStart).
func (m Model) prepare(service string, rollback bool, label string, cmd tea.Cmd) (Model, tea.Cmd) {
	if !m.mayStart(service, rollback) {
		return m, nil
	}
	m.busy = label
	return m, cmd
}

// mayStart says whether this console can start a release, resume or
// rollback of service now, and marks one as being prepared. The console
// drives one release at a time: a second would take the first out of
// view, where nothing could approve, pause or roll it back. An emergency
// rollback (rollback) of another service than the release in view is let
// through: it runs in the background.
func (m *Model) mayStart(service string, rollback bool) bool {
	switch {
	case m.starting:
		m.info("already starting; one moment")
		return false
	case m.background[service] != nil:
		m.info("a rollback of " + service + " is already running")
		return false
	case rollback && m.live.running() && m.live.service != service:
	case m.env.shared:
		// On a server the release in view goes on without this view,
		// and any session can open it again.
	case m.live.running():
		m.info(fmt.Sprintf("a release of %s runs in this console; it must end first (v shows it). From a shell, `cutover rollback %s` works at any time",
			m.live.service, service))
		return false
	}
	m.starting = true
	return true
}

// rollbackCurrent opens the rollback prompt for the screen's service: the
// live one if this console runs its release, else the emergency one.
func (m Model) rollbackCurrent() Model {
	sv, ok := m.home.service(m.focused().subject())
	switch {
	case !ok:
		return m
	case m.live.running() && m.live.service == sv.Name:
		m.show(screenLive)
		return m.ask(m.live.rollbackPrompt())
	}
	return m.ask(rollbackPrompt(sv, m.env.now()))
}

// ask opens a prompt; the rows behind it stay put until it is answered.
func (m Model) ask(d confirmDialog) Model {
	m.dialog = &d
	m.freeze(true)
	return m
}

func (m *Model) freeze(on bool) {
	m.home.frozen = on
	m.live.freeze(on)
}

// answer gives a key to the open prompt.
func (m Model) answer(msg tea.KeyPressMsg) (Model, tea.Cmd) {
	switch m.dialog.update(msg, m.env.now()) {
	case confirmYes:
		d := *m.dialog
		m.dialog = nil
		m.freeze(false)
		return m.confirmed(d)
	case confirmNo:
		m.dialog = nil
		m.freeze(false)
		m.info("cancelled — nothing changed")
	}
	return m, nil
}

// confirmed carries out a prompt the operator answered y to, on the
// target captured when it opened.
func (m Model) confirmed(d confirmDialog) (Model, tea.Cmd) {
	switch d.kind {
	case confirmRollback:
		return m.prepare(d.service, true, "rolling back "+d.service, startRollback(m.env.ctx, m.env.b, d.service))
	case confirmLiveRollback:
		m.show(screenLive)
		return m, sendCommand(m.env, m.live.rel, engine.CmdRollback)
	case confirmPromote:
		return m, sendCommand(m.env, m.live.rel, engine.CmdPromote)
	case confirmQuit:
		m.quitting = true
		m.info("aborting the release, then leaving…")
		return m, tea.Batch(sendCommand(m.env, m.live.rel, engine.CmdAbort),
			tea.Tick(10*time.Second, func(time.Time) tea.Msg { return quitNowMsg{} }))
	}
	return m, nil
}

// quit leaves, asking first when a release runs in this console. On a
// server the releases belong to the server: leaving changes nothing.
func (m Model) quit() (Model, tea.Cmd) {
	if m.env.shared {
		return m, tea.Quit
	}
	for svc := range m.background {
		m.info("the rollback of " + svc + " is still running; leave when it is done (a few seconds)")
		return m, nil
	}
	if m.live.running() {
		return m.ask(m.live.quitPrompt()), nil
	}
	return m, tea.Quit
}
