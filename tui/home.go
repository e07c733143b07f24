package tui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/cutover/cutover/engine"
)

// homeScreen lists the config's services with what runs, its health, the
// split and any release in progress, paused or interrupted.
type homeScreen struct {
	env      *env
	services []ServiceState
	cursor   int
	loaded   bool
	err      string
	// live names the service whose release runs in this console, if any.
	live     string
	liveSnap engine.Snapshot
	w, h     int
}

func newHome(e *env) homeScreen { return homeScreen{env: e} }

// SetSize sets the area the screen draws in.
func (s *homeScreen) SetSize(w, h int) { s.w, s.h = w, h }

// selected is the service under the cursor.
func (s homeScreen) selected() (ServiceState, bool) {
	if s.cursor < 0 || s.cursor >= len(s.services) {
		return ServiceState{}, false
	}
	return s.services[s.cursor], true
}

// setServices replaces the list, keeping the cursor on the same service.
func (s *homeScreen) setServices(list []ServiceState) {
	cur, ok := s.selected()
	s.services, s.loaded, s.err = list, true, ""
	s.cursor = 0
	if ok {
		for i, sv := range list {
			if sv.Name == cur.Name {
				s.cursor = i
			}
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

// Update moves the cursor; the root handles the actions.
func (s homeScreen) Update(msg tea.Msg) (homeScreen, tea.Cmd) {
	if k, ok := msg.(tea.KeyPressMsg); ok {
		switch {
		case key.Matches(k, s.env.keys.Up):
			s.cursor = max(0, s.cursor-1)
		case key.Matches(k, s.env.keys.Down):
			s.cursor = min(len(s.services)-1, s.cursor+1)
		}
	}
	return s, nil
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

// View draws one card per service.
func (s homeScreen) View() string {
	st := s.env.styles
	var b strings.Builder
	b.WriteString(st.Title.Render("cutover") + st.Subtle.Render(" · services") + "\n")
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
	var cards []string
	start := 0
	used := 0
	for i, sv := range s.services {
		card := s.card(sv, i == s.cursor)
		cards = append(cards, card)
		if i <= s.cursor {
			used += strings.Count(card, "\n") + 1
			for used > s.h-1 && start < i {
				used -= strings.Count(cards[start], "\n") + 1
				start++
			}
		}
	}
	b.WriteString(strings.Join(cards[start:], "\n"))
	return b.String()
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
	target := ""
	if r := sv.Release; r != nil && r.Kind == engine.KindDeploy && !r.State.Finished() {
		target = r.To.Version
	}
	stable := ""
	if len(sv.Versions) > 0 {
		stable = sv.Versions[0].Version
	}
	if r := sv.Release; r != nil && r.Stable().Version != "" && target != "" {
		stable = r.Stable().Version
	}
	var extra []string
	for _, v := range sv.Versions {
		extra = append(extra, v.Version)
	}
	ss := shares(sv.Table, stable, target, extra...)
	if len(sv.Versions) == 0 && sv.Error == "" {
		lines = append(lines, "    "+st.Subtle.Render("○ nothing running"))
	}
	for i, v := range sv.Versions {
		role := versionRole(sv, i, v.Version)
		if v.Version == target {
			role = "canary"
		} else if v.Version == stable {
			role = "stable"
		}
		g, r := roleStyle(st, role)
		var health string
		switch {
		case v.Instances > 0 && v.Healthy == v.Instances:
			health = st.Healthy.Render(fmt.Sprintf("✓ %d/%d healthy", v.Healthy, v.Instances))
		case v.Healthy == 0:
			health = st.Failing.Render(fmt.Sprintf("× %d/%d healthy", v.Healthy, v.Instances))
		default:
			health = st.Degraded.Render(fmt.Sprintf("⚠ %d/%d healthy", v.Healthy, v.Instances))
		}
		lines = append(lines, cut("    "+r(fit(g+" "+v.Version, 14))+" "+fit(role, 7)+" "+fit(health, 16)+" "+pct(v.Share), w))
	}
	if len(sv.Table.Backends) > 0 {
		barW := max(10, min(40, w-12))
		lines = append(lines, cut("    traffic "+trafficBar(st, ss, barW), w))
	}
	lines = append(lines, cut("    "+s.releaseLine(sv), w))
	return strings.Join(lines, "\n")
}

func (s homeScreen) releaseLine(sv ServiceState) string {
	st := s.env.styles
	if s.live == sv.Name {
		sn := s.liveSnap
		return st.Running.Render("● releasing here: ") + fmt.Sprintf("%s → %s ", versions(sn.From), sn.To.Version) +
			stateText(st, sn.State, sn.PausedBy) + st.Subtle.Render(" — v view")
	}
	r := sv.Release
	if r == nil {
		return st.Subtle.Render("○ no releases yet — enter to release")
	}
	what := fmt.Sprintf("%s %s → %s", r.Strategy, versions(r.From), r.To.Version)
	if r.Kind == engine.KindRollback {
		what = "rollback to " + r.To.Version
	}
	switch {
	case sv.Owner != "":
		return st.Running.Render("● in progress") + " " + what + fmt.Sprintf(" step %d/%d", r.Step+1, r.Steps) + st.Subtle.Render(" by "+sv.Owner)
	case sv.Interrupted:
		return st.Degraded.Render("⚠ interrupted") + " " + what + fmt.Sprintf(" at step %d/%d (%s)", r.Step+1, r.Steps, r.State) +
			st.Subtle.Render(" — u resume · r roll back")
	}
	return st.Subtle.Render("last: ") + what + " " + stateText(st, r.State, "") + st.Subtle.Render(" "+ago(s.env.now(), r.Started)+" by "+r.Actor.User)
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
