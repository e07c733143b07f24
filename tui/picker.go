package tui

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/spinner"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"

	"github.com/cutover/cutover/engine"
)

// pickerScreen lists a service's candidate images, newest first, with a
// / filter over tags and digests. Images arrive page by page (a large
// registry takes several round trips): the first page shows at once and
// the rest merge in while the cursor stays on the same image.
type pickerScreen struct {
	env     *env
	service string
	// bySemver orders rows by their tag as a version (the service's
	// source.semver), not by push time.
	bySemver bool
	rows     []ImageRow
	hay      []string // lower-cased tags, digest and ref of each row, for the filter
	seen     map[string]bool
	loaded   bool // something to show: a page or the end of the listing
	loading  bool // more pages may come
	load     int  // which listing this picker shows (stale pages are dropped)
	stop     context.CancelFunc
	spin     spinner.Model
	err      string
	cursor   int
	moved    bool // the operator moved the cursor: it stays on their image
	filter   textinput.Model
	typing   bool // the filter has focus
	w, h     int
}

// loadingSpinner uses block glyphs, which render everywhere the console does.
var loadingSpinner = spinner.Spinner{Frames: []string{"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█", "▇", "▆", "▅", "▄", "▃", "▂"}, FPS: time.Second / 10}

func newPicker(e *env, service string, load int, stop context.CancelFunc) pickerScreen {
	ti := textinput.New()
	ti.Prompt = "/"
	ti.Placeholder = "tag or digest"
	return pickerScreen{env: e, service: service, filter: ti, load: load, stop: stop, loading: true,
		seen: map[string]bool{}, spin: spinner.New(spinner.WithSpinner(loadingSpinner), spinner.WithStyle(e.styles.Running))}
}

// close stops a listing still in progress: the operator left the picker.
func (s *pickerScreen) close() {
	if s.stop != nil {
		s.stop()
	}
	s.loading = false
}

// addPage merges one page of the listing, newest first; the last message
// ends the loading. Once the operator has moved the cursor it stays on
// their image as rows arrive above it; until then it stays on the top
// row, the newest image so far (a registry's first page is not the newest).
func (s *pickerScreen) addPage(msg imagePageMsg) {
	cur, had := s.selected()
	if len(msg.rows) > 0 {
		page := make([]ImageRow, 0, len(msg.rows))
		for _, r := range msg.rows {
			k := r.Ref + "\x00" + r.Digest
			if !s.seen[k] {
				s.seen[k] = true
				page = append(page, r)
			}
		}
		first := func(a, b ImageRow) bool { return engine.CompareImages(a.Image, b.Image, s.bySemver) < 0 }
		sort.SliceStable(page, func(i, j int) bool { return first(page[i], page[j]) })
		s.rows = mergeBy(s.rows, page, first)
		s.hay = s.hay[:0]
		for _, r := range s.rows {
			s.hay = append(s.hay, strings.ToLower(strings.Join(r.Tags, " ")+" "+r.Digest+" "+r.Ref))
		}
	}
	s.loaded = true
	if msg.done {
		s.loading = false
		if msg.err != nil {
			s.err = advise("list images", msg.err)
		}
	}
	if had && s.moved {
		for i, r := range s.visible() {
			if r.Ref == cur.Ref && r.Digest == cur.Digest {
				s.cursor = i
				break
			}
		}
	}
}

// mergeBy merges two lists sorted by first.
func mergeBy(a, b []ImageRow, first func(a, b ImageRow) bool) []ImageRow {
	out := make([]ImageRow, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if first(b[j], a[i]) {
			out = append(out, b[j])
			j++
		} else {
			out = append(out, a[i])
			i++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
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
	for i, r := range s.rows {
		if strings.Contains(s.hay[i], q) {
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
			s.moved = true
		case key.Matches(k, s.env.keys.Down) || k.String() == "down":
			s.cursor = max(0, min(len(s.visible())-1, s.cursor+1))
			s.moved = true
		}
	}
	return s, nil
}

// View draws the table of images.
func (s pickerScreen) View() string {
	st := s.env.styles
	w := max(40, s.w)
	var b []string
	order := " · choose an image (newest first)"
	if s.bySemver {
		order = " · choose an image (highest version first)"
	}
	b = append(b, st.Title.Render(s.service)+st.Subtle.Render(order))
	if s.loading {
		b[0] += "  " + s.spin.View() + st.Subtle.Render(fmt.Sprintf(" loading… %d images so far", len(s.rows)))
	}
	if s.typing || s.filter.Value() != "" {
		b = append(b, s.filter.View())
	}
	if s.err != "" {
		b = append(b, cut(st.Error.Render("× "+s.err), w))
		if len(s.rows) == 0 {
			return strings.Join(b, "\n")
		}
	}
	if !s.loaded {
		b = append(b, st.Subtle.Render("reading the registry…"))
		return strings.Join(b, "\n")
	}
	rows := s.visible()
	if len(rows) == 0 {
		switch {
		case len(s.rows) == 0 && s.loading:
			b = append(b, st.Subtle.Render("reading the registry…"))
		case len(s.rows) == 0:
			b = append(b, "No images found for "+s.service+". Build or push one, then come back (esc).")
		default:
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
		line := pre + fit(tag, tagW) + " " + st.Subtle.Render(fit(engine.ShortDigest(r.Digest), 12)) + " " + fit(engine.Ago(now, r.Pushed), 9) + " " +
			fit(engine.HumanBytes(r.Size), 9) + " " + mark
		if i == s.cursor {
			line = st.Selected.Render(cut(line, w))
		}
		b = append(b, cut(line, w))
	}
	if len(rows) > room && !s.loading {
		b[0] += st.Subtle.Render(fmt.Sprintf("  %d/%d", s.cursor+1, len(rows)))
	}
	return strings.Join(b, "\n")
}
