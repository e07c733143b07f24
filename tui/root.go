package tui

import (
	"context"
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/spinner"
	tea "charm.land/bubbletea/v2"

	"github.com/cutover/cutover/engine"
)

// Model is the console's root model. It owns the size, the screens, the
// open prompt and help; it routes every message and carries out what
// crosses screens (intents). A key goes to an open prompt first, then to
// a text input that has focus, then to the global keys, then to the
// screen in view; results and ticks go to the screen that owns them.
type Model struct {
	env *env

	dark, color   bool
	width, height int

	focus   screenID
	home    homeScreen
	picker  pickerScreen
	strat   strategyScreen
	plan    planScreen
	live    liveScreen
	history historyScreen
	loads   int // listings and plans asked for, to tell a stale answer from a current one

	dialog   *confirmDialog
	showHelp bool
	help     help.Model

	message  string
	msgErr   bool
	busy     string // a release, resume or rollback being prepared
	spin     int
	spinning bool // the busy spinner's tick runs
	starting bool // a release, resume or rollback is being prepared: one at a time
	// background holds emergency rollbacks of other services started while
	// this console's release stays in view, by service.
	background map[string]*engine.Release
	quitting   bool
}

// New returns the root model over b. Run uses it; tests drive it directly.
func New(b Backend, opts Options) Model {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := Model{dark: !opts.Light, color: !opts.NoColor, width: 80, height: 24, help: help.New()}
	if opts.Width > 0 && opts.Height > 0 {
		m.width, m.height = opts.Width, opts.Height
	}
	m.env = &env{ctx: context.Background(), b: b, styles: NewStyles(m.dark, m.color), keys: DefaultKeyMap(), now: opts.Now,
		role: opts.Role, shared: opts.Shared, who: opts.Who}
	m.help.Styles = m.env.styles.Help
	m.home = newHome(m.env, opts.Service)
	m.history = newHistory(m.env, "", "")
	m.syncKeys()
	m.layout()
	return m
}

// Init asks for the background colour and reads the services.
func (m Model) Init() tea.Cmd {
	return tea.Batch(tea.RequestBackgroundColor, m.home.reload(), homeTick())
}

// screens lists the screens by screenID.
func (m *Model) screens() [screenCount]pane {
	return [screenCount]pane{screenHome: &m.home, screenPicker: &m.picker, screenStrategy: &m.strat,
		screenPlan: &m.plan, screenLive: &m.live, screenHistory: &m.history}
}

// focused is the screen in view.
func (m *Model) focused() pane { return m.screens()[m.focus] }

// layout gives the screen in view the rows the message line and the key
// lines (one or two, with the keys that work now) leave it.
func (m *Model) layout() {
	m.help.SetWidth(m.width)
	m.focused().SetSize(m.width, m.bodyHeight())
}

func (m Model) bodyHeight() int { return max(1, m.height-1-len(m.keyLines())) }

// show brings screen id into view; Update sizes it.
func (m *Model) show(id screenID) { m.focus = id }

func (m *Model) fail(doing string, err error) {
	m.message, m.msgErr = advise(doing, err), true
}

func (m *Model) info(s string) { m.message, m.msgErr = s, false }

// Update routes msg; see Model.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	m2, cmd := m.update(msg)
	m2.syncKeys()
	m2.layout()
	if !m2.spinning && m2.busyLabel() != "" {
		m2.spinning = true
		cmd = tea.Batch(cmd, busyTick())
	}
	return m2, cmd
}

func (m Model) update(msg tea.Msg) (Model, tea.Cmd) {
	var cmd tea.Cmd
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case tea.BackgroundColorMsg:
		m.dark = msg.IsDark()
		m.env.styles = NewStyles(m.dark, m.color)
		m.help.Styles = m.env.styles.Help
	case tea.KeyPressMsg:
		return m.key(msg)
	case busyTickMsg:
		if m.busyLabel() == "" {
			m.spinning = false
			return m, nil
		}
		m.spin++
		return m, busyTick()
	case homeTickMsg:
		if m.focus != screenHome {
			return m, homeTick() // home refreshes only while in view
		}
		m.home, cmd = m.home.Update(msg)
	case servicesMsg:
		m.home, cmd = m.home.Update(msg)
	case imagePageMsg, spinner.TickMsg:
		m.picker, cmd = m.picker.Update(msg)
	case specMsg:
		m.strat, cmd = m.strat.Update(msg)
	case planMsg:
		m.plan, cmd = m.plan.Update(msg)
	case historyMsg, eventsMsg:
		m.history, cmd = m.history.Update(msg)
	case releaseEventsMsg, releaseEventsClosedMsg, liveTickMsg, pastEventsMsg:
		return m.toLive(msg)
	case releaseDoneMsg:
		return m.ended(msg)
	case startedMsg:
		return m.started(msg)
	case backgroundDoneMsg:
		delete(m.background, msg.service)
		if msg.err != nil && msg.outcome != engine.RolledBack && msg.outcome != engine.Succeeded {
			m.fail("roll back "+msg.service, msg.err)
		} else {
			m.info(fmt.Sprintf("%s: rollback %s", msg.service, msg.outcome))
		}
	case commandSentMsg:
		if msg.err != nil {
			m.fail(string(msg.cmd), msg.err)
		} else {
			m.info(string(msg.cmd) + " sent")
		}
	case quitNowMsg:
		return m, tea.Quit
	default:
		cmd = m.focused().update(msg)
	}
	return m, cmd
}

// quitNowMsg ends the program even if an aborted release never answered.
type quitNowMsg struct{}

