package tui

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/spinner"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"

	"github.com/cutover/cutover/engine"
)

// Options tune the console.
type Options struct {
	// Service is selected on the home screen at start.
	Service string
	// NoColor draws without colour (Run also honours NO_COLOR); glyphs
	// and words still say every state.
	NoColor bool
	// Light starts with light-background colours until the terminal
	// reports its background (dark is assumed otherwise).
	Light bool
	// Input and Output replace the terminal (tests).
	Input  io.Reader
	Output io.Writer
	// Width and Height fix the size instead of asking the terminal (tests).
	Width, Height int
	// Now is the wall clock for relative times and the prompt guard; nil
	// is time.Now. Tests pass a fixed time so frames are stable.
	Now func() time.Time
}

// env is what every screen shares with the root: styles, the keys as
// enabled for the current state, and the clock.
type env struct {
	styles Styles
	keys   KeyMap
	now    func() time.Time
}

// screen names the screens the root routes between.
type screen int

const (
	screenHome screen = iota
	screenPicker
	screenStrategy
	screenPlan
	screenLive
	screenHistory
)

// Model is the console's root model. It owns the size, the screens, the
// open prompt and help, and routes every message: a key goes to an open
// prompt first, then to a focused text input, then to the global keys,
// then to the current screen.
type Model struct {
	b    Backend
	opts Options
	ctx  context.Context
	env  *env

	dark, color   bool
	width, height int

	screen  screen
	home    homeScreen
	picker  pickerScreen
	loads   int // image listings started, to tell a stale page from a current one
	strat   strategyScreen
	plan    planScreen
	live    liveScreen
	hasLive bool
	events  <-chan engine.Event
	unsub   func()
	history historyScreen

	dialog   *confirmDialog
	showHelp bool
	help     help.Model

	message  string
	msgErr   bool
	busy     string
	starting bool // a release, resume or rollback is being prepared: one at a time
	// background holds emergency rollbacks of other services started while
	// this console's release stays in view, by service.
	background map[string]*engine.Release
	spin       int
	quitting   bool
	started    bool // services loaded once (to apply Options.Service)
}

// New returns the root model over b. Run uses it; tests drive it directly.
func New(b Backend, opts Options) Model {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := Model{b: b, opts: opts, ctx: context.Background(), dark: !opts.Light, color: !opts.NoColor,
		width: 80, height: 24, help: help.New()}
	if opts.Width > 0 && opts.Height > 0 {
		m.width, m.height = opts.Width, opts.Height
	}
	m.env = &env{styles: NewStyles(m.dark, m.color), keys: DefaultKeyMap(), now: opts.Now}
	m.help.Styles = m.env.styles.Help
	m.home = newHome(m.env)
	m.history = newHistory(m.env, "")
	m.resize()
	m.syncKeys()
	return m
}

// Run opens the console on the terminal (or opts.Input/Output) and
// returns when the operator leaves. A release still running then is
// aborted where it stands, as the quit prompt says.
func Run(ctx context.Context, b Backend, opts Options) error {
	if os.Getenv("NO_COLOR") != "" {
		opts.NoColor = true
	}
	m := New(b, opts)
	m.ctx = ctx
	popts := []tea.ProgramOption{tea.WithContext(ctx)}
	if opts.Input != nil {
		popts = append(popts, tea.WithInput(opts.Input))
	}
	if opts.Output != nil {
		popts = append(popts, tea.WithOutput(opts.Output))
	}
	if opts.Width > 0 && opts.Height > 0 {
		popts = append(popts, tea.WithWindowSize(opts.Width, opts.Height))
	}
	if opts.NoColor {
		popts = append(popts, tea.WithColorProfile(colorprofile.Ascii))
	}
	final, err := tea.NewProgram(m, popts...).Run()
	if fm, ok := final.(Model); ok && fm.hasLive && fm.live.running() {
		abortAndWait(fm.live.rel, 10*time.Second)
	}
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("console: %w", err)
	}
	return nil
}

