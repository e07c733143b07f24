package tui

import (
	"fmt"
	"math"
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

// series is the last minute of one version's figures.
type series struct {
	rps, errs, p99 ring
	last           engine.Totals
	hasLast        bool
}

// liveScreen watches one release run in this console.
type liveScreen struct {
	env     *env
	rel     *engine.Release
	id      string
	service string
	snap    engine.Snapshot
	done    bool
	outcome engine.Outcome
	runErr  string

	log       []string
	logOffset int // lines scrolled up from the newest

	// pulling is the image being pulled before the first step ("" when
	// none), pullLine its latest progress line, and pullLog the index of
	// the one log line all progress lines fold into (-1 when none).
	pulling  string
	pullLine string
	pullLog  int

	series map[string]*series
	ticks  int

	// frozen keeps instance rows in place while a prompt is open, so the
	// row the operator is reading does not move under them.
	frozen bool
	order  []string

	w, h int
}

func newLive(e *env, rel *engine.Release, service string) liveScreen {
	return liveScreen{env: e, rel: rel, id: rel.ID(), service: service, series: map[string]*series{}, snap: rel.Snapshot(), pullLog: -1}
}

// SetSize sets the area the screen draws in.
func (s *liveScreen) SetSize(w, h int) { s.w, s.h = w, h }

// running says the release can still take commands.
func (s liveScreen) running() bool { return s.rel != nil && !s.done }

// Update handles the release's ticks, events and the scroll keys.
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
			s.addEvent(ev)
			changed = changed || changesView(ev.Kind)
		}
		// The header and the traffic bar move with the event, not up to a
		// tick later; one snapshot covers the whole batch.
		if changed {
			s.refresh()
		}
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
		switch {
		case key.Matches(msg, s.env.keys.Up):
			s.logOffset = min(s.logOffset+1, max(0, len(s.log)-1))
		case key.Matches(msg, s.env.keys.Down):
			s.logOffset = max(0, s.logOffset-1)
		}
	}
	return s, nil
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
	msg := ev.Message
	if ev.Kind == engine.EventPlanned {
		msg = fmt.Sprintf("planned %d steps", len(ev.Plan))
	}
	msg = strings.ReplaceAll(msg, "\n", " ")
	line := ev.At.Format("15:04:05") + " " + string(ev.Kind) + ": " + msg
	if ev.Error != "" {
		line += " — " + ev.Error
	}
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

// observe pushes one point from a version's router figures: its 10s
// window where the router reports one, or else the change in its
// cumulative totals over the every since the last point.
func (se *series) observe(vs engine.VersionStats, every time.Duration) {
	if w, ok := vs.Windows["10s"]; ok {
		se.rps.push(w.RPS)
		se.errs.push(w.ErrorRate)
		se.p99.push(w.P99Ms)
	} else if se.hasLast {
		d := vs.Totals.Requests - se.last.Requests
		bad := (vs.Totals.Class5xx + vs.Totals.ProxyErrors) - (se.last.Class5xx + se.last.ProxyErrors)
		se.rps.push(float64(max(0, d)) / max(every.Seconds(), 0.001))
		if d > 0 {
			se.errs.push(float64(bad) / float64(d))
		} else {
			se.errs.push(0)
		}
		se.p99.push(p99Delta(se.last.Latency, vs.Totals.Latency))
	}
	se.last, se.hasLast = vs.Totals, true
}

