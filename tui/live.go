package tui

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/cutover/cutover/engine"
)

// maxLogLines bounds the event log kept in memory.
const maxLogLines = 1000

// samplesEvery is how many live ticks make one sparkline point (one a second).
const samplesEvery = int(1e9 / liveTickEvery)

// liveScreen watches one release run in this console.
type liveScreen struct {
	env     *env
	rel     *engine.Release
	id      string
	service string
	// events is the release's subscription, unsub ends it.
	events  <-chan engine.Event
	unsub   func()
	snap    engine.Snapshot
	done    bool
	outcome engine.Outcome
	runErr  string

	log       []string
	logOffset int // lines scrolled up from the newest
	// firstSeq is the first event the subscription delivered; pastTo the
	// last one read from the journal (addPast): each shows once.
	firstSeq, pastTo int64

	// pulling is the image being pulled before the first step ("" when
	// none), pullLine its latest progress line, and pullLog the index of
	// the one log line all progress lines fold into (-1 when none).
	pulling  string
	pullLine string
	pullLog  int

	series map[string]*series
	ticks  int

	// verdict is the last analysis verdict of step verdictStep, shown
	// while the release stays at that step (paused on it).
	verdict     *engine.AnalysisResult
	verdictStep int

	// frozen keeps instance rows in place while a prompt is open, so the
	// row the operator is reading does not move under them.
	frozen bool
	order  []string

	w, h int
}

// newLive is the live view of rel, subscribed to its events.
func newLive(e *env, rel *engine.Release, service string) liveScreen {
	ch, unsub := rel.Subscribe()
	return liveScreen{env: e, rel: rel, id: rel.ID(), service: service, events: ch, unsub: unsub,
		series: map[string]*series{}, snap: rel.Snapshot(), pullLog: -1}
}

// start runs the release and starts watching its events and figures; a
// release that had events before this view subscribed (another session
// started it) shows them too, from the journal.
func (s liveScreen) start() tea.Cmd {
	cmds := []tea.Cmd{runRelease(s.env.ctx, s.env.b, s.rel), waitEvent(s.id, s.events), liveTick(s.id)}
	if s.snap.Seq > 0 {
		cmds = append(cmds, loadPastEvents(s.env.ctx, s.env.b, s.id))
	}
	return tea.Batch(cmds...)
}

// close ends the subscription: another release takes the view.
func (s liveScreen) close() {
	if s.unsub != nil {
		s.unsub()
	}
}

// SetSize sets the area the screen draws in.
func (s *liveScreen) SetSize(w, h int) { s.w, s.h = w, h }

// running says the release can still take commands.
func (s liveScreen) running() bool { return s.rel != nil && !s.done }

// Update handles the release's ticks, events and end, the keys that
// drive it, and scrolling.
func (s liveScreen) Update(msg tea.Msg) (liveScreen, tea.Cmd) {
	switch msg := msg.(type) {
	case liveTickMsg:
		if msg.id != s.id {
			return s, nil
		}
		s.refresh()
		s.ticks++
		if s.ticks%samplesEvery == 0 {
			s.sample()
		}
		if s.done {
			return s, nil
		}
		return s, liveTick(s.id)
	case releaseEventsMsg:
		if msg.id != s.id {
			return s, nil
		}
		changed := false
		for _, ev := range msg.evs {
			if s.firstSeq == 0 {
				s.firstSeq = ev.Seq
			}
			if ev.Seq != 0 && ev.Seq <= s.pastTo {
				continue // already shown from the journal
			}
			s.addEvent(ev)
			changed = changed || changesView(ev.Kind)
		}
		// The header and the traffic bar move with the event, not up to a
		// tick later; one snapshot covers the whole batch.
		if changed {
			s.refresh()
		}
		return s, waitEvent(s.id, s.events)
	case pastEventsMsg:
		if msg.id == s.id && msg.err == nil {
			s.addPast(msg.evs)
		}
		return s, nil
	case releaseDoneMsg:
		if msg.id != s.id {
			return s, nil
		}
		s.done, s.outcome = true, msg.outcome
		if msg.err != nil {
			s.runErr = msg.err.Error()
		}
		s.refresh()
	case tea.KeyPressMsg:
		km := s.env.keys
		switch {
		case key.Matches(msg, km.Approve) && s.snap.Gate != nil:
			// The approval is for the gate on screen when the key was
			// pressed: if the release has moved on, the engine refuses it.
			return s, sendApproval(s.env, s.rel, s.snap.Gate.Gate.Key)
		case key.Matches(msg, km.Pause) && s.snap.State == engine.ReleasePaused:
			return s, sendCommand(s.env, s.rel, engine.CmdResume)
		case key.Matches(msg, km.Pause):
			return s, sendCommand(s.env, s.rel, engine.CmdPause)
		case key.Matches(msg, km.Up):
			s.logOffset = min(s.logOffset+1, max(0, len(s.log)-1))
		case key.Matches(msg, km.Down):
			s.logOffset = max(0, s.logOffset-1)
		}
	}
	return s, nil
}

