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

// homeScreen lists the config's services as cards: per version its
// share, instance health and live figures with sparklines, the split and
// the release line; below the list, when there is room, the selected
// service's instances and router.
type homeScreen struct {
	env      *env
	services []ServiceState
	cursor   int
	loaded   bool
	err      string
	// want is the service to select when the list first arrives.
	want string
	// refreshing says a periodic read of the services is in flight.
	refreshing bool
	// frozen keeps the rows as they are while a prompt is open: its
	// target and the rows the operator reads must stay put.
	frozen bool
	// figures holds each service's per-version sparkline rings, fed by
	// every refresh; seenAt is when each service was last observed.
	figures map[string]map[string]*series
	seenAt  map[string]time.Time
	w, h    int
}

// newHome is the home screen, selecting want once the services arrive.
func newHome(e *env, want string) homeScreen {
	return homeScreen{env: e, want: want, figures: map[string]map[string]*series{}, seenAt: map[string]time.Time{}}
}

// reload reads the services again now, as when the operator comes back
// to the screen or a release ends: what changed meanwhile shows at once.
func (s homeScreen) reload() tea.Cmd { return loadServices(s.env.ctx, s.env.b) }

// SetSize sets the area the screen draws in.
func (s *homeScreen) SetSize(w, h int) { s.w, s.h = w, h }

// selected is the service under the cursor.
func (s homeScreen) selected() (ServiceState, bool) {
	if s.cursor < 0 || s.cursor >= len(s.services) {
		return ServiceState{}, false
	}
	return s.services[s.cursor], true
}

// service is the named service as last read, for the keys that act on
// the service another screen is about.
func (s homeScreen) service(name string) (ServiceState, bool) {
	for _, sv := range s.services {
		if sv.Name == name {
			return sv, true
		}
	}
	return ServiceState{}, false
}

// setServices replaces the list, keeping the cursor on the same service
// (on want, the first time).
func (s *homeScreen) setServices(list []ServiceState) {
	cur, ok := s.selected()
	first := !s.loaded
	s.services, s.loaded, s.err = list, true, ""
	s.observe(list)
	s.cursor = 0
	if ok {
		s.selectName(cur.Name)
	}
	if first && s.want != "" {
		s.selectName(s.want)
	}
}

// observe pushes one point per version of each service into its rings.
// A reading the router already gave (same Stats.At) adds nothing.
func (s *homeScreen) observe(list []ServiceState) {
	keep := map[string]bool{}
	for _, sv := range list {
		keep[sv.Name] = true
		at := sv.Stats.At
		if at.IsZero() {
			at = sv.At
		}
		last, seen := s.seenAt[sv.Name]
		if seen && !at.IsZero() && !at.After(last) {
			continue
		}
		every := homeRefreshEvery
		if seen && !last.IsZero() && !at.IsZero() {
			every = at.Sub(last)
		}
		s.seenAt[sv.Name] = at
		rings := s.figures[sv.Name]
		if rings == nil {
			rings = map[string]*series{}
			s.figures[sv.Name] = rings
		}
		for _, vs := range sv.Stats.Versions {
			se := rings[vs.Version]
			if se == nil {
				se = &series{}
				rings[vs.Version] = se
			}
			se.observe(vs, every)
		}
	}
	for name := range s.figures {
		if !keep[name] {
			delete(s.figures, name)
			delete(s.seenAt, name)
		}
	}
}

// selectName puts the cursor on the named service.
func (s *homeScreen) selectName(name string) {
	for i, sv := range s.services {
		if sv.Name == name {
			s.cursor = i
		}
	}
}

// Update refreshes the services on the home tick, takes the answer and
// moves the cursor. The root sends the tick only while home is in view.
func (s homeScreen) Update(msg tea.Msg) (homeScreen, tea.Cmd) {
	switch msg := msg.(type) {
	case homeTickMsg:
		// One read at a time, and never under an open prompt.
		if s.frozen || s.refreshing {
			return s, homeTick()
		}
		s.refreshing = true
		return s, tea.Batch(s.reload(), homeTick())
	case servicesMsg:
		s.refreshing = false
		switch {
		case msg.err != nil:
			s.err = advise("read services", msg.err)
		case !s.frozen:
			s.setServices(msg.services)
		}
	case tea.KeyPressMsg:
		switch {
		case key.Matches(msg, s.env.keys.Up):
			s.cursor = max(0, s.cursor-1)
		case key.Matches(msg, s.env.keys.Down):
			s.cursor = min(len(s.services)-1, s.cursor+1)
		}
	}
	return s, nil
}