// p99Delta is the 99th percentile of the responses between two cumulative
// histograms, at the upper bound of its bucket.
func p99Delta(a, b engine.Histogram) float64 {
	if len(b.Counts) == 0 {
		return 0
	}
	counts := make([]int64, len(b.Counts))
	for i := range counts {
		counts[i] = b.Counts[i]
		if i < len(a.Counts) {
			counts[i] -= a.Counts[i]
		}
	}
	total := counts[len(counts)-1]
	if total <= 0 {
		return 0
	}
	want := int64(math.Ceil(0.99 * float64(total)))
	for i, c := range counts {
		if c >= want {
			if i < len(b.BoundsMs) {
				return b.BoundsMs[i]
			}
			break
		}
	}
	if n := len(b.BoundsMs); n > 0 {
		return b.BoundsMs[n-1]
	}
	return 0
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
		return st.Failing.Render("paused by a failure") + " — " + st.Error.Render(sn.LastError) + " — p resume (retry) · r roll back"
	case sn.State == engine.ReleasePaused:
		return st.Paused.Render("paused — nothing advances; press p to resume")
	case s.pulling != "":
		line := st.Running.Render("pulling "+s.pulling) + st.Subtle.Render("…")
		if s.pullLine != "" {
			line = st.Running.Render("pulling "+s.pulling+":") + " " + s.pullLine
		}
		return line
	case sn.Gate != nil && sn.Gate.Gate.Kind == engine.GateApproval:
		return st.Degraded.Render("waiting for approval — press a") + st.Subtle.Render(" (P promotes to 100%, r rolls back)")
	case sn.Gate != nil:
		return st.Degraded.Render(string(sn.Gate.Gate.Kind)+": ") + sn.Gate.WaitingFor
	case sn.State == engine.ReleaseRollingBack:
		return st.Danger.Render("rolling back: traffic to " + s.stable())
	case sn.LastEvent != "":
		return st.Subtle.Render(cut(strings.ReplaceAll(sn.LastEvent, "\n", " "), max(10, s.w)))
	}
	return st.Subtle.Render("starting…")
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

	figs := s.figures(w)
	insts := s.instanceRows(w)

	fixed := len(top) + len(traffic) + len(figs) + 2 // +2 headings (steps, events)
	rem := max(0, s.h-fixed)
	nSteps := min(len(sn.Steps), max(3, rem/3))
	if len(sn.Steps) == 0 {
		nSteps = 0
	}
	nInst := min(len(insts), max(2, rem-nSteps-4)) // instances before log lines
	nLog := max(1, rem-nSteps-nInst)

	var out []string
	out = append(out, top...)
	out = append(out, st.Heading.Render(fmt.Sprintf("Steps %d/%d", max(0, sn.Step+1), len(sn.Steps))))
	out = append(out, s.stepRows(w, nSteps)...)
	out = append(out, traffic...)
	out = append(out, figs...)
	out = append(out, insts[:nInst]...)
	out = append(out, st.Heading.Render("Events")+st.Subtle.Render(s.scrollHint()))
	out = append(out, s.logRows(w, nLog-1)...)
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
				line += " — " + st.Degraded.Render("waiting for approval — press a")
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

// instanceRows is a heading and one row per instance, grouped by version.
func (s liveScreen) instanceRows(w int) []string {
	rank := map[string]string{s.stable(): "stable", s.target(): "canary"}
	return instanceTable(s.env.styles, s.env.now(), s.instances(), s.snap.Table, s.snap.Stats, func(v string) string { return rank[v] }, w)
}

// instanceTable is a heading and one row per instance: name, version,
// platform state, health, uptime, restarts, in-flight requests and share
// of the traffic. role names a version's role ("" for old).
func instanceTable(st Styles, now time.Time, ins []engine.InstanceView, table engine.RouteTable, stats engine.Stats, role func(string) string, w int) []string {
	weights := map[string]int{}
	for _, b := range table.Backends {
		weights[b.ID] = b.Weight
	}
	infl := map[string]int64{}
	for _, b := range stats.Backends {
		infl[b.ID] = b.InFlight
	}
	nameW := max(12, min(32, w-68))
	head := fit("INSTANCE", nameW) + " " + fit("VERSION", 10) + " " + fit("STATE", 11) + " " + fit("HEALTH", 12) + " " +
		fit("UP", 5) + " " + fit("RESTARTS", 8) + " " + fit("IN-FLIGHT", 9) + " WEIGHT"
	out := []string{st.Heading.Render(cut(head, w))}
	if len(ins) == 0 {
		return append(out, st.Subtle.Render("○ no instances"))
	}
	for _, iv := range ins {
		in := iv.Instance
		r := role(in.Version)
		if r == "" {
			r = "old"
		}
		g, rs := roleStyle(st, r)
		restarts := fmt.Sprintf("%d", in.Restarts)
		if in.Restarts > 0 {
			restarts = st.Degraded.Render("⚠ " + restarts)
		}
		line := fitTail(in.Name, nameW) + " " + rs(fit(g+" "+in.Version, 10)) + " " + fit(instanceStateText(st, in.State), 11) + " " +
			fit(healthText(st, iv.Health.Status, iv.Healthy || weights[in.ID] > 0), 12) + " " + fit(uptime(now, in.Started), 5) + " " +
			fit(restarts, 8) + " " + fit(fmt.Sprintf("%d", infl[in.ID]), 9) + " " + pct(weightShare(table, weights[in.ID]))
		out = append(out, cut(line, w))
	}
	return out
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

// weightShare is a backend weight as a fraction of the table's total.
func weightShare(t engine.RouteTable, w int) float64 {
	total := 0
	for _, b := range t.Backends {
		total += b.Weight
	}
	if total == 0 {
		return 0
	}
	return float64(w) / float64(total)
}