// intent is what a key asks beyond the view: P asks to promote.
func (s liveScreen) intent(k tea.KeyPressMsg) intent {
	if key.Matches(k, s.env.keys.Promote) {
		return ask{s.promotePrompt()}
	}
	return nil
}

// enable turns on the keys that drive the release in its state now.
func (s *liveScreen) enable(k *KeyMap) {
	sn := s.snap
	running := s.running()
	deploy := sn.Kind != engine.KindRollback
	notBack := sn.State != engine.ReleaseRollingBack
	k.Up.SetEnabled(true)
	k.Down.SetEnabled(true)
	k.Approve.SetEnabled(running && sn.Gate != nil && sn.Gate.Gate.Kind == engine.GateApproval)
	k.Pause.SetEnabled(running && (sn.State == engine.ReleaseRunning || sn.State == engine.ReleaseWaiting || sn.State == engine.ReleasePaused))
	if sn.State == engine.ReleasePaused {
		k.Pause.SetHelp("p", "resume")
	}
	// While the release runs, r sends it a rollback; once it has ended (or
	// for a rollback release), r is the emergency one.
	k.Rollback.SetEnabled(notBack && (!running || deploy))
	k.Promote.SetEnabled(running && deploy && notBack)
}

// subject is the service being released.
func (s *liveScreen) subject() string { return s.service }

func (s *liveScreen) update(msg tea.Msg) (cmd tea.Cmd) {
	*s, cmd = s.Update(msg)
	return cmd
}

// rollbackPrompt asks before sending the release a rollback.
func (s liveScreen) rollbackPrompt() confirmDialog {
	stable := s.stable()
	effect := s.service + ": " + rollbackEffect(s.shares(), stable)
	if t := s.target(); t != "" {
		effect += ", then " + t + "'s instances are retired."
	}
	if f := s.snap.RollbackFirst; f != "" {
		effect += " First: " + f
	}
	return confirmDialog{kind: confirmLiveRollback, service: s.service, opened: s.env.now(),
		title: fmt.Sprintf("Roll back %s to %s?", s.service, stable), effect: effect, yes: "roll back"}
}

// promotePrompt asks before promoting the new version to all traffic.
func (s liveScreen) promotePrompt() confirmDialog {
	v := s.snap.To.Version
	return confirmDialog{kind: confirmPromote, service: s.service, opened: s.env.now(),
		title:  fmt.Sprintf("Promote %s %s to 100%%?", s.service, v),
		effect: s.service + ": " + promoteEffect(s.shares(), v) + "; the remaining steps and gates are skipped.",
		yes:    "promote"}
}

// quitPrompt asks before leaving the console, which aborts the release.
func (s liveScreen) quitPrompt() confirmDialog {
	sn := s.snap
	d := confirmDialog{kind: confirmQuit, service: s.service, opened: s.env.now(),
		title: "Leave the console? The release of " + s.service + " will be aborted.",
		effect: fmt.Sprintf("Leaving aborts the release of %s (%s → %s) run by this console: it stops where it is and traffic stays as it is (%s). "+
			"`cutover deploy %s %s` resumes it; `cutover rollback %s` undoes it.",
			s.service, versions(sn.From), sn.To.Version, splitText(s.shares()), s.service, sn.To.Version, s.service),
		yes: "leave and abort"}
	if sn.Kind == engine.KindRollback {
		d.effect = fmt.Sprintf("Leaving aborts the rollback of %s to %s: it stops where it is and traffic stays as it is (%s). `cutover rollback %s` finishes it.",
			s.service, sn.To.Version, splitText(s.shares()), s.service)
	}
	return d
}