// toLive hands the live view its release's messages and shares what it
// now shows with the other screens.
func (m Model) toLive(msg tea.Msg) (Model, tea.Cmd) {
	if m.live.rel == nil {
		return m, nil
	}
	var cmd tea.Cmd
	m.live, cmd = m.live.Update(msg)
	m.shareLive()
	return m, cmd
}

// shareLive tells the other screens what the live view shows now.
func (m Model) shareLive() {
	m.env.here = releaseHere{service: m.live.service, snap: m.live.snap, running: m.live.running()}
}

// ended says how the release in view ended, and leaves if the operator
// asked to once it stopped.
func (m Model) ended(msg releaseDoneMsg) (Model, tea.Cmd) {
	if msg.id != m.live.id {
		return m, nil
	}
	m, _ = m.toLive(msg)
	word := m.live.endState()
	if msg.err != nil {
		m.fail(fmt.Sprintf("release %s", word), msg.err)
	} else {
		m.info(fmt.Sprintf("%s: release %s", m.live.service, word))
	}
	if m.quitting {
		return m, tea.Quit
	}
	return m, m.home.reload()
}

// key routes a key press: prompt, focused input, global keys, screen.
func (m Model) key(msg tea.KeyPressMsg) (Model, tea.Cmd) {
	if m.dialog != nil {
		return m.answer(msg)
	}
	if m.showHelp {
		m.showHelp = false
		return m, nil
	}
	p := m.focused()
	if e, ok := p.(editor); ok && e.editing() {
		if msg.String() == "ctrl+c" {
			return m.quit()
		}
		cmd := p.update(msg)
		return m, cmd
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
	case key.Matches(msg, km.Rollback):
		return m.rollbackCurrent(), nil
	}
	if i, ok := p.(intender); ok {
		if in := i.intent(msg); in != nil {
			return m.carry(in)
		}
	}
	cmd := p.update(msg)
	return m, cmd
}

// back goes one screen up, unless the screen steps back within itself;
// the live view's release keeps running.
func (m Model) back() (Model, tea.Cmd) {
	m.busy = ""
	if b, ok := m.focused().(backer); ok && b.back() {
		return m, nil
	}
	was := m.focus
	m.show(parent[m.focus])
	if m.focus == screenHome && was != screenHome {
		return m, m.home.reload() // what changed while away
	}
	return m, nil
}

// syncKeys enables exactly the bindings that work now: the answers while
// a prompt is open, else the global keys and the screen's.
func (m *Model) syncKeys() {
	k := DefaultKeyMap()
	k.disableAll()
	if m.dialog != nil {
		k.Yes.SetEnabled(true)
		k.No.SetEnabled(true)
		m.env.keys = k
		return
	}
	k.Quit.SetEnabled(true)
	k.Help.SetEnabled(true)
	k.Back.SetEnabled(m.focus != screenHome)
	sv, ok := m.home.service(m.focused().subject())
	k.Rollback.SetEnabled(ok && (len(sv.Versions) > 0 || sv.Release != nil))
	m.focused().enable(&k)
	m.restrict(&k)
	m.env.keys = k
}

// restrict turns off the keys the person's role may not use, so neither
// the key line nor help offers them (the backend refuses them anyway).
func (m *Model) restrict(k *KeyMap) {
	e := m.env
	if !e.mayRelease() {
		for _, b := range []*key.Binding{&k.Deploy, &k.Resume, &k.Start} {
			b.SetEnabled(false)
		}
	}
	for cmd, b := range map[engine.Command]*key.Binding{engine.CmdApprove: &k.Approve, engine.CmdPause: &k.Pause,
		engine.CmdPromote: &k.Promote, engine.CmdRollback: &k.Rollback} {
		if !e.may(cmd) {
			b.SetEnabled(false)
		}
	}
}

// Keys returns the key map as enabled for the current screen and state.
func (m Model) Keys() KeyMap { return m.env.keys }

// busyLabel is what the message line's spinner says: the release being
// prepared, else what the screen in view waits for.
func (m *Model) busyLabel() string {
	if m.busy != "" {
		return m.busy
	}
	if w, ok := m.focused().(waiter); ok {
		return w.busy()
	}
	return ""
}

// View draws the screen in view, the message line and the key line; a
// prompt is drawn over the bottom of the screen.
func (m Model) View() tea.View {
	st := m.env.styles
	keyLines := m.keyLines()
	h := m.bodyHeight()
	body := m.focused().View()
	if m.showHelp {
		body = st.Title.Render("keys") + st.Subtle.Render(" · any key closes") + "\n\n" + m.help.FullHelpView(m.env.keys.FullHelp()) +
			"\n\n" + st.Subtle.Render("Destructive keys (r, P, q during a release) ask y/n; the default is No and enter does not confirm.")
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
	lines = append(lines, cut(m.messageLine(), m.width))
	lines = append(lines, keyLines...)
	v := tea.NewView(strings.Join(lines, "\n"))
	v.AltScreen = true
	v.WindowTitle = "cutover"
	return v
}

// messageLine is the spinner while something is prepared or read, else
// the outcome of the last action.
func (m Model) messageLine() string {
	st := m.env.styles
	switch busy := m.busyLabel(); {
	case busy != "":
		frames := []string{"|", "/", "-", "\\"}
		return st.Running.Render(frames[m.spin%len(frames)] + " " + busy + "…")
	case m.msgErr:
		return st.Error.Render("× " + m.message)
	case m.message != "":
		return st.Info.Render(m.message)
	}
	return ""
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