// intent is what a key asks of the console for the selected service.
func (s homeScreen) intent(k tea.KeyPressMsg) intent {
	km := s.env.keys
	sv, ok := s.selected()
	switch {
	case !ok:
	case key.Matches(k, km.Deploy):
		return openPicker{sv}
	case key.Matches(k, km.Resume):
		return resume{sv.Name}
	case key.Matches(k, km.Watch) && sv.Live && !(s.env.here.running && s.env.here.service == sv.Name):
		return attach{sv.Name}
	case key.Matches(k, km.Watch):
		return watchLive{}
	case key.Matches(k, km.History):
		return openHistory{sv.Name}
	}
	return nil
}

// enable turns on the keys that work on the selected service now.
func (s *homeScreen) enable(k *KeyMap) {
	sv, ok := s.selected()
	here := s.env.here
	mine := here.running && here.service == sv.Name
	k.Up.SetEnabled(len(s.services) > 1)
	k.Down.SetEnabled(len(s.services) > 1)
	k.Deploy.SetEnabled(ok && !mine && sv.Owner == "")
	k.Resume.SetEnabled(ok && !mine && sv.Interrupted && sv.Release != nil && sv.Release.Kind == engine.KindDeploy)
	k.Watch.SetEnabled(here.service != "" || ok && sv.Live)
	k.Rollback.SetEnabled(ok && (mine || len(sv.Versions) > 0 || sv.Release != nil))
	k.History.SetEnabled(true)
}

// subject is the selected service.
func (s *homeScreen) subject() string {
	sv, _ := s.selected()
	return sv.Name
}

func (s *homeScreen) update(msg tea.Msg) (cmd tea.Cmd) {
	*s, cmd = s.Update(msg)
	return cmd
}

// versionRole says what a version is to the service right now.
func versionRole(sv ServiceState, i int, v string) string {
	if r := sv.Release; r != nil && !r.State.Finished() && r.State != engine.ReleaseRolledBack && r.To.Version == v && r.Kind == engine.KindDeploy {
		return "canary"
	}
	if r := sv.Release; r != nil && r.State.Finished() && r.State == engine.ReleaseSucceeded && r.To.Version == v {
		return "stable"
	}
	if i == 0 {
		return "stable"
	}
	return "old"
}

// View draws one card per service and, when there is room below them,
// the selected service's detail.
func (s homeScreen) View() string {
	st := s.env.styles
	var b strings.Builder
	title := st.Title.Render("cutover") + st.Subtle.Render(" · services")
	if e := s.env; e.who != "" {
		title += st.Subtle.Render(" · " + e.who)
		if e.role != "" {
			title += st.Subtle.Render(" (" + string(e.role) + ")")
		}
	}
	b.WriteString(title + "\n")
	switch {
	case s.err != "" && len(s.services) == 0:
		b.WriteString(st.Error.Width(max(20, s.w)).Render("× "+s.err) + "\n")
		return b.String()
	case !s.loaded:
		b.WriteString(st.Subtle.Render("reading services…") + "\n")
		return b.String()
	case len(s.services) == 0:
		b.WriteString("No services in the config. Add one to cutover.yaml (see `cutover config check`).\n")
		return b.String()
	}
	if s.err != "" {
		b.WriteString(cut(st.Error.Render("× "+s.err+" (showing the last reading)"), max(20, s.w)) + "\n")
	}
	room := s.h - strings.Count(b.String(), "\n")
	var cards []string
	total := 0
	for i, sv := range s.services {
		card := s.card(sv, i == s.cursor)
		cards = append(cards, card)
		total += strings.Count(card, "\n") + 1
	}
	// The detail pane needs its rule, heading, a row and the router line.
	if sv, ok := s.selected(); ok && room-total-1 >= 4 {
		b.WriteString(strings.Join(cards, "\n") + "\n\n")
		b.WriteString(strings.Join(s.detail(sv, room-total-1), "\n"))
		return b.String()
	}
	start, used := 0, 0
	for i := range cards {
		if i > s.cursor {
			break
		}
		used += strings.Count(cards[i], "\n") + 1
		for used > room && start < i {
			used -= strings.Count(cards[start], "\n") + 1
			start++
		}
	}
	b.WriteString(strings.Join(cards[start:], "\n"))
	return b.String()
}