// abortAndWait stops a release the console leaves behind and waits a
// little for it to record where it stopped.
func abortAndWait(rel *engine.Release, limit time.Duration) {
	ch, unsub := rel.Subscribe()
	defer unsub()
	if rel.Send(engine.CmdAbort) != nil {
		return
	}
	timeout := time.After(limit)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			return
		}
	}
}

// Frame is the console's current frame with its ANSI styles, for
// screenshots: write it to a file and render it with freeze.
func Frame(m Model) string { return m.View().Content }

// Init asks for the background colour and reads the services.
func (m Model) Init() tea.Cmd {
	return tea.Batch(tea.RequestBackgroundColor, loadServices(m.ctx, m.b), homeTick())
}

func (m *Model) resize() {
	h := max(1, m.height-2) // message line and key line
	m.home.SetSize(m.width, h)
	m.picker.SetSize(m.width, h)
	m.strat.SetSize(m.width, h)
	m.plan.SetSize(m.width, h)
	m.live.SetSize(m.width, h)
	m.history.SetSize(m.width, h)
	m.help.SetWidth(m.width)
}

func (m *Model) setBusy(label string) tea.Cmd {
	was := m.busy
	m.busy = label
	if was == "" {
		return busyTick()
	}
	return nil
}

func (m *Model) fail(doing string, err error) {
	m.message, m.msgErr = advise(doing, err), true
}

func (m *Model) info(s string) { m.message, m.msgErr = s, false }

// Update routes msg; see Model.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	m2, cmd := m.update(msg)
	m2.syncKeys()
	return m2, cmd
}

