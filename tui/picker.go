package tui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
)

// pickerScreen lists a service's candidate images, newest first, with a
// / filter over tags and digests.
type pickerScreen struct {
	env     *env
	service string
	rows    []ImageRow
	loaded  bool
	err     string
	cursor  int
	filter  textinput.Model
	typing  bool // the filter has focus
	w, h    int
}

func newPicker(e *env, service string) pickerScreen {
	ti := textinput.New()
	ti.Prompt = "/"
	ti.Placeholder = "tag or digest"
	return pickerScreen{env: e, service: service, filter: ti}
}

// SetSize sets the area the screen draws in.
func (s *pickerScreen) SetSize(w, h int) {
	s.w, s.h = w, h
	s.filter.SetWidth(max(10, w-4))
}

// visible is the rows that match the filter, in registry order (newest first).
func (s pickerScreen) visible() []ImageRow {
	q := strings.ToLower(strings.TrimSpace(s.filter.Value()))
	if q == "" {
		return s.rows
	}
	var out []ImageRow
	for _, r := range s.rows {
		hay := strings.ToLower(strings.Join(r.Tags, " ") + " " + r.Digest + " " + r.Ref)
		if strings.Contains(hay, q) {
			out = append(out, r)
		}
	}
	return out
}

// selected is the image under the cursor.
func (s pickerScreen) selected() (ImageRow, bool) {
	v := s.visible()
	if s.cursor < 0 || s.cursor >= len(v) {
		return ImageRow{}, false
	}
	return v[s.cursor], true
}

// startFilter gives the filter focus.
func (s *pickerScreen) startFilter() tea.Cmd {
	s.typing = true
	return s.filter.Focus()
}

// Update handles the filter while it has focus, and the cursor.
func (s pickerScreen) Update(msg tea.Msg) (pickerScreen, tea.Cmd) {
	if k, ok := msg.(tea.KeyPressMsg); ok && s.typing {
		switch k.String() {
		case "enter", "esc":
			s.typing = false
			s.filter.Blur()
			if k.String() == "esc" {
				s.filter.SetValue("")
			}
			s.cursor = 0
			return s, nil
		case "up", "down":
			// fall through to the cursor below while typing
		default:
			var cmd tea.Cmd
			s.filter, cmd = s.filter.Update(msg)
			s.cursor = 0
			return s, cmd
		}
	}
	if k, ok := msg.(tea.KeyPressMsg); ok {
		switch {
		case key.Matches(k, s.env.keys.Up) || k.String() == "up":
			s.cursor = max(0, s.cursor-1)
		case key.Matches(k, s.env.keys.Down) || k.String() == "down":
			s.cursor = max(0, min(len(s.visible())-1, s.cursor+1))
		}
	}
	return s, nil
}

// View draws the table of images.
func (s pickerScreen) View() string {
	st := s.env.styles
	w := max(40, s.w)
	var b []string
	b = append(b, st.Title.Render(s.service)+st.Subtle.Render(" · choose an image (newest first)"))
	if s.typing || s.filter.Value() != "" {
		b = append(b, s.filter.View())
	}
	switch {
	case s.err != "":
		b = append(b, st.Error.Render("× "+s.err))
		return strings.Join(b, "\n")
	case !s.loaded:
		b = append(b, st.Subtle.Render("reading the registry…"))
		return strings.Join(b, "\n")
	}
	rows := s.visible()
	if len(rows) == 0 {
		if len(s.rows) == 0 {
			b = append(b, "No images found for "+s.service+". Build or push one, then come back (esc).")
		} else {
			b = append(b, st.Subtle.Render("no image matches the filter — esc clears it"))
		}
		return strings.Join(b, "\n")
	}
	tagW := max(10, min(40, w-2-13-9-10-16-4))
	head := "  " + fit("TAG", tagW) + " " + fit("DIGEST", 12) + " " + fit("PUSHED", 9) + " " + fit("SIZE", 9) + " " + "MARK"
	b = append(b, st.Heading.Render(cut(head, w)))
	room := max(1, s.h-len(b))
	start := max(0, min(s.cursor-room/2, len(rows)-room))
	now := s.env.now()
	for i := start; i < len(rows) && i < start+room; i++ {
		r := rows[i]
		tag := strings.Join(r.Tags, ", ")
		if tag == "" {
			tag = "<untagged>"
		}
		mark := ""
		switch {
		case r.Running:
			mark = st.Healthy.Render("● running")
		case r.RanAt:
			mark = st.Subtle.Render("↺ ran before")
		}
		if r.Scan != "" {
			mark += st.Subtle.Render(" " + r.Scan)
		}
		pre := "  "
		if i == s.cursor {
			pre = "▸ "
		}
		line := pre + fit(tag, tagW) + " " + st.Subtle.Render(fit(shortDigest(r.Digest), 12)) + " " + fit(ago(now, r.Pushed), 9) + " " +
			fit(size(r.Size), 9) + " " + mark
		if i == s.cursor {
			line = st.Selected.Render(cut(line, w))
		}
		b = append(b, cut(line, w))
	}
	if len(rows) > room {
		b[0] += st.Subtle.Render(fmt.Sprintf("  %d/%d", s.cursor+1, len(rows)))
	}
	return strings.Join(b, "\n")
}