// roles names the stable and the new version of a service now.
func serviceRoles(sv ServiceState) (stable, target string) {
	if r := sv.Release; r != nil && r.Kind == engine.KindDeploy && !r.State.Finished() {
		target = r.To.Version
	}
	if len(sv.Versions) > 0 {
		stable = sv.Versions[0].Version
	}
	if r := sv.Release; r != nil && r.Stable().Version != "" && target != "" {
		stable = r.Stable().Version
	}
	return stable, target
}

func (s homeScreen) card(sv ServiceState, sel bool) string {
	st := s.env.styles
	w := max(20, s.w)
	var lines []string
	name := "  " + sv.Name
	if sel {
		name = st.Selected.Render("▸ " + sv.Name)
	}
	info := fmt.Sprintf("  %s · %d replicas", sv.Strategy, sv.Replicas)
	if sv.RouterAddr != "" {
		info += " · router " + sv.RouterAddr
	}
	lines = append(lines, cut(name+st.Subtle.Render(info), w))
	if sv.Error != "" {
		lines = append(lines, cut("    "+st.Failing.Render("× "+sv.Error), w))
	}
	if sv.RouterError != "" {
		lines = append(lines, cut("    "+st.Degraded.Render("⚠ router: "+sv.RouterError), w))
	}
	stable, target := serviceRoles(sv)
	var extra []string
	for _, v := range sv.Versions {
		extra = append(extra, v.Version)
	}
	ss := shares(sv.Table, stable, target, extra...)
	if len(sv.Versions) == 0 && sv.Error == "" {
		lines = append(lines, "    "+st.Subtle.Render("○ nothing running"))
	}
	// Columns line up across the card's versions.
	glyphW := 0
	for _, v := range sv.Versions {
		glyphW = max(glyphW, min(v.Instances, maxHealthGlyphs)+2*boolInt(v.Instances > maxHealthGlyphs))
	}
	fixed := 4 + 12 + 1 + 7 + 1 + 6 + 1 + glyphW + 1 + 12
	// Figures are three 9-cell texts ("130.0 rps", "0.38% err", "p99 250ms")
	// with a space and a sparkline each: beside the version when they fit
	// with sparklines of 4 or more, else on a line of their own below it.
	const figW = 3*9 + 2 + 3
	spark := min(16, (w-fixed-2-figW)/3)
	inline := spark >= 4
	if !inline {
		spark = max(0, min(16, (w-6-figW)/3))
	}
	rings := s.figures[sv.Name]
	for i, v := range sv.Versions {
		role := versionRole(sv, i, v.Version)
		if v.Version == target {
			role = "canary"
		} else if v.Version == stable {
			role = "stable"
		}
		g, r := roleStyle(st, role)
		line := "    " + r(fit(g+" "+v.Version, 12)) + " " + fit(role, 7) + " " + fit(pct(v.Share), 6) + " " +
			fit(s.healthGlyphs(sv, v), glyphW) + " " + healthCount(st, v)
		figs := ""
		if se := rings[v.Version]; se != nil && se.rps.n > 0 {
			figs = s.figureText(se, r, spark)
		}
		switch {
		case figs == "":
			lines = append(lines, cut(line, w))
		case inline:
			lines = append(lines, cut(fit(line, fixed)+"  "+figs, w))
		default:
			lines = append(lines, cut(line, w), cut("      "+figs, w))
		}
	}
	if len(sv.Table.Backends) > 0 {
		barW := max(10, min(40, w-12))
		lines = append(lines, cut("    traffic "+trafficBar(st, ss, barW), w))
	}
	lines = append(lines, cut("    "+s.releaseLine(sv), w))
	return strings.Join(lines, "\n")
}