func (m Model) update(msg tea.Msg) (Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.resize()
		return m, nil
	case tea.BackgroundColorMsg:
		m.dark = msg.IsDark()
		m.env.styles = NewStyles(m.dark, m.color)
		m.help.Styles = m.env.styles.Help
		return m, nil
	case tea.KeyPressMsg:
		return m.key(msg)
	case busyTickMsg:
		if m.busy == "" {
			return m, nil
		}
		m.spin++
		return m, busyTick()
	case backgroundDoneMsg:
		delete(m.background, msg.service)
		if msg.err != nil && msg.outcome != engine.RolledBack && msg.outcome != engine.Succeeded {
			m.fail("roll back "+msg.service, msg.err)
		} else {
			m.info(fmt.Sprintf("%s: rollback %s", msg.service, msg.outcome))
		}
		return m, nil
	case errMsg:
		m.busy, m.starting = "", false
		m.fail("error", msg.err)
		return m, nil
	case homeTickMsg:
		// Refresh only what is on screen, one read at a time, and never
		// under an open prompt: its target and rows must stay put.
		if m.screen != screenHome || m.dialog != nil || m.home.refreshing {
			return m, homeTick()
		}
		m.home.refreshing = true
		return m, tea.Batch(loadServices(m.ctx, m.b), homeTick())
	case servicesMsg:
		m.home.refreshing = false
		if msg.err != nil {
			m.home.err = advise("read services", msg.err)
			return m, nil
		}
		if m.dialog != nil {
			return m, nil // rows stay put while a prompt is open
		}
		m.home.setServices(msg.services)
		if !m.started {
			m.started = true
			if m.opts.Service != "" {
				m.home.selectName(m.opts.Service)
			}
		}
		return m, nil
	case imagePageMsg:
		if msg.load != m.picker.load || msg.service != m.picker.service {
			return m, nil // a listing the operator has left (and cancelled)
		}
		m.picker.addPage(msg)
		if msg.done || msg.feed == nil {
			return m, nil
		}
		return m, waitImagePage(msg.feed)
	case spinner.TickMsg:
		if !m.picker.loading {
			return m, nil
		}
		var cmd tea.Cmd
		m.picker.spin, cmd = m.picker.spin.Update(msg)
		return m, cmd
	case specMsg:
		if msg.service != m.strat.service {
			return m, nil
		}
		if msg.err != nil {
			m.strat.err = advise("read settings", msg.err)
			return m, nil
		}
		if !m.strat.loaded {
			m.strat.setSpec(msg.spec)
		}
		return m, nil
	case planMsg:
		if m.screen != screenPlan || msg.service != m.plan.service {
			return m, nil
		}
		m.busy = ""
		if msg.err != nil {
			m.plan.err = advise("plan", msg.err)
			return m, nil
		}
		m.plan.plan, m.plan.loaded = msg.plan, true
		return m, nil
	case startedMsg:
		m.busy, m.starting = "", false
		if msg.err != nil {
			m.fail("start "+msg.what+" of "+msg.service, msg.err)
			return m, nil
		}
		if m.hasLive && m.live.running() && m.live.rel != msg.rel {
			if msg.what == "rollback" && msg.service != m.live.service {
				// An emergency rollback of another service runs beside the
				// release in view, which must not fall out of it.
				if m.background == nil {
					m.background = map[string]*engine.Release{}
				}
				m.background[msg.service] = msg.rel
				m.info(fmt.Sprintf("rolling back %s in the background; the release of %s stays in view", msg.service, m.live.service))
				return m, runBackground(m.ctx, msg.service, msg.rel)
			}
			// Never let a running release fall out of view: nothing could
			// approve, pause or roll it back from here any more.
			m.info(fmt.Sprintf("the %s of %s was not started: a release of %s runs in this console", msg.what, msg.service, m.live.service))
			return m, nil
		}
		return m.watch(msg.rel, msg.service)
	case releaseEventsMsg:
		if !m.hasLive || msg.id != m.live.id {
			return m, nil
		}
		m.live, _ = m.live.Update(msg)
		m.home.liveSnap = m.live.snap
		return m, waitEvent(m.live.id, m.events)
	case releaseEventsClosedMsg:
		return m, nil
	case liveTickMsg:
		if !m.hasLive {
			return m, nil
		}
		var cmd tea.Cmd
		m.live, cmd = m.live.Update(msg)
		m.home.liveSnap = m.live.snap
		return m, cmd
	case releaseDoneMsg:
		if !m.hasLive || msg.id != m.live.id {
			return m, nil
		}
		m.live, _ = m.live.Update(msg)
		m.home.liveSnap = m.live.snap
		m.home.live = ""
		word := m.live.endState()
		if msg.err != nil {
			m.fail(fmt.Sprintf("release %s", word), msg.err)
		} else {
			m.info(fmt.Sprintf("%s: release %s", m.live.service, word))
		}
		if m.quitting {
			return m, tea.Quit
		}
		return m, loadServices(m.ctx, m.b)
	case commandSentMsg:
		if msg.err != nil {
			m.fail(string(msg.cmd), msg.err)
		} else {
			m.info(string(msg.cmd) + " sent")
		}
		return m, nil
	case historyMsg:
		if msg.service != m.history.service {
			return m, nil // an answer for the scope the operator switched away from
		}
		m.busy = ""
		if msg.err != nil {
			m.history.err = advise("read the journal", msg.err)
			return m, nil
		}
		m.history.records, m.history.loaded = msg.records, true
		return m, nil
	case eventsMsg:
		m.busy = ""
		if msg.id != m.history.showing {
			return m, nil
		}
		if msg.err != nil {
			m.history.evErr = advise("read events", msg.err)
			return m, nil
		}
		m.history.events = msg.events
		return m, nil
	case quitNowMsg:
		return m, tea.Quit
	}
	return m.toScreen(msg)
}

// quitNowMsg ends the program even if an aborted release never answered.
type quitNowMsg struct{}

// watch switches to the live view of rel and starts it.
func (m Model) watch(rel *engine.Release, service string) (Model, tea.Cmd) {
	if m.unsub != nil {
		m.unsub()
	}
	ch, unsub := rel.Subscribe()
	m.events, m.unsub = ch, unsub
	m.live = newLive(m.env, rel, service)
	m.live.SetSize(m.width, max(1, m.height-2))
	m.hasLive = true
	m.home.live = service
	m.home.selectName(service)
	m.screen = screenLive
	m.info("")
	return m, tea.Batch(runRelease(m.ctx, rel), waitEvent(rel.ID(), ch), liveTick(rel.ID()))
}