// refresh takes a snapshot: one per tick however many events arrived.
func (s *liveScreen) refresh() {
	if s.rel != nil {
		s.snap = s.rel.Snapshot()
	}
}

// freeze stops or restarts instance reordering.
func (s *liveScreen) freeze(on bool) {
	s.frozen = on
	if on {
		s.order = nil
		for _, in := range s.instances() {
			s.order = append(s.order, in.Instance.ID)
		}
	}
}

// changesView says an event of kind k changes what the live view shows
// (state, steps, table, instances); only pull progress does not, and it
// is the one kind that comes fast.
func changesView(k engine.EventKind) bool { return k != engine.EventPullProgress }

func (s *liveScreen) addEvent(ev engine.Event) {
	switch ev.Kind {
	case engine.EventPulling:
		s.pulling, s.pullLine = s.snap.To.Image, ""
		if s.pulling == "" {
			s.pulling = "the image"
		}
	case engine.EventPullProgress:
		// Progress folds into one log line that changes in place.
		s.pullLine = strings.ReplaceAll(ev.Message, "\n", " ")
		line := ev.At.Format("15:04:05") + " " + string(ev.Kind) + ": " + s.pullLine
		if s.pullLog >= 0 && s.pullLog < len(s.log) {
			s.log[s.pullLog] = line
			return
		}
		s.pullLog = len(s.log)
	case engine.EventPulled, engine.EventFailure, engine.EventFinished, engine.EventRollingBack, engine.EventTakenOver, engine.EventStepStarted:
		s.pulling, s.pullLog = "", -1
	}
	switch {
	case ev.Kind == engine.EventStepStarted:
		s.verdict = nil
	case ev.Analysis != nil && ev.Kind != engine.EventAnalysisProgress:
		s.verdict, s.verdictStep = ev.Analysis, ev.Step
	}
	line := eventLine(ev)
	if ev.Missed > 0 {
		s.log = append(s.log, fmt.Sprintf("(%d events not shown: the console fell behind)", ev.Missed))
	}
	s.log = append(s.log, line)
	if drop := len(s.log) - maxLogLines; drop > 0 {
		s.log = s.log[drop:]
		if s.pullLog -= drop; s.pullLog < 0 {
			s.pullLog = -1
		}
	}
	if s.logOffset > 0 {
		s.logOffset++ // keep the lines being read in place
	}
}

// eventLine is how the log shows ev.
func eventLine(ev engine.Event) string {
	msg := ev.Message
	if ev.Kind == engine.EventPlanned {
		msg = fmt.Sprintf("planned %d steps", len(ev.Plan))
	}
	msg = strings.ReplaceAll(msg, "\n", " ")
	line := ev.At.Format("15:04:05") + " " + string(ev.Kind) + ": " + msg
	if ev.Error != "" {
		line += " — " + ev.Error
	}
	return line
}

// addPast puts the events the release journaled before this view
// subscribed (a release another session started) above those it has
// received since; whichever arrives first, each event shows once.
func (s *liveScreen) addPast(evs []engine.Event) {
	var lines []string
	for _, ev := range evs {
		if s.firstSeq != 0 && ev.Seq >= s.firstSeq {
			break
		}
		s.pastTo = max(s.pastTo, ev.Seq)
		if ev.Kind == engine.EventPullProgress || ev.Kind == engine.EventAnalysisProgress {
			continue // figures of the moment, not history
		}
		lines = append(lines, eventLine(ev))
	}
	s.log = append(lines, s.log...)
	if s.pullLog >= 0 {
		s.pullLog += len(lines)
	}
	if drop := len(s.log) - maxLogLines; drop > 0 {
		s.log = s.log[drop:]
		if s.pullLog -= drop; s.pullLog < 0 {
			s.pullLog = -1
		}
	}
}