// maxHealthGlyphs is how many instances a card draws one by one.
const maxHealthGlyphs = 8

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// healthGlyphs is one glyph per instance of v: ✓ healthy, × failing,
// ● starting or not known yet.
func (s homeScreen) healthGlyphs(sv ServiceState, v VersionState) string {
	st := s.env.styles
	var gs []string
	for _, iv := range sv.Instances {
		if iv.Instance.Version != v.Version {
			continue
		}
		switch {
		case iv.Healthy || iv.Health.Status == engine.HealthHealthy:
			gs = append(gs, st.Healthy.Render("✓"))
		case iv.Health.Status == engine.HealthUnhealthy || iv.Health.Status == engine.HealthCrashed ||
			iv.Instance.State == engine.StateExited || iv.Instance.State == engine.StateGone:
			gs = append(gs, st.Failing.Render("×"))
		default:
			gs = append(gs, st.Degraded.Render("●"))
		}
	}
	if len(gs) == 0 { // no instance detail: the counts say as much
		for i := range v.Instances {
			if i < v.Healthy {
				gs = append(gs, st.Healthy.Render("✓"))
			} else {
				gs = append(gs, st.Degraded.Render("●"))
			}
		}
	}
	out := strings.Join(gs[:min(len(gs), maxHealthGlyphs)], "")
	if len(gs) > maxHealthGlyphs {
		out += st.Subtle.Render(fmt.Sprintf("+%d", len(gs)-maxHealthGlyphs))
	}
	return out
}

// healthCount is "✓ 3/3 healthy", in the colour of how it stands.
func healthCount(st Styles, v VersionState) string {
	text := fmt.Sprintf("%d/%d healthy", v.Healthy, v.Instances)
	switch {
	case v.Instances > 0 && v.Healthy == v.Instances:
		return st.Healthy.Render(text)
	case v.Healthy == 0:
		return st.Failing.Render(text)
	}
	return st.Degraded.Render(text)
}

// figureText is a version's last 10s figures with a sparkline each.
func (s homeScreen) figureText(se *series, r func(...string) string, spark int) string {
	st := s.env.styles
	errStyle := st.Healthy
	if se.errs.last() > 0.01 {
		errStyle = st.Failing
	} else if se.errs.last() > 0 {
		errStyle = st.Degraded
	}
	sp := func(vals []float64, style func(...string) string) string {
		if spark <= 0 {
			return ""
		}
		return " " + style(sparkline(vals, spark))
	}
	return fmt.Sprintf("%9s", fmt.Sprintf("%.1f rps", se.rps.last())) + sp(se.rps.values(), r) + " " +
		errStyle.Render(fmt.Sprintf("%9s", errPct(se.errs.last())+" err")) + sp(se.errs.values(), errStyle.Render) + " " +
		fmt.Sprintf("%9s", "p99 "+ms(se.p99.last())) + sp(se.p99.values(), r)
}