func (m Model) toScreen(msg tea.Msg) (Model, tea.Cmd) {
	var cmd tea.Cmd
	switch m.screen {
	case screenHome:
		m.home, cmd = m.home.Update(msg)
	case screenPicker:
		m.picker, cmd = m.picker.Update(msg)
	case screenStrategy:
		m.strat, cmd = m.strat.Update(msg)
	case screenPlan:
		m.plan, cmd = m.plan.Update(msg)
	case screenLive:
		m.live, cmd = m.live.Update(msg)
	case screenHistory:
		m.history, cmd = m.history.Update(msg)
	}
	return m, cmd
}

// key routes a key press: prompt, focused input, global keys, screen.
func (m Model) key(msg tea.KeyPressMsg) (Model, tea.Cmd) {
	if m.dialog != nil {
		switch m.dialog.update(msg, m.env.now()) {
		case confirmYes:
			d := *m.dialog
			m.dialog = nil
			m.live.freeze(false)
			return m.confirmed(d)
		case confirmNo:
			m.dialog = nil
			m.live.freeze(false)
			m.info("cancelled — nothing changed")
		}
		return m, nil
	}
	if m.showHelp {
		m.showHelp = false
		return m, nil
	}
	if m.screen == screenPicker && m.picker.typing {
		if msg.String() == "ctrl+c" {
			return m.quit()
		}
		return m.toScreen(msg)
	}
	km := m.env.keys
	switch {
	case key.Matches(msg, km.Quit):
		return m.quit()
	case key.Matches(msg, km.Help):
		m.showHelp = true
		return m, nil
	case key.Matches(msg, km.Back):
		return m.back()
	case m.screen != screenHome && m.screen != screenLive && key.Matches(msg, km.Rollback):
		return m.rollbackCurrent(), nil
	}
	switch m.screen {
	case screenHome:
		return m.homeKey(msg)
	case screenPicker:
		switch {
		case key.Matches(msg, km.Filter):
			return m, m.picker.startFilter()
		case key.Matches(msg, km.Choose):
			img, _ := m.picker.selected()
			m.strat = newStrategy(m.env, m.picker.service, img)
			m.strat.SetSize(m.width, max(1, m.height-2))
			m.screen = screenStrategy
			return m, loadSpec(m.ctx, m.b, m.picker.service)
		}
	case screenStrategy:
		if key.Matches(msg, km.ToPlan) {
			m.plan = newPlan(m.env, m.strat.service, m.strat.image, m.strat.spec)
			m.plan.SetSize(m.width, max(1, m.height-2))
			m.screen = screenPlan
			return m, tea.Batch(m.setBusy("planning"), makePlan(m.ctx, m.b, m.plan.service, m.plan.image.Ref, m.plan.spec))
		}
	case screenPlan:
		if key.Matches(msg, km.Start) {
			if !m.mayStart(m.plan.service) {
				return m, nil
			}
			return m, tea.Batch(m.setBusy("starting the release"), startRelease(m.ctx, m.b, m.plan.service, m.plan.image.Ref, m.plan.spec))
		}
	case screenLive:
		return m.liveKey(msg)
	case screenHistory:
		if key.Matches(msg, km.AllServices) {
			scope := m.history.home
			if m.history.service != "" {
				scope = ""
			}
			home := m.history.home
			m.history = newHistory(m.env, scope)
			m.history.home = home
			m.history.SetSize(m.width, max(1, m.height-2))
			return m, tea.Batch(m.setBusy("reading the journal"), loadHistory(m.ctx, m.b, scope))
		}
		if key.Matches(msg, km.Events) {
			rec, _ := m.history.selected()
			m.history.showing, m.history.events, m.history.evErr, m.history.offset = rec.ID, nil, "", 0
			return m, tea.Batch(m.setBusy("reading events"), loadEvents(m.ctx, m.b, rec.ID))
		}
	}
	return m.toScreen(msg)
}

