package tui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/cutover/cutover/engine"
)

// historyScreen lists past releases from the journal and, on enter, one
// release's events.
type historyScreen struct {
	env *env
	// service is the service shown ("" for all); home the service
	// selected on the home screen, which the a key switches back to.
	service string
	home    string
	records []engine.ReleaseRecord
	loaded  bool
	err     string
	cursor  int
	// showing is the release whose events are open ("" for the list).
	showing string
	events  []engine.Event
	evErr   string
	offset  int
	w, h    int
}

func newHistory(e *env, service string) historyScreen {
	return historyScreen{env: e, service: service, home: service}
}

// SetSize sets the area the screen draws in.
func (s *historyScreen) SetSize(w, h int) { s.w, s.h = w, h }

func (s historyScreen) selected() (engine.ReleaseRecord, bool) {
	if s.cursor < 0 || s.cursor >= len(s.records) {
		return engine.ReleaseRecord{}, false
	}
	return s.records[s.cursor], true
}

// Update moves the cursor or scrolls the events.
func (s historyScreen) Update(msg tea.Msg) (historyScreen, tea.Cmd) {
	if k, ok := msg.(tea.KeyPressMsg); ok {
		up, down := key.Matches(k, s.env.keys.Up), key.Matches(k, s.env.keys.Down)
		if s.showing != "" {
			if up {
				s.offset = max(0, s.offset-1)
			}
			if down {
				s.offset = min(max(0, len(s.events)-1), s.offset+1)
			}
			return s, nil
		}
		if up {
			s.cursor = max(0, s.cursor-1)
		}
		if down {
			s.cursor = max(0, min(len(s.records)-1, s.cursor+1))
		}
	}
	return s, nil
}

// View draws the list, or the open release's events.
func (s historyScreen) View() string {
	st := s.env.styles
	w := max(40, s.w)
	now := s.env.now()
	scope := "all services"
	if s.service != "" {
		scope = s.service
	}
	out := []string{st.Title.Render("history · "+scope) + st.Subtle.Render(" · releases from the journal, newest first")}
	if s.err != "" {
		return strings.Join(append(out, st.Error.Render("× "+s.err)), "\n")
	}
	if !s.loaded {
		return strings.Join(append(out, st.Subtle.Render("reading the journal…")), "\n")
	}
	if s.showing != "" {
		rec, _ := s.selected()
		out = append(out, cut(st.Heading.Render(rec.ID)+"  "+s.summary(rec), w))
		if s.evErr != "" {
			return strings.Join(append(out, st.Error.Render("× "+s.evErr)), "\n")
		}
		room := max(1, s.h-len(out))
		start := min(s.offset, max(0, len(s.events)-room))
		for i := start; i < len(s.events) && i < start+room; i++ {
			ev := s.events[i]
			msg := ev.Message
			if ev.Kind == engine.EventPlanned {
				msg = fmt.Sprintf("planned %d steps", len(ev.Plan))
			}
			line := ev.At.Format("15:04:05") + " " + fit(string(ev.Kind), 13) + " " + strings.ReplaceAll(msg, "\n", " ")
			if ev.Error != "" {
				line += " — " + st.Error.Render(ev.Error)
			}
			out = append(out, cut(line, w))
		}
		return strings.Join(out, "\n")
	}
	if len(s.records) == 0 {
		if s.service != "" {
			return strings.Join(append(out, "No releases of "+s.service+" yet — a shows every service."), "\n")
		}
		return strings.Join(append(out, "No releases yet."), "\n")
	}
	head := "  " + fit("WHEN", 9) + " " + fit("SERVICE", 10) + " " + fit("RELEASE", 26) + " " + fit("OUTCOME", 16) + " BY"
	out = append(out, st.Heading.Render(cut(head, w)))
	room := max(1, s.h-len(out))
	start := max(0, min(s.cursor-room/2, len(s.records)-room))
	for i := start; i < len(s.records) && i < start+room; i++ {
		r := s.records[i]
		pre := "  "
		if i == s.cursor {
			pre = "▸ "
		}
		line := pre + fit(engine.Ago(now, r.Started), 9) + " " + fit(r.Service, 10) + " " + fit(s.what(r), 26) + " " +
			fit(stateText(st, r.State, ""), 16) + " " + r.Actor.String()
		if i == s.cursor {
			line = st.Selected.Render(cut(line, w))
		}
		out = append(out, cut(line, w))
	}
	return strings.Join(out, "\n")
}

func (s historyScreen) what(r engine.ReleaseRecord) string {
	if r.Kind == engine.KindRollback {
		return "rollback to " + r.To.Version
	}
	return fmt.Sprintf("%s %s → %s", r.Strategy, versions(r.From), r.To.Version)
}

func (s historyScreen) summary(r engine.ReleaseRecord) string {
	out := s.what(r) + " " + stateText(s.env.styles, r.State, "") + " by " + r.Actor.String()
	if r.Error != "" {
		out += " — " + s.env.styles.Error.Render(r.Error)
	}
	return out
}