// sample pushes one point per version into the sparkline rings.
func (s *liveScreen) sample() {
	for _, vs := range s.snap.Stats.Versions {
		se := s.series[vs.Version]
		if se == nil {
			se = &series{}
			s.series[vs.Version] = se
		}
		se.observe(vs, time.Second)
	}
}

// stable and target name the release's two main versions.
func (s liveScreen) stable() string {
	if len(s.snap.From) > 0 {
		return s.snap.From[0].Version
	}
	return ""
}

func (s liveScreen) target() string {
	if s.snap.Kind == engine.KindRollback {
		return ""
	}
	return s.snap.To.Version
}

func (s liveScreen) shares() []share {
	return shares(s.snap.Table, s.stable(), s.target())
}

// instances orders the instances by version (stable, new, others), then
// name; while frozen, the order of the moment the prompt opened.
func (s liveScreen) instances() []engine.InstanceView {
	ins := append([]engine.InstanceView(nil), s.snap.Instances...)
	rank := map[string]int{s.stable(): 0, s.target(): 1}
	r := func(v string) int {
		if n, ok := rank[v]; ok {
			return n
		}
		return 2
	}
	sort.SliceStable(ins, func(i, j int) bool {
		a, b := ins[i].Instance, ins[j].Instance
		if r(a.Version) != r(b.Version) {
			return r(a.Version) < r(b.Version)
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return a.Name < b.Name
	})
	if s.frozen && len(s.order) > 0 {
		pos := map[string]int{}
		for i, id := range s.order {
			pos[id] = i
		}
		sort.SliceStable(ins, func(i, j int) bool {
			pi, oki := pos[ins[i].Instance.ID]
			pj, okj := pos[ins[j].Instance.ID]
			if !oki {
				pi = len(pos)
			}
			if !okj {
				pj = len(pos)
			}
			return pi < pj
		})
	}
	return ins
}

// statusLine says what the release is doing now and which key moves it on.
func (s liveScreen) statusLine() string {
	st := s.env.styles
	sn := s.snap
	switch {
	case s.done:
		line := "finished: " + stateText(st, s.endState(), "")
		if s.runErr != "" {
			line += " — " + st.Error.Render(s.runErr)
		}
		if s.outcome == engine.Aborted || s.outcome == engine.Failed {
			line += st.Subtle.Render(" — `cutover deploy` resumes it, `cutover rollback " + s.service + "` undoes it")
		}
		return line + st.Subtle.Render(" — esc back to services")
	case sn.State == engine.ReleasePaused && sn.PausedBy == "failure":
		return st.Failing.Render("paused by a failure") + " — " + st.Error.Render(sn.LastError) +
			s.hints(" — ", " · ", hint{engine.CmdResume, "p resume (retry)"}, hint{engine.CmdRollback, "r roll back"})
	case sn.State == engine.ReleasePaused:
		return st.Paused.Render("paused — nothing advances" + s.hints("; ", "", hint{engine.CmdResume, "press p to resume"}))
	case s.pulling != "":
		line := st.Running.Render("pulling "+s.pulling) + st.Subtle.Render("…")
		if s.pullLine != "" {
			line = st.Running.Render("pulling "+s.pulling+":") + " " + s.pullLine
		}
		return line
	case sn.Gate != nil && sn.Gate.Gate.Kind == engine.GateApproval:
		line := st.Degraded.Render("waiting for approval" + s.hints(" — ", "", hint{engine.CmdApprove, "press a"}))
		if more := s.hints("", ", ", hint{engine.CmdPromote, "P promotes to 100%"}, hint{engine.CmdRollback, "r rolls back"}); more != "" {
			line += st.Subtle.Render(" (" + more + ")")
		}
		return line
	case sn.Gate != nil:
		line := st.Degraded.Render(string(sn.Gate.Gate.Kind)+": ") + sn.Gate.WaitingFor
		if a := sn.Gate.Analysis; a != nil {
			// Why the canary is failing, before the verdict says so.
			for _, l := range a.Lines() {
				if !l.OK {
					return line + " — " + st.Failing.Render("failing: "+l.Text)
				}
			}
		}
		return line
	case sn.State == engine.ReleaseRollingBack:
		return st.Danger.Render("rolling back: traffic to " + s.stable())
	case sn.LastEvent != "":
		return st.Subtle.Render(cut(strings.ReplaceAll(sn.LastEvent, "\n", " "), max(10, s.w)))
	}
	return st.Subtle.Render("starting…")
}

// hint is a key's hint, shown to those who may give its command.
type hint struct {
	cmd  engine.Command
	text string
}

// hints joins the hints the person at the console may use, after lead;
// "" when they may use none, so a viewer is never told to press a key
// that does nothing for them.
func (s liveScreen) hints(lead, sep string, hs ...hint) string {
	var out []string
	for _, h := range hs {
		if s.env.may(h.cmd) {
			out = append(out, h.text)
		}
	}
	if len(out) == 0 {
		return ""
	}
	return lead + strings.Join(out, sep)
}

// endState is the state of the finished run: its outcome's, or the
// snapshot's when Run ended before it started anything (no outcome).
func (s liveScreen) endState() engine.ReleaseState {
	switch {
	case s.outcome != "":
		return s.outcome.State()
	case s.snap.State != "":
		return s.snap.State
	}
	return engine.ReleaseFailed
}

// View draws the header, steps, traffic, figures, instances and log,
// giving the log whatever height is left.
func (s liveScreen) View() string {
	st := s.env.styles
	sn := s.snap
	w := max(40, s.w)
	state := sn.State
	if s.done {
		state = s.endState()
	}
	from := versions(sn.From)
	what := string(sn.Strategy)
	if sn.Kind == engine.KindRollback {
		what = "rollback"
	}
	header := st.Title.Render(s.service) + "  " + from + " → " + sn.To.Version + "  " + st.Subtle.Render(what) + "  " +
		stateText(st, state, sn.PausedBy) + "  " + st.Subtle.Render("elapsed "+clock(sn.Elapsed))
	top := []string{cut(header, w), cut(s.statusLine(), w)}

	ss := s.shares()
	legend := trafficLegend(st, ss)
	barW := max(10, w-9-lipglossWidth(legend)-2)
	traffic := []string{cut("Traffic  "+trafficBar(st, ss, barW)+"  "+legend, w)}

	figs := append(s.figures(w), s.analysisRows(w)...)
	ins := s.instances()
	insts := s.instanceRows(ins, w)

	fixed := len(top) + len(traffic) + len(figs) + 2 // +2 headings (steps, events)
	rem := max(0, s.h-fixed)
	nSteps := min(len(sn.Steps), max(3, rem/3))
	if len(sn.Steps) == 0 {
		nSteps = 0
	}
	nInst := min(len(insts), max(2, rem-nSteps-3)) // instances before log lines; at least 3 of those
	nLog := max(1, rem-nSteps-nInst)

	var out []string
	out = append(out, top...)
	out = append(out, st.Heading.Render(fmt.Sprintf("Steps %d/%d", max(0, sn.Step+1), len(sn.Steps))))
	out = append(out, s.stepRows(w, nSteps)...)
	out = append(out, traffic...)
	out = append(out, figs...)
	out = append(out, clipInstances(st, insts, ins, nInst)...)
	out = append(out, st.Heading.Render("Events")+st.Subtle.Render(s.scrollHint()))
	out = append(out, s.logRows(w, nLog)...)
	if len(out) > s.h && s.h > 0 {
		out = out[:s.h]
	}
	return strings.Join(out, "\n")
}

func (s liveScreen) scrollHint() string {
	if s.logOffset > 0 {
		return fmt.Sprintf(" (scrolled up %d — j/↓ for newer)", s.logOffset)
	}
	return " (k/↑ to scroll)"
}

// stepRows draws a window of n steps around the current one.
func (s liveScreen) stepRows(w, n int) []string {
	st := s.env.styles
	sn := s.snap
	if n <= 0 {
		return nil
	}
	cur := max(0, sn.Step)
	start := max(0, min(cur-n/2, len(sn.Steps)-n))
	var out []string
	for i := start; i < start+n && i < len(sn.Steps); i++ {
		sv := sn.Steps[i]
		glyph := st.Subtle.Render("○")
		switch sv.Status {
		case engine.StepDoneOK:
			glyph = st.Healthy.Render("✓")
		case engine.StepSkipped:
			glyph = st.Subtle.Render("✓")
		case engine.StepRunning:
			glyph = st.Running.Render("●")
		case engine.StepFailed:
			glyph = st.Failing.Render("×")
		}
		mark := "  "
		if i == sn.Step && !s.done {
			mark = st.Running.Render("→ ")
		}
		desc := sv.Description
		if desc == "" {
			desc = sv.Step.String()
		}
		line := mark + glyph + fmt.Sprintf(" %d. ", i+1) + desc
		if sv.Status == engine.StepSkipped {
			line += st.Subtle.Render(" (skipped)")
		}
		if i == sn.Step && sn.Gate != nil && sn.Gate.Step == i && !s.done {
			if sn.Gate.Gate.Kind == engine.GateApproval {
				line += " — " + st.Degraded.Render("waiting for approval"+s.hints(" — ", "", hint{engine.CmdApprove, "press a"}))
			} else {
				line += " — " + st.Degraded.Render(sn.Gate.WaitingFor)
			}
		}
		if i == sn.Step && !s.done {
			line = st.Selected.Render(cut(line, w))
		}
		out = append(out, cut(line, w))
	}
	return out
}

// figures is the per-version table of rps, error rate and p99 with sparklines.
func (s liveScreen) figures(w int) []string {
	st := s.env.styles
	ss := s.shares()
	spark := max(4, min(30, (w-12-3*9)/3))
	col := func(v string) string { return fit(v, 8) }
	head := fit("VERSION", 12) + " " + fit("RPS", 8+spark) + " " + fit("ERRORS", 8+spark) + " " + "P99"
	out := []string{st.Heading.Render(cut(head, w))}
	for _, sh := range ss {
		se := s.series[sh.version]
		if se == nil {
			se = &series{}
		}
		g, r := roleStyle(st, sh.role)
		errStyle := st.Healthy
		if se.errs.last() > 0.01 {
			errStyle = st.Failing
		} else if se.errs.last() > 0 {
			errStyle = st.Degraded
		}
		line := r(fit(g+" "+sh.version, 12)) + " " +
			col(fmt.Sprintf("%.1f", se.rps.last())) + r(sparkline(se.rps.values(), spark)) + " " +
			errStyle.Render(col(errPct(se.errs.last()))) + errStyle.Render(sparkline(se.errs.values(), spark)) + " " +
			col(ms(se.p99.last())) + r(sparkline(se.p99.values(), spark))
		out = append(out, cut(line, w))
	}
	return out
}

// maxAnalysisRows bounds the analysis panel, so it never pushes the
// instances and the log off a small terminal.
const maxAnalysisRows = 6

// analysisRows shows the analysis gate's figures against each limit: the
// ones so far while its window runs, refreshed on every engine tick, and
// then the verdict's, for as long as the release stays at its step.
func (s liveScreen) analysisRows(w int) []string {
	st := s.env.styles
	var a *engine.AnalysisResult
	switch g := s.snap.Gate; {
	case g != nil && g.Analysis != nil:
		a = g.Analysis
	case s.verdict != nil && s.verdictStep == s.snap.Step:
		a = s.verdict
	default:
		return nil
	}
	head := fmt.Sprintf("Analysis %s of %s · %s left", clock(a.Elapsed), clock(a.Window), clock(a.Left()))
	if a.Verdict != engine.VerdictPending {
		head = fmt.Sprintf("Analysis %s after %s", a.Verdict, clock(a.Elapsed))
	}
	out := []string{st.Heading.Render(cut(head, w))}
	lines := a.Lines()
	for i, l := range lines {
		if i == maxAnalysisRows-1 && len(lines) > maxAnalysisRows {
			out = append(out, st.Subtle.Render(fmt.Sprintf("  … %d more", len(lines)-i)))
			break
		}
		mark := st.Healthy.Render("✓")
		switch {
		case l.Waiting:
			mark = st.Subtle.Render("…")
		case !l.OK:
			mark = st.Failing.Render("×")
		}
		out = append(out, cut("  "+mark+" "+l.Text, w))
	}
	return out
}

// instanceRows is a heading and one row per instance of ins.
func (s liveScreen) instanceRows(ins []engine.InstanceView, w int) []string {
	rank := map[string]string{s.stable(): "stable", s.target(): "canary"}
	return instanceTable(s.env.styles, s.env.now(), ins, s.snap.Table, s.snap.Stats, func(v string) string { return rank[v] }, w)
}

// logRows is the window of n log lines ending logOffset lines from the newest.
func (s liveScreen) logRows(w, n int) []string {
	if n <= 0 {
		return nil
	}
	end := max(0, len(s.log)-s.logOffset)
	start := max(0, end-n)
	var out []string
	for _, l := range s.log[start:end] {
		out = append(out, cut(l, w))
	}
	return out
}

// Messages of the live view, each naming its release.
type (
	releaseDoneMsg struct {
		id      string
		outcome engine.Outcome
		err     error
	}
	// releaseEventsMsg is a batch of a release's events: those that had
	// arrived when the console was ready to take them (at least one).
	releaseEventsMsg struct {
		id  string
		evs []engine.Event
	}
	// releaseEventsClosedMsg says the subscription ended (Run returned).
	releaseEventsClosedMsg struct{ id string }
	// pastEventsMsg is the release's journaled events when the view
	// opened on a release already running.
	pastEventsMsg struct {
		id  string
		evs []engine.Event
		err error
	}
	liveTickMsg struct{ id string }
)

// liveTickEvery is how often the live view takes a snapshot: often enough
// to feel live, rare enough that a burst of events costs one frame.
const liveTickEvery = 500 * time.Millisecond

// runRelease runs rel in the backend, or follows it there when it runs
// already, to its end; the console learns of it by releaseDoneMsg. When
// the console ends first, so does the wait, and nothing else.
func runRelease(ctx context.Context, b Backend, rel *engine.Release) tea.Cmd {
	return safe(func() tea.Msg {
		o, err := b.Run(ctx, rel)
		return releaseDoneMsg{rel.ID(), o, err}
	}, func(err error) tea.Msg { return releaseDoneMsg{id: rel.ID(), err: err} })
}

// maxEventBatch bounds one batch of events, so a flood still renders.
const maxEventBatch = 64

// eventWindow is how long a batch waits for more events after its first:
// one frame (the console draws at frameRate), so waiting shows nothing
// later, while a release's burst of events — an approval is half a dozen,
// journaled one after another — costs one update and one view instead of
// one each. On a server that matters: every session watching redraws.
const eventWindow = time.Second / frameRate

// waitEvent waits for the next event of a subscription and takes along
// whatever else arrives within eventWindow, so a burst costs one snapshot
// and one frame; the live view re-arms it once per batch (bubbletea's
// realtime pattern).
func waitEvent(id string, ch <-chan engine.Event) tea.Cmd {
	return func() tea.Msg {
		ev, ok := <-ch
		if !ok {
			return releaseEventsClosedMsg{id}
		}
		evs := []engine.Event{ev}
		window := time.NewTimer(eventWindow)
		defer window.Stop()
		for len(evs) < maxEventBatch {
			select {
			case ev, ok := <-ch:
				if !ok {
					return releaseEventsMsg{id, evs} // the next wait sees the close
				}
				evs = append(evs, ev)
			case <-window.C:
				return releaseEventsMsg{id, evs}
			}
		}
		return releaseEventsMsg{id, evs}
	}
}

// loadPastEvents reads the release's events from the journal.
func loadPastEvents(ctx context.Context, b Backend, id string) tea.Cmd {
	return safe(func() tea.Msg {
		evs, err := b.Events(ctx, id)
		return pastEventsMsg{id, evs, err}
	}, func(err error) tea.Msg { return pastEventsMsg{id: id, err: err} })
}

func liveTick(id string) tea.Cmd {
	return tea.Tick(liveTickEvery, func(time.Time) tea.Msg { return liveTickMsg{id} })
}