func (m Model) homeKey(msg tea.KeyPressMsg) (Model, tea.Cmd) {
	km := m.env.keys
	sv, ok := m.home.selected()
	switch {
	case !ok:
	case key.Matches(msg, km.Deploy):
		m.picker.close()
		m.loads++
		ctx, stop := context.WithCancel(m.ctx)
		m.picker = newPicker(m.env, sv.Name, m.loads, stop)
		m.picker.bySemver = sv.SemverTags
		m.picker.SetSize(m.width, max(1, m.height-2))
		m.screen = screenPicker
		return m, tea.Batch(loadImagePages(ctx, m.b, sv.Name, m.loads), m.picker.spin.Tick)
	case key.Matches(msg, km.Resume):
		if !m.mayStart(sv.Name) {
			return m, nil
		}
		return m, tea.Batch(m.setBusy("resuming "+sv.Name), resumeRelease(m.ctx, m.b, sv.Name))
	case key.Matches(msg, km.Watch):
		m.screen = screenLive
		return m, nil
	case key.Matches(msg, km.Rollback):
		if m.hasLive && m.live.running() && m.live.service == sv.Name {
			return m.openLiveRollback(), nil
		}
		m.dialog = m.homeRollbackDialog(sv)
		return m, nil
	case key.Matches(msg, km.History):
		// History opens on the selected service; a switches to all.
		m.history = newHistory(m.env, sv.Name)
		m.history.SetSize(m.width, max(1, m.height-2))
		m.screen = screenHistory
		return m, tea.Batch(m.setBusy("reading the journal"), loadHistory(m.ctx, m.b, sv.Name))
	}
	return m.toScreen(msg)
}

func (m Model) liveKey(msg tea.KeyPressMsg) (Model, tea.Cmd) {
	km := m.env.keys
	rel := m.live.rel
	switch {
	case key.Matches(msg, km.Approve):
		return m, sendCommand(rel, engine.CmdApprove)
	case key.Matches(msg, km.Pause):
		if m.live.snap.State == engine.ReleasePaused {
			return m, sendCommand(rel, engine.CmdResume)
		}
		return m, sendCommand(rel, engine.CmdPause)
	case key.Matches(msg, km.Rollback):
		return m.rollbackCurrent(), nil
	case key.Matches(msg, km.Promote):
		sn := m.live.snap
		m.dialog = &confirmDialog{kind: confirmPromote, service: m.live.service, opened: m.env.now(),
			title:  fmt.Sprintf("Promote %s %s to 100%%?", m.live.service, sn.To.Version),
			effect: m.live.service + ": " + promoteEffect(m.live.shares(), sn.To.Version) + "; the remaining steps and gates are skipped.",
			yes:    "promote"}
		m.live.freeze(true)
		return m, nil
	}
	return m.toScreen(msg)
}

// mayStart says whether this console can start a release, resume or
// rollback now, and marks one as being prepared. The console drives one
// release at a time: a second would take the first out of view, where
// nothing could approve, pause or roll it back.
func (m *Model) mayStart(service string) bool {
	return m.mayStartKind(service, false)
}

// mayStartKind is mayStart; an emergency rollback of another service than
// the release in view is let through (it runs in the background).
func (m *Model) mayStartKind(service string, rollback bool) bool {
	switch {
	case m.starting:
		m.info("already starting; one moment")
		return false
	case m.background[service] != nil:
		m.info("a rollback of " + service + " is already running")
		return false
	case rollback && m.hasLive && m.live.running() && m.live.service != service:
	case m.hasLive && m.live.running():
		m.info(fmt.Sprintf("a release of %s runs in this console; it must end first (v shows it). From a shell, `cutover rollback %s` works at any time",
			m.live.service, service))
		return false
	}
	m.starting = true
	return true
}

// currentService is the service the screen is about, for the keys that
// work wherever a service is selected (emergency rollback).
func (m Model) currentService() (ServiceState, bool) {
	name := ""
	switch m.screen {
	case screenHome:
		return m.home.selected()
	case screenPicker:
		name = m.picker.service
	case screenStrategy:
		name = m.strat.service
	case screenPlan:
		name = m.plan.service
	case screenLive:
		name = m.live.service
	case screenHistory:
		name = m.history.service
		if name == "" {
			name = m.history.home
		}
	}
	for _, sv := range m.home.services {
		if sv.Name == name {
			return sv, true
		}
	}
	return ServiceState{}, false
}