// detail is the selected service's instances and router, in n lines.
func (s homeScreen) detail(sv ServiceState, n int) []string {
	st := s.env.styles
	w := max(20, s.w)
	title := " " + sv.Name + " · instances "
	out := []string{st.Subtle.Render("──") + st.Heading.Render(title) + st.Subtle.Render(strings.Repeat("─", max(0, w-2-lipglossWidth(title))))}
	stable, target := serviceRoles(sv)
	rank := map[string]string{stable: "stable", target: "canary"}
	ins := append([]engine.InstanceView(nil), sv.Instances...)
	order := map[string]int{stable: 0, target: 1}
	sort.SliceStable(ins, func(i, j int) bool {
		a, b := ins[i].Instance, ins[j].Instance
		oa, oka := order[a.Version]
		ob, okb := order[b.Version]
		if !oka {
			oa = 2
		}
		if !okb {
			ob = 2
		}
		if oa != ob {
			return oa < ob
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return a.Name < b.Name
	})
	table := instanceTable(st, s.env.now(), ins, sv.Table, sv.Stats, func(v string) string { return rank[v] }, w)
	var next []string
	if here := s.env.here; sv.Next != "" && sv.Owner == "" && !(here.running && here.service == sv.Name) {
		next = []string{cut(st.Subtle.Render("next: ")+sv.Next, w)}
	}
	out = append(out, clipInstances(st, table, ins, n-2-len(next))...) // n less the rule, the router line and next
	return append(append(out, cut(s.routerLine(sv), w)), next...)
}

// routerLine says where the service's traffic enters and how it goes.
func (s homeScreen) routerLine(sv ServiceState) string {
	st := s.env.styles
	addr := sv.RouterAddr
	if addr == "" {
		addr = "(no address configured)"
	}
	line := st.Subtle.Render("router ") + addr
	if sv.RouterError != "" {
		return line + " " + st.Degraded.Render("⚠ "+sv.RouterError)
	}
	line += st.Subtle.Render(fmt.Sprintf(" · epoch %d · %d backends", sv.Table.Epoch, len(sv.Table.Backends)))
	var rps float64
	var infl int64
	for _, vs := range sv.Stats.Versions {
		if w, ok := vs.Windows["10s"]; ok {
			rps += w.RPS
		} else if se := s.figures[sv.Name][vs.Version]; se != nil {
			rps += se.rps.last()
		}
		infl += vs.InFlight
	}
	line += st.Subtle.Render(fmt.Sprintf(" · %.1f rps · %d in flight", rps, infl))
	if sv.Stats.NoBackend > 0 {
		line += " " + st.Failing.Render(fmt.Sprintf("× %d answered 503 with no backend", sv.Stats.NoBackend))
	}
	return line
}

func (s homeScreen) releaseLine(sv ServiceState) string {
	st := s.env.styles
	if here := s.env.here; here.running && here.service == sv.Name {
		sn := here.snap
		step := ""
		if len(sn.Steps) > 0 && sn.Step >= 0 {
			step = fmt.Sprintf(" step %d/%d", sn.Step+1, len(sn.Steps))
		}
		return st.Running.Render("● releasing here: ") + fmt.Sprintf("%s → %s%s ", versions(sn.From), sn.To.Version, step) +
			stateText(st, sn.State, sn.PausedBy) + st.Subtle.Render(" — v view")
	}
	r := sv.Release
	if r == nil {
		if !s.env.mayRelease() {
			return st.Subtle.Render("○ no releases yet")
		}
		return st.Subtle.Render("○ no releases yet — enter to release")
	}
	what := fmt.Sprintf("%s %s", r.Strategy, r.Summary())
	if r.Kind == engine.KindRollback {
		what = "rollback to " + r.To.Version
	}
	switch {
	case sv.Live:
		return st.Running.Render("● in progress") + " " + what + fmt.Sprintf(" step %d/%d ", r.Step+1, r.Steps) +
			stateText(st, r.State, "") + st.Subtle.Render(" by "+r.Actor.User+" — v view")
	case sv.Owner != "":
		return st.Running.Render("● in progress") + " " + what + fmt.Sprintf(" step %d/%d", r.Step+1, r.Steps) + st.Subtle.Render(" by "+sv.Owner)
	case sv.Interrupted:
		at := fmt.Sprintf(" at step %d/%d", r.Step+1, r.Steps)
		if r.State != engine.ReleaseAborted {
			at += fmt.Sprintf(" (%s)", r.State)
		}
		var keys []string
		if r.Kind == engine.KindRollback && s.env.may(engine.CmdRollback) {
			keys = append(keys, "r finishes the rollback")
		} else if r.Kind != engine.KindRollback {
			if s.env.mayRelease() {
				keys = append(keys, "u resume")
			}
			if s.env.may(engine.CmdRollback) {
				keys = append(keys, "r roll back")
			}
		}
		hint := ""
		if len(keys) > 0 {
			hint = " — " + strings.Join(keys, " · ")
		}
		return st.Degraded.Render("⚠ interrupted") + " " + what + at + st.Subtle.Render(hint)
	}
	return st.Subtle.Render("last: ") + what + " " + stateText(st, r.State, "") + st.Subtle.Render(" "+engine.Ago(s.env.now(), r.Started)+" by "+r.Actor.User)
}

// versions is "1.0.0" or "1.0.0+0.9.0", or "nothing" for a first deploy.
func versions(vs []engine.VersionRef) string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Version)
	}
	if len(out) == 0 {
		return "nothing"
	}
	return strings.Join(out, "+")
}

// Messages of the home screen. Each result of a command that calls the
// Backend carries what it was asked about, so a late answer for a screen
// the operator has left is recognised and dropped.
type (
	servicesMsg struct {
		services []ServiceState
		err      error
	}
	homeTickMsg struct{}
)

// homeRefreshEvery is how often the home screen re-reads the services.
const homeRefreshEvery = 2 * time.Second

func loadServices(ctx context.Context, b Backend) tea.Cmd {
	return safe(func() tea.Msg {
		s, err := b.Services(ctx)
		return servicesMsg{s, err}
	}, func(err error) tea.Msg { return servicesMsg{err: err} })
}

func homeTick() tea.Cmd {
	return tea.Tick(homeRefreshEvery, func(time.Time) tea.Msg { return homeTickMsg{} })
}
