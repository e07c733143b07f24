package tui

import (
	"context"
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
	showing  string
	events   []engine.Event
	evLoaded bool
	evErr    string
	offset   int
	w, h     int
}

// newHistory is the history of service ("" for all), where a switches
// back to home's service.
func newHistory(e *env, service, home string) historyScreen {
	return historyScreen{env: e, service: service, home: home}
}

// load reads the journal's releases of the screen's scope.
func (s historyScreen) load() tea.Cmd { return loadHistory(s.env.ctx, s.env.b, s.service) }

// SetSize sets the area the screen draws in.
func (s *historyScreen) SetSize(w, h int) { s.w, s.h = w, h }

func (s historyScreen) selected() (engine.ReleaseRecord, bool) {
	if s.cursor < 0 || s.cursor >= len(s.records) {
		return engine.ReleaseRecord{}, false
	}
	return s.records[s.cursor], true
}

// Update takes the journal's answers, switches the scope, opens a
// release's events, and moves the cursor or scrolls the events.
func (s historyScreen) Update(msg tea.Msg) (historyScreen, tea.Cmd) {
	switch msg := msg.(type) {
	case historyMsg:
		if msg.service != s.service {
			return s, nil // an answer for the scope the operator switched away from
		}
		if msg.err != nil {
			s.err = advise("read the journal", msg.err)
		} else {
			s.records, s.loaded = msg.records, true
		}
		return s, nil
	case eventsMsg:
		if msg.id != s.showing {
			return s, nil
		}
		if msg.err != nil {
			s.evErr = advise("read events", msg.err)
		} else {
			s.events, s.evLoaded = msg.events, true
		}
		return s, nil
	}
	if k, ok := msg.(tea.KeyPressMsg); ok {
		km := s.env.keys
		switch {
		case key.Matches(k, km.AllServices):
			scope := s.home
			if s.service != "" {
				scope = ""
			}
			n := newHistory(s.env, scope, s.home)
			n.SetSize(s.w, s.h)
			return n, n.load()
		case key.Matches(k, km.Events):
			rec, _ := s.selected()
			s.showing, s.events, s.evLoaded, s.evErr, s.offset = rec.ID, nil, false, "", 0
			return s, loadEvents(s.env.ctx, s.env.b, rec.ID)
		}
		up, down := key.Matches(k, km.Up), key.Matches(k, km.Down)
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

// enable turns on the list's keys, or the events' scrolling.
func (s *historyScreen) enable(k *KeyMap) {
	k.Up.SetEnabled(true)
	k.Down.SetEnabled(true)
	_, ok := s.selected()
	k.Events.SetEnabled(ok && s.showing == "" && s.loaded)
	k.AllServices.SetEnabled(s.showing == "" && s.home != "")
	if s.service == "" {
		k.AllServices.SetHelp("a", "only "+s.home)
	}
}

// subject is the service shown, or home's when every service is.
func (s *historyScreen) subject() string {
	if s.service == "" {
		return s.home
	}
	return s.service
}

// busy says what the journal is being read for.
func (s *historyScreen) busy() string {
	switch {
	case s.showing != "" && !s.evLoaded && s.evErr == "":
		return "reading events"
	case !s.loaded && s.err == "":
		return "reading the journal"
	}
	return ""
}

// back closes a release's events; from the list the root leaves.
func (s *historyScreen) back() bool {
	if s.showing == "" {
		return false
	}
	s.showing = ""
	return true
}

func (s *historyScreen) update(msg tea.Msg) (cmd tea.Cmd) {
	*s, cmd = s.Update(msg)
	return cmd
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

// Messages of the history screen.
type (
	historyMsg struct {
		service string // "" for every service
		records []engine.ReleaseRecord
		err     error
	}
	eventsMsg struct {
		id     string
		events []engine.Event
		err    error
	}
)

func loadHistory(ctx context.Context, b Backend, service string) tea.Cmd {
	return safe(func() tea.Msg {
		r, err := b.History(ctx, service, 200)
		return historyMsg{service, r, err}
	}, func(err error) tea.Msg { return historyMsg{service: service, err: err} })
}

func loadEvents(ctx context.Context, b Backend, id string) tea.Cmd {
	return safe(func() tea.Msg {
		e, err := b.Events(ctx, id)
		return eventsMsg{id, e, err}
	}, func(err error) tea.Msg { return eventsMsg{id: id, err: err} })
}