// rollbackCurrent opens the rollback prompt for the screen's service: the
// live prompt if this console runs its release, else the emergency one.
func (m Model) rollbackCurrent() Model {
	sv, ok := m.currentService()
	if !ok {
		return m
	}
	if m.hasLive && m.live.running() && m.live.service == sv.Name {
		return m.openLiveRollback()
	}
	m.dialog = m.homeRollbackDialog(sv)
	return m
}

func (m Model) openLiveRollback() Model {
	sn := m.live.snap
	stable := m.live.stable()
	effect := m.live.service + ": " + rollbackEffect(m.live.shares(), stable)
	if t := m.live.target(); t != "" {
		effect += ", then " + t + "'s instances are retired."
	}
	m.dialog = &confirmDialog{kind: confirmLiveRollback, service: m.live.service, opened: m.env.now(),
		title: fmt.Sprintf("Roll back %s to %s?", m.live.service, stable), effect: effect, yes: "roll back"}
	_ = sn
	m.live.freeze(true)
	m.screen = screenLive
	return m
}

func (m Model) homeRollbackDialog(sv ServiceState) *confirmDialog {
	// The prompt names the version the rollback will really return to, as
	// the backend computes it when it runs.
	stable := sv.RollbackTo
	if stable == "" && len(sv.Versions) > 0 {
		stable = sv.Versions[0].Version
	}
	target := ""
	if r := sv.Release; r != nil && r.Kind == engine.KindDeploy && r.To.Version != stable {
		target = r.To.Version
	}
	effect := sv.Name + ": " + rollbackEffect(shares(sv.Table, stable, target), stable)
	if target != "" {
		effect += ", then " + target + "'s instances are retired"
	}
	if sv.Owner != "" {
		effect += "; takes over from the release run by " + sv.Owner
	}
	return &confirmDialog{kind: confirmRollback, service: sv.Name, opened: m.env.now(),
		title: fmt.Sprintf("Roll back %s to %s?", sv.Name, stable), effect: effect + ".", yes: "roll back"}
}

// confirmed carries out a prompt the operator answered y to, on the
// target captured when it opened.
func (m Model) confirmed(d confirmDialog) (Model, tea.Cmd) {
	switch d.kind {
	case confirmRollback:
		if !m.mayStartKind(d.service, true) {
			return m, nil
		}
		return m, tea.Batch(m.setBusy("rolling back "+d.service), startRollback(m.ctx, m.b, d.service))
	case confirmLiveRollback:
		m.screen = screenLive
		return m, sendCommand(m.live.rel, engine.CmdRollback)
	case confirmPromote:
		return m, sendCommand(m.live.rel, engine.CmdPromote)
	case confirmQuit:
		m.quitting = true
		m.info("aborting the release, then leaving…")
		return m, tea.Batch(sendCommand(m.live.rel, engine.CmdAbort),
			tea.Tick(10*time.Second, func(time.Time) tea.Msg { return quitNowMsg{} }))
	}
	return m, nil
}

// quit leaves, asking first when a release runs in this console.
func (m Model) quit() (Model, tea.Cmd) {
	for svc := range m.background {
		m.info("the rollback of " + svc + " is still running; leave when it is done (a few seconds)")
		return m, nil
	}
	if m.hasLive && m.live.running() {
		sn := m.live.snap
		m.dialog = &confirmDialog{kind: confirmQuit, service: m.live.service, opened: m.env.now(),
			title: "Leave the console? The release of " + m.live.service + " will be aborted.",
			effect: fmt.Sprintf("Leaving aborts the release of %s (%s → %s) run by this console: it stops where it is and traffic stays as it is (%s). "+
				"`cutover deploy %s %s` resumes it; `cutover rollback %s` undoes it.",
				m.live.service, versions(sn.From), sn.To.Version, splitText(m.live.shares()), m.live.service, sn.To.Version, m.live.service),
			yes: "leave and abort"}
		if sn.Kind == engine.KindRollback {
			m.dialog.effect = fmt.Sprintf("Leaving aborts the rollback of %s to %s: it stops where it is and traffic stays as it is (%s). `cutover rollback %s` finishes it.",
				m.live.service, sn.To.Version, splitText(m.live.shares()), m.live.service)
		}
		m.live.freeze(true)
		return m, nil
	}
	return m, tea.Quit
}

// back goes one screen up; the live view's release keeps running.
func (m Model) back() (Model, tea.Cmd) {
	was := m.screen
	switch m.screen {
	case screenPicker:
		m.picker.close()
		m.screen = screenHome
	case screenLive:
		m.screen = screenHome
	case screenStrategy:
		m.screen = screenPicker
	case screenPlan:
		m.screen = screenStrategy
	case screenHistory:
		if m.history.showing != "" {
			m.history.showing = ""
		} else {
			m.screen = screenHome
		}
	}
	m.busy = ""
	if m.screen == screenHome && was != screenHome {
		return m, loadServices(m.ctx, m.b) // what changed while away
	}
	return m, nil
}

// syncKeys enables exactly the bindings that work now.
func (m *Model) syncKeys() {
	k := DefaultKeyMap()
	k.disableAll()
	if m.dialog != nil {
		// Only the answers work while a prompt is open.
		k.Yes.SetEnabled(true)
		k.No.SetEnabled(true)
		m.env.keys = k
		return
	}
	k.Quit.SetEnabled(true)
	k.Help.SetEnabled(true)
	k.Back.SetEnabled(m.screen != screenHome)
	liveRunning := m.hasLive && m.live.running()
	switch m.screen {
	case screenHome:
		sv, ok := m.home.selected()
		k.Up.SetEnabled(len(m.home.services) > 1)
		k.Down.SetEnabled(len(m.home.services) > 1)
		mine := liveRunning && m.live.service == sv.Name
		k.Deploy.SetEnabled(ok && !mine && sv.Owner == "")
		k.Resume.SetEnabled(ok && !mine && sv.Interrupted && sv.Release != nil && sv.Release.Kind == engine.KindDeploy)
		k.Watch.SetEnabled(m.hasLive)
		k.Rollback.SetEnabled(ok && (mine || len(sv.Versions) > 0 || sv.Release != nil))
		k.History.SetEnabled(true)
	case screenPicker:
		k.Up.SetEnabled(true)
		k.Down.SetEnabled(true)
		k.Rollback.SetEnabled(m.canRollback())
		k.Filter.SetEnabled(m.picker.loaded)
		_, ok := m.picker.selected()
		k.Choose.SetEnabled(ok)
	case screenStrategy:
		canary := m.strat.spec.Strategy.Type == engine.Canary
		onStep := m.strat.canaryStep() >= 0
		for _, b := range []*key.Binding{&k.Up, &k.Down, &k.PrevStrategy, &k.NextStrategy, &k.Rolling, &k.BlueGreen, &k.Canary, &k.Inc, &k.Dec} {
			b.SetEnabled(m.strat.loaded)
		}
		k.AddStep.SetEnabled(m.strat.loaded && canary)
		k.DelStep.SetEnabled(m.strat.loaded && onStep)
		k.GateKind.SetEnabled(m.strat.loaded && onStep)
		k.ToPlan.SetEnabled(m.strat.loaded)
		k.Rollback.SetEnabled(m.canRollback())
	case screenPlan:
		k.Up.SetEnabled(true)
		k.Down.SetEnabled(true)
		k.Rollback.SetEnabled(m.canRollback())
		k.Start.SetEnabled(m.plan.loaded && m.plan.err == "" && len(m.plan.plan.Steps) > 0 && !liveRunning)
	case screenLive:
		sn := m.live.snap
		k.Up.SetEnabled(true)
		k.Down.SetEnabled(true)
		deploy := sn.Kind != engine.KindRollback
		notBack := sn.State != engine.ReleaseRollingBack
		k.Approve.SetEnabled(liveRunning && sn.Gate != nil && sn.Gate.Gate.Kind == engine.GateApproval)
		k.Pause.SetEnabled(liveRunning && (sn.State == engine.ReleaseRunning || sn.State == engine.ReleaseWaiting || sn.State == engine.ReleasePaused))
		if sn.State == engine.ReleasePaused {
			k.Pause.SetHelp("p", "resume")
		}
		// While this console's release runs, r sends it a rollback; once it
		// has ended (or for a rollback release), r is the emergency one.
		k.Rollback.SetEnabled(notBack && (!liveRunning || deploy))
		k.Promote.SetEnabled(liveRunning && deploy && notBack)
	case screenHistory:
		k.Up.SetEnabled(true)
		k.Down.SetEnabled(true)
		k.Rollback.SetEnabled(m.canRollback())
		_, ok := m.history.selected()
		k.Events.SetEnabled(ok && m.history.showing == "" && m.history.loaded)
		k.AllServices.SetEnabled(m.history.showing == "" && m.history.home != "")
		if m.history.service == "" {
			k.AllServices.SetHelp("a", "only "+m.history.home)
		}
	}
	m.env.keys = k
}

// canRollback says whether the screen's service has something to roll back to.
func (m Model) canRollback() bool {
	sv, ok := m.currentService()
	return ok && (len(sv.Versions) > 0 || sv.Release != nil)
}

// Keys returns the key map as enabled for the current screen and state.
func (m Model) Keys() KeyMap { return m.env.keys }

// View draws the current screen, the message line and the key line; a
// prompt is drawn over the bottom of the screen.
func (m Model) View() tea.View {
	st := m.env.styles
	keyLines := m.keyLines()
	h := max(1, m.height-1-len(keyLines))
	var body string
	switch {
	case m.showHelp:
		body = st.Title.Render("keys") + st.Subtle.Render(" · any key closes") + "\n\n" + m.help.FullHelpView(m.env.keys.FullHelp()) +
			"\n\n" + st.Subtle.Render("Destructive keys (r, P, q during a release) ask y/n; the default is No and enter does not confirm.")
	default:
		body = m.screenView()
	}
	lines := strings.Split(body, "\n")
	if m.dialog != nil {
		box := strings.Split(m.dialog.view(st, m.width), "\n")
		keep := max(0, min(len(lines), h-len(box)))
		lines = append(lines[:keep:keep], box...)
	}
	if len(lines) > h {
		lines = lines[:h]
	}
	for len(lines) < h {
		lines = append(lines, "")
	}
	for i, l := range lines {
		lines[i] = cut(l, m.width)
	}
	msg := ""
	switch {
	case m.busy != "":
		frames := []string{"|", "/", "-", "\\"}
		msg = st.Running.Render(frames[m.spin%len(frames)] + " " + m.busy + "…")
	case m.msgErr:
		msg = st.Error.Render("× " + m.message)
	case m.message != "":
		msg = st.Info.Render(m.message)
	}
	lines = append(lines, cut(msg, m.width))
	lines = append(lines, keyLines...)
	v := tea.NewView(strings.Join(lines, "\n"))
	v.AltScreen = true
	v.WindowTitle = "cutover"
	return v
}

// keyLines is the bottom line of keys that work here, wrapped onto a
// second line rather than cut when the terminal is narrow.
func (m Model) keyLines() []string {
	st := m.env.styles
	var lines []string
	cur := ""
	for _, b := range m.env.keys.ShortHelp() {
		item := st.Help.ShortKey.Render(b.Help().Key) + " " + st.Help.ShortDesc.Render(b.Help().Desc)
		switch {
		case cur == "":
			cur = item
		case lipglossWidth(cur)+3+lipglossWidth(item) <= m.width:
			cur += st.Help.ShortSeparator.Render(" • ") + item
		default:
			lines = append(lines, cur)
			cur = item
		}
	}
	lines = append(lines, cur)
	if len(lines) > 2 {
		lines = lines[:2]
		lines[1] = cut(lines[1]+" …", m.width)
	}
	return lines
}

func (m Model) screenView() string {
	switch m.screen {
	case screenPicker:
		return m.picker.View()
	case screenStrategy:
		return m.strat.View()
	case screenPlan:
		return m.plan.View()
	case screenLive:
		return m.live.View()
	case screenHistory:
		return m.history.View()
	}
	return m.home.View()
}
